/**
 * Inline data: a regular file keeps its bytes in LevelDB (no data file) while every byte written lies
 * below `inlineMax` (16 KiB by default); a write beyond moves the data to a data file for good.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import { openStore } from '../../src/store/block-store';
import { inlineKey } from '../../src/store/codec';
import { fsck } from '../../src/store/fsck';
import { Harness, rmDir, tmpDir } from './helpers';

const R = 1;

async function assertFsckClean(dir: string): Promise<void> {
  const rep = await fsck(dir);
  assert.deepEqual(rep.problems, []);
}

describe('store: inline data of small files', function () {
  this.timeout(30000);
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.open();
  });
  afterEach(async () => {
    await h.destroy();
  });

  it('a small file is written and read without a data file or any data-file sync', async () => {
    const f = await h.create(R, 'small');
    const fsyncs = h.store.data.stats.fsyncs;
    const content = Buffer.alloc(4096, 0x61);
    const w = await h.write(f, 0, content, 2);
    assert.equal(w.status, 0);
    assert.equal(w.obj!.size, 4096);
    assert.equal(h.store.stats.inlineWrites, 1);
    assert.equal(h.store.stats.journalWrites, 0);
    assert.equal(h.store.data.stats.fsyncs, fsyncs);
    await assert.rejects(fsp.access(h.store.data.pathOf(f)), 'no data file');
    assert.deepEqual(await h.readAll(f), content);
    const part = await h.store.read(f, 4000, 500);
    assert.equal(part.data!.length, 96);
    assert.equal(part.eof, true);
    await h.reopen();
    assert.deepEqual(await h.readAll(f), content, 'durable in LevelDB');
    await h.close();
    const rep = await fsck(h.dir);
    assert.deepEqual(rep.problems, []);
    assert.equal(rep.inlineFiles, 1);
  });

  it('holes, cuts and extensions of an inline file read as zeros', async () => {
    const f = await h.create(R, 'sparse');
    await h.write(f, 10, 'hello', 2);
    assert.deepEqual(await h.readAll(f), Buffer.concat([Buffer.alloc(10), Buffer.from('hello')]));
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 1 << 20 } })).status, 0);
    const far = await h.store.read(f, 900_000, 100);
    assert.deepEqual(Buffer.from(far.data!), Buffer.alloc(100), 'a size beyond the inline bytes reads zeros');
    const near = await h.store.read(f, 8, 10);
    assert.deepEqual(Buffer.from(near.data!), Buffer.from('\0\0hello\0\0\0'));
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 12 } })).status, 0);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 20 } })).status, 0);
    assert.deepEqual(await h.readAll(f), Buffer.concat([Buffer.alloc(10), Buffer.from('he'), Buffer.alloc(8)]), 'cut bytes do not come back');
    const u = await h.op({ kind: 'create', dir: R, name: 'sparse', mode: 'unchecked', attrs: { size: 0 } });
    assert.equal(u.status, 0);
    assert.equal((await h.store.getattr(f))!.size, 0);
    await h.write(f, 0, 'x', 2);
    assert.deepEqual(await h.readAll(f), Buffer.from('x'));
    await h.close();
    await assertFsckClean(h.dir);
  });

  it('a write beyond inlineMax moves the data to a data file, for good', async () => {
    const f = await h.create(R, 'grows');
    const a = Buffer.alloc(10_000, 1);
    const b = Buffer.alloc(10_000, 2);
    await h.write(f, 0, a, 0);
    await h.write(f, 10_000, b, 2); // ends at 20 000 > 16 KiB
    await fsp.access(h.store.data.pathOf(f));
    assert.deepEqual(await h.readAll(f), Buffer.concat([a, b]));
    await h.write(f, 0, 'z', 2); // small again: stays in the data file
    await h.reopen();
    const all = await h.readAll(f);
    assert.equal(all.length, 20_000);
    assert.equal(all[0], 0x7a);
    assert.deepEqual(all.subarray(1), Buffer.concat([a.subarray(1), b]));
    await h.close();
    const rep = await fsck(h.dir);
    assert.deepEqual(rep.problems, []);
    assert.equal(rep.inlineFiles, 0);
  });

  it('the move out of inline survives losing the data file pages (journaled)', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'inline-part', 2);
    await h.write(f, 20_000, 'far', 2);
    const img = tmpDir('inline-image');
    try {
      await fsp.cp(h.dir, img, { recursive: true });
      await fsp.rm(path.join(img, 'meta', 'LOCK'), { force: true });
      await fsp.truncate(path.join(img, path.relative(h.dir, h.store.data.pathOf(f))), 0);
      const s2 = await openStore(img);
      try {
        assert.equal(s2.recovery.journalReplayed, 2, 'the moved inline bytes and the write');
        const r = await s2.read(f, 0, 20_003);
        const want = Buffer.alloc(20_003);
        want.write('inline-part', 0);
        want.write('far', 20_000);
        assert.deepEqual(Buffer.from(r.data!), want);
      } finally {
        await s2.close();
      }
      await assertFsckClean(img);
    } finally {
      rmDir(img);
    }
  });

  it('removing an inline file drops its data; fsck reports inline data without an inline file', async () => {
    const f = await h.create(R, 'gone');
    await h.write(f, 0, 'bytes', 2);
    const g = await h.create(R, 'big');
    await h.write(g, 0, Buffer.alloc(20_000, 3), 2);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'gone' })).status, 0);
    await h.close();
    await assertFsckClean(h.dir);
    const db = new Level<Buffer, Buffer>(path.join(h.dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    assert.equal(await db.get(inlineKey(f)), undefined, 'inline data removed with the file');
    await db.put(inlineKey(g), Buffer.from('stray'));
    await db.close();
    const rep = await fsck(h.dir);
    assert.deepEqual(rep.problems.map((p) => p.kind), ['inline-orphan']);
  });

  it('inlineMax 0 keeps every file in data files', async () => {
    await h.reopen({ inlineMax: 0 });
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'abc', 2);
    await fsp.access(h.store.data.pathOf(f));
    assert.equal(h.store.stats.inlineWrites, 0);
  });
});
