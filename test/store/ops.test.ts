import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import { Nfs3Status as S, FileType } from '../../src/store/types';
import { openStore } from '../../src/store/block-store';
import { DataFiles } from '../../src/store/data-files';
import { fsck } from '../../src/store/fsck';
import { KEY_CLEAN, KEY_VERSION, inodeKey, decodeInode, encodeInode, unlinkKey } from '../../src/store/codec';
import { ALICE, BOB, Harness, ROOT, rmDir, tmpDir } from './helpers';

const R = 1; // root fileid

async function assertFsckClean(dir: string): Promise<void> {
  const rep = await fsck(dir);
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.ok, true);
}

describe('store: ops and errors', function () {
  this.timeout(20000);
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.open();
  });
  afterEach(async () => {
    await h.destroy();
  });

  it('initialises a deterministic root', async () => {
    const a = (await h.store.getattr(R))!;
    assert.equal(a.type, FileType.DIR);
    assert.equal(a.fileid, 1);
    assert.equal(a.mode, 0o755);
    assert.equal(a.nlink, 2);
    assert.deepEqual([a.uid, a.gid, a.generation], [0, 0, 0]);
    assert.deepEqual(a.mtime, { sec: 0, nsec: 0 });
    assert.equal(h.store.appliedIndex, 0);
    const dir2 = tmpDir();
    const s2 = await openStore(dir2, { rootMode: 0o1777, rootUid: 7, rootGid: 8 });
    const b = (await s2.getattr(1))!;
    assert.deepEqual([b.mode, b.uid, b.gid], [0o1777, 7, 8]);
    await s2.close();
    rmDir(dir2);
  });

  it('create: guarded, unchecked, exclusive', async () => {
    const r1 = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'guarded', attrs: { mode: 0o600 } }, ALICE);
    assert.equal(r1.status, S.ACCES, 'alice cannot write in root-owned 0755 dir');
    const c = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'guarded', attrs: { mode: 0o600 } });
    assert.equal(c.status, S.OK);
    assert.equal(c.obj!.fileid, 2);
    assert.equal(c.obj!.generation, h.index);
    assert.equal(c.obj!.mode, 0o600);
    assert.equal(c.wcc!.before!.size, 0);
    assert.deepEqual(c.wcc!.after!.mtime, c.obj!.mtime);
    assert.equal((await h.op({ kind: 'create', dir: R, name: 'f', mode: 'guarded', attrs: {} })).status, S.EXIST);
    await h.write(2, 0, 'hello world');
    const u = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'unchecked', attrs: {} });
    assert.equal(u.status, S.OK);
    assert.equal(u.obj!.size, 11, 'unchecked without size keeps the file');
    const u2 = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'unchecked', attrs: { size: 5 } });
    assert.equal(u2.obj!.size, 5);
    assert.equal((await h.readAll(2)).toString(), 'hello');
    // exclusive
    const e1 = await h.op({ kind: 'create', dir: R, name: 'x', mode: 'exclusive', attrs: {}, verifier: '0123456789abcdef' });
    assert.equal(e1.status, S.OK);
    const e2 = await h.op({ kind: 'create', dir: R, name: 'x', mode: 'exclusive', attrs: {}, verifier: '0123456789ABCDEF' });
    assert.equal(e2.status, S.OK, 'retransmit with the same verifier succeeds');
    assert.equal(e2.obj!.fileid, e1.obj!.fileid);
    const e3 = await h.op({ kind: 'create', dir: R, name: 'x', mode: 'exclusive', attrs: {}, verifier: '1111111111111111' });
    assert.equal(e3.status, S.EXIST);
    const e4 = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'exclusive', attrs: {}, verifier: '0123456789abcdef' });
    assert.equal(e4.status, S.EXIST, 'existing file not created exclusively');
    // verifier survives restart
    await h.reopen();
    const e5 = await h.op({ kind: 'create', dir: R, name: 'x', mode: 'exclusive', attrs: {}, verifier: '0123456789abcdef' });
    assert.equal(e5.status, S.OK);
    // unchecked over a directory
    await h.mkdir(R, 'd');
    assert.equal((await h.op({ kind: 'create', dir: R, name: 'd', mode: 'unchecked', attrs: {} })).status, S.EXIST);
    await assertFsckClean((await h.close(), h.dir));
  });

  it('name validation and parent errors', async () => {
    const f = await h.create(R, 'file');
    const bad: [string, S][] = [
      ['', S.INVAL],
      ['.', S.INVAL],
      ['..', S.INVAL],
      ['a/b', S.INVAL],
      ['a\0b', S.INVAL],
      ['x'.repeat(256), S.NAMETOOLONG],
      ['é'.repeat(128), S.NAMETOOLONG],
    ];
    for (const [name, st] of bad) {
      for (const kind of ['create', 'mkdir'] as const) {
        const r = kind === 'create'
          ? await h.op({ kind, dir: R, name, mode: 'guarded', attrs: {} })
          : await h.op({ kind, dir: R, name, attrs: {} });
        assert.equal(r.status, st, `${kind} ${JSON.stringify(name).slice(0, 20)}`);
        assert.ok(r.wcc?.after, 'wcc on failure');
      }
    }
    assert.equal((await h.op({ kind: 'create', dir: R, name: 'x'.repeat(255), mode: 'guarded', attrs: {} })).status, S.OK);
    assert.equal((await h.op({ kind: 'create', dir: f, name: 'y', mode: 'guarded', attrs: {} })).status, S.NOTDIR);
    assert.equal((await h.op({ kind: 'mkdir', dir: 999, name: 'y', attrs: {} })).status, S.STALE);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'nope' })).status, S.NOENT);
    assert.equal((await h.store.lookup(R, 'nope')).status, S.NOENT);
    assert.equal((await h.store.lookup(f, 'x')).status, S.NOTDIR);
    assert.equal((await h.store.lookup(999, 'x')).status, S.STALE);
    assert.equal((await h.store.lookup(R, 'x'.repeat(256))).status, S.NAMETOOLONG);
  });

  it('mkdir / rmdir / remove and link counts', async () => {
    const d = await h.mkdir(R, 'd');
    assert.equal((await h.store.getattr(R))!.nlink, 3);
    const sub = await h.mkdir(d, 'sub');
    const f = await h.create(d, 'f');
    assert.equal((await h.store.getattr(d))!.nlink, 3);
    assert.equal((await h.store.lookup(sub, '..')).obj!.fileid, d);
    assert.equal((await h.store.lookup(R, '..')).obj!.fileid, R);
    assert.equal((await h.store.lookup(d, '.')).obj!.fileid, d);
    assert.equal((await h.op({ kind: 'mkdir', dir: d, name: 'f', attrs: {} })).status, S.EXIST);
    assert.equal((await h.op({ kind: 'rmdir', dir: R, name: 'd' })).status, S.NOTEMPTY);
    assert.equal((await h.op({ kind: 'rmdir', dir: d, name: 'f' })).status, S.NOTDIR);
    assert.equal((await h.op({ kind: 'remove', dir: d, name: 'sub' })).status, S.ISDIR);
    assert.equal((await h.op({ kind: 'rmdir', dir: d, name: '.' })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'rmdir', dir: d, name: '..' })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'rmdir', dir: d, name: 'sub' })).status, S.OK);
    assert.equal(await h.store.getattr(sub), undefined);
    await h.write(f, 0, Buffer.alloc(32 * 1024, 1)); // beyond inline: a data file
    const dataPath = h.store.data.pathOf(f);
    await fsp.access(dataPath);
    const r = await h.op({ kind: 'remove', dir: d, name: 'f' });
    assert.equal(r.status, S.OK);
    assert.equal(await h.store.getattr(f), undefined, 'getattr of a deleted file');
    assert.equal((await h.store.read(f, 0, 10)).status, S.STALE);
    await assert.rejects(fsp.access(dataPath), 'data file unlinked');
    assert.equal((await h.op({ kind: 'rmdir', dir: R, name: 'd' })).status, S.OK);
    assert.equal((await h.store.getattr(R))!.nlink, 2);
    const c = h.store.counters;
    assert.equal(c.fileCount, 1);
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('write / read: data, gaps, eof, errors, limits', async () => {
    const f = await h.create(R, 'f');
    const w = await h.write(f, 0, 'abc', 0);
    assert.equal(w.status, S.OK);
    assert.equal(w.count, 3);
    assert.equal(w.obj!.size, 3);
    assert.equal(w.wcc!.before!.size, 0);
    await h.write(f, 100_000, 'xyz', 1);
    const a = (await h.store.getattr(f))!;
    assert.equal(a.size, 100_003);
    assert.equal(a.used, 2 * 65536);
    const all = await h.readAll(f);
    assert.equal(all.subarray(0, 3).toString(), 'abc');
    assert.ok(all.subarray(3, 100_000).every((b) => b === 0), 'gap reads as zeros');
    assert.equal(all.subarray(100_000).toString(), 'xyz');
    const r = await h.store.read(f, 100_001, 100);
    assert.equal(Buffer.from(r.data!).toString(), 'yz');
    assert.equal(r.eof, true);
    const r2 = await h.store.read(f, 0, 3);
    assert.equal(r2.eof, false);
    const r3 = await h.store.read(f, 200_000, 10);
    assert.equal(r3.data!.length, 0);
    assert.equal(r3.eof, true);
    assert.equal((await h.store.read(R, 0, 10)).status, S.ISDIR);
    assert.equal((await h.store.read(12345, 0, 10)).status, S.STALE);
    assert.equal((await h.write(R, 0, 'x')).status, S.ISDIR);
    assert.equal((await h.write(777, 0, 'x')).status, S.STALE);
    assert.equal((await h.write(f, 2 ** 43 - 1, 'xy')).status, S.FBIG);
    assert.equal((await h.write(f, 0, 'x', 2, BOB)).status, S.ACCES);
    // truncate then extend: old bytes must not come back
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 1 } })).status, S.OK);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 10 } })).status, S.OK);
    assert.deepEqual(await h.readAll(f), Buffer.from('a\0\0\0\0\0\0\0\0\0'));
    await h.write(f, 20, 'Z');
    assert.deepEqual(await h.readAll(f), Buffer.concat([Buffer.from('a'), Buffer.alloc(19), Buffer.from('Z')]));
    // symlink read
    const l = await h.op({ kind: 'symlink', dir: R, name: 'l', attrs: {}, target: 'f' });
    assert.equal((await h.store.read(l.obj!.fileid, 0, 1)).status, S.INVAL);
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('NOSPC for capacity and file count, MLINK', async () => {
    await h.close();
    const dir = tmpDir();
    const g = new Harness(await openStore(dir, { capacityBytes: 3 * 65536, maxFiles: 4, maxLinks: 4 }), dir);
    try {
      const f = await g.create(R, 'f');
      assert.equal((await g.write(f, 0, Buffer.alloc(65536 * 2))).status, S.OK);
      assert.equal((await g.write(f, 65536 * 3, 'x')).status, S.NOSPC);
      assert.equal((await g.op({ kind: 'setattr', file: f, attrs: { size: 65536 * 3 + 1 } })).status, S.NOSPC);
      assert.equal((await g.write(f, 65536 * 2, 'x')).status, S.OK);
      const fs = await g.store.fsstat();
      assert.equal(fs.tbytes, 3 * 65536);
      assert.equal(fs.fbytes, 0);
      assert.equal(fs.tfiles, 4);
      assert.equal(fs.ffiles, 2);
      await g.create(R, 'g');
      await g.create(R, 'h');
      assert.equal((await g.op({ kind: 'create', dir: R, name: 'i', mode: 'guarded', attrs: {} })).status, S.NOSPC);
      for (let i = 2; i <= 4; i++) assert.equal((await g.op({ kind: 'link', file: f, dir: R, name: `l${i}` })).status, S.OK);
      assert.equal((await g.op({ kind: 'link', file: f, dir: R, name: 'l5' })).status, S.MLINK);
      assert.equal((await g.store.getattr(f))!.nlink, 4);
      await g.close();
      await assertFsckClean(dir);
    } finally {
      await g.destroy();
    }
  });

  it('setattr: guard, size, ownership and mode rules', async () => {
    const f = await h.create(R, 'f', ROOT, { mode: 0o666 });
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { uid: ALICE.uid, gid: 50 } })).status, S.OK);
    const a = (await h.store.getattr(f))!;
    const guarded = await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o600 }, guardCtime: { sec: a.ctime.sec, nsec: a.ctime.nsec + 1 } });
    assert.equal(guarded.status, S.NOT_SYNC);
    assert.equal(guarded.wcc!.after!.mode, 0o666);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o640 }, guardCtime: a.ctime }, ALICE)).status, S.OK);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o777 } }, BOB)).status, S.PERM);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { uid: BOB.uid } }, ALICE)).status, S.PERM, 'only root gives away');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { uid: ALICE.uid } }, ALICE)).status, S.OK, 'chown to self');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { gid: 1000 } }, ALICE)).status, S.OK, 'chgrp to own group');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { gid: 1001 } }, ALICE)).status, S.PERM);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { gid: 1001 } }, BOB)).status, S.PERM);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { uid: BOB.uid, gid: 1001 } })).status, S.OK, 'root chowns');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mtime: { sec: 5, nsec: 6 } } }, ALICE)).status, S.PERM);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mtime: 'server', atime: 'server' } }, ALICE)).status, S.ACCES, 'mode 0640, alice other');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o646 } }, BOB)).status, S.OK);
    const srv = await h.op({ kind: 'setattr', file: f, attrs: { mtime: 'server' } }, ALICE);
    assert.equal(srv.status, S.OK, 'write permission allows touch to now');
    assert.equal(srv.obj!.mtime.sec, h.clock - 1);
    const t = await h.op({ kind: 'setattr', file: f, attrs: { mtime: { sec: 5, nsec: 6 }, atime: { sec: 7, nsec: 8 } } }, BOB);
    assert.deepEqual([t.obj!.mtime, t.obj!.atime], [{ sec: 5, nsec: 6 }, { sec: 7, nsec: 8 }]);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { mtime: { sec: 1, nsec: 2e9 } } }, BOB)).status, S.INVAL);
    assert.equal((await h.op({ kind: 'setattr', file: R, attrs: { size: 0 } })).status, S.INVAL, 'size on a dir');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 2 ** 44 } })).status, S.FBIG);
    assert.equal((await h.op({ kind: 'setattr', file: 4242, attrs: { mode: 0 } })).status, S.STALE);
    // setuid cleared by a non-root write and by chown
    await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o6775 } });
    await h.write(f, 0, 'x', 2, BOB);
    assert.equal((await h.store.getattr(f))!.mode, 0o0775);
    await h.op({ kind: 'setattr', file: f, attrs: { mode: 0o4755 } });
    await h.op({ kind: 'setattr', file: f, attrs: { uid: 0 } });
    assert.equal((await h.store.getattr(f))!.mode, 0o755);
  });

  it('permissions: directories, sticky bit, owner override, root exec', async () => {
    const tmp = await h.mkdir(R, 'tmp', ROOT, 0o1777);
    const home = await h.mkdir(R, 'home', ROOT, 0o755);
    assert.equal((await h.op({ kind: 'setattr', file: home, attrs: { uid: ALICE.uid } })).status, S.OK);
    const af = await h.create(tmp, 'alice', ALICE);
    const bf = await h.create(tmp, 'bob', BOB);
    assert.equal((await h.op({ kind: 'remove', dir: tmp, name: 'alice' }, BOB)).status, S.PERM, 'sticky');
    assert.equal((await h.op({ kind: 'rename', fromDir: tmp, fromName: 'alice', toDir: tmp, toName: 'z' }, BOB)).status, S.PERM);
    assert.equal((await h.op({ kind: 'rename', fromDir: tmp, fromName: 'bob', toDir: tmp, toName: 'alice' }, BOB)).status, S.PERM, 'sticky target');
    assert.equal((await h.op({ kind: 'remove', dir: tmp, name: 'bob' }, BOB)).status, S.OK);
    assert.equal((await h.op({ kind: 'remove', dir: tmp, name: 'alice' }, ROOT)).status, S.OK);
    void af;
    void bf;
    assert.equal((await h.op({ kind: 'create', dir: home, name: 'b', mode: 'guarded', attrs: {} }, BOB)).status, S.ACCES);
    assert.equal((await h.op({ kind: 'mkdir', dir: home, name: 'priv', attrs: { mode: 0o700 } }, ALICE)).status, S.OK);
    const priv = (await h.store.lookup(home, 'priv')).obj!.fileid;
    assert.equal((await h.op({ kind: 'create', dir: priv, name: 'x', mode: 'guarded', attrs: {} }, BOB)).status, S.ACCES);
    // owner may write a file whose mode forbids it (knfsd owner override); others may not
    const ro = await h.create(home, 'ro', ALICE, { mode: 0o444 });
    assert.equal((await h.write(ro, 0, 'ok', 2, ALICE)).status, S.OK);
    assert.equal((await h.write(ro, 0, 'no', 2, BOB)).status, S.ACCES);
    // group permission through supplementary groups
    const g = await h.create(home, 'g', ALICE, { mode: 0o620, gid: 50 });
    assert.equal((await h.store.getattr(g))!.gid, 50);
    assert.equal((await h.write(g, 0, 'grp', 2, { uid: 2000, gid: 3, gids: [50] })).status, S.OK);
    assert.equal((await h.write(g, 0, 'grp', 2, { uid: 2000, gid: 3, gids: [51] })).status, S.ACCES);
    // creating with a gid one is not a member of
    assert.equal((await h.op({ kind: 'create', dir: home, name: 'h', mode: 'guarded', attrs: { gid: 1001 } }, ALICE)).status, S.PERM);
    // setgid directory: new entries inherit its group, subdirectories the bit
    const sg = await h.mkdir(R, 'sg', ROOT, 0o2777);
    await h.op({ kind: 'setattr', file: sg, attrs: { gid: 77 } });
    const sf = await h.create(sg, 'f', ALICE);
    assert.equal((await h.store.getattr(sf))!.gid, 77);
    const sd = await h.mkdir(sg, 'd', ALICE, 0o755);
    assert.equal((await h.store.getattr(sd))!.mode, 0o2755);
    // mknod
    assert.equal((await h.op({ kind: 'mknod', dir: tmp, name: 'c', type: FileType.CHR, attrs: {}, rdev: [1, 3] }, ALICE)).status, S.PERM);
    const c = await h.op({ kind: 'mknod', dir: tmp, name: 'c', type: FileType.CHR, attrs: { mode: 0o666 }, rdev: [1, 3] });
    assert.deepEqual(c.obj!.rdev, [1, 3]);
    const p = await h.op({ kind: 'mknod', dir: tmp, name: 'p', type: FileType.FIFO, attrs: {} }, ALICE);
    assert.equal(p.obj!.type, FileType.FIFO);
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('symlink and readlink', async () => {
    const l = await h.op({ kind: 'symlink', dir: R, name: 'l', attrs: {}, target: '../some/where' });
    assert.equal(l.status, S.OK);
    assert.equal(l.obj!.type, FileType.LNK);
    assert.equal(l.obj!.size, 13);
    const rl = await h.store.readlink(l.obj!.fileid);
    assert.equal(rl.target, '../some/where');
    assert.equal((await h.store.readlink(R)).status, S.INVAL);
    assert.equal((await h.store.readlink(999)).status, S.STALE);
    assert.equal((await h.op({ kind: 'symlink', dir: R, name: 'm', attrs: {}, target: 'x'.repeat(4097) })).status, S.NAMETOOLONG);
    await h.reopen();
    assert.equal((await h.store.readlink(l.obj!.fileid)).target, '../some/where');
  });

  it('link', async () => {
    const d = await h.mkdir(R, 'd');
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'content');
    const l = await h.op({ kind: 'link', file: f, dir: d, name: 'g' });
    assert.equal(l.status, S.OK);
    assert.equal(l.obj!.nlink, 2);
    assert.ok(l.wcc2!.after);
    assert.equal((await h.op({ kind: 'link', file: f, dir: d, name: 'g' })).status, S.EXIST);
    assert.equal((await h.op({ kind: 'link', file: d, dir: R, name: 'dd' })).status, S.ISDIR);
    assert.equal((await h.op({ kind: 'link', file: 999, dir: R, name: 'x' })).status, S.STALE);
    assert.equal((await h.op({ kind: 'link', file: f, dir: f, name: 'x' })).status, S.NOTDIR);
    assert.equal((await h.op({ kind: 'link', file: f, dir: d, name: 'y' }, BOB)).status, S.ACCES);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'f' })).status, S.OK);
    assert.equal((await h.store.getattr(f))!.nlink, 1);
    assert.equal((await h.readAll(f)).toString(), 'content');
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('rename: POSIX cases', async () => {
    const a = await h.mkdir(R, 'a');
    const b = await h.mkdir(R, 'b');
    const f = await h.create(a, 'f');
    const g = await h.create(b, 'g');
    await h.write(g, 0, 'gee');
    const gPath = h.store.data.pathOf(g);
    // file over file in another dir: target replaced, its data gone
    const r = await h.op({ kind: 'rename', fromDir: a, fromName: 'f', toDir: b, toName: 'g' });
    assert.equal(r.status, S.OK);
    assert.ok(r.wcc && r.wcc2);
    assert.equal((await h.store.lookup(b, 'g')).obj!.fileid, f);
    assert.equal(await h.store.getattr(g), undefined);
    await assert.rejects(fsp.access(gPath));
    assert.equal((await h.store.lookup(a, 'f')).status, S.NOENT);
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'f', toDir: b, toName: 'x' })).status, S.NOENT);
    // hard link onto itself: nothing happens
    await h.op({ kind: 'link', file: f, dir: a, name: 'f2' });
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'f2', toDir: b, toName: 'g' })).status, S.OK);
    assert.equal((await h.store.lookup(a, 'f2')).obj!.fileid, f, 'source link still there');
    assert.equal((await h.store.getattr(f))!.nlink, 2);
    // same name: no-op
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'f2', toDir: a, toName: 'f2' })).status, S.OK);
    // dir over empty dir; dir over non-empty dir; file over dir; dir over file
    const c = await h.mkdir(a, 'c');
    await h.mkdir(b, 'e');
    assert.equal((await h.store.getattr(a))!.nlink, 3);
    assert.equal((await h.store.getattr(b))!.nlink, 3);
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'c', toDir: b, toName: 'e' })).status, S.OK);
    assert.equal((await h.store.getattr(a))!.nlink, 2);
    assert.equal((await h.store.getattr(b))!.nlink, 3);
    assert.equal((await h.store.lookup(c, '..')).obj!.fileid, b);
    await h.create(c, 'inside');
    await h.mkdir(a, 'empty');
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'empty', toDir: b, toName: 'e' })).status, S.NOTEMPTY);
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'f2', toDir: b, toName: 'e' })).status, S.ISDIR);
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'empty', toDir: b, toName: 'g' })).status, S.NOTDIR);
    // into its own subtree
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'b', toDir: c, toName: 'b' })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'b', toDir: b, toName: 'b' })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'b', toDir: R, toName: '..' })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'b', toDir: a, toName: 'b' })).status, S.OK);
    assert.equal((await h.store.getattr(a))!.nlink, 4, 'a holds empty/ and b/');
    assert.equal((await h.store.getattr(R))!.nlink, 3);
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'a', toDir: f, toName: 'x' })).status, S.NOTDIR);
    assert.equal((await h.op({ kind: 'rename', fromDir: 999, fromName: 'a', toDir: R, toName: 'x' })).status, S.STALE);
    assert.equal((await h.op({ kind: 'rename', fromDir: a, fromName: 'b', toDir: R, toName: 'b' }, BOB)).status, S.ACCES);
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('replay of applied indices is a no-op; out-of-order apply is refused', async () => {
    const c = await h.op({ kind: 'create', dir: R, name: 'f', mode: 'guarded', attrs: {} });
    const idx = h.index;
    const bad = await h.op({ kind: 'remove', dir: R, name: 'nope' });
    assert.equal(bad.status, S.NOENT);
    const again = await h.store.apply(idx, { kind: 'create', dir: R, name: 'f', mode: 'guarded', attrs: {}, time: { sec: 9, nsec: 0 }, cred: ROOT });
    assert.equal(again.status, S.OK);
    assert.equal(h.store.counters.nextFileId, c.obj!.fileid + 1, 'replay created nothing');
    assert.equal((await h.store.apply(idx + 1, { kind: 'remove', dir: R, name: 'f', time: { sec: 9, nsec: 0 }, cred: ROOT })).status, S.NOENT, 'replay gives the recorded status, does not remove');
    assert.ok(await h.store.getattr(c.obj!.fileid));
    await assert.rejects(h.store.apply(h.index + 2, { kind: 'remove', dir: R, name: 'f', time: { sec: 9, nsec: 0 }, cred: ROOT }));
    await h.reopen();
    assert.equal(h.store.appliedIndex, idx + 1);
    const r = await h.store.apply(idx, { kind: 'remove', dir: R, name: 'f', time: { sec: 9, nsec: 0 }, cred: ROOT });
    assert.equal(r.status, S.OK);
    assert.ok(await h.store.getattr(c.obj!.fileid), 'replay after restart changed nothing');
    assert.deepEqual(await h.names(R), ['.', '..', 'f']);
  });

  it('pipelined applies resolve in order with the right results', async () => {
    const ps = [];
    for (let i = 0; i < 50; i++) ps.push(h.op({ kind: 'create', dir: R, name: `f${i}`, mode: 'guarded', attrs: {} }));
    const rs = await Promise.all(ps);
    assert.deepEqual(rs.map((r) => r.obj!.fileid), Array.from({ length: 50 }, (_, i) => i + 2));
    assert.equal(h.store.appliedIndex, 50);
  });

  it('refuses a newer store format', async () => {
    await h.close();
    const db = new Level<Buffer, Buffer>(path.join(h.dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const v = Buffer.alloc(4);
    v.writeUInt32BE(99);
    await db.put(KEY_VERSION, v);
    await db.close();
    await assert.rejects(openStore(h.dir), /newer/);
  });

  it('start-up finishes pending unlinks and cuts data beyond size', async () => {
    await h.reopen({ inlineMax: 0 }); // files with data files
    const f = await h.create(R, 'f');
    const g = await h.create(R, 'g');
    await h.write(f, 0, 'abc');
    await h.write(g, 0, 'keep');
    await h.close();
    // simulate a crash: a pending unlink marker of a deleted file whose data file survived, stale
    // unsynced extension data beyond the recorded size, an orphan data file, no clean marker
    const dead = 5000;
    const deadPath = path.join(h.dir, 'blocks', DataFiles.shardName(dead), DataFiles.fileName(dead));
    await fsp.mkdir(path.dirname(deadPath), { recursive: true });
    await fsp.writeFile(deadPath, 'zombie');
    const orphan = 9999;
    const orphanPath = path.join(h.dir, 'blocks', DataFiles.shardName(orphan), DataFiles.fileName(orphan));
    await fsp.mkdir(path.dirname(orphanPath), { recursive: true });
    await fsp.writeFile(orphanPath, 'orphan');
    await fsp.appendFile(path.join(h.dir, 'blocks', DataFiles.shardName(f), DataFiles.fileName(f)), 'STALE');
    const db = new Level<Buffer, Buffer>(path.join(h.dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.put(unlinkKey(dead), Buffer.alloc(0));
    await db.del(KEY_CLEAN);
    await db.close();
    const before = await fsck(h.dir);
    assert.equal(before.ok, false);
    assert.deepEqual(new Set(before.problems.map((p) => p.kind)), new Set(['data-orphan', 'data-beyond-size']));
    h.store = await openStore(h.dir);
    assert.deepEqual(h.store.recovery, { cleanShutdown: false, pendingUnlinksFinished: 1, orphanDataFilesRemoved: 1, dataFilesTruncated: 1, journalReplayed: 0 });
    await assert.rejects(fsp.access(deadPath));
    assert.equal((await h.readAll(f)).toString(), 'abc');
    await h.op({ kind: 'setattr', file: f, attrs: { size: 8 } });
    assert.deepEqual(await h.readAll(f), Buffer.from('abc\0\0\0\0\0'), 'extension reads zeros, not stale bytes');
    assert.equal((await h.readAll(g)).toString(), 'keep');
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('fsck reports corruption', async () => {
    const d = await h.mkdir(R, 'd');
    const f = await h.create(d, 'f');
    await h.close();
    const db = new Level<Buffer, Buffer>(path.join(h.dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const ino = decodeInode((await db.get(inodeKey(f)))!);
    ino.nlink = 3;
    await db.put(inodeKey(f), encodeInode(ino));
    const dino = decodeInode((await db.get(inodeKey(d)))!);
    dino.nextCookie = 3; // cookie 3 was handed out
    await db.put(inodeKey(d), encodeInode(dino));
    await db.close();
    const rep = await fsck(h.dir);
    assert.equal(rep.ok, false);
    const kinds = rep.problems.map((p) => p.kind).sort();
    assert.deepEqual(kinds, ['cookie-range', 'nlink']);
  });

  it('a directory entry naming a missing inode (local corruption) fails the store: REMOVE, RENAME and CREATE get no answer', async () => {
    for (const kind of ['remove', 'rename', 'create'] as const) {
      const g = await Harness.open();
      try {
        const d = await g.mkdir(R, 'd');
        const f = await g.create(d, 'f');
        await g.close();
        const db = new Level<Buffer, Buffer>(path.join(g.dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
        await db.del(inodeKey(f));
        await db.close();
        await g.reopen();
        const op =
          kind === 'remove'
            ? g.op({ kind: 'remove', dir: d, name: 'f' })
            : kind === 'rename'
              ? g.op({ kind: 'rename', fromDir: d, fromName: 'f', toDir: d, toName: 'g' })
              : g.op({ kind: 'create', dir: d, name: 'f', mode: 'unchecked', attrs: {} });
        await assert.rejects(op, /store corrupt: entry "f" of directory \d+ names missing inode/, kind);
        // the store stopped: no further op is answered (another replica would answer it)
        await assert.rejects(g.op({ kind: 'mkdir', dir: R, name: 'x', attrs: { mode: 0o755 } }), /block store failed/, kind);
      } finally {
        await g.destroy().catch(() => undefined);
      }
    }
  });

  it('fsstat reflects the file system and the store', async () => {
    await h.create(R, 'f');
    const s = await h.store.fsstat();
    assert.ok(s.tbytes > 0 && s.fbytes <= s.tbytes && s.abytes <= s.fbytes);
    assert.ok(s.tfiles >= 2 && s.ffiles <= s.tfiles);
    assert.equal(s.tfiles - s.ffiles, 2);
  });
});
