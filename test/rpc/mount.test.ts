import assert from 'node:assert/strict';
import type { RpcServer } from '../../src/nfs/rpc-server';
import { MountProgram } from '../../src/nfs/mount';
import { PortmapProgram, daemonRegistrations } from '../../src/nfs/portmap';
import { ACL_CACHE_MAX, ExportTable, effectiveCred } from '../../src/nfs/exports';
import { defaultExport } from '../../src/config';
import { silentLogger } from '../../src/log';
import { RawTcpClient, callMsg, newServer, parseReply, readStr, successBody, udpCall, xdrStr } from './helpers';

const MOUNT = 100005;

const ok = successBody;

function parseExports(b: Buffer): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let p = 0;
  while (b.readUInt32BE(p) === 1) {
    let dir: string;
    [dir, p] = readStr(b, p + 4);
    const groups: string[] = [];
    while (b.readUInt32BE(p) === 1) {
      let g: string;
      [g, p] = readStr(b, p + 4);
      groups.push(g);
    }
    p += 4;
    out[dir] = groups;
  }
  return out;
}

function parseDump(b: Buffer): string[] {
  const out: string[] = [];
  let p = 0;
  while (b.readUInt32BE(p) === 1) {
    let host: string;
    let dir: string;
    [host, p] = readStr(b, p + 4);
    [dir, p] = readStr(b, p);
    out.push(`${host}:${dir}`);
  }
  return out;
}

describe('MOUNT v3', function () {
  this.timeout(10_000);
  let server: RpcServer;
  let port: number;
  let c: RawTcpClient;
  const exports = new ExportTable([
    defaultExport('/export', 1),
    { ...defaultExport('/anon', 3), allowAuthNone: true },
    { ...defaultExport('/denied', 2), clients: ['10.0.0.0/8', 'fd00::/8'] },
  ]);

  before(async () => {
    const mount = new MountProgram({
      exports,
      rootHandle: (id) => Buffer.alloc(32, id),
      // a tree with the directory sub/dir and the file "file"
      resolvePath: async (id, names) => {
        const p = names.join('/');
        if (p === 'sub/dir' || p === 'sub') return { status: 0, handle: Buffer.alloc(32, 0xe0 + id) };
        if (names[0] === 'file') return { status: 20 };
        return { status: 2 };
      },
      log: silentLogger(),
    });
    server = newServer();
    const tcp = await server.listenTcp('127.0.0.1', 0, [mount]);
    await server.listenUdp('127.0.0.1', tcp.port, [mount]);
    port = tcp.port;
    c = await RawTcpClient.connect(port);
  });
  after(async () => {
    c.close();
    await server.close(100);
  });

  it('MNT of an allowed export returns the root handle and AUTH_SYS', async () => {
    const b = ok(await c.call(callMsg(1, MOUNT, 3, 1, xdrStr('/export'))));
    assert.equal(b.readUInt32BE(0), 0);
    assert.equal(b.readUInt32BE(4), 32);
    assert.deepEqual(b.subarray(8, 40), Buffer.alloc(32, 1));
    assert.equal(b.readUInt32BE(40), 1);
    assert.equal(b.readUInt32BE(44), 1);
    assert.equal(b.length, 48);
    // trailing slash is the same export; AUTH_NONE export offers both flavors; over UDP too
    const u = ok(parseReply(await udpCall(port, callMsg(2, MOUNT, 3, 1, xdrStr('/anon/')))));
    assert.equal(u.readUInt32BE(0), 0);
    assert.deepEqual(u.subarray(8, 40), Buffer.alloc(32, 3));
    assert.deepEqual([u.readUInt32BE(40), u.readUInt32BE(44), u.readUInt32BE(48)], [2, 1, 0]);
  });

  it('MNT of an unknown path is MNT3ERR_NOENT, of an export excluding the client MNT3ERR_ACCES', async () => {
    assert.equal(ok(await c.call(callMsg(1, MOUNT, 3, 1, xdrStr('/nope')))).readUInt32BE(0), 2);
    assert.equal(ok(await c.call(callMsg(2, MOUNT, 3, 1, xdrStr('/export/nosuch')))).readUInt32BE(0), 2);
    const denied = ok(await c.call(callMsg(3, MOUNT, 3, 1, xdrStr('/denied'))));
    assert.equal(denied.readUInt32BE(0), 13);
    assert.equal(denied.length, 4);
  });

  it('MNT below an export root: directories only, no "..", the export ACL applies', async () => {
    ok(await c.call(callMsg(99, MOUNT, 3, 4))); // UMNTALL: start from an empty mount list
    const b = ok(await c.call(callMsg(1, MOUNT, 3, 1, xdrStr('/export/sub/dir/'))));
    assert.equal(b.readUInt32BE(0), 0);
    assert.deepEqual(b.subarray(8, 40), Buffer.alloc(32, 0xe1));
    assert.equal(ok(await c.call(callMsg(2, MOUNT, 3, 1, xdrStr('/export/file/x')))).readUInt32BE(0), 20);
    assert.equal(ok(await c.call(callMsg(3, MOUNT, 3, 1, xdrStr('/export/sub/../sub')))).readUInt32BE(0), 22);
    assert.equal(ok(await c.call(callMsg(4, MOUNT, 3, 1, xdrStr('/denied/sub')))).readUInt32BE(0), 13);
    assert.equal(ok(await c.call(callMsg(5, MOUNT, 3, 1, xdrStr(`/export/${'n'.repeat(256)}`)))).readUInt32BE(0), 63);
    assert.deepEqual(parseDump(ok(await c.call(callMsg(6, MOUNT, 3, 2)))), ['127.0.0.1:/export/sub/dir']);
    ok(await c.call(callMsg(7, MOUNT, 3, 3, xdrStr('/export/sub/dir'))));
    assert.deepEqual(parseDump(ok(await c.call(callMsg(8, MOUNT, 3, 2)))), []);
  });

  it('EXPORT lists the exports this client may mount, with their networks as groups', async () => {
    const list = parseExports(ok(await c.call(callMsg(1, MOUNT, 3, 5))));
    assert.deepEqual(list, { '/export': ['127.0.0.0/8', '::1/128'], '/anon': ['127.0.0.0/8', '::1/128'] });
    // MOUNT v1 EXPORT (showmount) answers the same
    assert.deepEqual(parseExports(ok(parseReply(await udpCall(port, callMsg(2, MOUNT, 1, 5))))), list);
  });

  it('DUMP, UMNT, UMNTALL keep the mount list', async () => {
    ok(await c.call(callMsg(1, MOUNT, 3, 1, xdrStr('/export'))));
    ok(await c.call(callMsg(2, MOUNT, 3, 1, xdrStr('/anon'))));
    ok(await c.call(callMsg(9, MOUNT, 3, 1, xdrStr('/denied'))));
    const dump = parseDump(ok(await c.call(callMsg(3, MOUNT, 3, 2))));
    assert.deepEqual(dump.sort(), ['127.0.0.1:/anon', '127.0.0.1:/export']);
    assert.equal(ok(await c.call(callMsg(4, MOUNT, 3, 3, xdrStr('/export')))).length, 0);
    assert.deepEqual(parseDump(ok(await c.call(callMsg(5, MOUNT, 3, 2)))), ['127.0.0.1:/anon']);
    assert.equal(ok(await c.call(callMsg(6, MOUNT, 3, 4))).length, 0);
    assert.deepEqual(parseDump(ok(await c.call(callMsg(7, MOUNT, 3, 2)))), []);
  });

  it('bad arguments and versions', async () => {
    const long = await c.call(callMsg(1, MOUNT, 3, 1, xdrStr(`/${'a'.repeat(1024)}`)));
    assert.equal(long.kind === 'accepted' && long.stat, 4, 'dirpath over MNTPATHLEN is GARBAGE_ARGS');
    const trunc = await c.call(callMsg(2, MOUNT, 3, 1, Buffer.from([0, 0, 0, 9, 47])));
    assert.equal(trunc.kind === 'accepted' && trunc.stat, 4);
    const v1mnt = await c.call(callMsg(3, MOUNT, 1, 1, xdrStr('/export')));
    assert.equal(v1mnt.kind === 'accepted' && v1mnt.stat, 3, 'MNT v1 would need NFSv2');
    assert.deepEqual(await c.call(callMsg(4, MOUNT, 4, 0)), { xid: 4, kind: 'accepted', stat: 2, low: 1, high: 3, body: Buffer.alloc(0) });
    assert.equal((await c.call(callMsg(5, MOUNT, 3, 6))).kind === 'accepted', true);
  });
});

describe('MOUNT and portmap over IPv6 loopback', function () {
  this.timeout(10_000);
  it('MNT from ::1 is allowed by ::1/128; rpcbind answers with an IPv6 universal address', async () => {
    const table = new ExportTable([defaultExport('/export', 1), { ...defaultExport('/v4only', 2), clients: ['127.0.0.0/8'] }]);
    const mount = new MountProgram({ exports: table, rootHandle: (id) => Buffer.alloc(32, id), log: silentLogger() });
    const pm = new PortmapProgram();
    const server = newServer();
    try {
      const tcp = await server.listenTcp('::1', 0, [mount]);
      await server.listenUdp('::1', tcp.port, [mount]);
      const pmTcp = await server.listenTcp('::1', 0, [pm]);
      for (const r of daemonRegistrations({ host: '::1', mountPort: tcp.port, nfsPort: 2049 })) pm.register(r);
      const c = await RawTcpClient.connect(tcp.port, '::1');
      try {
        assert.equal(ok(await c.call(callMsg(1, MOUNT, 3, 1, xdrStr('/export')))).readUInt32BE(0), 0);
        assert.equal(ok(await c.call(callMsg(2, MOUNT, 3, 1, xdrStr('/v4only')))).readUInt32BE(0), 13);
      } finally {
        c.close();
      }
      assert.equal(ok(parseReply(await udpCall(tcp.port, callMsg(3, MOUNT, 3, 1, xdrStr('/export')), 3000, '::1'))).readUInt32BE(0), 0);
      const p = await RawTcpClient.connect(pmTcp.port, '::1');
      try {
        const b = ok(await p.call(callMsg(4, 100000, 4, 3, Buffer.concat([Buffer.from([0, 1, 0x86, 0xa5, 0, 0, 0, 3]), xdrStr(''), xdrStr(''), xdrStr('')]))));
        const [addr] = readStr(b, 0);
        assert.equal(addr, `::1.${tcp.port >> 8}.${tcp.port & 0xff}`);
      } finally {
        p.close();
      }
    } finally {
      await server.close(100);
    }
  });
});

describe('export table', () => {
  const t = new ExportTable([
    { ...defaultExport('/v4', 1), clients: ['192.168.1.0/24', '10.0.0.7'] },
    { ...defaultExport('/v6', 2), clients: ['2001:db8::/32', '::1/128'] },
    { ...defaultExport('/mapped', 3), clients: ['::ffff:172.16.0.0/108'] },
  ]);
  const v4 = t.byPath('/v4')!;
  const v6 = t.byPath('/v6')!;
  const mapped = t.byPath('/mapped')!;

  it('matches IPv4, IPv6 and IPv4-mapped IPv6 peers against CIDR networks', () => {
    assert.equal(t.clientAllowed(v4, '192.168.1.77'), true);
    assert.equal(t.clientAllowed(v4, '::ffff:192.168.1.77'), true);
    assert.equal(t.clientAllowed(v4, '192.168.2.1'), false);
    assert.equal(t.clientAllowed(v4, '10.0.0.7'), true);
    assert.equal(t.clientAllowed(v4, '10.0.0.8'), false);
    assert.equal(t.clientAllowed(v6, '2001:db8:1::5'), true);
    assert.equal(t.clientAllowed(v6, '2001:db9::5'), false);
    assert.equal(t.clientAllowed(v6, '::1'), true);
    assert.equal(t.clientAllowed(v6, '127.0.0.1'), false);
    assert.equal(t.clientAllowed(mapped, '172.16.3.4'), true);
    assert.equal(t.clientAllowed(mapped, '172.32.0.1'), false);
    assert.equal(t.clientAllowed(v4, 'not-an-ip'), false);
    // verdicts are remembered per export and address: asked again, and across the cache bound
    for (let round = 0; round < 2; round++) {
      assert.equal(t.clientAllowed(v4, '192.168.1.77'), true);
      assert.equal(t.clientAllowed(v4, '192.168.2.1'), false);
      assert.equal(t.clientAllowed(v6, '192.168.1.77'), false);
      assert.equal(t.clientAllowed(mapped, '172.16.3.4'), true);
      assert.equal(t.clientAllowed(v4, 'not-an-ip'), false);
      for (let i = 0; i < ACL_CACHE_MAX + 10; i++) assert.equal(t.clientAllowed(v4, `10.1.${i >> 8}.${i & 255}`), false);
    }
    assert.equal(t.byId(2), v6);
    assert.equal(t.byId(9), undefined);
  });

  it('squashes credentials; AUTH_NONE only where allowed', () => {
    const base = { ...defaultExport('/x', 1) };
    const root = { flavor: 1 as const, sys: { stamp: 0, machine: 'm', uid: 0, gid: 0, gids: [0, 5] } };
    const user = { flavor: 1 as const, sys: { stamp: 0, machine: 'm', uid: 1000, gid: 100, gids: [100, 0] } };
    const exp = (over: object) => new ExportTable([{ ...base, ...over }]).byId(1)!;
    assert.deepEqual(effectiveCred(exp({}), root), { uid: 65534, gid: 65534, gids: [65534, 5] });
    assert.deepEqual(effectiveCred(exp({ rootSquash: false }), root), { uid: 0, gid: 0, gids: [0, 5] });
    assert.deepEqual(effectiveCred(exp({}), user), { uid: 1000, gid: 100, gids: [100, 65534] });
    assert.deepEqual(effectiveCred(exp({ allSquash: true, anonUid: 7, anonGid: 8 }), user), { uid: 7, gid: 8, gids: [] });
    assert.equal(effectiveCred(exp({}), { flavor: 0 }), undefined);
    assert.deepEqual(effectiveCred(exp({ allowAuthNone: true }), { flavor: 0 }), { uid: 65534, gid: 65534, gids: [] });
  });

  it('rejects duplicate ids and paths', () => {
    assert.throws(() => new ExportTable([defaultExport('/a', 1), defaultExport('/b', 1)]), /duplicate export id/);
    assert.throws(() => new ExportTable([defaultExport('/a', 1), defaultExport('/a/', 2)]), /duplicate export path/);
  });
});
