/**
 * Every NFSv3 and MOUNT procedure, and their error paths, through the TS client against the real
 * daemon started as a child process, and against a 3-node cluster's service address
 * (test/support/target.ts; HANFS_E2E_TARGETS picks the targets).
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import {
  AUTH_NONE,
  AUTH_ROOT,
  Access,
  AcceptStat,
  AuthStat,
  CreateMode,
  FType,
  MountClient,
  MountProc,
  MountStat,
  Nfs3Client,
  NfsProc,
  NfsStat,
  PROG_MOUNT,
  PROG_NFS,
  RejectStat,
  RpcConnection,
  PortmapClient,
  IPPROTO_TCP,
  StableHow,
  expectOk,
  type Fh,
} from '../../src/nfs/client';
import { testExport } from '../support/daemon';
import { e2eTargets, startTarget, type NfsTarget } from '../support/target';
import { exerciseAllProcedures } from '../support/workload';
import { sleep } from '../support/util';
import { USER, OTHER_USER, assertStatus, createFile, mkdir, openSession, parseMetrics, pipelined, type Session } from '../support/nfs';

const BIGDIR_ENTRIES = Number(process.env.HANFS_BIGDIR_ENTRIES ?? 100_000);

for (const kind of e2eTargets()) describe(`NFSv3 + MOUNT through the TS client [${kind}]`, function () {
  this.timeout(60_000);
  let d: NfsTarget;
  let s: Session;
  let nfs: Nfs3Client;
  let root: Fh;
  let work: Fh;

  before(async function () {
    this.timeout(60_000);
    d = await startTarget(kind, {
      exports: [
        testExport({ path: '/export', id: 1 }),
        testExport({ path: '/ro', id: 2, readOnly: true }),
        testExport({ path: '/denied', id: 3, clients: ['192.0.2.0/24'] }),
        testExport({ path: '/anon', id: 4, allowAuthNone: true }),
      ],
    });
    s = await openSession(d);
    nfs = s.nfs;
    root = s.root;
    work = await mkdir(nfs, root, 'work-' + process.pid, 0o777);
  });

  after(async function () {
    s?.close();
    await d?.stop();
  });

  /** a cluster whose serving node gave up the service address (see the big directory) closed our
   * session: open a new one on the service address */
  async function ensureSession(): Promise<void> {
    if (!s.nfs.conn.closed && !s.mount.conn.closed) return;
    assert.equal(d.kind, 'cluster', 'the daemon closed the session');
    s.close();
    s = await openSession(d);
    nfs = s.nfs;
  }

  describe('MOUNT v3', () => {
    it('NULL answers', async () => {
      assert.equal(await s.mount.null(), true);
    });
    it('EXPORT lists every configured export', async () => {
      const list = await s.mount.export();
      const dirs = list.map((e) => e.dir).sort();
      // /denied (192.0.2.0/24 only) may be listed or hidden from this client; the others must be there
      for (const p of ['/anon', '/export', '/ro']) assert.ok(dirs.includes(p), `EXPORT lacks ${p}: ${dirs}`);
      for (const e of list) assert.ok(['/anon', '/denied', '/export', '/ro'].includes(e.dir), `EXPORT lists unknown ${e.dir}`);
    });
    it('MNT of an allowed export returns a handle and offers AUTH_SYS', async () => {
      const r = await s.mount.mnt('/export');
      assert.equal(r.status, MountStat.OK);
      assert.ok(r.fh && r.fh.length > 0 && r.fh.length <= 64, 'handle size 1..64');
      assert.ok(r.authFlavors!.includes(1), `auth flavors ${r.authFlavors}`);
      assert.deepEqual(Buffer.from(r.fh!), Buffer.from(root), 'same root handle on every MNT');
    });
    it('MNT of an export whose client networks exclude 127.0.0.1 is MNT3ERR_ACCES', async () => {
      const r = await s.mount.mnt('/denied');
      assert.equal(r.status, MountStat.ACCES);
      assert.equal(r.fh, undefined);
    });
    it('MNT of an unknown path is refused (NOENT or ACCES)', async () => {
      const r = await s.mount.mnt('/no-such-export');
      assert.ok(r.status === MountStat.NOENT || r.status === MountStat.ACCES, `status ${r.status}`);
    });
    it('DUMP lists our mount; UMNT removes it', async () => {
      const m2 = await MountClient.connect({ port: d.mountPort });
      try {
        await m2.mntOrThrow('/ro');
        const before = await m2.dump();
        assert.ok(before.some((e) => e.directory === '/ro'), `DUMP ${JSON.stringify(before)}`);
        await m2.umnt('/ro');
        const afterUmnt = await m2.dump();
        assert.ok(!afterUmnt.some((e) => e.directory === '/ro' && e.hostname === before.find((x) => x.directory === '/ro')!.hostname),
          `DUMP after UMNT ${JSON.stringify(afterUmnt)}`);
        await m2.umntall();
      } finally {
        m2.close();
      }
    });
    it('unknown MOUNT procedure is PROC_UNAVAIL', async () => {
      const r = await s.mount.callRaw(6, new Uint8Array(0));
      assert.equal(r.kind, 'accepted');
      assert.equal(r.kind === 'accepted' && r.acceptStat, AcceptStat.PROC_UNAVAIL);
    });
    it('MOUNT v0 / v4 are PROG_MISMATCH with high = 3', async () => {
      for (const v of [0, 4]) {
        const r = await s.mount.conn.callRaw(PROG_MOUNT, v, MountProc.NULL);
        assert.equal(r.kind, 'accepted');
        if (r.kind !== 'accepted') return;
        assert.equal(r.acceptStat, AcceptStat.PROG_MISMATCH, `vers ${v}`);
        assert.equal(r.mismatch?.high, 3);
        assert.ok(r.mismatch!.low >= 1 && r.mismatch!.low <= 3);
      }
    });
  });

  describe('file system information', () => {
    it('NULL, GETATTR of the root', async () => {
      assert.equal(await nfs.null(), true);
      const a = expectOk(await nfs.getattr(root), 'GETATTR').resok!.objAttributes;
      assert.equal(a.type, FType.DIR);
      assert.ok(a.nlink >= 2);
    });
    it('FSINFO gives sane transfer sizes', async () => {
      const r = expectOk(await nfs.fsinfo(root), 'FSINFO').resok!;
      assert.ok(r.rtmax >= 4096 && r.wtmax >= 4096, `rtmax ${r.rtmax} wtmax ${r.wtmax}`);
      assert.ok(r.rtpref <= r.rtmax && r.wtpref <= r.wtmax);
      assert.ok(r.maxfilesize > 0n);
      assert.ok((r.properties & 0x3) === 0x3, 'FSF_LINK | FSF_SYMLINK');
    });
    it('FSSTAT is consistent', async () => {
      const r = expectOk(await nfs.fsstat(root), 'FSSTAT').resok!;
      assert.ok(r.tbytes >= r.fbytes && r.fbytes >= r.abytes, `${r.tbytes} ${r.fbytes} ${r.abytes}`);
      assert.ok(r.tfiles >= r.ffiles);
    });
    it('PATHCONF: name_max >= 255, no_trunc', async () => {
      const r = expectOk(await nfs.pathconf(root), 'PATHCONF').resok!;
      assert.ok(r.namemax >= 255, `namemax ${r.namemax}`);
      assert.equal(r.noTrunc, true);
      assert.ok(r.linkmax >= 2);
    });
  });

  describe('data', () => {
    it('CREATE, WRITE FILE_SYNC, READ back, GETATTR size', async () => {
      const data = crypto.randomBytes(700_000);
      const fh = await createFile(nfs, work, 'data.bin', data);
      const a = expectOk(await nfs.getattr(fh)).resok!.objAttributes;
      assert.equal(a.type, FType.REG);
      assert.equal(a.size, BigInt(data.length));
      const back = await nfs.readAll(fh, data.length, 32768);
      assert.ok(back.equals(data), 'READ returns what was written');
      const eof = expectOk(await nfs.read(fh, data.length, 4096)).resok!;
      assert.equal(eof.count, 0);
      assert.equal(eof.eof, true);
      const tail = expectOk(await nfs.read(fh, data.length - 10, 4096)).resok!;
      assert.equal(tail.count, 10);
      assert.equal(tail.eof, true);
    });
    it('UNSTABLE WRITE then COMMIT: same verifier, data readable', async () => {
      const fh = await createFile(nfs, work, 'unstable.bin');
      const data = crypto.randomBytes(200_000);
      const verfs = await nfs.writeAll(fh, data, StableHow.UNSTABLE);
      const c = expectOk(await nfs.commit(fh, 0, 0), 'COMMIT').resok!;
      for (const v of verfs) assert.deepEqual(Buffer.from(v), Buffer.from(c.verf), 'write verifier == commit verifier');
      assert.ok((await nfs.readAll(fh, data.length)).equals(data));
    });
    it('sparse write: hole reads as zeros', async () => {
      const fh = await createFile(nfs, work, 'sparse.bin');
      expectOk(await nfs.write(fh, 1_000_000, Buffer.from('tail')));
      const r = expectOk(await nfs.read(fh, 500_000, 16)).resok!;
      assert.deepEqual(Buffer.from(r.data), Buffer.alloc(16));
      assert.equal(expectOk(await nfs.getattr(fh)).resok!.objAttributes.size, 1_000_004n);
    });
    it('SETATTR size truncates and extends; mode; mtime', async () => {
      const fh = await createFile(nfs, work, 'trunc.bin', Buffer.from('hello world'));
      expectOk(await nfs.setattr(fh, { size: 5 }), 'SETATTR size');
      const r = expectOk(await nfs.read(fh, 0, 100)).resok!;
      assert.equal(Buffer.from(r.data).toString(), 'hello');
      expectOk(await nfs.setattr(fh, { size: 8, mode: 0o600, mtime: { seconds: 1_000_000_000, nseconds: 5 } }));
      const a = expectOk(await nfs.getattr(fh)).resok!.objAttributes;
      assert.equal(a.size, 8n);
      assert.equal(a.mode & 0o7777, 0o600);
      assert.equal(a.mtime.seconds, 1_000_000_000);
      const z = expectOk(await nfs.read(fh, 5, 100)).resok!;
      assert.deepEqual(Buffer.from(z.data), Buffer.alloc(3));
    });
    it('ACCESS reports what the owner may do', async () => {
      const fh = await createFile(nfs, work, 'acc.bin', undefined, 0o600);
      const all = Access.READ | Access.MODIFY | Access.EXTEND | Access.EXECUTE;
      const mine = expectOk(await nfs.access(fh, all)).resok!;
      assert.ok(mine.access & Access.READ && mine.access & Access.MODIFY);
      const theirs = expectOk(await nfs.as(USER).access(fh, all)).resok!;
      assert.equal(theirs.access & (Access.READ | Access.MODIFY | Access.EXTEND), 0, `access ${theirs.access}`);
    });
  });

  describe('namespace', () => {
    it('LOOKUP finds created entries; GUARDED CREATE of an existing name is EXIST', async () => {
      const fh = await createFile(nfs, work, 'guard.txt');
      const l = expectOk(await nfs.lookup(work, 'guard.txt')).resok!;
      assert.deepEqual(Buffer.from(l.object.data), Buffer.from(fh));
      assertStatus(await nfs.create(work, 'guard.txt', CreateMode.GUARDED), NfsStat.EXIST, 'GUARDED CREATE');
      expectOk(await nfs.create(work, 'guard.txt', CreateMode.UNCHECKED), 'UNCHECKED CREATE of existing');
      assertStatus(await nfs.mkdir(work, 'guard.txt'), NfsStat.EXIST, 'MKDIR over file');
    });
    it('EXCLUSIVE CREATE: a retransmit with the same verifier succeeds with the same file; another verifier is EXIST', async () => {
      const verf = crypto.randomBytes(8);
      const a = expectOk(await nfs.create(work, 'excl', CreateMode.EXCLUSIVE, {}, verf)).resok!;
      const b = expectOk(await nfs.create(work, 'excl', CreateMode.EXCLUSIVE, {}, verf), 'retransmitted EXCLUSIVE CREATE').resok!;
      const fa = a.obj.handle?.data ?? expectOk(await nfs.lookup(work, 'excl')).resok!.object.data;
      const fb = b.obj.handle?.data ?? fa;
      assert.deepEqual(Buffer.from(fb), Buffer.from(fa));
      assertStatus(await nfs.create(work, 'excl', CreateMode.EXCLUSIVE, {}, crypto.randomBytes(8)), NfsStat.EXIST, 'EXCLUSIVE other verf');
      // the client then sets the real attributes
      expectOk(await nfs.setattr(fa, { mode: 0o640 }));
      assert.equal(expectOk(await nfs.getattr(fa)).resok!.objAttributes.mode & 0o7777, 0o640);
    });
    it('NOENT, NOTDIR, ISDIR, NOTEMPTY', async () => {
      assertStatus(await nfs.lookup(work, 'missing'), NfsStat.NOENT, 'LOOKUP missing');
      assertStatus(await nfs.remove(work, 'missing'), NfsStat.NOENT, 'REMOVE missing');
      const f = await createFile(nfs, work, 'plain', Buffer.from('x'));
      assertStatus(await nfs.lookup(f, 'x'), NfsStat.NOTDIR, 'LOOKUP in a file');
      assertStatus(await nfs.create(f, 'x'), NfsStat.NOTDIR, 'CREATE in a file');
      assertStatus(await nfs.readdir(f), NfsStat.NOTDIR, 'READDIR of a file');
      const dir = await mkdir(nfs, work, 'full');
      assertStatus(await nfs.read(dir, 0, 10), NfsStat.ISDIR, 'READ of a dir');
      assertStatus(await nfs.write(dir, 0, Buffer.from('x')), NfsStat.ISDIR, 'WRITE to a dir');
      assertStatus(await nfs.remove(work, 'full'), NfsStat.ISDIR, 'REMOVE of a dir');
      await createFile(nfs, dir, 'inner');
      assertStatus(await nfs.rmdir(work, 'full'), NfsStat.NOTEMPTY, 'RMDIR non-empty');
      assertStatus(await nfs.rmdir(work, 'plain'), NfsStat.NOTDIR, 'RMDIR of a file');
      expectOk(await nfs.remove(dir, 'inner'));
      expectOk(await nfs.rmdir(work, 'full'), 'RMDIR now empty');
      assertStatus(await nfs.lookup(work, 'full'), NfsStat.NOENT);
    });
    it('NAMETOOLONG for a 256-byte name; 255 bytes is fine', async () => {
      assertStatus(await nfs.create(work, 'a'.repeat(256)), NfsStat.NAMETOOLONG, 'CREATE 256');
      assertStatus(await nfs.lookup(work, 'b'.repeat(300)), NfsStat.NAMETOOLONG, 'LOOKUP 300');
      assertStatus(await nfs.mkdir(work, 'c'.repeat(1000)), NfsStat.NAMETOOLONG, 'MKDIR 1000');
      expectOk(await nfs.create(work, 'n'.repeat(255)), 'CREATE 255');
    });
    it('INVAL: "." and ".." as new names, a directory renamed into itself', async () => {
      const bad = [await nfs.create(work, '.'), await nfs.mkdir(work, '..')];
      for (const r of bad) assert.ok(r.status === NfsStat.INVAL || r.status === NfsStat.EXIST, `status ${r.status}`);
      const a = await mkdir(nfs, work, 'loop-a');
      await mkdir(nfs, a, 'loop-b');
      const b = expectOk(await nfs.lookup(a, 'loop-b')).resok!.object.data;
      assertStatus(await nfs.rename(work, 'loop-a', b, 'inside'), NfsStat.INVAL, 'RENAME dir into its own subdir');
    });
    it('names with "/" are refused', async () => {
      const r = await nfs.create(work, 'a/b');
      assert.ok(r.status === NfsStat.INVAL || r.status === NfsStat.ACCES || r.status === NfsStat.NOENT, `status ${r.status}`);
    });
    it('STALE: the handle of a removed file', async () => {
      const fh = await createFile(nfs, work, 'gone', Buffer.from('bye'));
      expectOk(await nfs.remove(work, 'gone'));
      assertStatus(await nfs.getattr(fh), NfsStat.STALE, 'GETATTR removed');
      assertStatus(await nfs.read(fh, 0, 10), NfsStat.STALE, 'READ removed');
      assertStatus(await nfs.write(fh, 0, Buffer.from('x')), NfsStat.STALE, 'WRITE removed');
    });
    it('BADHANDLE: garbage handles', async () => {
      for (const fh of [crypto.randomBytes(3), Buffer.alloc(0), crypto.randomBytes(root.length), crypto.randomBytes(64)]) {
        const r = await nfs.getattr(fh);
        assert.ok(r.status === NfsStat.BADHANDLE || r.status === NfsStat.STALE, `GETATTR on ${fh.toString('hex')}: ${r.status}`);
      }
      assertStatus(await nfs.getattr(crypto.randomBytes(5)), NfsStat.BADHANDLE, 'a 5-byte handle');
    });
    it('NOT_SYNC: SETATTR with a stale ctime guard; a matching guard applies', async () => {
      const fh = await createFile(nfs, work, 'guarded', Buffer.from('abc'));
      const a = expectOk(await nfs.getattr(fh)).resok!.objAttributes;
      assertStatus(await nfs.setattr(fh, { mode: 0o600 }, { seconds: a.ctime.seconds - 100, nseconds: 0 }), NfsStat.NOT_SYNC, 'guarded SETATTR');
      expectOk(await nfs.setattr(fh, { mode: 0o600 }, { seconds: a.ctime.seconds, nseconds: a.ctime.nseconds }), 'matching guard');
    });
    it('FBIG: beyond FSINFO maxfilesize', async () => {
      const max = expectOk(await nfs.fsinfo(root)).resok!.maxfilesize;
      const fh = await createFile(nfs, work, 'big');
      if (max < 0xffffffffffffff00n) {
        assertStatus(await nfs.write(fh, max, Buffer.from('x')), NfsStat.FBIG, 'WRITE at maxfilesize');
        assertStatus(await nfs.setattr(fh, { size: max + 1n }), NfsStat.FBIG, 'SETATTR size maxfilesize+1');
      } else {
        assertStatus(await nfs.write(fh, 0xfffffffffffffff0n, Buffer.from('0123456789abcdefXYZ')), NfsStat.FBIG, 'WRITE past 2^64');
      }
    });
    it('RENAME within and across directories, over an existing file', async () => {
      const d1 = await mkdir(nfs, work, 'r1');
      const d2 = await mkdir(nfs, work, 'r2');
      const fh = await createFile(nfs, d1, 'from', Buffer.from('moved'));
      expectOk(await nfs.rename(d1, 'from', d1, 'to'), 'RENAME same dir');
      expectOk(await nfs.rename(d1, 'to', d2, 'there'), 'RENAME across');
      assertStatus(await nfs.lookup(d1, 'to'), NfsStat.NOENT);
      const l = expectOk(await nfs.lookup(d2, 'there')).resok!;
      assert.deepEqual(Buffer.from(l.object.data), Buffer.from(fh), 'handle survives rename');
      await createFile(nfs, d2, 'victim', Buffer.from('old'));
      expectOk(await nfs.rename(d2, 'there', d2, 'victim'), 'RENAME over existing');
      assert.equal(Buffer.from(expectOk(await nfs.read(fh, 0, 100)).resok!.data).toString(), 'moved');
      assertStatus(await nfs.rename(d1, 'nothing', d2, 'x'), NfsStat.NOENT, 'RENAME missing source');
    });
    it('hard links: LINK raises nlink, REMOVE lowers it, data shared', async () => {
      const fh = await createFile(nfs, work, 'orig', Buffer.from('shared'));
      const l1 = expectOk(await nfs.link(fh, work, 'link1'), 'LINK').resok!;
      assert.equal(l1.fileAttributes.attributes?.nlink ?? 2, 2);
      expectOk(await nfs.link(fh, work, 'link2'));
      assert.equal(expectOk(await nfs.getattr(fh)).resok!.objAttributes.nlink, 3);
      const viaLink = expectOk(await nfs.lookup(work, 'link2')).resok!.object.data;
      assert.deepEqual(Buffer.from(viaLink), Buffer.from(fh));
      expectOk(await nfs.remove(work, 'orig'));
      assert.equal(expectOk(await nfs.getattr(fh)).resok!.objAttributes.nlink, 2);
      assert.equal(Buffer.from(expectOk(await nfs.read(viaLink, 0, 10)).resok!.data).toString(), 'shared');
      assertStatus(await nfs.link(fh, work, 'link1'), NfsStat.EXIST, 'LINK onto existing name');
      const dir = await mkdir(nfs, work, 'nolinkdir');
      const r = await nfs.link(dir, work, 'dirlink');
      assert.ok(r.status === NfsStat.ISDIR || r.status === NfsStat.INVAL || r.status === NfsStat.PERM, `LINK of a dir: ${r.status}`);
    });
    it('SYMLINK and READLINK', async () => {
      const target = '../some/where/' + 'x'.repeat(100);
      const r = expectOk(await nfs.symlink(work, 'sl', target), 'SYMLINK').resok!;
      const fh = r.obj.handle?.data ?? expectOk(await nfs.lookup(work, 'sl')).resok!.object.data;
      assert.equal(expectOk(await nfs.getattr(fh)).resok!.objAttributes.type, FType.LNK);
      assert.equal(expectOk(await nfs.readlink(fh), 'READLINK').resok!.data, target);
      const file = await createFile(nfs, work, 'notalink');
      assertStatus(await nfs.readlink(file), NfsStat.INVAL, 'READLINK of a regular file');
    });
    it('MKNOD fifo, socket, char and block devices', async () => {
      const cases: [string, number][] = [['fifo', FType.FIFO], ['sock', FType.SOCK], ['chr', FType.CHR], ['blk', FType.BLK]];
      for (const [name, type] of cases) {
        const r = expectOk(await nfs.mknod(work, name, type, { mode: 0o640 }, { major: 8, minor: 3 }), `MKNOD ${name}`).resok!;
        const fh = r.obj.handle?.data ?? expectOk(await nfs.lookup(work, name)).resok!.object.data;
        const a = expectOk(await nfs.getattr(fh)).resok!.objAttributes;
        assert.equal(a.type, type, name);
        if (type === FType.CHR || type === FType.BLK) assert.deepEqual([a.rdev.specdata1, a.rdev.specdata2], [8, 3]);
      }
      assertStatus(await nfs.mknod(work, 'regular', FType.REG), NfsStat.BADTYPE, 'MKNOD of a regular file');
    });
  });

  describe('permissions and exports', () => {
    let shared: Fh;
    before(async () => {
      shared = await mkdir(nfs, work, 'shared', 0o777);
    });
    it('ACCES: a user without permission', async () => {
      const priv = await mkdir(nfs, work, 'private', 0o700);
      const u = nfs.as(USER);
      assertStatus(await u.create(priv, 'x'), NfsStat.ACCES, 'CREATE in 0700 root dir');
      assertStatus(await u.lookup(priv, 'x'), NfsStat.ACCES, 'LOOKUP in 0700 root dir');
      const secret = await createFile(nfs, work, 'secret', Buffer.from('s3cret'), 0o600);
      assertStatus(await u.read(secret, 0, 10), NfsStat.ACCES, 'READ of 0600 root file');
      assertStatus(await u.write(secret, 0, Buffer.from('x')), NfsStat.ACCES, 'WRITE of 0600 root file');
      assertStatus(await u.readdir(priv), NfsStat.ACCES, 'READDIR of 0700 root dir');
    });
    it('a user may create in a 0777 dir and owns the result; supplementary groups count', async () => {
      const u = nfs.as(USER);
      const r = expectOk(await u.create(shared, 'mine', CreateMode.GUARDED, { mode: 0o640 })).resok!;
      const fh = r.obj.handle?.data ?? expectOk(await u.lookup(shared, 'mine')).resok!.object.data;
      const a = expectOk(await u.getattr(fh)).resok!.objAttributes;
      assert.equal(a.uid, 1000);
      assert.equal(a.gid, 1000);
      assertStatus(await nfs.as(OTHER_USER).write(fh, 0, Buffer.from('x')), NfsStat.ACCES, 'other user writes 0640');
    });
    it('PERM: chown by a non-root user; root may chown', async () => {
      const u = nfs.as(USER);
      const r = expectOk(await u.create(shared, 'chowned', CreateMode.GUARDED, { mode: 0o644 })).resok!;
      const fh = r.obj.handle?.data ?? expectOk(await u.lookup(shared, 'chowned')).resok!.object.data;
      assertStatus(await u.setattr(fh, { uid: 0 }), NfsStat.PERM, 'chown to root by uid 1000');
      assertStatus(await nfs.as(OTHER_USER).setattr(fh, { mode: 0o777 }), NfsStat.PERM, 'chmod by a non-owner');
      expectOk(await nfs.as(AUTH_ROOT).setattr(fh, { uid: 1001, gid: 1001 }), 'chown by root');
      const a = expectOk(await nfs.getattr(fh)).resok!.objAttributes;
      assert.deepEqual([a.uid, a.gid], [1001, 1001]);
    });
    it('ROFS: mutations on a read-only export', async () => {
      const ro = await s.mount.mntOrThrow('/ro');
      assert.equal(expectOk(await nfs.getattr(ro)).resok!.objAttributes.type, FType.DIR);
      assertStatus(await nfs.create(ro, 'x'), NfsStat.ROFS, 'CREATE');
      assertStatus(await nfs.mkdir(ro, 'x'), NfsStat.ROFS, 'MKDIR');
      assertStatus(await nfs.symlink(ro, 'x', 'y'), NfsStat.ROFS, 'SYMLINK');
      assertStatus(await nfs.setattr(ro, { mode: 0o777 }), NfsStat.ROFS, 'SETATTR');
      assertStatus(await nfs.remove(ro, 'x'), NfsStat.ROFS, 'REMOVE');
      const acc = expectOk(await nfs.access(ro, Access.MODIFY | Access.EXTEND | Access.DELETE | Access.READ)).resok!;
      assert.equal(acc.access & (Access.MODIFY | Access.EXTEND | Access.DELETE), 0, 'ACCESS grants no write on ro');
    });
    it('AUTH_TOOWEAK: AUTH_NONE on an export that does not allow it; allowed on /anon', async () => {
      const none = nfs.as(AUTH_NONE);
      assert.equal(await none.null(), true, 'NULL with AUTH_NONE is always fine');
      const r = await nfs.callRaw(NfsProc.GETATTR, xdrOpaque(root), AUTH_NONE);
      assert.equal(r.kind, 'denied', JSON.stringify(r));
      if (r.kind === 'denied') {
        assert.equal(r.rejectStat, RejectStat.AUTH_ERROR);
        assert.equal(r.authStat, AuthStat.AUTH_TOOWEAK);
      }
      const anonRoot = await s.mount.mntOrThrow('/anon');
      expectOk(await none.getattr(anonRoot), 'GETATTR with AUTH_NONE on /anon');
    });
  });

  describe('RPC rejections', () => {
    it('PROG_UNAVAIL for an unknown program', async () => {
      const r = await nfs.conn.callRaw(100099, 1, 0);
      assert.equal(r.kind === 'accepted' && r.acceptStat, AcceptStat.PROG_UNAVAIL, JSON.stringify(r));
    });
    it('PROG_MISMATCH [3,3] for NFS v2 and v4', async () => {
      for (const v of [2, 4]) {
        const r = await nfs.conn.callRaw(PROG_NFS, v, 0);
        assert.equal(r.kind === 'accepted' && r.acceptStat, AcceptStat.PROG_MISMATCH, `v${v} ${JSON.stringify(r)}`);
        assert.deepEqual(r.kind === 'accepted' && r.mismatch, { low: 3, high: 3 });
      }
    });
    it('PROC_UNAVAIL for NFS procedure 22 and 1000', async () => {
      for (const p of [22, 1000]) {
        const r = await nfs.callRaw(p, new Uint8Array(0));
        assert.equal(r.kind === 'accepted' && r.acceptStat, AcceptStat.PROC_UNAVAIL, `proc ${p}`);
      }
    });
    it('GARBAGE_ARGS for truncated arguments', async () => {
      const cases: [number, Uint8Array][] = [
        [NfsProc.GETATTR, new Uint8Array([0, 0])],
        [NfsProc.LOOKUP, xdrOpaque(root)], // missing the name
        [NfsProc.WRITE, Buffer.concat([xdrOpaque(root), Buffer.alloc(8), u32(100), u32(2), u32(100), Buffer.alloc(10)])],
        [NfsProc.READ, Buffer.concat([xdrOpaque(root), Buffer.alloc(4)])],
      ];
      for (const [p, args] of cases) {
        const r = await nfs.callRaw(p, args);
        assert.equal(r.kind === 'accepted' && r.acceptStat, AcceptStat.GARBAGE_ARGS, `proc ${p}: ${JSON.stringify(r)}`);
      }
      const m = await s.mount.callRaw(MountProc.MNT, new Uint8Array([0, 0, 0]));
      assert.equal(m.kind === 'accepted' && m.acceptStat, AcceptStat.GARBAGE_ARGS, 'MNT truncated');
    });
    it('the connection still serves after all the rejections', async () => {
      expectOk(await nfs.getattr(root));
    });
  });

  describe('directories', () => {
    it('READDIR / READDIRPLUS page with cookies; each name once; handles and attributes in PLUS', async function () {
      this.timeout(120_000);
      const dir = await mkdir(nfs, work, 'paged');
      const names = Array.from({ length: 500 }, (_, i) => `entry-${i}-${'z'.repeat(i % 40)}`);
      await pipelined(names.length, 64, async (i) => void expectOk(await nfs.create(dir, names[i]), names[i]));
      for (const plus of [false, true]) {
        const list = await nfs.listAll(dir, { plus, count: 1024 });
        const got = list.map((e) => e.name).filter((n) => n !== '.' && n !== '..');
        assert.equal(got.length, names.length, `${plus ? 'READDIRPLUS' : 'READDIR'} count`);
        assert.equal(new Set(got).size, got.length, 'no duplicates');
        assert.deepEqual([...got].sort(), [...names].sort());
        assert.equal(new Set(list.map((e) => e.cookie)).size, list.length, 'distinct cookies');
        if (plus) {
          const e = list.find((x) => x.name === names[7])!;
          assert.ok(e.fh, 'READDIRPLUS returns handles');
          const l = expectOk(await nfs.lookup(dir, names[7])).resok!;
          assert.deepEqual(Buffer.from(e.fh!), Buffer.from(l.object.data));
          assert.equal(e.attrs?.type, FType.REG);
        }
      }
    });
    it('TOOSMALL for a READDIR count that fits no entry; BAD_COOKIE for a cookie never handed out', async () => {
      const dir = await mkdir(nfs, work, 'small');
      await createFile(nfs, dir, 'a-long-enough-name-' + 'q'.repeat(200));
      const r = await nfs.readdir(dir, 0n, undefined, 8);
      assertStatus(r, NfsStat.TOOSMALL, 'READDIR count 8');
      const first = expectOk(await nfs.readdir(dir)).resok!;
      const bogus = await nfs.readdir(dir, 0x7eadbeefcafef00dn, first.cookieverf);
      assertStatus(bogus, NfsStat.BAD_COOKIE, 'READDIR with an invented cookie');
    });
  });

  // a cluster: the serving node stops and another replica serves the rest of the listing (cookies and
  // the cookie verifier are a function of the log, invariant 2); the stopped node is started again
  describe('READDIR cookies across a restart of the serving process', () => {
    it('a listing started before a restart completes after it with each name once', async function () {
      this.timeout(120_000);
      const dir = await mkdir(nfs, work, 'restart-dir');
      const names = Array.from({ length: 300 }, (_, i) => `r${i}`);
      await pipelined(names.length, 64, async (i) => void expectOk(await nfs.create(dir, names[i])));
      const seen: string[] = [];
      const p1 = expectOk(await nfs.readdir(dir, 0n, undefined, 1024)).resok!;
      let cookie = 0n;
      for (let e = p1.reply.entries; e; e = e.nextentry) {
        seen.push(e.name);
        cookie = e.cookie;
      }
      const verf = Buffer.from(p1.cookieverf);
      assert.equal(p1.reply.eof, false, 'first page is not the whole directory');
      s.close();
      await d.restartServing();
      s = await openSession(d);
      nfs = s.nfs;
      assert.deepEqual(Buffer.from(s.root), Buffer.from(root), 'root handle stable across restart');
      for (let page = 0; page < 1000; page++) {
        const r = expectOk(await nfs.readdir(dir, cookie, verf, 1024), `READDIR page after restart (cookie ${cookie})`).resok!;
        for (let e = r.reply.entries; e; e = e.nextentry) {
          seen.push(e.name);
          cookie = e.cookie;
        }
        if (r.reply.eof) break;
      }
      const got = seen.filter((n) => n !== '.' && n !== '..');
      assert.equal(new Set(got).size, got.length, 'no name twice');
      assert.deepEqual(got.sort(), [...names].sort());
    });
  });

  describe(`a directory of ${BIGDIR_ENTRIES} entries`, () => {
    it('is created with pipelined CREATEs and listed fully, each name once', async function () {
      this.timeout(20 * 60_000);
      const dir = await mkdir(nfs, work, 'bigdir');
      const t0 = Date.now();
      const connect = () => Nfs3Client.connect({ port: d.nfsPort, timeoutMs: 120_000 });
      const conns = await Promise.all(Array.from({ length: 2 }, connect));
      // A cluster: when the serving node's lease runs short (its event loop or its followers
      // starved by this burst on a busy host) it releases the service address and closes every
      // connection, then takes it again or another node does. The client reconnects and resends,
      // as an NFS client does; a resent GUARDED CREATE whose first reply was lost finds its own
      // file (EXIST). The daemon closes no connection: there every call must succeed at once.
      let reconnects = 0;
      const reconnecting: (Promise<void> | undefined)[] = [];
      const reconnect = (k: number, broken: Nfs3Client): Promise<void> => {
        if (conns[k] !== broken) return Promise.resolve();
        return (reconnecting[k] ??= (async () => {
          for (let tries = 0; ; tries++) {
            try {
              conns[k] = await connect();
              reconnects++;
              return;
            } catch (e) {
              if (tries >= 600) throw e;
              await sleep(100);
            }
          }
        })().finally(() => (reconnecting[k] = undefined)));
      };
      try {
        await pipelined(BIGDIR_ENTRIES, 256, async (i) => {
          for (let attempt = 0; ; attempt++) {
            const c = conns[i & 1];
            let r;
            try {
              r = await c.create(dir, `f${i}`, CreateMode.GUARDED, { mode: 0o644 });
            } catch (e) {
              if (d.kind !== 'cluster' || !c.conn.closed || attempt >= 10) throw e;
              await reconnect(i & 1, c);
              continue;
            }
            if (r.status === NfsStat.OK || (attempt > 0 && r.status === NfsStat.EXIST)) return;
            throw new Error(`CREATE f${i}${attempt > 0 ? ` (resent ${attempt}x)` : ''}: ${r.status}`);
          }
        });
      } finally {
        for (const c of conns) c.close();
      }
      if (reconnects) console.log(`      the service address was given up under load: ${reconnects} reconnects during the CREATEs`);
      await ensureSession();
      const t1 = Date.now();
      const list = await nfs.listAll(dir, { plus: false, count: 32768 });
      const t2 = Date.now();
      const names = list.map((e) => e.name).filter((n) => n !== '.' && n !== '..');
      console.log(`      ${BIGDIR_ENTRIES} CREATEs in ${t1 - t0} ms, READDIR of all in ${t2 - t1} ms`);
      assert.equal(names.length, BIGDIR_ENTRIES);
      assert.equal(new Set(names).size, BIGDIR_ENTRIES, 'each name once');
      for (let i = 0; i < BIGDIR_ENTRIES; i += 9973) assert.ok(names.includes(`f${i}`));
      assert.equal(expectOk(await nfs.getattr(dir)).resok!.objAttributes.nlink >= 2, true);
    });
  });

  describe('/metrics', () => {
    it('shows per-procedure counts after the run', async () => {
      // counters restart with the process (the restart above; a cluster: another node serves since
      // then): drive every procedure once more; the serving process's /metrics is read
      await ensureSession();
      await exerciseAllProcedures(nfs, work, 'metrics');
      const samples = parseMetrics(await d.metrics());
      const procsSeen = new Map<string, number>();
      for (const sm of samples) {
        for (const v of Object.values(sm.labels)) {
          const k = v.toLowerCase();
          if (sm.value > 0) procsSeen.set(k, (procsSeen.get(k) ?? 0) + sm.value);
        }
      }
      for (const p of ['getattr', 'setattr', 'lookup', 'access', 'readlink', 'read', 'write', 'create', 'mkdir', 'symlink', 'mknod', 'remove', 'rmdir', 'rename', 'link', 'readdir', 'readdirplus', 'fsstat', 'fsinfo', 'pathconf', 'commit']) {
        assert.ok(procsSeen.has(p), `/metrics has no positive sample labelled "${p}"; labels seen: ${[...procsSeen.keys()].slice(0, 50)}`);
      }
    });
  });
});

for (const kind of e2eTargets()) describe(`portmapper (RFC 1833) when enabled [${kind}]`, function () {
  this.timeout(60_000);
  let d: NfsTarget;
  before(async () => {
    d = await startTarget(kind, { portmap: true });
  });
  after(async () => {
    await d?.stop();
  });
  it('GETPORT maps NFS v3 and MOUNT v3 over TCP to the listening ports; DUMP lists them', () => checkPortmap(d));
  // a cluster's portmapper is bound by the serving node, with the service address
  if (kind === 'cluster') {
    it('moves with the service address: the next serving node answers the same', async () => {
      await d.restartServing();
      await checkPortmap(d);
    });
  }
});

async function checkPortmap(d: NfsTarget): Promise<void> {
  const pm = await PortmapClient.connect({ port: d.portmapPort });
  try {
    assert.equal(await pm.null(), true);
    assert.equal(await pm.getport(PROG_NFS, 3, IPPROTO_TCP), d.nfsPort);
    assert.equal(await pm.getport(PROG_MOUNT, 3, IPPROTO_TCP), d.mountPort);
    assert.equal(await pm.getport(PROG_NFS, 4, IPPROTO_TCP), 0, 'unregistered version maps to port 0');
    assert.equal(await pm.getport(100099, 1, IPPROTO_TCP), 0);
    const maps = await pm.dump();
    assert.ok(maps.some((m) => m.prog === PROG_NFS && m.vers === 3 && m.prot === IPPROTO_TCP && m.port === d.nfsPort), JSON.stringify(maps));
  } finally {
    pm.close();
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function xdrOpaque(data: Uint8Array): Buffer {
  const pad = (4 - (data.length % 4)) % 4;
  return Buffer.concat([u32(data.length), Buffer.from(data), Buffer.alloc(pad)]);
}

void RpcConnection;
