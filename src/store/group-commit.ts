/**
 * The writer and the group commit: an op's batch is queued in memory (visible through the overlay),
 * and the writer writes pending batches to LevelDB in index order, many in one write: without logWal
 * each write is a sync write after the data barrier it needs; with logWal without sync and barrier.
 */
import { KEY_STATE, inlineKey, encodeInode, encodeState, inodeKey, unlinkKey } from './codec';
import { Tx, type BatchOp } from './tx';
import { MAX_PENDING_BATCHES, MAX_PENDING_JOURNAL_BYTES, MAX_WRITE_JOURNAL_BYTES, Waiter, writeBatch, StoreCore } from './store-core';

export abstract class GroupCommit extends StoreCore {
  /**
   * Record an op's changes: in memory at once (cache, overlay, state), in LevelDB by the writer, which
   * writes batches in index order and only once the data they describe is durable (so the recorded
   * position never runs ahead of durable data, whenever LevelDB itself persists its log or memtable).
   */
  protected async commit(tx: Tx, ok: boolean): Promise<void> {
    let ops: BatchOp[] = [];
    const inodeKeys: [number, number][] = [];
    const inlineKeys: [number, number][] = [];
    const entryKeys: [string, number][] = [];
    const cookieKeys: [number, number, number][] = [];
    if (ok) {
      ops = tx.ops;
      for (const [id, ino] of tx.changed) {
        const v = ino ? encodeInode(ino) : null;
        if (v) ops.push({ type: 'put', key: inodeKey(id), value: v });
        else ops.push({ type: 'del', key: inodeKey(id) });
        const seq = ++this.overlaySeq;
        this.inodeOverlay.set(id, { v, seq });
        inodeKeys.push([id, seq]);
      }
      for (const [id, v] of tx.inlineChanges) {
        if (v && v.length > 0) ops.push({ type: 'put', key: inlineKey(id), value: v });
        else ops.push({ type: 'del', key: inlineKey(id) });
        const seq = ++this.overlaySeq;
        this.inlineOverlay.set(id, { v: v && v.length > 0 ? v : null, seq });
        inlineKeys.push([id, seq]);
      }
      for (const [k, v] of tx.entryChanges) {
        const seq = ++this.overlaySeq;
        this.entryOverlay.set(k, { v, seq });
        entryKeys.push([k, seq]);
      }
      for (const [dir, cookie, e] of tx.cookieChanges) {
        const seq = ++this.overlaySeq;
        let m = this.cookieOverlay.get(dir);
        if (!m) this.cookieOverlay.set(dir, (m = new Map()));
        m.set(cookie, { e, seq });
        cookieKeys.push([dir, cookie, seq]);
      }
    } else {
      tx.st.nextFileId = this.state.nextFileId;
      tx.st.fileCount = this.state.fileCount;
      tx.st.usedBytes = this.state.usedBytes;
    }
    if (this.pendingMarkerDeletes.length) {
      for (const key of this.pendingMarkerDeletes) ops.push({ type: 'del', key });
      this.pendingMarkerDeletes = [];
    }
    for (const o of tx.alwaysOps) ops.push(o);
    ops.push({ type: 'put', key: KEY_STATE, value: encodeState(tx.st) });
    const journalBytes = ok ? tx.journalBytes : 0;
    this.pending.push({
      ops,
      index: tx.st.applied,
      gateSeq: this.data.gateSeq,
      fullSeq: this.data.writeSeq,
      journalKeys: ok ? tx.journalKeys : [],
      journalBytes,
      unlinks: ok ? tx.unlinks : [],
      truncates: ok ? tx.truncates : [],
      cutKeys: ok ? tx.cutKeys : [],
      inodeKeys,
      inlineKeys,
      entryKeys,
      cookieKeys,
    });
    this.pendingJournalBytes += journalBytes;
    this.state = tx.st;
    if (ok) for (const [id, size] of tx.truncates) this.pendingTruncates.set(id, { size, index: tx.st.applied });
    if (ok) for (const id of tx.journalFiles) this.journaledAt.set(id, tx.st.applied);
    if (ok) {
      for (const [id, ino] of tx.changed) {
        if (ino) this.cache.set(id, ino);
        else this.cache.delete(id);
      }
    }
    if (ok) for (const key of tx.cutKeys) this.cutRecords.push({ index: tx.st.applied, key });
    this.kickWriter();
    if (this.logWal) {
      this.walOps++;
      this.scheduleWalCheckpoint();
      // backpressure: wait for the writer, which needs no data barrier here
      if (this.pending.length > MAX_PENDING_BATCHES) await this.waitDurable(tx.st.applied - MAX_PENDING_BATCHES / 2);
      return;
    }
    if (this.pending.length > MAX_PENDING_BATCHES || this.pendingJournalBytes > MAX_PENDING_JOURNAL_BYTES) {
      // Backpressure, holding the mutex: wait for the writer (which needs no mutex) to catch up. The
      // data barrier runs here first so that the batches waited for can be written at once.
      await this.data.syncDirty();
      await this.waitDurable(this.pendingJournalBytes > MAX_PENDING_JOURNAL_BYTES ? tx.st.applied : tx.st.applied - MAX_PENDING_BATCHES / 2);
    }
  }

  protected kickWriter(): void {
    if (this.writerRunning || this.broken || (this.pending.length === 0 && !this.checkpointWritable() && !this.checkpointSyncDue())) return;
    this.writerRunning = true;
    this.writerDone = this.runWriter();
  }

  protected async runWriter(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.checkpointWritable() || this.checkpointSyncDue()) {
        // (a failed fdatasync elsewhere, e.g. a checkpoint's: the next one would report success)
        if (this.broken) throw this.broken;
        if (this.pending.length === 0) {
          // a checkpoint finished and no batch is coming to carry its record: write it alone when it
          // drops journal records, without sync (losing it in a crash only means replaying more of
          // the journal: every batch that relies on a checkpoint carries its own); with sync when
          // checkpoint() asked for a durable clean point
          const sync = this.ckptSyncWanted;
          this.ckptSyncWanted = false;
          const { ops, upto } = this.checkpointOps([], sync);
          if (ops.length > 0) {
            await writeBatch(this.db, ops, sync);
            if (sync) {
              this.stats.dbSyncs++;
              this.checkpointSynced(upto);
            }
          }
          continue;
        }
        const head = this.pending[0];
        if (!this.logWal && head.gateSeq > this.data.syncedGateSeq) {
          // the sync barrier: data first, then the metadata that describes it. Batches applied while
          // it runs are written with this one when their data is covered too.
          await this.data.syncDirty();
          continue;
        }
        let n = 0;
        let count = 0;
        let jbytes = 0;
        while (
          n < this.pending.length &&
          (this.logWal || this.pending[n].gateSeq <= this.data.syncedGateSeq) &&
          count < 20000 &&
          (n === 0 || jbytes + this.pending[n].journalBytes <= MAX_WRITE_JOURNAL_BYTES)
        ) {
          count += this.pending[n].ops.length;
          jbytes += this.pending[n].journalBytes;
          n++;
        }
        const batches = this.pending.slice(0, n);
        if (this.logWal) {
          // the log is the write-ahead log: in index order, without sync and without a data
          // barrier; the next checkpoint makes them durable (syncDirty, memtable flush, sync write)
          const ops = n === 1 ? batches[0].ops : batches.flatMap((b) => b.ops);
          await writeBatch(this.db, ops, false);
          this.pending.splice(0, n);
          this.stats.groupCommits++;
          this.writtenIndex = batches[n - 1].index;
        } else {
          const { ops: ckptOps, upto } = this.checkpointOps(batches, true);
          const ops = n === 1 && ckptOps.length === 0 ? batches[0].ops : [...ckptOps, ...batches.flatMap((b) => b.ops)];
          await writeBatch(this.db, ops);
          this.checkpointSynced(upto);
          this.pending.splice(0, n);
          this.pendingJournalBytes -= jbytes;
          this.stats.dbSyncs++;
          this.stats.groupCommits++;
          this.writtenIndex = batches[n - 1].index;
          const keys = jbytes > 0 || batches.some((b) => b.journalKeys.length > 0) ? batches.flatMap((b) => b.journalKeys) : [];
          this.unckpt.push({ index: this.writtenIndex, fullSeq: batches[n - 1].fullSeq, keys, bytes: jbytes });
          this.unckptBytes += jbytes;
          this.scheduleCheckpoint();
        }
        for (const b of batches) {
          for (const [k, seq] of b.inodeKeys) if (this.inodeOverlay.get(k)?.seq === seq) this.inodeOverlay.delete(k);
          for (const [k, seq] of b.inlineKeys) if (this.inlineOverlay.get(k)?.seq === seq) this.inlineOverlay.delete(k);
          for (const [k, seq] of b.entryKeys) if (this.entryOverlay.get(k)?.seq === seq) this.entryOverlay.delete(k);
          for (const [dir, cookie, seq] of b.cookieKeys) {
            const m = this.cookieOverlay.get(dir);
            if (m?.get(cookie)?.seq === seq) {
              m.delete(cookie);
              if (m.size === 0) this.cookieOverlay.delete(dir);
            }
          }
        }
        // the smaller size is durable: cut the data file now (unless a later op superseded or did it)
        for (const b of batches) {
          for (const [id, size] of b.truncates) {
            const pt = this.pendingTruncates.get(id);
            if (!pt || pt.index !== b.index) continue;
            // (a later op may be doing it already: wait for that one)
            pt.running ??= this.data.truncate(id, size);
            try {
              await pt.running;
            } finally {
              if (this.pendingTruncates.get(id) === pt) this.pendingTruncates.delete(id);
            }
          }
        }
        // the last link is gone and the marker is in LevelDB: the data file goes now, the marker with a
        // later batch (start-up finishes whatever a crash interrupts)
        for (const b of batches) {
          for (const id of b.unlinks) {
            if (this.logWal) {
              this.walUnlinks.push({ index: b.index, id });
              continue;
            }
            await this.data.unlink(id);
            this.pendingMarkerDeletes.push(unlinkKey(id));
          }
        }
        this.resolveFlushWaiters();
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.writerRunning = false;
      if (!this.broken && this.pending.length > 0) this.kickWriter();
    }
  }

  protected resolveFlushWaiters(): void {
    if (this.flushWaiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.flushWaiters) {
      if (w.index <= this.writtenIndex) w.resolve();
      else still.push(w);
    }
    this.flushWaiters = still;
  }

  /**
   * Resolves once op `index` (and every op before it) is durable: its batch is written to LevelDB; for
   * an op not applied yet, once it is applied and written. The writer writes a batch only once the
   * data it relies on is synced (its gate) and every write is a sync write, so a written batch is a
   * durable one: the group commit is the writer's, which writes everything pending in one LevelDB
   * write while the previous one (or the data barrier) runs.
   */
  protected waitDurable(index: number): Promise<void> {
    if (index <= this.writtenIndex) return Promise.resolve();
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.flushWaiters.push({ index, resolve, reject });
      this.kickWriter();
    });
  }
}
