/**
 * The local block store: metadata in LevelDB (binary keys, compact inode records, see codec.ts), file
 * data in one sparse data file per regular file (data-files.ts). See docs/store.md.
 *
 * Mutations: `apply(index, op)` runs ops one at a time in index order under a mutex. Each op reads what
 * it needs (inode cache, then LevelDB), validates (RFC 1813 errors, permissions from op.cred), does its
 * data I/O, then writes ONE LevelDB batch holding all its metadata changes plus the state record
 * (applied index, next file id, counters). A background writer writes pending batches in index order,
 * many coalesced into one LevelDB write, each write with sync:true, and only once the data they rely
 * on is durable (their gate: the writer runs the data barrier, an fdatasync of dirty data files,
 * first). Every batch needs its own sync write: a later sync:true write does NOT make earlier
 * sync:false writes durable, because when the memtable fills LevelDB switches to a new log file and
 * closes the old one without fsync, and a sync write syncs only the current log. So a written batch is
 * a durable one, and the writer is the group commit: an op that must be stable (every successful
 * metadata op, FILE_SYNC/DATA_SYNC writes, and COMMIT for everything before it) releases the mutex and
 * waits until the writer has written its batch, together with whatever else was pending.
 *
 * The data journal: a WRITE of up to `journalMaxWrite` bytes (64 KiB) puts its bytes into its batch as
 * a journal record and goes to the data file without a barrier, so a small stable write costs one
 * LevelDB sync instead of an fdatasync plus a sync. Checkpoints sync the data files in the background
 * (every 16 MiB / 2048 files / 1 s) and record the data checkpoint (the op index up to which the data
 * files hold everything), dropping older journal records; start-up replays the records after it.
 * Shrinking truncations are journaled too, so replay redoes writes and cuts in op order.
 *
 * Data files are unlinked (REMOVE) and cut (shrinking SETATTR) only once the batch recording that is
 * written, i.e. durable.
 *
 * logWal ("the log is the write-ahead log", for a cluster whose Raft log holds every op durably
 * before it is applied): apply() resolves once the op is applied in memory, batches are written
 * without sync and without a data barrier, nothing is journaled. Checkpoints (wal-checkpoints.ts)
 * fdatasync the data files, flush LevelDB's memtable and record durableIndex with a sync write; after
 * a crash, redo() replays the data effects of the ops in (durableIndex, appliedIndex] from the log
 * (recovery.ts). Local I/O faults fail the store instead of answering.
 *
 * The code, one concern a file, each layer a class extending the one before:
 *   store-core.ts           shared state, constants, synchronous point reads (inode cache: lru-cache.ts)
 *   group-commit.ts         the writer: pending batches to LevelDB in index order
 *   journal-checkpoints.ts  data journal checkpoints (without logWal)
 *   wal-checkpoints.ts      logWal checkpoints, checkpoint(), sync()
 *   recovery.ts             start-up, journal replay, crash leftovers, redo()
 *   apply.ts                apply() under the mutex (mutex.ts), request records, monotonic times,
 *                           the data side of writes; the ops themselves in ops/ (one file per kind),
 *                           each in a transaction (tx.ts)
 *   reads.ts                GETATTR, LOOKUP, READDIR, READ, READLINK, FSSTAT
 *   block-store.ts          open() and close()
 */
import { promises as fsp } from 'node:fs';
import type { StoreOptions } from './types';
import { KEY_CLEAN, KEY_DATA_CKPT, KEY_STATE, encodeIndex, encodeState, unlinkKey } from './codec';
import type { BatchOp } from './tx';
import { openMetaDb } from './store-core';
import { StoreReads } from './reads';

export { BLOCK } from './data-files';
export {
  ROOT_ID,
  DEFAULT_JOURNAL_MAX_WRITE,
  DEFAULT_INLINE_MAX,
  DEFAULT_DRC_ENTRIES,
  MAX_REQUEST_KEY_BYTES,
  metaPath,
  openMetaDb,
  type MetaDb,
  type StoreStats,
  type RecoveryReport,
} from './store-core';
export { usedOf, toAttr, cookieVerf } from './attrs';
export { MAX_NAME_BYTES, MAX_SYMLINK_BYTES, wellFormed, checkName } from './op-validation';

/** The block store: every concern is a layer below (store-core.ts lists them); this one opens and closes. */
export class LevelBlockStore extends StoreReads {
  static async open(dataDir: string, options: StoreOptions = {}): Promise<LevelBlockStore> {
    await fsp.mkdir(dataDir, { recursive: true });
    const db = openMetaDb(dataDir);
    await db.open();
    const store = new LevelBlockStore(dataDir, db, options);
    try {
      await store.init(options);
    } catch (e) {
      await db.close().catch(() => undefined);
      throw e;
    }
    return store;
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    if (this.ckptTimer) clearTimeout(this.ckptTimer);
    this.ckptTimer = undefined;
    await Promise.allSettled([...this.inflight.values()]);
    await this.writerDone.catch(() => undefined);
    if (this.walTimer) clearTimeout(this.walTimer);
    this.walTimer = undefined;
    await this.walChain;
    if (!this.broken && !this.redoPending) {
      await this.mutex.run(async () => {
        await this.data.syncDirty();
        await this.waitDurable(this.state.applied);
        await this.writerDone;
        // truncations the writer did after its last batch, and every journaled write: a checkpoint
        await this.data.syncDirty(true);
        const ops: BatchOp[] = this.pendingMarkerDeletes.map((key) => ({ type: 'del' as const, key }));
        this.pendingMarkerDeletes = [];
        if (this.logWal) {
          // batches written without sync: a memtable flush makes them durable before the clean record
          await this.flushMemtable();
          for (const c of this.cutRecords) ops.push({ type: 'del', key: c.key });
          this.cutRecords = [];
          // every batch is durable now: the data files of removed files go
          for (const { id } of this.walUnlinks) {
            await this.data.unlink(id);
            ops.push({ type: 'del', key: unlinkKey(id) });
          }
          // their directories before the markers go: with the clean record, start-up would not look
          // for a data file a power loss brought back
          if (this.walUnlinks.length > 0) await this.data.syncDirty(true);
          this.walUnlinks = [];
        } else {
          ops.push(...this.checkpointOps([], true).ops);
        }
        ops.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(this.state.applied) });
        ops.push({ type: 'put', key: KEY_STATE, value: encodeState(this.state) });
        ops.push({ type: 'put', key: KEY_CLEAN, value: Buffer.from([1]) });
        await this.db.batch(ops, { sync: true });
        this.stats.dbSyncs++;
        this.ckptRecorded = this.state.applied;
        this.checkpointSynced(this.state.applied);
        if (this.logWal) this.durable = this.state.applied;
      });
    }
    this.closed = true;
    if (this.ckptTimer) clearTimeout(this.ckptTimer);
    await this.data.closeAll();
    await this.db.close();
  }
}

/** Open (creating if needed) the block store in `dataDir` (uses dataDir/meta and dataDir/blocks). */
export function openStore(dataDir: string, options: StoreOptions = {}): Promise<LevelBlockStore> {
  return LevelBlockStore.open(dataDir, options);
}
