/** A compact pass over all 22 NFSv3 procedures, checking each answer; used where traffic is needed. */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { Access, CreateMode, FType, NfsStat, StableHow, expectOk, type Fh, type Nfs3Client } from '../../src/nfs/client';

let seq = 0;

/** Runs every procedure once (plus a few error paths) inside a fresh directory under `root`. */
export async function exerciseAllProcedures(nfs: Nfs3Client, root: Fh, tag = 'ex'): Promise<void> {
  const name = `${tag}-${process.pid}-${seq++}`;
  assert.equal(await nfs.null(), true);
  expectOk(await nfs.getattr(root), 'GETATTR');
  const dir = expectOk(await nfs.mkdir(root, name, { mode: 0o755 }), 'MKDIR').resok!.obj.handle!.data;
  const f = expectOk(await nfs.create(dir, 'file', CreateMode.GUARDED, { mode: 0o644 }), 'CREATE').resok!.obj.handle!.data;
  const data = crypto.randomBytes(10_000);
  const w = expectOk(await nfs.write(f, 0, data, StableHow.UNSTABLE), 'WRITE').resok!;
  const c = expectOk(await nfs.commit(f, 0, 0), 'COMMIT').resok!;
  assert.deepEqual(Buffer.from(w.verf), Buffer.from(c.verf));
  const r = expectOk(await nfs.read(f, 0, 20_000), 'READ').resok!;
  assert.ok(Buffer.from(r.data).equals(data));
  expectOk(await nfs.setattr(f, { mode: 0o600 }), 'SETATTR');
  const l = expectOk(await nfs.lookup(dir, 'file'), 'LOOKUP').resok!;
  assert.deepEqual(Buffer.from(l.object.data), Buffer.from(f));
  expectOk(await nfs.access(f, Access.READ | Access.MODIFY), 'ACCESS');
  const sl = expectOk(await nfs.symlink(dir, 'link', 'file'), 'SYMLINK').resok!.obj.handle!.data;
  assert.equal(expectOk(await nfs.readlink(sl), 'READLINK').resok!.data, 'file');
  expectOk(await nfs.mknod(dir, 'fifo', FType.FIFO, { mode: 0o644 }), 'MKNOD');
  expectOk(await nfs.link(f, dir, 'hard'), 'LINK');
  expectOk(await nfs.rename(dir, 'hard', dir, 'hard2'), 'RENAME');
  const rd = expectOk(await nfs.readdir(dir), 'READDIR').resok!;
  assert.ok(rd.reply.entries);
  const rdp = expectOk(await nfs.readdirplus(dir), 'READDIRPLUS').resok!;
  assert.ok(rdp.reply.entries);
  expectOk(await nfs.fsstat(root), 'FSSTAT');
  expectOk(await nfs.fsinfo(root), 'FSINFO');
  expectOk(await nfs.pathconf(root), 'PATHCONF');
  assert.equal((await nfs.lookup(dir, 'missing')).status, NfsStat.NOENT);
  for (const n of ['hard2', 'fifo', 'link', 'file']) expectOk(await nfs.remove(dir, n), `REMOVE ${n}`);
  expectOk(await nfs.rmdir(root, name), 'RMDIR');
}
