/**
 * logWal checkpoints: the Raft log is the write-ahead log, the store writes LevelDB without sync; a
 * checkpoint makes data files and metadata durable up to an index and records it (durableIndex).
 */
import { type FileId } from './types';
import { KEY_DATA_CKPT, encodeIndex, unlinkKey } from './codec';
import { type BatchOp } from './tx';
import { FLUSH_RANGE_START, FLUSH_RANGE_END, writeBatch } from './store-core';
import { JournalCheckpoints } from './journal-checkpoints';

export abstract class WalCheckpoints extends JournalCheckpoints {
  /**
   * Make the data and metadata of every op applied so far durable in the store alone, and record
   * that durably; resolves with the index it covers (logWal: the new durableIndex; else the data
   * journal holds nothing up to it, now or after a crash: a clean point, e.g. before a snapshot).
   */
  async checkpoint(): Promise<number> {
    this.check();
    return this.logWal ? this.walCheckpoint() : this.journalCheckpoint();
  }

  /** Start a checkpoint once enough work piled up since the last one, or soon after the first op. */
  protected scheduleWalCheckpoint(): void {
    if (this.walRunning || this.closed || this.broken || this.state.applied <= this.durable) return;
    if (this.walBytes >= this.opts.checkpointBytes || this.walOps >= this.opts.checkpointOps) {
      this.startWalCheckpoint();
    } else if (!this.walTimer) {
      this.walTimer = setTimeout(() => this.startWalCheckpoint(), this.opts.checkpointIntervalMs);
      this.walTimer.unref();
    }
  }

  protected startWalCheckpoint(): void {
    if (this.walTimer) clearTimeout(this.walTimer);
    this.walTimer = undefined;
    if (this.walRunning || this.closed || this.broken) return;
    this.walCheckpoint().catch(() => undefined); // (a failure fails the store: fail() ran)
  }

  /**
   * logWal checkpoint of every op applied so far (X): wait until the writer has written their
   * batches (and done the cuts and unlinks they record), fdatasync every dirty data file and data
   * directory, flush LevelDB's memtable (its SST files are synced: the batches written without sync
   * become durable, also those in a log file LevelDB rotated away from, which a sync write would not
   * cover), then record X with a sync write, dropping the cut records up to X. Checkpoints run one
   * after another; a failure fails the store.
   */
  protected walCheckpoint(): Promise<number> {
    const p = this.walChain.then(() => this.walCheckpointNow());
    this.walChain = p.catch(() => undefined);
    return p;
  }

  protected async walCheckpointNow(): Promise<number> {
    this.check();
    const upto = this.state.applied;
    if (upto <= this.durable) return this.durable;
    this.walRunning = true;
    this.walBytes = 0;
    this.walOps = 0;
    if (this.walTimer) clearTimeout(this.walTimer);
    this.walTimer = undefined;
    try {
      await this.waitDurable(upto);
      await this.data.syncDirty(true);
      await this.flushMemtable();
      const ops: BatchOp[] = [];
      let k = 0;
      while (k < this.cutRecords.length && this.cutRecords[k].index <= upto) ops.push({ type: 'del', key: this.cutRecords[k++].key });
      ops.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(upto) });
      await writeBatch(this.db, ops, true);
      this.cutRecords.splice(0, k);
      this.stats.dbSyncs++;
      this.stats.checkpoints++;
      // the REMOVEs up to X are durable: their data files go now, their markers with a later batch
      let u = 0;
      while (u < this.walUnlinks.length && this.walUnlinks[u].index <= upto) {
        const { id } = this.walUnlinks[u++];
        await this.data.unlink(id);
        this.pendingMarkerDeletes.push(unlinkKey(id));
      }
      this.walUnlinks.splice(0, u);
    } catch (e) {
      this.fail(e);
      throw e;
    } finally {
      this.walRunning = false;
    }
    this.durable = upto;
    try {
      this.onDurable?.(upto);
    } finally {
      this.scheduleWalCheckpoint();
    }
    return upto;
  }

  /** Flush LevelDB's memtable to a synced SST file (compacting an empty key range does that and
   * nothing more: LevelDB's CompactRange first compacts the memtable, then the range). */
  protected async flushMemtable(): Promise<void> {
    await (this.db as unknown as { compactRange(a: Buffer, b: Buffer): Promise<void> }).compactRange(FLUSH_RANGE_START, FLUSH_RANGE_END);
    this.stats.memtableFlushes++;
  }

  async sync(_file?: FileId): Promise<void> {
    this.check();
    if (this.logWal) {
      // the store alone makes everything applied durable: a checkpoint
      await this.walCheckpoint();
      return;
    }
    // Everything queued so far: their batches are written after their data (UNSTABLE writes
    // included) is synced or journaled, so once the last one is written, all are durable.
    await this.waitDurable(this.lastQueued);
  }
}
