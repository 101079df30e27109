import { strict as assert } from 'node:assert';
import { fsck } from '../../src/store/fsck';
import { readdirSync, readlinkSync } from 'node:fs';
import { Nfs3Status as S } from '../../src/store/types';
import { SLOW_SYNC_READS_OFF, SYNC_READ_MAX } from '../../src/store/data-files';
import { Harness } from './helpers';

const R = 1; // root fileid

/** Data files of this store the process has open (from /proc/self/fd). */
function openDataFiles(h: Harness): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (readdir's own descriptor)
    }
    if (target.startsWith(h.store.data.blocksDir)) out.push(target);
  }
  return out;
}

describe('store: read paths', function () {
  this.timeout(20000);
  let h: Harness;
  afterEach(async () => {
    await h.destroy();
  });

  it('small reads are synchronous and read data, holes, and zeros beyond the data file', async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // files with data files
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'abc');
    await h.write(f, 10_000, 'xyz');
    const empty = await h.create(R, 'empty'); // no data file
    assert.equal((await h.op({ kind: 'setattr', file: empty, attrs: { size: 5000 } })).status, S.OK);
    const st = h.store.data.readStats;
    const before = { ...st };
    const r = await h.store.read(f, 0, 10_003);
    const d = Buffer.from(r.data!);
    assert.equal(d.subarray(0, 3).toString(), 'abc');
    assert.ok(d.subarray(3, 10_000).every((b) => b === 0), 'hole reads as zeros');
    assert.equal(d.subarray(10_000).toString(), 'xyz');
    assert.equal(r.eof, true);
    const e = await h.store.read(empty, 0, 5000);
    assert.deepEqual(Buffer.from(e.data!), Buffer.alloc(5000), 'no data file: zeros');
    assert.equal(st.sync - before.sync, 2);
    assert.equal(st.async - before.async, 0);
    // a large read goes through the thread pool
    await h.write(f, SYNC_READ_MAX * 2, 'end');
    const big = await h.store.read(f, 0, SYNC_READ_MAX * 2 + 3);
    assert.equal(Buffer.from(big.data!).subarray(SYNC_READ_MAX * 2).toString(), 'end');
    assert.equal(st.async - before.async, 1);
  });

  it('a read-only descriptor sees later writes and truncations, and closes when the file is removed', async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // files with data files
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'hello world');
    // a fresh store has no descriptor cached: the read opens its own read-only one
    await h.reopen();
    assert.equal(Buffer.from((await h.store.read(f, 0, 11)).data!).toString(), 'hello world');
    assert.deepEqual(openDataFiles(h), [h.store.data.pathOf(f)], 'the read opened one descriptor');
    await h.write(f, 0, 'HELLO');
    assert.equal(Buffer.from((await h.store.read(f, 0, 11)).data!).toString(), 'HELLO world');
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 2 } })).status, S.OK);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 11 } })).status, S.OK);
    assert.deepEqual(Buffer.from((await h.store.read(f, 0, 11)).data!), Buffer.from('HE\0\0\0\0\0\0\0\0\0'));
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'f' })).status, S.OK);
    assert.deepEqual(
      openDataFiles(h).filter((p) => p.includes(h.store.data.pathOf(f))),
      [],
      'no descriptor of the removed data file stays open',
    );
  });

  it('read-only descriptors are bounded by fdCacheSize', async () => {
    h = await Harness.open(undefined, { fdCacheSize: 4, inlineMax: 0 });
    const files: number[] = [];
    for (let i = 0; i < 12; i++) {
      const f = await h.create(R, `f${i}`);
      await h.write(f, 0, `data ${i}`);
      files.push(f);
    }
    await h.reopen({ fdCacheSize: 4 });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < files.length; i++) {
        assert.equal((await h.readAll(files[i])).toString(), `data ${i}`);
        assert.ok(openDataFiles(h).length <= 4, `at most 4 descriptors open, not ${openDataFiles(h).length}`);
      }
    }
  });

  it('slow synchronous reads send the next reads through the thread pool', async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // files with data files
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'abcdef');
    const st = h.store.data.readStats;
    const read = async () => assert.equal(Buffer.from((await h.store.read(f, 0, 6)).data!).toString(), 'abcdef');
    // one slow read in 16 (a preempted thread) changes nothing
    for (let i = 0; i < 32; i++) {
      h.store.data.slowSyncReadMs = i % 16 === 0 ? -1 : 1000;
      await read();
    }
    assert.deepEqual([st.sync, st.slow, st.backoffs, st.async], [32, 2, 0, 0]);
    // reads that keep being slow (the disk): off after SLOW_SYNC_READS_OFF of them
    h.store.data.slowSyncReadMs = -1;
    for (let i = 0; i < SLOW_SYNC_READS_OFF + 3; i++) await read();
    assert.deepEqual([st.sync, st.slow, st.backoffs, st.async], [32 + SLOW_SYNC_READS_OFF, 2 + SLOW_SYNC_READS_OFF, 1, 3]);
  });

  it('small writes into an open data file are synchronous, and share the back-off of reads', async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // files with data files
    const f = await h.create(R, 'f');
    const ws = h.store.data.writeStats;
    await h.write(f, 0, 'first', 0); // opens (creates) the data file: thread pool
    assert.deepEqual([ws.sync, ws.async], [0, 1]);
    await h.write(f, 5, '-second', 0); // descriptor cached: synchronous
    await h.write(f, 0, Buffer.alloc(128 * 1024, 0x78).subarray(0, 1), 2);
    assert.deepEqual([ws.sync, ws.async], [2, 1]);
    await h.write(f, 200_000, Buffer.alloc(100 * 1024, 1), 0); // too big: thread pool
    assert.deepEqual([ws.sync, ws.async], [2, 2]);
    h.store.data.slowSyncReadMs = -1; // every synchronous I/O counts as slow
    for (let i = 0; i < SLOW_SYNC_READS_OFF; i++) await h.write(f, 0, 'x', 0);
    assert.equal(h.store.data.readStats.backoffs, 1);
    await h.write(f, 1, 'y', 0);
    assert.deepEqual([ws.sync, ws.async], [2 + SLOW_SYNC_READS_OFF, 3], 'backed off: thread pool');
    const r = await h.store.read(f, 0, 12);
    assert.equal(Buffer.from(r.data!).toString(), 'xyrst-second');
    await h.store.sync(f);
    await h.close();
    const rep = await fsck(h.dir);
    assert.deepEqual(rep.problems, []);
  });

  it('a cache miss never caches attributes older than the newest op', async () => {
    h = await Harness.open(undefined, { inodeCacheSize: 2 });
    const files: number[] = [];
    for (let i = 0; i < 20; i++) files.push(await h.create(R, `f${i}`));
    // the first files are out of the cache now; start a read of each, then change them before awaiting
    for (const f of files.slice(0, 10)) {
      const pending = h.store.getattr(f);
      const op = h.op({ kind: 'setattr', file: f, attrs: { mode: 0o600 } });
      await pending;
      assert.equal((await op).status, S.OK);
      assert.equal((await h.store.getattr(f))!.mode & 0o777, 0o600, `fileid ${f}`);
      const l = await h.store.lookup(R, `f${files.indexOf(f)}`);
      assert.equal(l.obj!.mode & 0o777, 0o600);
    }
  });

  it('getattrMany: same attributes as getattr, for dense and sparse ids, cached or not, live or gone', async () => {
    h = await Harness.open(undefined, { inodeCacheSize: 16 });
    const ids: number[] = [];
    for (let i = 0; i < 60; i++) ids.push(await h.create(R, `f${i}`, undefined, { mode: 0o600 + (i % 8) }));
    for (const i of [3, 17, 40]) assert.equal((await h.op({ kind: 'remove', dir: R, name: `f${i}` })).status, S.OK);
    const cases = [
      ids, // dense: one range scan
      ids.filter((_, i) => i % 7 === 0), // sparse: point reads
      [...ids].reverse(),
      [ids[5], 999_999, -1, 0, 1.5, ids[5], R],
    ];
    for (const c of cases) {
      const many = await h.store.getattrMany(c);
      const one = await Promise.all(c.map((id) => h.store.getattr(id)));
      assert.deepEqual(many, one);
    }
    assert.equal((await h.store.getattrMany([ids[3]]))[0], undefined, 'removed');
  });

  it('getattrMany neither fills nor reorders the inode cache', async () => {
    h = await Harness.open(undefined, { inodeCacheSize: 8 });
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) ids.push(await h.create(R, `f${i}`));
    const hot = ids[39]; // just created: cached
    await h.store.getattr(hot);
    const st = h.store.stats;
    let reads = st.dbReads;
    await h.store.getattrMany(ids.slice(0, 30));
    assert.ok(st.dbReads > reads, 'the evicted inodes were read from LevelDB');
    reads = st.dbReads;
    await h.store.getattr(hot);
    assert.equal(st.dbReads, reads, 'the hot inode is still cached');
    await h.store.getattr(ids[0]);
    assert.equal(st.dbReads, reads + 1, 'a listed inode was not cached');
  });

  it('getattrMany: an op applied while its range scan runs is seen (the scan is not served stale)', async () => {
    h = await Harness.open(undefined, { inodeCacheSize: 2 });
    const ids: number[] = [];
    for (let i = 0; i < 32; i++) ids.push(await h.create(R, `f${i}`, undefined, { mode: 0o644 }));
    // hold the range scan until an op has changed one of the inodes it reads
    const db = (h.store as unknown as { db: { iterator: (o: unknown) => { nextv: (n: number) => Promise<unknown> } } }).db;
    const iterator = db.iterator;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = 0;
    db.iterator = function (this: unknown, o: unknown) {
      const it = iterator.call(this, o);
      const nextv = it.nextv;
      it.nextv = async function (this: unknown, n: number) {
        held++;
        await gate;
        return nextv.call(this, n);
      };
      return it;
    };
    const pending = h.store.getattrMany(ids);
    assert.equal((await h.op({ kind: 'setattr', file: ids[5], attrs: { mode: 0o600 } })).status, S.OK);
    release();
    const many = await pending;
    db.iterator = iterator;
    assert.ok(held > 0, 'getattrMany used a range scan');
    assert.equal(many[5]!.mode & 0o777, 0o600);
    assert.deepEqual(many, await Promise.all(ids.map((id) => h.store.getattr(id))));
  });
});
