/** Directories and names: LOOKUP, MKDIR, SYMLINK, READLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK. */
import assert from 'node:assert/strict';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { Nfs3Harness, S, ROOT, ALICE, BOB, exportConfig, sattr } from './support/harness';

describe('nfs3 directories and names', function () {
  this.timeout(20_000);
  let h: Nfs3Harness;
  let shared: s.Nfsv3Fh;
  beforeEach(async () => {
    h = await Nfs3Harness.open({
      exports: [exportConfig(), exportConfig({ id: 2, path: '/ro', readOnly: true }), exportConfig({ id: 3, path: '/other' })],
      store: { maxLinks: 8 },
    });
    shared = await h.mkdirFh(h.root(), 'shared', { mode: 0o777 });
  });
  afterEach(async () => h.close());

  it('LOOKUP finds entries, ".", ".."; NOENT and NOTDIR keep dir attributes', async () => {
    const d = await h.mkdirFh(shared, 'd', { mode: 0o755 }, ALICE);
    const f = await h.mkfile(d, 'f', { mode: 0o644 }, ALICE);
    const l = await h.lookup(d, 'f');
    assert.equal(l.status, S.OK);
    assert.deepEqual(Buffer.from(l.resok!.object.data), Buffer.from(f.data));
    assert.equal(l.resok!.objAttributes.attributes!.type, 1);
    assert.equal(l.resok!.dirAttributes.attributes!.type, 2);
    const dot = await h.lookup(d, '.');
    assert.deepEqual(Buffer.from(dot.resok!.object.data), Buffer.from(d.data));
    const up = await h.lookup(d, '..');
    assert.deepEqual(Buffer.from(up.resok!.object.data), Buffer.from(shared.data));
    const no = await h.lookup(d, 'nothing');
    assert.equal(no.status, S.NOENT);
    assert.equal(no.resfail!.dirAttributes.attributesFollow, true);
    const nd = await h.lookup(f, 'x');
    assert.equal(nd.status, S.NOTDIR);
    assert.equal(nd.resfail!.dirAttributes.attributes!.type, 1);
    // names that cannot exist
    assert.equal((await h.lookup(d, 'a/b')).status, S.NOENT);
    assert.equal((await h.lookup(d, 'a\0b')).status, S.NOENT);
    assert.equal((await h.lookup(d, '')).status, S.NOENT);
    assert.equal((await h.lookup(d, 'n'.repeat(256))).status, S.NAMETOOLONG);
    assert.equal((await h.lookup(d, 'n'.repeat(100_000))).status, S.NAMETOOLONG);
  });

  it('LOOKUP needs search permission on the directory', async () => {
    const d = await h.mkdirFh(shared, 'closed', { mode: 0o700 }, ALICE);
    await h.mkfile(d, 'f', { mode: 0o644 }, ALICE);
    const r = await h.lookup(d, 'f', BOB);
    assert.equal(r.status, S.ACCES);
    assert.equal(r.resfail!.dirAttributes.attributesFollow, true);
    assert.equal((await h.lookup(d, 'f', ALICE)).status, S.OK);
    assert.equal((await h.lookup(d, 'f', ROOT)).status, S.OK);
  });

  it('name rules on create: NAMETOOLONG over 255 bytes, INVAL for "/" NUL "", EXIST for "." ".."', async () => {
    assert.equal((await h.create(shared, 'n'.repeat(255))).status, S.OK);
    assert.equal((await h.create(shared, 'n'.repeat(256))).status, S.NAMETOOLONG);
    // 128 two-byte characters = 256 bytes
    assert.equal((await h.mkdir(shared, 'é'.repeat(128))).status, S.NAMETOOLONG);
    assert.equal((await h.mkdir(shared, 'é'.repeat(127))).status, S.OK);
    assert.equal((await h.lookup(shared, 'é'.repeat(127))).status, S.OK);
    for (const bad of ['a/b', 'nul\0', '']) {
      const r = await h.create(shared, bad);
      assert.equal(r.status, S.INVAL, JSON.stringify(bad));
      assert.equal(r.resfail!.dirWcc.after.attributesFollow, true);
    }
    assert.equal((await h.mkdir(shared, '.')).status, S.EXIST);
    assert.equal((await h.symlink(shared, '..', 'x')).status, S.EXIST);
  });

  it('MKDIR, RMDIR: EXIST, NOTEMPTY, NOTDIR, NOENT, INVAL for "."', async () => {
    const d = await h.mkdirFh(shared, 'm', { mode: 0o755 });
    const again = await h.mkdir(shared, 'm');
    assert.equal(again.status, S.EXIST);
    await h.mkfile(d, 'inside');
    const ne = await h.rmdir(shared, 'm');
    assert.equal(ne.status, S.NOTEMPTY);
    assert.equal(ne.resfail!.dirWcc.before.attributesFollow, true);
    assert.equal((await h.rmdir(d, 'inside')).status, S.NOTDIR);
    assert.equal((await h.remove(d, 'inside')).status, S.OK);
    assert.equal((await h.rmdir(shared, 'nope')).status, S.NOENT);
    assert.equal((await h.rmdir(d, '.')).status, S.INVAL);
    const ok = await h.rmdir(shared, 'm');
    assert.equal(ok.status, S.OK);
    assert.equal(ok.resok!.dirWcc.before.attributesFollow, true);
    assert.equal(ok.resok!.dirWcc.after.attributesFollow, true);
    assert.equal((await h.getattr(d)).status, S.STALE);
  });

  it('REMOVE: ISDIR for a directory, NOENT, PERM in a sticky directory, ROFS', async () => {
    await h.mkdirFh(shared, 'sub');
    assert.equal((await h.remove(shared, 'sub')).status, S.ISDIR);
    assert.equal((await h.remove(shared, 'nope')).status, S.NOENT);
    const sticky = await h.mkdirFh(shared, 'tmp', { mode: 0o1777 });
    await h.mkfile(sticky, 'alices', { mode: 0o644 }, ALICE);
    assert.equal((await h.remove(sticky, 'alices', BOB)).status, S.PERM);
    const roShared = (await h.lookup(h.root(2), 'shared')).resok!.object;
    const ro = await h.remove(roShared, 'sub');
    assert.equal(ro.status, S.ROFS);
    assert.equal(ro.resfail!.dirWcc.after.attributesFollow, true);
    assert.equal((await h.remove(sticky, 'alices', ALICE)).status, S.OK);
  });

  it('RENAME: moves, replaces files, refuses non-empty dirs, XDEV across exports, both wcc_data', async () => {
    const a = await h.mkdirFh(shared, 'a');
    const b = await h.mkdirFh(shared, 'b');
    const f = await h.mkfile(a, 'f');
    const r = await h.rename(a, 'f', b, 'g');
    assert.equal(r.status, S.OK);
    assert.equal(r.resok!.fromDirWcc.before.attributesFollow, true);
    assert.equal(r.resok!.toDirWcc.after.attributesFollow, true);
    assert.equal((await h.lookup(a, 'f')).status, S.NOENT);
    assert.deepEqual(Buffer.from((await h.lookup(b, 'g')).resok!.object.data), Buffer.from(f.data));
    // over an existing file
    await h.mkfile(b, 'h');
    assert.equal((await h.rename(b, 'g', b, 'h')).status, S.OK);
    // directory over a non-empty directory
    const d1 = await h.mkdirFh(shared, 'd1');
    const d2 = await h.mkdirFh(shared, 'd2');
    await h.mkfile(d2, 'x');
    const ne = await h.rename(shared, 'd1', shared, 'd2');
    assert.ok(ne.status === S.NOTEMPTY || ne.status === S.EXIST, String(ne.status));
    // a directory into itself
    assert.equal((await h.rename(shared, 'd1', d1, 'inner')).status, S.INVAL);
    assert.equal((await h.rename(shared, 'nope', shared, 'x')).status, S.NOENT);
    assert.equal((await h.rename(shared, '.', shared, 'x')).status, S.INVAL);
    assert.equal((await h.rename(shared, 'd1', shared, 'n'.repeat(300))).status, S.NAMETOOLONG);
    // across exports
    const other = (await h.lookup(h.root(3), 'shared')).resok!.object;
    const x = await h.rename(shared, 'd1', other, 'd1');
    assert.equal(x.status, S.XDEV);
    assert.equal(x.resfail!.fromDirWcc.after.attributesFollow, true);
    assert.equal(x.resfail!.toDirWcc.after.attributesFollow, true);
    // stale target directory
    await h.rmdir(shared, 'd1');
    const st = await h.rename(shared, 'd2', d1, 'y');
    assert.equal(st.status, S.STALE);
    assert.equal(st.resfail!.fromDirWcc.after.attributesFollow, true);
  });

  it('LINK: nlink, EXIST, ISDIR, MLINK at the store cap, XDEV', async () => {
    const f = await h.mkfile(shared, 'orig');
    const l = await h.link(f, shared, 'l1');
    assert.equal(l.status, S.OK);
    assert.equal(l.resok!.fileAttributes.attributes!.nlink, 2);
    assert.equal(l.resok!.linkDirWcc.after.attributesFollow, true);
    assert.equal((await h.link(f, shared, 'l1')).status, S.EXIST);
    assert.equal((await h.link(shared, h.root(), 'dirlink')).status, S.ISDIR);
    for (let i = 2; i < 8; i++) assert.equal((await h.link(f, shared, `l${i}`)).status, S.OK);
    const mlink = await h.link(f, shared, 'l8');
    assert.equal(mlink.status, S.MLINK);
    assert.equal(mlink.resfail!.fileAttributes.attributes!.nlink, 8);
    const other = (await h.lookup(h.root(3), 'shared')).resok!.object;
    assert.equal((await h.link(f, other, 'x')).status, S.XDEV);
    assert.equal((await h.link(f, f, 'x')).status, S.NOTDIR);
  });

  it('SYMLINK and READLINK round-trip the target; READLINK of a file is INVAL', async () => {
    const target = '../some/where/ünïcode';
    const r = await h.symlink(shared, 'sl', target);
    assert.equal(r.status, S.OK);
    assert.equal(r.resok!.objAttributes.attributes!.type, 5);
    assert.equal(Number(r.resok!.objAttributes.attributes!.size), Buffer.byteLength(target));
    const rl = await h.readlink(r.resok!.obj.handle!);
    assert.equal(rl.status, S.OK);
    assert.equal(rl.resok!.data, target);
    const f = await h.mkfile(shared, 'plain');
    const bad = await h.readlink(f);
    assert.equal(bad.status, S.INVAL);
    assert.equal(bad.resfail!.symlinkAttributes.attributesFollow, true);
    assert.equal((await h.symlink(shared, 'long', 'x'.repeat(4097))).status, S.NAMETOOLONG);
    assert.equal((await h.symlink(shared, 'ok4096', 'x'.repeat(4096))).status, S.OK);
  });

  it('MKNOD: devices with major/minor, sockets, FIFOs; BADTYPE for files and dirs', async () => {
    const chr = await h.mknod(shared, 'chr', new s.Nfsv3MknodData(4, new s.Nfsv3DeviceData(sattr({ mode: 0o600 }), new s.Nfsv3SpecData(1, 3))));
    assert.equal(chr.status, S.OK);
    const ca = chr.resok!.objAttributes.attributes!;
    assert.equal(ca.type, 4);
    assert.deepEqual([ca.rdev.specdata1, ca.rdev.specdata2], [1, 3]);
    assert.equal(ca.mode, 0o600);
    const blk = await h.mknod(shared, 'blk', new s.Nfsv3MknodData(3, undefined, new s.Nfsv3DeviceData(sattr({ mode: 0o660 }), new s.Nfsv3SpecData(8, 1))));
    assert.equal(blk.resok!.objAttributes.attributes!.type, 3);
    const sock = await h.mknod(shared, 'sock', new s.Nfsv3MknodData(6, undefined, undefined, sattr({ mode: 0o755 })));
    assert.equal(sock.resok!.objAttributes.attributes!.type, 6);
    const fifo = await h.mknod(shared, 'fifo', new s.Nfsv3MknodData(7, undefined, undefined, undefined, sattr({ mode: 0o644 })));
    assert.equal(fifo.resok!.objAttributes.attributes!.type, 7);
    for (const t of [1, 2, 5]) {
      const r = await h.mknod(shared, `t${t}`, new s.Nfsv3MknodData(t));
      assert.equal(r.status, S.BADTYPE, `type ${t}`);
      assert.equal(r.resfail!.dirWcc.after.attributesFollow, true);
    }
    // only root may make devices
    const p = await h.mknod(shared, 'chr2', new s.Nfsv3MknodData(4, new s.Nfsv3DeviceData(sattr({}), new s.Nfsv3SpecData(1, 3))), ALICE);
    assert.equal(p.status, S.PERM);
    assert.equal((await h.mknod(shared, 'fifo', new s.Nfsv3MknodData(7, undefined, undefined, undefined, sattr({})))).status, S.EXIST);
  });

  it('mutations on a read-only export give ROFS with wcc_data', async () => {
    const ro = (await h.lookup(h.root(2), 'shared')).resok!.object;
    assert.equal((await h.create(ro, 'x')).status, S.ROFS);
    assert.equal((await h.mkdir(ro, 'x')).status, S.ROFS);
    assert.equal((await h.symlink(ro, 'x', 'y')).status, S.ROFS);
    assert.equal((await h.rename(ro, 'a', ro, 'b')).status, S.ROFS);
    assert.equal((await h.link(ro, ro, 'b')).status, S.ROFS);
    const sa = await h.setattr(ro, { mode: 0o700 });
    assert.equal(sa.status, S.ROFS);
    assert.equal(sa.resfail!.objWcc.before.attributesFollow, true);
    // reads work
    assert.equal((await h.getattr(ro)).status, S.OK);
  });

  it('FSSTAT, FSINFO, PATHCONF', async () => {
    const st = await h.fsstat(h.root());
    assert.equal(st.status, S.OK);
    assert.ok(st.resok!.tbytes > 0n);
    assert.ok(st.resok!.fbytes <= st.resok!.tbytes);
    assert.equal(st.resok!.objAttributes.attributesFollow, true);
    const fi = await h.fsinfo(h.root());
    const i = fi.resok!;
    assert.deepEqual([i.rtmax, i.rtpref, i.wtmax, i.wtpref, i.dtpref], [1 << 20, 1 << 20, 1 << 20, 1 << 20, 65536]);
    assert.equal(i.maxfilesize, 2n ** 43n);
    assert.deepEqual(i.timeDelta, { seconds: 0, nseconds: 1 });
    assert.equal(i.properties, 0x1 | 0x2 | 0x8 | 0x10);
    const pc = await h.pathconf(shared);
    const p = pc.resok!;
    assert.deepEqual([p.linkmax, p.namemax, p.noTrunc, p.chownRestricted, p.caseInsensitive, p.casePreserving], [8, 255, true, true, false, true]);
  });
});
