import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import { Nfs3Status as S, type StoreOp, type StoreOptions } from '../../src/store/types';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import { fsck } from '../../src/store/fsck';
import { ALICE, Harness, ROOT, type OpInput } from './helpers';

const R = 1;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** no background checkpoint during a test unless it asks for one */
const QUIET: StoreOptions = { logWal: true, inlineMax: 0, checkpointIntervalMs: 1_000_000_000, checkpointOps: 1e9, checkpointBytes: 1e15 };

interface Internals {
  db: { _batch: (ops: unknown[], opts: { sync?: boolean }) => Promise<void>; close(): Promise<void> };
  writerDone: Promise<void>;
  closed: boolean;
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** Stop the store the way kill -9 does (its LevelDB writes are in the page cache, nothing more is
 * written: no checkpoint, no clean-shutdown record). */
async function crash(store: LevelBlockStore): Promise<void> {
  const s = store as unknown as Internals;
  for (let i = 0; i < 200 && store.pendingBatches > 0; i++) await sleep(10);
  assert.equal(store.pendingBatches, 0, 'writer idle');
  await s.writerDone;
  s.closed = true;
  await store.data.closeAll();
  await s.db.close();
}

/** A harness that keeps every op it applied (the log). */
class LogHarness extends Harness {
  log: { index: number; op: StoreOp }[] = [];
  override op(o: OpInput, cred = ROOT) {
    const full = { time: { sec: this.clock++, nsec: 500 }, cred, ...o } as StoreOp;
    const index = ++this.index;
    this.log.push({ index, op: full });
    return this.store.apply(index, full);
  }
}

describe('store: logWal (the log is the write-ahead log)', function () {
  this.timeout(60000);
  let h: LogHarness;
  afterEach(async () => {
    await h?.destroy();
  });

  async function open(opts: StoreOptions = QUIET): Promise<LogHarness> {
    const base = await Harness.open(undefined, opts);
    const lh = new LogHarness(base.store, base.dir);
    return lh;
  }

  it('apply never fsyncs: no fdatasync, no directory fsync, no LevelDB sync write on the write path', async () => {
    h = await open();
    const db = (h.store as unknown as Internals).db;
    const orig = db._batch;
    const syncs: (boolean | undefined)[] = [];
    db._batch = function (this: unknown, ops, opts) {
      syncs.push(opts?.sync);
      return orig.call(this, ops, opts);
    };
    const st = h.store.stats;
    const f0 = st.dataFsyncs;
    const d0 = st.dirFsyncs;
    const s0 = st.dbSyncs;
    const durable0 = h.store.durableIndex;
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(200 * 1024, 7), 2)).status, S.OK); // FILE_SYNC, big
    assert.equal((await h.write(f, 5, 'small', 1)).status, S.OK); // DATA_SYNC, small: no journal
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 1000 } })).status, S.OK);
    const g = await h.create(R, 'g');
    assert.equal((await h.write(g, 0, 'gg', 2)).status, S.OK);
    assert.equal((await h.op({ kind: 'rename', fromDir: R, fromName: 'g', toDir: R, toName: 'g2' })).status, S.OK);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'g2' })).status, S.OK);
    for (let i = 0; i < 20; i++) assert.equal((await h.op({ kind: 'mkdir', dir: R, name: `d${i}`, attrs: {} })).status, S.OK);
    for (let i = 0; i < 50 && h.store.pendingBatches > 0; i++) await sleep(10);
    db._batch = orig;
    assert.equal(st.dataFsyncs, f0, 'fdatasync on the write path');
    assert.equal(st.dirFsyncs, d0, 'directory fsync on the write path');
    assert.equal(st.dbSyncs, s0, 'LevelDB sync write on the write path');
    assert.ok(syncs.length > 0, 'batches were written');
    assert.deepEqual(syncs.filter((s) => s !== false), [], 'a batch was written with sync');
    assert.equal(h.store.stats.journalWrites, 0, 'nothing journaled');
    assert.equal(h.store.durableIndex, durable0, 'nothing durable without a checkpoint');
    // reads see everything at once
    assert.equal((await h.store.getattr(f))!.size, 1000);
    assert.equal((await h.readAll(f)).subarray(0, 10).toString('latin1'), '\x07\x07\x07\x07\x07small');
    // a checkpoint makes it durable: data files synced, memtable flushed, one sync write
    const flushes = st.memtableFlushes;
    assert.equal(await h.store.checkpoint(), h.index);
    assert.equal(h.store.durableIndex, h.index);
    assert.ok(st.dataFsyncs > f0, 'the checkpoint synced the data files');
    assert.equal(st.memtableFlushes, flushes + 1);
    assert.equal(st.dbSyncs, s0 + 1);
  });

  it('accepts gaps in the index (entries that never reach the store); without logWal the old rule stays', async () => {
    h = await open();
    const op = (name: string): StoreOp => ({ kind: 'mkdir', dir: R, name, attrs: {}, time: { sec: 10, nsec: 0 }, cred: ROOT });
    assert.equal((await h.store.apply(3, op('a'))).status, S.OK);
    assert.equal((await h.store.apply(7, op('b'))).status, S.OK);
    assert.equal((await h.store.apply(100, op('c'))).status, S.OK);
    assert.equal(h.store.appliedIndex, 100);
    assert.deepEqual((await h.store.apply(7, op('zz'))).status, S.OK, 'a replay is a no-op');
    assert.equal((await h.store.apply(50, op('gap'))).status, S.OK, 'an index in a gap is past: a no-op');
    assert.deepEqual(await h.names(R), ['.', '..', 'a', 'b', 'c']);
    await h.reopen(QUIET);
    assert.equal(h.store.appliedIndex, 100);
    assert.equal((await h.store.apply(102, op('d'))).status, S.OK);
    // without logWal: strictly the next index
    await h.reopen({});
    await assert.rejects(h.store.apply(104, op('e')), /out of order/);
    assert.equal((await h.store.apply(103, op('e'))).status, S.OK);
  });

  it('background checkpoints advance durableIndex and call onDurable (by time, and by op count)', async () => {
    const seen: number[] = [];
    h = await open({ ...QUIET, checkpointIntervalMs: 50, onDurable: (i) => seen.push(i) });
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'x', 2);
    assert.ok(h.store.durableIndex < h.index);
    for (let i = 0; i < 100 && h.store.durableIndex < h.index; i++) await sleep(20);
    assert.equal(h.store.durableIndex, h.index, 'the timer checkpointed');
    assert.equal(seen[seen.length - 1], h.index);
    await h.reopen({ ...QUIET, checkpointOps: 10, onDurable: (i) => seen.push(i) });
    seen.length = 0;
    for (let i = 0; i < 25; i++) await h.op({ kind: 'mkdir', dir: R, name: `d${i}`, attrs: {} });
    for (let i = 0; i < 100 && seen.length < 2; i++) await sleep(20);
    assert.ok(seen.length >= 2, `checkpoints by op count: ${seen}`);
    assert.ok(seen.every((x, k) => k === 0 || x > seen[k - 1]), 'increasing');
    assert.ok(h.store.durableIndex >= 20);
  });

  it('redo after a simulated power loss: data writes and cuts after the checkpoint are redone, failed writes are not', async () => {
    h = await open({ ...QUIET, inlineMax: 4096 });
    const f = await h.create(R, 'f', ROOT, { mode: 0o644 });
    const big = Buffer.alloc(100_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    assert.equal((await h.write(f, 0, big, 2)).status, S.OK);
    const small = await h.create(R, 'small');
    assert.equal((await h.write(small, 0, 'hello', 2)).status, S.OK); // inline
    const X = await h.store.checkpoint();
    const fAtX = await fsp.readFile(h.store.data.pathOf(f));
    // after the checkpoint
    assert.equal((await h.write(f, 10, Buffer.alloc(5000, 0x42), 2)).status, S.OK);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 50_000 } })).status, S.OK); // a cut
    assert.equal((await h.write(f, 70_000, 'CCC', 0)).status, S.OK); // extends again
    assert.equal((await h.write(f, 20, 'denied', 2, ALICE)).status, S.ACCES); // must not be redone
    const g = await h.create(R, 'g');
    assert.equal((await h.write(g, 0, Buffer.alloc(9000, 0x67), 2)).status, S.OK); // new data file
    assert.equal((await h.write(small, 5000, Buffer.alloc(3000, 0x73), 2)).status, S.OK); // leaves inline
    const want = { f: await h.readAll(f), g: await h.readAll(g), small: await h.readAll(small) };
    const A = h.index;
    assert.ok(X < A);
    await crash(h.store);
    // the power loss: data written after the checkpoint is gone (the moved inline bytes were synced)
    await fsp.writeFile(h.store.data.pathOf(f), fAtX);
    await fsp.rm(h.store.data.pathOf(g), { force: true });
    await fsp.truncate(h.store.data.pathOf(small), 5);
    h.store = await openStore(h.dir, QUIET);
    assert.equal(h.store.appliedIndex, A);
    assert.equal(h.store.durableIndex, X);
    assert.ok(h.store.needsRedo);
    await assert.rejects(h.store.apply(A + 1, { kind: 'mkdir', dir: R, name: 'x', attrs: {}, time: { sec: 1, nsec: 0 }, cred: ROOT }), /redone/);
    assert.notDeepEqual(await h.readAll(f), want.f, 'the simulated loss changed f');
    for (const e of h.log) if (e.index > X) await h.store.redo(e.index, e.op);
    assert.equal(await h.store.finishRedo(), A);
    assert.equal(h.store.durableIndex, A);
    assert.ok((await h.readAll(f)).equals(want.f), 'f redone');
    assert.ok((await h.readAll(g)).equals(want.g), 'g redone');
    assert.ok((await h.readAll(small)).equals(want.small), 'moved file redone');
    assert.equal((await fsp.stat(h.store.data.pathOf(f))).size, 70_003, 'data file cut to the recorded size');
    h.index = A;
    assert.equal((await h.op({ kind: 'mkdir', dir: R, name: 'after', attrs: {} })).status, S.OK);
    await h.store.close();
    assert.deepEqual((await fsck(h.dir)).problems, []);
  });

  it('a crash (kill -9) leaves redo to do; a clean close does not', async () => {
    h = await open();
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'abc', 2);
    await h.reopen(QUIET);
    assert.equal(h.store.durableIndex, h.store.appliedIndex);
    assert.equal(h.store.needsRedo, false);
    await h.write(f, 3, 'def', 2);
    await crash(h.store);
    h.store = await openStore(h.dir, QUIET);
    assert.ok(h.store.needsRedo);
    assert.equal((await h.readAll(f)).toString(), 'abcdef', 'the page cache kept the bytes');
    await h.store.redo(h.index, h.log[h.log.length - 1].op);
    await h.store.finishRedo();
    assert.equal((await h.readAll(f)).toString(), 'abcdef');
  });

  it('ENOSPC/EIO from a data write fail the store in logWal mode; option limits still answer NOSPC', async () => {
    h = await open({ ...QUIET, capacityBytes: 256 * 1024 });
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(512 * 1024), 2)).status, S.NOSPC, 'capacityBytes is deterministic');
    assert.equal(h.store.failure, undefined);
    const orig = h.store.data.write;
    h.store.data.write = async function () {
      h.store.data.write = orig;
      throw errno('ENOSPC');
    };
    await assert.rejects(h.write(f, 0, 'x', 2), /ENOSPC/);
    assert.equal((h.store.failure as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC');
    await assert.rejects(h.create(R, 'g'), /failed/);
  });

  it('a removed file keeps its data file until a checkpoint covers the REMOVE (a power loss may lose the REMOVE)', async () => {
    h = await open();
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'data', 2);
    await h.store.checkpoint();
    const file = h.store.data.pathOf(f);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'f' })).status, S.OK);
    for (let i = 0; i < 100 && h.store.pendingBatches > 0; i++) await sleep(10);
    assert.equal(h.store.pendingBatches, 0, 'the REMOVE is written');
    assert.equal((await fsp.readFile(file)).toString(), 'data', 'still there before the checkpoint');
    await h.store.checkpoint();
    await assert.rejects(fsp.stat(file), /ENOENT/);
    // and after a crash with the REMOVE past the checkpoint, start-up removes it (its marker)
    const g = await h.create(R, 'g');
    await h.write(g, 0, 'more', 2);
    await h.store.checkpoint();
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'g' })).status, S.OK);
    await crash(h.store);
    assert.ok(await fsp.stat(h.store.data.pathOf(g)));
    h.store = await openStore(h.dir, QUIET);
    await assert.rejects(fsp.stat(h.store.data.pathOf(g)), /ENOENT/);
    await h.store.redo(h.index, h.log[h.log.length - 1].op);
    await h.store.finishRedo();
    await h.store.close();
    assert.deepEqual((await fsck(h.dir)).problems, []);
  });

  it('redo after kill -9: bytes an inline file had before a cut are not put back once the file left inline', async () => {
    h = await open({ ...QUIET, inlineMax: 4096 });
    const f = await h.create(R, 'f');
    const g = await h.create(R, 'g');
    await h.store.checkpoint();
    // after the checkpoint: inline writes, a cut (SETATTR; UNCHECKED CREATE with a size), then the file leaves inline
    assert.equal((await h.write(f, 0, 'AAAA', 2)).status, S.OK);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 0 } })).status, S.OK);
    assert.equal((await h.write(f, 5000, 'z', 2)).status, S.OK);
    assert.equal((await h.write(g, 0, 'BBBBBB', 2)).status, S.OK);
    assert.equal((await h.op({ kind: 'create', dir: R, name: 'g', mode: 'unchecked', attrs: { size: 2 } })).status, S.OK);
    assert.equal((await h.write(g, 6000, 'y', 2)).status, S.OK);
    const want = { f: await h.readAll(f), g: await h.readAll(g) };
    assert.ok(want.f.subarray(0, 4).equals(Buffer.alloc(4)));
    assert.equal(want.g.subarray(0, 6).toString('latin1'), 'BB\0\0\0\0');
    await crash(h.store);
    h.store = await openStore(h.dir, QUIET);
    assert.ok(h.store.needsRedo);
    for (const e of h.log) if (e.index > h.store.durableIndex) await h.store.redo(e.index, e.op);
    await h.store.finishRedo();
    assert.ok((await h.readAll(f)).equals(want.f), 'f as applied');
    assert.ok((await h.readAll(g)).equals(want.g), 'g as applied');
  });

  it('a checkpoint covering a shrink waits for its cut when a later op does the cut (the cut record is dropped with it)', async () => {
    h = await open();
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(100, 0x61), 2)).status, S.OK);
    await h.store.checkpoint();
    // the cut of the shrink below is slow: the next op (an extension) does it and waits for it
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let cutDone = false;
    const orig = h.store.data.truncate;
    h.store.data.truncate = async function (this: typeof h.store.data, id: number, size: number) {
      await gate;
      await orig.call(this, id, size);
      cutDone = true;
    };
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 10 } })).status, S.OK);
    const shrink = h.index;
    const extend = h.write(f, 50, 'x', 2);
    const ckpt = h.store.checkpoint();
    let covered = -1;
    void ckpt.then((x) => (covered = x), () => undefined);
    try {
      await sleep(100);
      assert.ok(covered < shrink, 'no checkpoint covers the shrink before its cut is done (and synced)');
    } finally {
      release();
    }
    assert.equal((await extend).status, S.OK);
    assert.ok((await ckpt) >= shrink);
    assert.ok(cutDone);
    h.store.data.truncate = orig;
    const want = Buffer.alloc(51);
    want.fill(0x61, 0, 10);
    want.write('x', 50);
    assert.ok((await h.readAll(f)).equals(want));
  });

  it('a smaller shrink waits for a cut still running: two cuts of one file never overlap (a late one would cut a later write)', async () => {
    h = await open();
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(100_000, 0x61), 2)).status, S.OK);
    // the writer's cut of the first shrink stats the file, then its ftruncate is late (a busy thread pool)
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const cutStarted = new Promise<void>((r) => (started = r));
    const orig = h.store.data.truncate;
    let first = true;
    h.store.data.truncate = async function (this: typeof h.store.data, id: number, size: number) {
      if (!first) return orig.call(this, id, size);
      first = false;
      const file = this.pathOf(id);
      const st = await fsp.stat(file);
      started();
      await gate;
      if (st.size > size) await fsp.truncate(file, size);
    };
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 20_000 } })).status, S.OK);
    await cutStarted;
    const shrink = h.op({ kind: 'setattr', file: f, attrs: { size: 5_000 } });
    const write = h.write(f, 50_000, 'x', 2);
    await sleep(50);
    release();
    assert.equal((await shrink).status, S.OK);
    assert.equal((await write).status, S.OK);
    await h.store.checkpoint();
    h.store.data.truncate = orig;
    const want = Buffer.alloc(50_001);
    want.fill(0x61, 0, 5_000);
    want.write('x', 50_000);
    assert.ok((await h.readAll(f)).equals(want), 'the write after both shrinks is kept');
  });

  it('close: the directories of data files it unlinks are synced before the clean record', async () => {
    h = await open();
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'data', 2);
    await h.store.checkpoint();
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'f' })).status, S.OK);
    const d0 = h.store.stats.dirFsyncs;
    await h.store.close();
    await assert.rejects(fsp.stat(h.store.data.pathOf(f)), /ENOENT/);
    assert.equal(h.store.data.dirtyCount, 0, 'nothing left unsynced');
    assert.ok(h.store.stats.dirFsyncs > d0);
  });

  it('a data file moved out of inline is synced before its batch is queued', async () => {
    h = await open({ ...QUIET, inlineMax: 4096 });
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'inline', 2);
    const f0 = h.store.stats.dataFsyncs;
    await h.write(f, 4000, Buffer.alloc(1000, 1), 0);
    assert.equal(h.store.stats.dataFsyncs, f0 + 1);
  });
});
