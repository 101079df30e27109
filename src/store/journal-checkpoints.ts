/**
 * Data journal checkpoints (without logWal): small writes are journaled in their batch, background
 * checkpoints sync the data files and record the index up to which the journal is obsolete.
 */
import { KEY_DATA_CKPT, encodeIndex } from './codec';
import { type BatchOp } from './tx';
import { CKPT_BYTES, CKPT_FILES, CKPT_INTERVAL_MS, PendingBatch } from './store-core';
import { GroupCommit } from './group-commit';

export abstract class JournalCheckpoints extends GroupCommit {
  /** a written pass is covered by synced data files: a checkpoint record can be written */
  protected checkpointWritable(): boolean {
    return this.unckpt.length > 0 && this.unckpt[0].fullSeq <= this.data.syncedSeq;
  }

  /** Move the data checkpoint over every written pass whose data files are synced, collecting the
   * journal records that become obsolete. */
  protected advanceCheckpoint(): void {
    while (this.checkpointWritable()) {
      const u = this.unckpt.shift()!;
      this.ckptUpto = u.index;
      this.unckptBytes -= u.bytes;
      for (const key of u.keys) this.ckptDrops.push(key);
    }
  }

  /**
   * Ops recording the data checkpoint, to go into the LevelDB write of `group` (the batches written
   * now, which it may cover too), and dropping obsolete journal records. The checkpoint is what keeps
   * replay from writing old journaled bytes over newer data: a batch whose op wrote a file without
   * the journal, after journaled writes to that file, is written only with a checkpoint covering
   * every op before it (see writeDataFile).
   */
  protected checkpointOps(group: PendingBatch[], sync: boolean): { ops: BatchOp[]; upto: number } {
    this.advanceCheckpoint();
    let upto = this.ckptUpto;
    if (this.unckpt.length === 0) {
      for (const b of group) {
        if (b.fullSeq > this.data.syncedSeq) break;
        upto = b.index;
      }
    }
    const ops: BatchOp[] = this.ckptDrops.map((key) => ({ type: 'del' as const, key }));
    this.ckptDrops = [];
    // A record written without sync may be lost while later sync writes survive (LevelDB does not
    // sync a log it switched away from): a sync write records the checkpoint again until one of
    // them has carried it (the batches relying on it are in sync writes).
    if (upto > (sync ? this.ckptSynced : this.ckptRecorded)) {
      ops.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(upto) });
      if (upto > this.ckptRecorded) this.ckptRecorded = upto;
    }
    return { ops, upto };
  }

  /** A sync write recorded the checkpoint `upto`: journal records up to it are never replayed. */
  protected checkpointSynced(upto: number): void {
    if (upto <= this.ckptSynced) return;
    this.ckptSynced = upto;
    for (const [id, index] of this.journaledAt) if (index <= upto) this.journaledAt.delete(id);
  }

  /**
   * Make the data of every op applied so far durable in the data files and record that durably
   * (a sync write): afterwards the journal holds nothing up to the returned index, now or after a
   * crash (a clean point, e.g. before a snapshot).
   */
  protected async journalCheckpoint(): Promise<number> {
    this.check();
    const upto = this.state.applied;
    await this.waitDurable(upto);
    try {
      await this.data.syncDirty(true);
    } catch (e) {
      this.fail(e);
      throw e;
    }
    this.stats.checkpoints++;
    // record it with a sync write (a standalone checkpoint record is otherwise written without sync)
    for (let i = 0; i < 1000 && this.ckptSynced < upto; i++) {
      if (this.broken) throw new Error(`block store failed: ${String(this.broken)}`);
      if (this.ckptUpto < upto) {
        // ops applied meanwhile share the last written pass: sync their data too, then it pops
        if (!this.checkpointWritable()) {
          try {
            await this.data.syncDirty(true);
          } catch (e) {
            this.fail(e);
            throw e;
          }
        }
      }
      this.ckptSyncWanted = true;
      this.kickWriter();
      await this.writerDone;
    }
    return Math.min(upto, this.ckptSynced);
  }

  /** checkpoint() waits for a durable record of the checkpoint */
  protected checkpointSyncDue(): boolean {
    return this.ckptSyncWanted && this.ckptSynced < this.ckptUpto;
  }

  /** journal records written and not yet dropped by a checkpoint (a gauge) */
  get journalBacklogBytes(): number {
    return this.unckptBytes;
  }

  /** Start a checkpoint once enough journal has piled up, or soon after the first journaled write. */
  protected scheduleCheckpoint(): void {
    // (journaled changes without a record, a failed journaled write's, keep every later pass
    // uncheckpointed until a checkpoint syncs them)
    if ((this.unckptBytes === 0 && this.data.journalDirtyCount === 0) || this.ckptRunning || this.closed) return;
    if (this.unckptBytes >= CKPT_BYTES || this.data.journalDirtyCount >= CKPT_FILES) {
      this.startCheckpoint();
    } else if (!this.ckptTimer) {
      this.ckptTimer = setTimeout(() => this.startCheckpoint(), CKPT_INTERVAL_MS);
      this.ckptTimer.unref();
    }
  }

  /** Sync every data file (journaled writes included) in the background; the writer then records the
   * new checkpoint with its next write, or alone. */
  protected startCheckpoint(): void {
    if (this.ckptTimer) clearTimeout(this.ckptTimer);
    this.ckptTimer = undefined;
    if (this.ckptRunning || this.closed || this.broken) return;
    this.ckptRunning = true;
    this.data.syncDirty(true).then(
      () => {
        this.ckptRunning = false;
        this.stats.checkpoints++;
        this.kickWriter();
        this.scheduleCheckpoint();
      },
      (e: unknown) => {
        this.ckptRunning = false;
        this.fail(e);
      },
    );
  }
}
