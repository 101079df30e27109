/**
 * The data journal: small WRITEs are made durable by their LevelDB batch (bytes included), the data
 * files catch up at checkpoints, and start-up replays the journal after the last checkpoint.
 *
 * Crash images are copies of the store directory taken while the store is open (what survives a
 * SIGKILL: everything written to the page cache). Losing data-file pages that were never fsynced (a
 * power loss) is then simulated in the copy by undoing the data-file change by hand: the journal must
 * bring the acknowledged bytes back.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import { LevelBlockStore, openStore } from '../../src/store/block-store';
import { KEY_DATA_CKPT, P_JOURNAL, readU64BE } from '../../src/store/codec';
import { fsck } from '../../src/store/fsck';
import { DataFiles } from '../../src/store/data-files';
import { Harness, rmDir, tmpDir } from './helpers';

const R = 1;

async function crashImage(h: Harness): Promise<string> {
  const dir = tmpDir('journal-image');
  await fsp.cp(h.dir, dir, { recursive: true });
  await fsp.rm(path.join(dir, 'meta', 'LOCK'), { force: true });
  return dir;
}

function dataPath(dir: string, fileid: number): string {
  return path.join(dir, 'blocks', DataFiles.shardName(fileid), DataFiles.fileName(fileid));
}

async function journalState(dir: string): Promise<{ records: number; ckpt: number }> {
  const db = new Level<Buffer, Buffer>(path.join(dir, 'meta'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    const keys = await db.keys({ gte: Buffer.from([P_JOURNAL]), lt: Buffer.from([P_JOURNAL + 1]) }).all();
    const ck = await db.get(KEY_DATA_CKPT);
    return { records: keys.length, ckpt: ck ? readU64BE(ck, 0) : -1 };
  } finally {
    await db.close();
  }
}

describe('store: data journal', function () {
  this.timeout(30000);
  let h: Harness;
  const dirs: string[] = [];
  beforeEach(async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // data files, not inline data
  });
  afterEach(async () => {
    await h.destroy();
    for (const d of dirs.splice(0)) rmDir(d);
  });

  it('a small stable write survives losing its unsynced data-file pages (the journal has the bytes)', async () => {
    const f = await h.create(R, 'f');
    const fsyncs = h.store.data.stats.fsyncs;
    const w = await h.write(f, 0, 'hello, journal', 2);
    assert.equal(w.status, 0);
    assert.equal(h.store.stats.journalWrites, 1);
    assert.equal(h.store.data.stats.fsyncs, fsyncs, 'no data-file fdatasync before the reply');
    assert.ok(h.store.data.syncedSeq < h.store.data.writeSeq, 'the data file itself is not synced yet');
    const img = await crashImage(h);
    dirs.push(img);
    await fsp.truncate(dataPath(img, f), 0); // the pages never reached the disk
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.equal(s2.recovery.journalReplayed, 1);
      const r = await s2.read(f, 0, 100);
      assert.equal(Buffer.from(r.data!).toString(), 'hello, journal');
    } finally {
      await s2.close();
    }
    const st = await journalState(img);
    assert.deepEqual(st, { records: 0, ckpt: st.ckpt }, 'start-up drops the replayed journal');
    assert.ok(st.ckpt >= 2, `checkpoint moved to the applied index (${st.ckpt})`);
    assert.deepEqual((await fsck(img)).problems, []);
  });

  it('replay keeps writes and cuts in op order (a cut that did not reach the disk is redone)', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'abcdefgh', 2);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 2 } })).status, 0);
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 8 } })).status, 0);
    await h.write(f, 6, 'XY', 2);
    const img = await crashImage(h);
    dirs.push(img);
    // the data file as it might be after a power loss: the write reached it, the cut did not
    await fsp.writeFile(dataPath(img, f), 'abcdefgh');
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.equal(s2.recovery.journalReplayed, 3, 'write, cut, write');
      const r = await s2.read(f, 0, 8);
      assert.deepEqual(Buffer.from(r.data!), Buffer.from('ab\0\0\0\0XY'), 'the extension reads zeros');
    } finally {
      await s2.close();
    }
    assert.deepEqual((await fsck(img)).problems, []);
  });

  it('replay never writes old journaled bytes over a later write that bypassed the journal', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, Buffer.alloc(4096, 0x41), 2); // journaled
    const big = Buffer.alloc(128 * 1024, 0x42);
    await h.write(f, 0, big, 2); // too big for the journal: data file + barrier
    assert.equal(h.store.stats.journalWrites, 1);
    const img = await crashImage(h);
    dirs.push(img);
    const st = await journalState(img);
    assert.ok(st.ckpt >= h.index - 1, `the big write's batch carries a checkpoint over the journaled write (${st.ckpt})`);
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.equal(s2.recovery.journalReplayed, 0);
      assert.deepEqual(Buffer.from((await s2.read(f, 0, big.length)).data!), big);
    } finally {
      await s2.close();
    }
  });

  it('a removed file\'s journal records are skipped at replay', async () => {
    const f = await h.create(R, 'gone');
    await h.write(f, 0, 'bytes', 2);
    assert.equal((await h.op({ kind: 'remove', dir: R, name: 'gone' })).status, 0);
    const keep = await h.create(R, 'keep');
    await h.write(keep, 0, 'kept', 2);
    const img = await crashImage(h);
    dirs.push(img);
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.equal(s2.recovery.journalReplayed, 1, 'only the live file');
      await assert.rejects(fsp.access(dataPath(img, f)), 'no data file comes back for the removed file');
      assert.equal(Buffer.from((await s2.read(keep, 0, 4)).data!).toString(), 'kept');
    } finally {
      await s2.close();
    }
    assert.deepEqual((await fsck(img)).problems, []);
  });

  it('a checkpoint syncs the data files and drops the journal; nothing is replayed after it', async () => {
    const f = await h.create(R, 'f');
    for (let i = 0; i < 20; i++) await h.write(f, i * 4096, Buffer.alloc(4096, i + 1), i % 2 === 0 ? 2 : 0);
    await h.store.sync(f);
    assert.ok(h.store.journalBacklogBytes > 20 * 4096, `journal records written (${h.store.journalBacklogBytes})`);
    const upto = await h.store.checkpoint();
    assert.equal(upto, h.store.appliedIndex);
    assert.equal(h.store.journalBacklogBytes, 0);
    assert.equal(h.store.data.syncedSeq, h.store.data.writeSeq);
    const img = await crashImage(h);
    dirs.push(img);
    assert.deepEqual(await journalState(img), { records: 0, ckpt: upto });
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.equal(s2.recovery.journalReplayed, 0);
      const r = await s2.read(f, 19 * 4096, 4096);
      assert.deepEqual(Buffer.from(r.data!), Buffer.alloc(4096, 20));
    } finally {
      await s2.close();
    }
  });

  it('checkpoints run by themselves in the background', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'x', 2);
    assert.ok(h.store.journalBacklogBytes > 0);
    const t0 = Date.now();
    while (h.store.journalBacklogBytes > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.store.journalBacklogBytes, 0, 'the journal was checkpointed within 5 s');
    assert.ok(h.store.stats.checkpoints >= 1);
  });

  it('writes above journalMaxWrite go to the data file with a barrier; 0 turns the journal off', async () => {
    const f = await h.create(R, 'big');
    const before = h.store.data.stats.fsyncs;
    await h.write(f, 0, Buffer.alloc(128 * 1024, 7), 2);
    assert.equal(h.store.stats.journalWrites, 0, '128 KiB is not journaled by default');
    assert.ok(h.store.data.stats.fsyncs > before, 'its data file was fdatasynced before the reply');
    await h.reopen({ journalMaxWrite: 0, inlineMax: 0 });
    const g = await h.create(R, 'small');
    await h.write(g, 0, 'tiny', 2);
    assert.equal(h.store.stats.journalWrites, 0);
    assert.equal(h.store.data.syncedSeq, h.store.data.writeSeq);
  });

  it('a close leaves no journal behind (clean shutdown)', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, 'unstable', 0);
    await h.write(f, 8, '-stable', 2);
    await h.close();
    assert.deepEqual(await journalState(h.dir), { records: 0, ckpt: h.index });
    h.store = await openStore(h.dir, { inlineMax: 0 });
    assert.equal(h.store.recovery.journalReplayed, 0);
    assert.equal((await h.readAll(f)).toString(), 'unstable-stable');
  });
});

describe('store: data journal against newer unjournaled data', function () {
  this.timeout(30000);
  let h: Harness;
  const dirs: string[] = [];
  beforeEach(async () => {
    h = await Harness.open(undefined, { inlineMax: 0 });
    // no background checkpoint between the steps (as when the 1 s timer has not fired yet)
    (h.store as unknown as { startCheckpoint: () => void }).startCheckpoint = () => undefined;
  });
  afterEach(async () => {
    await h.destroy();
    for (const d of dirs.splice(0)) rmDir(d);
  });

  /** A crash image now, opened (replaying its journal): `f` must read `want`. */
  async function assertAfterCrash(f: number, want: Buffer, msg: string): Promise<string> {
    const img = await crashImage(h);
    dirs.push(img);
    const s2 = await openStore(img, { inlineMax: 0 });
    try {
      assert.ok(Buffer.from((await s2.read(f, 0, want.length)).data!).equals(want), msg);
    } finally {
      await s2.close();
    }
    return img;
  }

  it('replay never cuts a later unjournaled write (a journaled cut is a journaled change of its file)', async () => {
    const f = await h.create(R, 'f');
    await h.write(f, 0, Buffer.alloc(128 * 1024, 0x41), 2); // unjournaled
    const g = await h.create(R, 'g');
    await h.write(g, 0, 'journaled, not checkpointed', 2); // another file's journaled change stays unsynced
    assert.equal((await h.op({ kind: 'setattr', file: f, attrs: { size: 0 } })).status, 0); // journaled cut of f
    const big = Buffer.alloc(128 * 1024, 0x42);
    assert.equal((await h.write(f, 0, big, 2)).status, 0); // unjournaled, acknowledged stable
    const img = await assertAfterCrash(f, big, 'the replayed cut must not remove the later write');
    assert.deepEqual((await fsck(img)).problems, []);
  });

  it('checkpoint() records its checkpoint with a sync write (a clean point that survives a crash)', async () => {
    const db = (h.store as unknown as { db: { _batch: (ops: unknown[], opts: { sync?: boolean }) => Promise<void> } }).db;
    const orig = db._batch;
    db._batch = function (this: unknown, ops, opts) {
      if (opts?.sync !== true) return Promise.resolve(); // writes without sync are lost
      return orig.call(this, ops, opts);
    };
    try {
      const f = await h.create(R, 'f');
      for (let i = 0; i < 8; i++) await h.write(f, i * 4096, Buffer.alloc(4096, i + 1), 2); // journaled
      const upto = await h.store.checkpoint();
      assert.equal(upto, h.store.appliedIndex);
      const img = await crashImage(h);
      dirs.push(img);
      assert.deepEqual(await journalState(img), { records: 0, ckpt: upto });
    } finally {
      db._batch = orig;
    }
  });

  it('a checkpoint record written without sync is not relied on (losing it never replays old bytes over newer ones)', async () => {
    // LevelDB writes without sync are lost (power loss after a log switch): drop them outright
    const db = (h.store as unknown as { db: { _batch: (ops: unknown[], opts: { sync?: boolean }) => Promise<void> } }).db;
    const orig = db._batch;
    let lost = 0;
    db._batch = function (this: unknown, ops, opts) {
      if (opts?.sync !== true) {
        lost++;
        return Promise.resolve();
      }
      return orig.call(this, ops, opts);
    };
    try {
      const f = await h.create(R, 'f');
      const g = await h.create(R, 'g');
      await h.write(f, 0, Buffer.alloc(4096, 0x41), 2); // journaled
      // a background checkpoint (run by hand here): data files synced, the record written alone,
      // without sync
      (LevelBlockStore.prototype as unknown as { startCheckpoint: (this: unknown) => void }).startCheckpoint.call(h.store);
      const t0 = Date.now();
      while (h.store.journalBacklogBytes > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(h.store.journalBacklogBytes, 0, 'checkpointed in the background');
      assert.ok(lost > 0, 'the checkpoint record went out without sync');
      await h.write(g, 0, 'journaled, not checkpointed', 2); // keeps the next syncs partial
      const big = Buffer.alloc(128 * 1024, 0x42);
      assert.equal((await h.write(f, 0, big, 2)).status, 0); // unjournaled, acknowledged stable
      await assertAfterCrash(f, big, 'old journaled bytes replayed over the big write');
    } finally {
      db._batch = orig;
    }
  });
});
