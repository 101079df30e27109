/**
 * The NFSv3 program as the RPC server sees it: NULL, unknown procedures, malformed arguments,
 * credentials, client networks, handles (BADHANDLE / STALE / stable across restarts).
 */
import assert from 'node:assert/strict';
import { XdrEncoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrEncoder';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { AuthFlavor } from '../../src/nfs/rpc-program';
import { decodeHandle, encodeHandle, rootHandle, FH_SIZE } from '../../src/nfs/file-handle';
import { Nfs3Harness, P, S, ALICE, exportConfig } from './support/harness';

function xdr(build: (x: XdrEncoder) => void): Uint8Array {
  const w = new Writer();
  const x = new XdrEncoder(w);
  build(x);
  return w.flush().slice();
}

describe('nfs3 program', function () {
  this.timeout(20_000);
  let h: Nfs3Harness;
  beforeEach(async () => {
    h = await Nfs3Harness.open({
      exports: [
        exportConfig(),
        exportConfig({ id: 2, path: '/ro', readOnly: true }),
        exportConfig({ id: 3, path: '/far', clients: ['10.9.0.0/16'] }),
        exportConfig({ id: 4, path: '/anon', allowAuthNone: true }),
      ],
    });
  });
  afterEach(async () => h.close());

  it('answers NULL with an empty body and names its procedures', async () => {
    const r = await h.raw(P.NULL, new Uint8Array(0));
    assert.deepEqual(r, { kind: 'success', body: new Uint8Array(0) });
    assert.equal(h.program.prog, 100003);
    assert.deepEqual(h.program.versions, [3]);
    assert.equal(h.program.procName(3, 17), 'READDIRPLUS');
    assert.equal(h.program.procName(3, 21), 'COMMIT');
  });

  it('answers PROC_UNAVAIL above procedure 21', async () => {
    for (const proc of [22, 100, 0xffffffff]) assert.deepEqual(await h.raw(proc, new Uint8Array(0)), { kind: 'proc_unavail' });
  });

  it('answers GARBAGE_ARGS for malformed arguments', async () => {
    const fh = rootHandle(1);
    const cases: [number, Uint8Array][] = [
      [P.GETATTR, new Uint8Array(0)],
      [P.GETATTR, new Uint8Array(3)],
      // handle length beyond the buffer
      [P.GETATTR, xdr((x) => x.writeUnsignedInt(32))],
      // handle longer than NFS3_FHSIZE
      [P.GETATTR, xdr((x) => x.writeVarlenOpaque(new Uint8Array(65)))],
      // LOOKUP name longer than the rest of the record
      [P.LOOKUP, xdr((x) => { x.writeVarlenOpaque(fh); x.writeUnsignedInt(1000); x.writeUnsignedInt(0); })],
      // LOOKUP name missing its padding
      [P.LOOKUP, xdr((x) => { x.writeVarlenOpaque(fh); x.writeUnsignedInt(5); x.writeUnsignedInt(0x61616161); }).subarray(0, 4 + 32 + 4 + 5)],
      // WRITE count != data length
      [P.WRITE, xdr((x) => { x.writeVarlenOpaque(fh); x.writeUnsignedHyper(0n); x.writeUnsignedInt(10); x.writeUnsignedInt(2); x.writeVarlenOpaque(new Uint8Array(4)); })],
      // WRITE data shorter than its length word says
      [P.WRITE, xdr((x) => { x.writeVarlenOpaque(fh); x.writeUnsignedHyper(0n); x.writeUnsignedInt(8); x.writeUnsignedInt(2); x.writeUnsignedInt(8); x.writeUnsignedInt(0); })],
      // WRITE stable_how 3
      [P.WRITE, xdr((x) => { x.writeVarlenOpaque(fh); x.writeUnsignedHyper(0n); x.writeUnsignedInt(4); x.writeUnsignedInt(3); x.writeVarlenOpaque(new Uint8Array(4)); })],
      // CREATE createmode3 = 3
      [P.CREATE, xdr((x) => { x.writeVarlenOpaque(fh); x.writeStr('f'); x.writeUnsignedInt(3); })],
      // SETATTR time_how = 3
      [P.SETATTR, xdr((x) => { x.writeVarlenOpaque(fh); for (let i = 0; i < 4; i++) x.writeUnsignedInt(0); x.writeUnsignedInt(3); x.writeUnsignedInt(0); x.writeUnsignedInt(0); })],
      // MKNOD ftype3 = 9
      [P.MKNOD, xdr((x) => { x.writeVarlenOpaque(fh); x.writeStr('n'); x.writeUnsignedInt(9); })],
    ];
    for (const [proc, args] of cases) {
      assert.deepEqual(await h.raw(proc, args), { kind: 'garbage_args' }, `proc ${proc} args ${Buffer.from(args).toString('hex')}`);
    }
    // and the program still works
    assert.equal((await h.getattr(h.root())).status, S.OK);
  });

  it('answers AUTH_TOOWEAK for AUTH_NONE unless the export allows it', async () => {
    const none = { uid: 0, gid: 0, flavor: AuthFlavor.NONE };
    const r = await h.raw(P.GETATTR, h.encodeArgs(P.GETATTR, new m.Nfsv3GetattrRequest(h.root(1))), none);
    assert.deepEqual(r, { kind: 'auth_error', stat: 5 });
    const ok = await h.getattr(h.root(4), none);
    assert.equal(ok.status, S.OK);
  });

  it('answers ACCES to a client outside the export networks', async () => {
    const r = await h.getattr(h.root(3));
    assert.equal(r.status, S.ACCES);
    const r2 = await h.getattr(h.root(1), { ...ALICE, address: '192.0.2.7' });
    assert.equal(r2.status, S.ACCES);
  });

  it('answers BADHANDLE for handles that are not ours', async () => {
    const good = rootHandle(1);
    const flipped = Buffer.from(good);
    flipped[10] ^= 1;
    const badVersion = Buffer.from(good);
    badVersion[0] = 2;
    const bad = [new Uint8Array(0), new Uint8Array(16), Buffer.concat([good, Buffer.alloc(4)]), flipped, badVersion, Buffer.alloc(FH_SIZE)];
    for (const fh of bad) {
      const r = await h.getattr(new s.Nfsv3Fh(fh));
      assert.equal(r.status, S.BADHANDLE, Buffer.from(fh).toString('hex'));
    }
    // also on calls with wcc_data / two handles
    const w = await h.write(new s.Nfsv3Fh(flipped), 0, new Uint8Array(1));
    assert.equal(w.status, S.BADHANDLE);
    assert.equal(w.resfail!.fileWcc.before.attributesFollow, false);
  });

  it('answers STALE for deleted files, reused ids and unknown exports', async () => {
    const f = await h.mkfile(h.root(), 'gone');
    assert.equal((await h.remove(h.root(), 'gone')).status, S.OK);
    assert.equal((await h.getattr(f)).status, S.STALE);
    assert.equal((await h.read(f, 0, 10)).status, S.STALE);
    // same file id, other generation
    const d = decodeHandle(f.data)!;
    const other = new s.Nfsv3Fh(encodeHandle(1, d.fileId, d.generation + 1));
    const f2 = await h.mkfile(h.root(), 'here');
    const d2 = decodeHandle(f2.data)!;
    assert.equal((await h.getattr(new s.Nfsv3Fh(encodeHandle(1, d2.fileId, d2.generation + 1)))).status, S.STALE);
    assert.equal((await h.getattr(other)).status, S.STALE);
    assert.equal((await h.getattr(new s.Nfsv3Fh(rootHandle(99)))).status, S.STALE);
  });

  it('keeps handles valid across a store close and reopen', async () => {
    const dir = await h.mkdirFh(h.root(), 'd');
    const f = await h.mkfile(dir, 'f');
    await h.write(f, 0, Buffer.from('hello'));
    const before = (await h.lookup(dir, 'f')).resok!.object.data;
    await h.reopen();
    const g = await h.getattr(f);
    assert.equal(g.status, S.OK);
    assert.equal(Number(g.resok!.objAttributes.size), 5);
    const l = await h.lookup(dir, 'f');
    assert.deepEqual(Buffer.from(l.resok!.object.data), Buffer.from(before));
    const r = await h.read(f, 0, 100);
    assert.equal(Buffer.from(r.resok!.data).toString(), 'hello');
  });

  it('gives the root one handle however it is reached', async () => {
    const dir = await h.mkdirFh(h.root(), 'sub');
    const up = await h.lookup(dir, '..');
    assert.deepEqual(Buffer.from(up.resok!.object.data), rootHandle(1));
    const dot = await h.lookup(h.root(), '.');
    assert.deepEqual(Buffer.from(dot.resok!.object.data), rootHandle(1));
    const dotdot = await h.lookup(h.root(), '..');
    assert.deepEqual(Buffer.from(dotdot.resok!.object.data), rootHandle(1));
  });

  it('reports every status to onStatus', async () => {
    await h.getattr(h.root());
    await h.lookup(h.root(), 'nope');
    assert.deepEqual(h.statuses.slice(-2), [['GETATTR', 0], ['LOOKUP', S.NOENT]]);
  });
});
