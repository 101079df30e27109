/** Regular files: GETATTR, SETATTR, CREATE, WRITE, READ, COMMIT, ACCESS. */
import assert from 'node:assert/strict';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { Nfs3Harness, S, ROOT, ALICE, BOB, exportConfig } from './support/harness';

const ACCESS_ALL = 0x3f;

describe('nfs3 files', function () {
  this.timeout(20_000);
  let h: Nfs3Harness;
  let shared: s.Nfsv3Fh;
  beforeEach(async () => {
    h = await Nfs3Harness.open({
      exports: [exportConfig(), exportConfig({ id: 2, path: '/ro', readOnly: true })],
      store: { capacityBytes: 4 * 1024 * 1024, maxFileSize: 1 << 30 },
    });
    // a world-writable directory users can create in
    shared = await h.mkdirFh(h.root(), 'shared', { mode: 0o777 });
  });
  afterEach(async () => h.close());

  it('GETATTR returns the attributes with fsid = export id', async () => {
    const f = await h.mkfile(shared, 'a', { mode: 0o640 }, ALICE);
    const r = await h.getattr(f);
    assert.equal(r.status, S.OK);
    const a = r.resok!.objAttributes;
    assert.equal(a.type, 1);
    assert.equal(a.mode, 0o640);
    assert.equal(a.uid, 1000);
    assert.equal(a.gid, 1000);
    assert.equal(a.nlink, 1);
    assert.equal(a.fsid, 1n);
    assert.equal(Number(a.size), 0);
  });

  it('CREATE GUARDED fails EXIST with dir wcc; UNCHECKED truncates an existing file', async () => {
    const f = await h.mkfile(shared, 'g', { mode: 0o644 }, ALICE);
    await h.write(f, 0, Buffer.from('0123456789'), 2, ALICE);
    const g = await h.create(shared, 'g', 'guarded', { mode: 0o644 }, ALICE);
    assert.equal(g.status, S.EXIST);
    assert.equal(g.resfail!.dirWcc.before.attributesFollow, true);
    assert.equal(g.resfail!.dirWcc.after.attributesFollow, true);
    const u = await h.create(shared, 'g', 'unchecked', { size: 0 }, ALICE);
    assert.equal(u.status, S.OK);
    assert.deepEqual(Buffer.from(u.resok!.obj.handle!.data), Buffer.from(f.data));
    assert.equal(Number(u.resok!.objAttributes.attributes!.size), 0);
  });

  it('CREATE returns handle, attributes and dir wcc_data that brackets the change', async () => {
    const before = (await h.getattr(shared)).resok!.objAttributes;
    const r = await h.create(shared, 'new', 'guarded', { mode: 0o600 }, ALICE);
    assert.equal(r.status, S.OK);
    const ok = r.resok!;
    assert.equal(ok.obj.handleFollows, true);
    assert.equal(ok.objAttributes.attributes!.mode, 0o600);
    const wcc = ok.dirWcc;
    assert.equal(wcc.before.attributes!.mtime.seconds, before.mtime.seconds);
    assert.ok(wcc.after.attributes!.mtime.seconds > before.mtime.seconds);
    const l = await h.lookup(shared, 'new');
    assert.deepEqual(Buffer.from(l.resok!.object.data), Buffer.from(ok.obj.handle!.data));
  });

  it('CREATE EXCLUSIVE: a retransmit with the same verifier succeeds, another verifier gets EXIST', async () => {
    const verf = Buffer.from('0102030405060708', 'hex');
    const a = await h.create(shared, 'x', 'exclusive', verf, ALICE);
    assert.equal(a.status, S.OK);
    const again = await h.create(shared, 'x', 'exclusive', verf, ALICE);
    assert.equal(again.status, S.OK);
    assert.deepEqual(Buffer.from(again.resok!.obj.handle!.data), Buffer.from(a.resok!.obj.handle!.data));
    const other = await h.create(shared, 'x', 'exclusive', Buffer.from('0102030405060709', 'hex'), ALICE);
    assert.equal(other.status, S.EXIST);
    // the client then sets the real attributes
    const sa = await h.setattr(a.resok!.obj.handle!, { mode: 0o640, atime: 'server', mtime: 'server' }, undefined, ALICE);
    assert.equal(sa.status, S.OK);
    assert.equal(sa.resok!.objWcc.after.attributes!.mode, 0o640);
  });

  it('SETATTR sets mode, size and times; the guard gives NOT_SYNC on a ctime mismatch', async () => {
    const f = await h.mkfile(shared, 's', { mode: 0o644 }, ALICE);
    const a0 = (await h.getattr(f)).resok!.objAttributes;
    const r = await h.setattr(f, { mode: 0o4755 & 0o777, size: 100, mtime: { seconds: 1234, nseconds: 5 } }, a0.ctime, ALICE);
    assert.equal(r.status, S.OK);
    const after = r.resok!.objWcc.after.attributes!;
    assert.equal(after.mode, 0o755);
    assert.equal(Number(after.size), 100);
    assert.deepEqual([after.mtime.seconds, after.mtime.nseconds], [1234, 5]);
    assert.equal(Number(r.resok!.objWcc.before.attributes!.size), 0);
    // guard with the old ctime no longer matches
    const g = await h.setattr(f, { mode: 0o600 }, a0.ctime, ALICE);
    assert.equal(g.status, S.NOT_SYNC);
    assert.equal(g.resfail!.objWcc.after.attributes!.mode, 0o755);
    // nseconds out of range
    const bad = await h.setattr(f, { mtime: { seconds: 1, nseconds: 1_000_000_000 } }, undefined, ALICE);
    assert.equal(bad.status, S.INVAL);
  });

  it('SETATTR: only root may give a file away (PERM); size beyond the limit is FBIG', async () => {
    const f = await h.mkfile(shared, 'own', { mode: 0o644 }, ALICE);
    assert.equal((await h.setattr(f, { uid: 1001 }, undefined, ALICE)).status, S.PERM);
    assert.equal((await h.setattr(f, { uid: 1001 }, undefined, ROOT)).status, S.OK);
    assert.equal((await h.setattr(f, { size: 2 ** 31 }, undefined, ROOT)).status, S.FBIG);
    assert.equal((await h.setattr(f, { size: 2n ** 63n }, undefined, ROOT)).status, S.FBIG);
  });

  it('WRITE UNSTABLE answers UNSTABLE, stable writes answer FILE_SYNC, always with the verifier', async () => {
    const f = await h.mkfile(shared, 'w', { mode: 0o644 }, ALICE);
    const u = await h.write(f, 0, Buffer.from('abc'), 0, ALICE);
    assert.equal(u.status, S.OK);
    assert.equal(u.resok!.committed, 0);
    assert.equal(u.resok!.count, 3);
    assert.deepEqual(Buffer.from(u.resok!.verf), Buffer.from(h.verifier.bytes));
    assert.equal(Number(u.resok!.fileWcc.before.attributes!.size), 0);
    assert.equal(Number(u.resok!.fileWcc.after.attributes!.size), 3);
    for (const stable of [1, 2]) {
      const w = await h.write(f, 3, Buffer.from('de'), stable, ALICE);
      assert.equal(w.resok!.committed, 2);
    }
    const c = await h.commit(f, ALICE);
    assert.equal(c.status, S.OK);
    assert.deepEqual(Buffer.from(c.resok!.verf), Buffer.from(h.verifier.bytes));
    // the verifier changes when rotated, and replies follow
    const old = Buffer.from(h.verifier.bytes);
    h.verifier.rotate();
    const c2 = await h.commit(f, ALICE);
    assert.notDeepEqual(Buffer.from(c2.resok!.verf), old);
    assert.deepEqual(Buffer.from(c2.resok!.verf), Buffer.from(h.verifier.bytes));
    assert.equal(h.bytes.write, 7);
    const r = await h.read(f, 0, 100, ALICE);
    assert.equal(Buffer.from(r.resok!.data).toString(), 'abcde');
    assert.equal(h.bytes.read, 5);
  });

  it('WRITE errors: ISDIR, INVAL on a symlink, ACCES, ROFS, FBIG, NOSPC', async () => {
    assert.equal((await h.write(shared, 0, Buffer.from('x'))).status, S.ISDIR);
    const ln = await h.symlink(shared, 'ln', 'target');
    assert.equal((await h.write(ln.resok!.obj.handle!, 0, Buffer.from('x'))).status, S.INVAL);
    const f = await h.mkfile(shared, 'mine', { mode: 0o644 }, ALICE);
    const denied = await h.write(f, 0, Buffer.from('x'), 2, BOB);
    assert.equal(denied.status, S.ACCES);
    assert.equal(denied.resfail!.fileWcc.after.attributesFollow, true);
    const fbig = await h.write(f, 2 ** 30, Buffer.from('x'), 2, ALICE);
    assert.equal(fbig.status, S.FBIG);
    assert.equal((await h.write(f, 2n ** 62n, Buffer.from('x'), 2, ALICE)).status, S.FBIG);
    const nospc = await h.write(f, 4 * 1024 * 1024, Buffer.alloc(4096), 2, ALICE);
    assert.equal(nospc.status, S.NOSPC);
    // the same file through the read-only export
    const ro = new s.Nfsv3Fh(Buffer.from(f.data));
    ro.data[7] = 2; // export id byte... checksum now wrong
    assert.equal((await h.write(ro, 0, Buffer.from('x'))).status, S.BADHANDLE);
    const roRoot = h.root(2);
    const roFile = (await h.lookup(roRoot, 'shared')).resok!.object;
    const rofs = await h.write(roFile, 0, Buffer.from('x'));
    assert.equal(rofs.status, S.ISDIR);
    const roMine = (await h.lookup(roFile, 'mine')).resok!.object;
    const r = await h.write(roMine, 0, Buffer.from('x'), 2, ALICE);
    assert.equal(r.status, S.ROFS);
    assert.equal(r.resfail!.fileWcc.before.attributesFollow, true);
  });

  it('READ: eof, offsets past the end, count capped at rtmax', async () => {
    const f = await h.mkfile(shared, 'r', { mode: 0o644 }, ALICE);
    const data = Buffer.alloc(1024 * 1024 + 100, 7);
    for (let off = 0; off < data.length; off += 512 * 1024) {
      const chunk = data.subarray(off, off + 512 * 1024);
      assert.equal((await h.write(f, off, chunk, 0, ALICE)).status, S.OK);
    }
    const a = await h.read(f, 0, 10, ALICE);
    assert.equal(a.resok!.count, 10);
    assert.equal(a.resok!.eof, false);
    const big = await h.read(f, 0, 4 * 1024 * 1024, ALICE);
    assert.equal(big.resok!.count, 1024 * 1024);
    assert.equal(big.resok!.data.length, 1024 * 1024);
    assert.equal(big.resok!.eof, false);
    const tail = await h.read(f, 1024 * 1024, 1000, ALICE);
    assert.equal(tail.resok!.count, 100);
    assert.equal(tail.resok!.eof, true);
    const exact = await h.read(f, 1024 * 1024, 100, ALICE);
    assert.equal(exact.resok!.eof, true);
    const past = await h.read(f, 5 * 1024 * 1024, 10, ALICE);
    assert.equal(past.status, S.OK);
    assert.equal(past.resok!.count, 0);
    assert.equal(past.resok!.eof, true);
    assert.equal(Number(past.resok!.fileAttributes.attributes!.size), data.length);
  });

  it('READ of 4 KiB and more (data sent as its own record parts): exact bytes, XDR padding, eof', async () => {
    const f = await h.mkfile(shared, 'zc', { mode: 0o644 }, ALICE);
    const data = Buffer.alloc(70_001);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    assert.equal((await h.write(f, 0, data, 2, ALICE)).status, S.OK);
    for (const [off, n] of [[0, 70_001], [1, 4097], [3, 65_538], [65_000, 9_999]] as const) {
      const r = await h.read(f, off, n, ALICE);
      const want = data.subarray(off, Math.min(off + n, data.length));
      assert.equal(r.resok!.count, want.length);
      assert.ok(Buffer.from(r.resok!.data).equals(want), `bytes at ${off}+${n}`);
      assert.equal(r.resok!.eof, off + n >= data.length);
    }
  });

  it('READ permissions: mode bits, owner override, read-if-exec; ISDIR, INVAL', async () => {
    const f = await h.mkfile(shared, 'p', { mode: 0o644 }, ALICE);
    await h.write(f, 0, Buffer.from('secret'), 2, ALICE);
    await h.setattr(f, { mode: 0o000 }, undefined, ALICE);
    assert.equal((await h.read(f, 0, 10, ALICE)).status, S.OK, 'owner override');
    const denied = await h.read(f, 0, 10, BOB);
    assert.equal(denied.status, S.ACCES);
    assert.equal(denied.resfail!.fileAttributes.attributesFollow, true);
    assert.equal((await h.read(f, 0, 10, ROOT)).status, S.OK);
    await h.setattr(f, { mode: 0o711 }, undefined, ALICE);
    assert.equal((await h.read(f, 0, 10, BOB)).status, S.OK, 'read if exec');
    await h.setattr(f, { mode: 0o740, gid: 50 }, undefined, ALICE);
    assert.equal((await h.read(f, 0, 10, { uid: 1002, gid: 7, gids: [50] })).status, S.OK, 'supplementary group');
    assert.equal((await h.read(shared, 0, 10)).status, S.ISDIR);
    const ln = await h.symlink(shared, 'l', 'p');
    assert.equal((await h.read(ln.resok!.obj.handle!, 0, 10)).status, S.INVAL);
  });

  it('ACCESS answers from the mode bits, group lists, root and read-only exports', async () => {
    const f = await h.mkfile(shared, 'acc', { mode: 0o754 }, ALICE);
    await h.setattr(f, { gid: 50 }, undefined, ALICE);
    const own = await h.access(f, ACCESS_ALL, ALICE);
    assert.equal(own.resok!.access, 0x1 | 0x4 | 0x8 | 0x20);
    assert.equal(own.resok!.objAttributes.attributesFollow, true);
    const grp = await h.access(f, ACCESS_ALL, { uid: 7, gid: 7, gids: [50] });
    assert.equal(grp.resok!.access, 0x1 | 0x20);
    const other = await h.access(f, ACCESS_ALL, BOB);
    assert.equal(other.resok!.access, 0x1);
    // only what was asked
    assert.equal((await h.access(f, 0x4, ALICE)).resok!.access, 0x4);
    // root: everything on a file with an x bit; no EXECUTE without any
    assert.equal((await h.access(f, ACCESS_ALL, ROOT)).resok!.access, 0x1 | 0x4 | 0x8 | 0x20);
    const nx = await h.mkfile(shared, 'nx', { mode: 0o644 }, ALICE);
    assert.equal((await h.access(nx, ACCESS_ALL, ROOT)).resok!.access, 0x1 | 0x4 | 0x8);
    // directories: LOOKUP, MODIFY/EXTEND/DELETE with w+x
    assert.equal((await h.access(shared, ACCESS_ALL, BOB)).resok!.access, 0x1 | 0x2 | 0x4 | 0x8 | 0x10);
    const d = await h.mkdirFh(shared, 'rx', { mode: 0o755 }, ALICE);
    assert.equal((await h.access(d, ACCESS_ALL, BOB)).resok!.access, 0x1 | 0x2);
    // read-only export: no MODIFY/EXTEND/DELETE
    const roShared = (await h.lookup(h.root(2), 'shared')).resok!.object;
    assert.equal((await h.access(roShared, ACCESS_ALL, BOB)).resok!.access, 0x1 | 0x2);
  });

  it('COMMIT: wcc_data and INVAL/ISDIR for non-files', async () => {
    const f = await h.mkfile(shared, 'c', { mode: 0o644 }, ALICE);
    await h.write(f, 0, Buffer.from('zz'), 0, ALICE);
    const c = await h.commit(f);
    assert.equal(c.status, S.OK);
    assert.equal(Number(c.resok!.fileWcc.after.attributes!.size), 2);
    assert.equal((await h.commit(shared)).status, S.ISDIR);
  });
});
