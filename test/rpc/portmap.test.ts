import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import type { RpcServer } from '../../src/nfs/rpc-server';
import { PortmapProgram, daemonRegistrations, fromUaddr, toUaddr } from '../../src/nfs/portmap';
import type { RpcCallContext } from '../../src/nfs/rpc-program';
import { RawTcpClient, callMsg, newServer, parseReply, readStr, successBody, u32be, udpCall, xdrStr } from './helpers';

const run = promisify(execFile);

const body = successBody;

function rpcb(prog: number, vers: number, netid: string, addr = '', owner = ''): Buffer {
  return Buffer.concat([u32be(prog, vers), xdrStr(netid), xdrStr(addr), xdrStr(owner)]);
}

describe('portmapper / rpcbind', function () {
  this.timeout(10_000);
  let server: RpcServer;
  let pm: PortmapProgram;
  let port: number;

  before(async () => {
    pm = new PortmapProgram();
    server = newServer();
    const tcp = await server.listenTcp('127.0.0.1', 0, [pm]);
    await server.listenUdp('127.0.0.1', tcp.port, [pm]);
    port = tcp.port;
    for (const r of daemonRegistrations({ host: '127.0.0.1', nfsPort: 2049, mountPort: 20048, portmapPort: port })) pm.register(r);
  });
  after(() => server.close(100));

  it('v2 GETPORT over UDP and TCP', async () => {
    const getport = (xid: number, prog: number, vers: number, prot: number) => callMsg(xid, 100000, 2, 3, u32be(prog, vers, prot, 0));
    assert.equal(body(parseReply(await udpCall(port, getport(1, 100005, 3, 17)))).readUInt32BE(0), 20048);
    assert.equal(body(parseReply(await udpCall(port, getport(2, 100003, 3, 6)))).readUInt32BE(0), 2049);
    assert.equal(body(parseReply(await udpCall(port, getport(3, 100003, 3, 17)))).readUInt32BE(0), 0, 'no NFS over UDP');
    const c = await RawTcpClient.connect(port);
    assert.equal(body(await c.call(getport(4, 100005, 1, 6))).readUInt32BE(0), 20048);
    assert.equal(body(await c.call(getport(5, 100000, 2, 6))).readUInt32BE(0), port);
    assert.equal(body(await c.call(getport(6, 100003, 2, 6))).readUInt32BE(0), 0, 'no NFSv2');
    c.close();
  });

  it('v2 DUMP lists every mapping', async () => {
    const b = body(parseReply(await udpCall(port, callMsg(1, 100000, 2, 4))));
    const maps: string[] = [];
    let p = 0;
    while (b.readUInt32BE(p) === 1) {
      maps.push([b.readUInt32BE(p + 4), b.readUInt32BE(p + 8), b.readUInt32BE(p + 12), b.readUInt32BE(p + 16)].join('/'));
      p += 20;
    }
    assert.equal(b.readUInt32BE(p), 0);
    assert.ok(maps.includes('100003/3/6/2049'));
    assert.ok(maps.includes('100005/3/17/20048'));
    assert.ok(maps.includes(`100000/2/6/${port}`));
  });

  it('rpcbind v3/v4 GETADDR returns universal addresses', async () => {
    const c = await RawTcpClient.connect(port);
    const [nfs] = readStr(body(await c.call(callMsg(1, 100000, 3, 3, rpcb(100003, 3, 'tcp')))), 0);
    assert.equal(nfs, '127.0.0.1.8.1');
    // empty netid: the transport the question came on (TCP here)
    const [m] = readStr(body(await c.call(callMsg(2, 100000, 4, 3, rpcb(100005, 3, '')))), 0);
    assert.equal(m, '127.0.0.1.78.80');
    const [none] = readStr(body(await c.call(callMsg(3, 100000, 4, 3, rpcb(100003, 3, 'udp')))), 0);
    assert.equal(none, '');
    c.close();
    const [u] = readStr(body(parseReply(await udpCall(port, callMsg(4, 100000, 4, 3, rpcb(100005, 3, 'udp'))))), 0);
    assert.equal(u, '127.0.0.1.78.80');
  });

  it('rpcbind GETTIME, DUMP, GETADDRLIST; CALLIT is not offered', async () => {
    const t = body(parseReply(await udpCall(port, callMsg(1, 100000, 3, 6)))).readUInt32BE(0);
    assert.ok(Math.abs(t - Date.now() / 1000) < 5);
    const d = body(parseReply(await udpCall(port, callMsg(2, 100000, 4, 4))));
    let p = 0;
    const entries: string[] = [];
    while (d.readUInt32BE(p) === 1) {
      const prog = d.readUInt32BE(p + 4);
      const vers = d.readUInt32BE(p + 8);
      let netid: string;
      let addr: string;
      [netid, p] = readStr(d, p + 12);
      [addr, p] = readStr(d, p);
      [, p] = readStr(d, p);
      entries.push(`${prog}/${vers}/${netid}/${addr}`);
    }
    assert.ok(entries.includes('100005/3/udp/127.0.0.1.78.80'));
    const l = body(parseReply(await udpCall(port, callMsg(3, 100000, 4, 11, rpcb(100005, 3, '')))));
    assert.equal(l.readUInt32BE(0), 1);
    const [maddr] = readStr(l, 4);
    assert.equal(maddr, '127.0.0.1.78.80');
    const callit = parseReply(await udpCall(port, callMsg(4, 100000, 2, 5, u32be(100005, 3, 0, 0))));
    assert.equal(callit.kind === 'accepted' && callit.stat, 3);
  });

  it('SET/UNSET from loopback work, from elsewhere are refused', async () => {
    const set = callMsg(1, 100000, 2, 1, u32be(300000, 1, 6, 4000));
    assert.equal(body(parseReply(await udpCall(port, set))).readUInt32BE(0), 1);
    const get = callMsg(2, 100000, 2, 3, u32be(300000, 1, 6, 0));
    assert.equal(body(parseReply(await udpCall(port, get))).readUInt32BE(0), 4000);
    assert.equal(body(parseReply(await udpCall(port, callMsg(3, 100000, 2, 2, u32be(300000, 1, 6, 0))))).readUInt32BE(0), 1);
    assert.equal(body(parseReply(await udpCall(port, get))).readUInt32BE(0), 0);
    // a remote caller (the program sees the peer address the server reports)
    const remote: RpcCallContext = { xid: 1, prog: 100000, vers: 2, proc: 1, flavor: 0, remoteAddress: '10.1.2.3', remotePort: 1000, transport: 'udp' };
    const r = await pm.handle(remote, new Reader(u32be(300001, 1, 6, 4001)));
    assert.equal(r.kind, 'success');
    assert.deepEqual(r.kind === 'success' && Buffer.from(r.body), u32be(0));
    const r2 = await pm.handle({ ...remote, proc: 2 }, new Reader(u32be(100003, 3, 6, 0)));
    assert.deepEqual(r2.kind === 'success' && Buffer.from(r2.body), u32be(0));
    assert.ok(pm.registrations().some((x) => x.prog === 100003));
  });

  it('DUMP and GETADDRLIST over UDP from afar are dropped (no amplifier for forged sources); over TCP and from loopback answered', async () => {
    const afar: RpcCallContext = { xid: 1, prog: 100000, vers: 2, proc: 4, flavor: 0, remoteAddress: '10.1.2.3', remotePort: 1000, transport: 'udp' };
    assert.equal((await pm.handle(afar, new Reader(new Uint8Array(0)))).kind, 'drop');
    assert.equal((await pm.handle({ ...afar, vers: 3 }, new Reader(new Uint8Array(0)))).kind, 'drop');
    assert.equal((await pm.handle({ ...afar, vers: 4 }, new Reader(new Uint8Array(0)))).kind, 'drop');
    const addrList = new Reader(Buffer.concat([u32be(100003, 3, 0, 0, 0)]));
    assert.equal((await pm.handle({ ...afar, vers: 4, proc: 11 }, addrList)).kind, 'drop');
    // GETPORT from afar over UDP is answered (it is how clients find the service)
    const gp = await pm.handle({ ...afar, proc: 3 }, new Reader(u32be(100000, 2, 17, 0)));
    assert.equal(gp.kind, 'success');
    // the same DUMP over TCP, or over UDP from loopback, is answered with the list
    const tcp = await pm.handle({ ...afar, transport: 'tcp' }, new Reader(new Uint8Array(0)));
    assert.ok(tcp.kind === 'success' && tcp.body.length > 4);
    const local = parseReply(await udpCall(port, callMsg(9, 100000, 2, 4)));
    assert.ok(body(local).length > 4);
  });

  it('truncated arguments are GARBAGE_ARGS', async () => {
    const r = parseReply(await udpCall(port, callMsg(1, 100000, 2, 3, u32be(100003))));
    assert.equal(r.kind === 'accepted' && r.stat, 4);
    const r2 = parseReply(await udpCall(port, callMsg(2, 100000, 3, 3, Buffer.concat([u32be(100003, 3), u32be(1000)]))));
    assert.equal(r2.kind === 'accepted' && r2.stat, 4);
  });

  it('universal addresses round-trip', () => {
    assert.equal(toUaddr('127.0.0.1', 2049), '127.0.0.1.8.1');
    assert.deepEqual(fromUaddr('::1.78.80'), { host: '::1', port: 20048 });
    assert.equal(fromUaddr('127.0.0.1.300.1'), undefined);
    assert.equal(fromUaddr('nonsense'), undefined);
  });

  it('rpcinfo and showmount (system tools) talk to it inside a private network namespace', async function () {
    const fixture = join(__dirname, 'fixtures', 'netns-daemon.js');
    const have = async (cmd: string) => run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false);
    if (!(await have('unshare')) || !(await have('rpcinfo')) || !(await have('showmount')) || !existsSync(fixture)) this.skip();
    let out: string;
    try {
      out = (await run('unshare', ['-n', process.execPath, fixture], { timeout: 60_000 })).stdout;
    } catch (err) {
      const msg = (err as Error).message;
      if (/Operation not permitted|unshare failed/.test(msg)) this.skip();
      throw err;
    }
    const r = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, { code: number; out: string }> & { mountPort: number };
    assert.equal(r.rpcinfoP.code, 0, r.rpcinfoP.out);
    assert.match(r.rpcinfoP.out, /100000\s+2\s+tcp\s+111\s+portmapper/);
    assert.match(r.rpcinfoP.out, /100003\s+3\s+tcp\s+2049\s+nfs/);
    assert.match(r.rpcinfoP.out, new RegExp(`100005\\s+3\\s+udp\\s+${r.mountPort}\\s+mountd`));
    assert.equal(r.rpcinfoS.code, 0, r.rpcinfoS.out);
    assert.match(r.rpcinfoS.out, /100005\s+3,2,1\s+udp,tcp|100005\s+3,2,1\s+tcp,udp/);
    assert.match(r.rpcinfoT.out, /program 100005 version 3 ready and waiting/);
    assert.match(r.rpcinfoU.out, /program 100005 version 3 ready and waiting/);
    assert.equal(r.showmountE.code, 0, r.showmountE.out);
    assert.match(r.showmountE.out, /\/export\s+127\.0\.0\.0\/8,::1\/128/);
    assert.match(r.showmountE.out, /\/other\s+127\.0\.0\.0\/8,10\.9\.0\.0\/16/);
    assert.doesNotMatch(r.showmountE.out, /hidden/);
    assert.equal(r.showmountA.code, 0, r.showmountA.out);
  });
});
