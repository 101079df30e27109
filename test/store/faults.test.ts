import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import { Nfs3Status as S, type StoreOp } from '../../src/store/types';
import { DataFiles } from '../../src/store/data-files';
import { fsck } from '../../src/store/fsck';
import { Harness, ROOT, rmDir, tmpDir } from './helpers';

const R = 1;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The store's internals the fault tests stub (not part of the API). */
interface Internals {
  db: { _batch: (ops: unknown[], opts: { sync?: boolean }) => Promise<void> };
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** The next data-file write of the store fails with `code`. */
function failNextDataWrite(h: Harness, code: string): void {
  const orig = h.store.data.write;
  h.store.data.write = async function () {
    h.store.data.write = orig;
    throw errno(code);
  };
}

describe('store: durability and fault handling', function () {
  this.timeout(30000);
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // these tests are about data files
  });
  afterEach(async () => {
    await h.destroy();
  });

  it('every metadata batch is written with sync:true (no reliance on a later sync write)', async () => {
    const db = (h.store as unknown as Internals).db;
    const orig = db._batch;
    const syncs: (boolean | undefined)[] = [];
    db._batch = function (this: unknown, ops, opts) {
      syncs.push(opts?.sync);
      return orig.call(this, ops, opts);
    };
    const f = await h.create(R, 'f');
    for (let i = 0; i < 50; i++) await h.write(f, i, 'x', 0); // UNSTABLE: written in the background
    await h.write(f, 50, 'y', 2);
    await h.store.sync();
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'f' })).status, S.OK);
    await h.store.sync();
    db._batch = orig;
    assert.ok(syncs.length > 0);
    assert.deepEqual(
      syncs.filter((s) => s !== true),
      [],
      'a batch was written without sync',
    );
    assert.equal(h.store.durableAppliedIndex, h.store.appliedIndex);
  });

  it("no deadlock: backpressure (> 4096 pending batches) while the writer's data barrier waits on a slow fdatasync", async () => {
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, 'a', 0)).status, S.OK); // dirty data for the writer's barrier
    // slow fdatasync (1 s), as on a loaded disk
    const probe = await fsp.open(h.store.data.pathOf(f), 'r');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const orig = proto.datasync;
    proto.datasync = async function (this: unknown) {
      await sleep(1000);
      return orig.call(this);
    };
    const t0 = Date.now();
    const synced = h.store.sync();
    const ws: Promise<unknown>[] = [];
    for (let i = 0; i < 7000; i++) {
      ws.push(h.store.apply(++h.index, { kind: 'write', file: f, offset: i, data: Buffer.from('a'), stable: 0, time: { sec: 1, nsec: 0 }, cred: ROOT } as StoreOp));
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('deadlock: applies did not finish in 20 s')), 20000);
    });
    try {
      await Promise.race([Promise.all([synced, ...ws]), timeout]);
      await Promise.race([h.store.sync(), timeout]);
    } finally {
      clearTimeout(timer);
      proto.datasync = orig;
    }
    assert.ok(Date.now() - t0 < 20000);
    assert.equal((await h.store.getattr(f))!.size, 7000);
    assert.equal(h.store.durableAppliedIndex, h.store.appliedIndex);
  });

  it('ENOSPC from the data write gives NOSPC, records nothing and leaves the store working', async () => {
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, 'hello', 2)).status, S.OK);
    const used0 = h.store.counters.usedBytes;
    const orig = h.store.data.write;
    // once: a partial write (3 of 6 bytes land beyond the size), then ENOSPC
    h.store.data.write = async function (this: DataFiles, id, off, d, ahead) {
      h.store.data.write = orig;
      await orig.call(this, id, off, d.subarray(0, 3), ahead);
      throw errno('ENOSPC');
    };
    const r = await h.write(f, 5, 'world!', 2);
    assert.equal(r.status, S.NOSPC);
    assert.equal(r.status, 28);
    assert.ok(r.wcc, 'wcc data on the error');
    assert.equal((await h.store.getattr(f))!.size, 5, 'size unchanged');
    assert.equal(h.store.counters.usedBytes, used0);
    assert.equal((await fsp.stat(h.store.data.pathOf(f))).size, 5, 'partial bytes beyond size cut');
    // the store is not broken
    assert.equal((await h.write(f, 5, 'world', 2)).status, S.OK);
    assert.ok(await h.create(R, 'g'));
    assert.equal((await h.readAll(f)).toString(), 'helloworld');
    await h.reopen({ inlineMax: 0 });
    assert.equal((await h.readAll(f)).toString(), 'helloworld');
    await h.store.close();
    const rep = await fsck(h.dir);
    assert.deepEqual(rep.problems, []);
  });

  it('a journaled write failing with ENOSPC leaves no unsynced journal state behind for good (the checkpoint queue stays bounded)', async () => {
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(128 * 1024, 1), 2)).status, S.OK); // unjournaled
    const orig = h.store.data.write;
    h.store.data.write = async function (this: DataFiles, id, off, d, ahead, journaled) {
      h.store.data.write = orig;
      await orig.call(this, id, off, d.subarray(0, 3), ahead, journaled); // a partial journaled write
      throw errno('ENOSPC');
    };
    assert.equal((await h.write(f, 128 * 1024, 'world!', 2)).status, S.NOSPC);
    assert.equal(h.store.stats.journalWrites, 0);
    const internals = h.store as unknown as { unckpt: unknown[] };
    for (let i = 0; i < 100; i++) await h.create(R, `m${i}`); // metadata only: no journal record at all
    const t0 = Date.now();
    while (internals.unckpt.length > 2 && Date.now() - t0 < 3000) await sleep(50);
    assert.ok(internals.unckpt.length <= 2, `${internals.unckpt.length} written passes wait for a checkpoint that never comes`);
  });

  it('a shrinking SETATTR cuts the data file only once its batch is written; a later write still reads zeros', async () => {
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, Buffer.alloc(1000, 0x61), 2)).status, S.OK);
    const db = (h.store as unknown as Internals).db;
    const orig = db._batch;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    db._batch = async function (this: unknown, ops, opts) {
      await gate;
      return orig.call(this, ops, opts);
    };
    const file = h.store.data.pathOf(f);
    try {
      const shrink = h.op({ kind: 'setattr', file: f, attrs: { size: 10 } });
      await sleep(50);
      assert.equal((await h.store.getattr(f))!.size, 10, 'applied');
      assert.equal((await fsp.stat(file)).size, 1000, 'data file not cut before the batch is durable');
      release();
      assert.equal((await shrink).status, S.OK);
      assert.equal((await fsp.stat(file)).size, 10, 'cut once written');
      // shrink again, then write beyond the new size before the shrink's batch is written
      gate = new Promise<void>((r) => (release = r));
      const shrink2 = h.op({ kind: 'setattr', file: f, attrs: { size: 5 } });
      const w = h.write(f, 20, 'z', 0);
      assert.equal((await w).status, S.OK);
      release();
      assert.equal((await shrink2).status, S.OK);
    } finally {
      db._batch = orig;
      release();
    }
    const want = Buffer.concat([Buffer.alloc(5, 0x61), Buffer.alloc(15), Buffer.from('z')]);
    assert.ok((await h.readAll(f)).equals(want));
    await h.reopen({ inlineMax: 0 });
    assert.ok((await h.readAll(f)).equals(want));
    await h.store.close();
    assert.deepEqual((await fsck(h.dir)).problems, []);
  });

  it('a sync() waiting for an op that fails the store rejects (never hangs)', async () => {
    const f = await h.create(R, 'f');
    failNextDataWrite(h, 'EIO');
    const w = h.write(f, 0, 'x', 0);
    const s = h.store.sync(); // waits for the op queued before it
    await assert.rejects(w, /EIO/);
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('sync() still pending 3 s after the store failed')), 3000);
    });
    try {
      await Promise.race([assert.rejects(s), hang]);
      await Promise.race([h.store.close(), hang]);
    } finally {
      clearTimeout(timer);
    }
  });

  it('EIO from a checkpoint fdatasync fails the store (a later fdatasync would not report the lost pages)', async () => {
    const f = await h.create(R, 'f');
    assert.equal((await h.write(f, 0, 'journaled', 2)).status, S.OK);
    const probe = await fsp.open(h.store.data.pathOf(f), 'r');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const orig = proto.datasync;
    proto.datasync = async function () {
      proto.datasync = orig; // like Linux: the error is reported once, the pages are gone
      throw errno('EIO');
    };
    try {
      await assert.rejects(h.store.checkpoint(), /EIO/);
    } finally {
      proto.datasync = orig;
    }
    await assert.rejects(h.write(f, 9, 'more', 2), /failed/);
    await assert.rejects(h.store.sync(), /failed/);
  });

  it('EIO from the data write stays fatal', async () => {
    const f = await h.create(R, 'f');
    failNextDataWrite(h, 'EIO');
    await assert.rejects(h.write(f, 0, 'x', 2), /EIO/);
    await assert.rejects(h.write(f, 0, 'x', 2), /failed/);
  });
});

describe('store: data files', () => {
  it('unlink marks the shard directory dirty (the removal gets a directory fsync)', async () => {
    const dir = tmpDir();
    try {
      const d = new DataFiles(dir, 8);
      await d.init();
      await d.write(5, 0, Buffer.from('abc'));
      await d.syncDirty();
      assert.equal(d.dirtyCount, 0);
      const dirFsyncs = d.stats.dirFsyncs;
      await d.unlink(5);
      assert.equal(d.dirtyCount, 1);
      await d.syncDirty();
      assert.equal(d.stats.dirFsyncs, dirFsyncs + 1);
      await d.unlink(5); // already gone: nothing to sync
      assert.equal(d.dirtyCount, 0);
      await d.closeAll();
    } finally {
      rmDir(dir);
    }
  });
});
