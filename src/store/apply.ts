/**
 * apply(): ops in index order under the mutex, each in a transaction (tx.ts) run by ops/, then
 * committed (group-commit.ts); duplicate-request records; monotonic times; the data side of writes
 * and size changes (the OpEnv the ops use).
 */
import { Nfs3Status as S, type OpResult, type StoreOp, type Time, type Wcc } from './types';
import {
  encodeIndex,
  encodeJournalWrite,
  cutKey,
  decodeOpResult,
  encodeOpResult,
  requestKey as requestRecordKey,
  requestOrderKey,
  type Inode,
} from './codec';
import { Tx, EMPTY } from './tx';
import { wellFormed, isObj } from './op-validation';
import { execOp, OpError, type OpEnv } from './ops';
import { RECENT_RESULTS, MAX_REQUEST_KEY_BYTES, NO_EFFECT } from './store-core';
import { StoreRecovery } from './recovery';

export abstract class StoreApply extends StoreRecovery {
  /** what the ops (ops/) see of the store */
  protected readonly opEnv: OpEnv = {
    opts: this.opts,
    logWal: this.logWal,
    data: this.data,
    stats: this.stats,
    resize: (tx, ino, size) => this.resize(tx, ino, size),
    settleTruncate: (id, size) => this.settleTruncate(id, size),
    writeDataFile: (tx, fileid, offset, data, cutTo, wcc, journaled) => this.writeDataFile(tx, fileid, offset, data, cutTo, wcc, journaled),
  };

  /**
   * Apply op `index`. Without logWal it must be the next index, and the op is durable when the
   * promise resolves (except UNSTABLE writes). With logWal any index above the last queued one is
   * taken (the gaps are log entries that never reach the store) and the promise resolves once the op
   * is applied in memory, whatever `op.stable`: the log holds it durably.
   *
   * `requestKey` (1..64 bytes): if a result is recorded for it, that result is returned and nothing
   * but the applied index changes; else the op's result is recorded with it, in the op's batch.
   */
  apply(index: number, op: StoreOp, requestKey?: Uint8Array): Promise<OpResult> {
    try {
      this.check();
    } catch (e) {
      return Promise.reject(e);
    }
    if (!Number.isSafeInteger(index) || index <= 0) return Promise.reject(new Error(`bad op index ${index}`));
    if (requestKey !== undefined && (!(requestKey instanceof Uint8Array) || requestKey.length === 0 || requestKey.length > MAX_REQUEST_KEY_BYTES)) {
      return Promise.reject(new Error(`request key must be 1..${MAX_REQUEST_KEY_BYTES} bytes`));
    }
    if (index <= this.lastQueued) {
      const p = this.inflight.get(index);
      if (p) return p;
      // replay of an op already applied: a no-op with the status it had (OK when no longer known)
      const slot = index % RECENT_RESULTS;
      const r: OpResult = { status: this.recentIndex[slot] === index ? (this.recentStatus[slot] as S) : S.OK };
      if (this.logWal) return Promise.resolve(r);
      return this.waitDurable(index).then(() => r);
    }
    if (this.redoPending) {
      return Promise.reject(new Error(`ops ${this.durable + 1}..${this.state.applied} must be redone (redo, finishRedo) before apply`));
    }
    if (!this.logWal && index !== this.lastQueued + 1) {
      return Promise.reject(new Error(`op index ${index} out of order (last queued ${this.lastQueued})`));
    }
    this.lastQueued = index;
    const key = requestKey === undefined ? undefined : Buffer.from(requestKey);
    const p = this.mutex
      .run(() => this.applyLocked(index, op, key))
      .then(async ({ result, durable }) => {
        const slot = index % RECENT_RESULTS;
        this.recentIndex[slot] = index;
        this.recentStatus[slot] = result.status;
        if (durable && !this.logWal) await this.waitDurable(index);
        return result;
      })
      .finally(() => this.inflight.delete(index));
    this.inflight.set(index, p);
    return p;
  }

  /** The recorded result of the op that carried `requestKey` (as applied in memory), if still kept. */
  lookupRequest(requestKey: Uint8Array): OpResult | undefined {
    if (!(requestKey instanceof Uint8Array)) return undefined;
    const r = this.drc.get(Buffer.from(requestKey.buffer, requestKey.byteOffset, requestKey.byteLength).toString('hex'));
    return r ? decodeOpResult(r.value) : undefined;
  }

  /** duplicate-request records kept now (a gauge) */
  get requestRecords(): number {
    return this.drc.size;
  }

  protected async applyLocked(index: number, op: StoreOp, requestKey?: Buffer): Promise<{ result: OpResult; durable: boolean }> {
    this.check();
    const tx = new Tx(this, this.state);
    tx.st.applied = index;
    let result: OpResult;
    let durable = true;
    const hex = requestKey?.toString('hex');
    const recorded = hex === undefined ? undefined : this.drc.get(hex);
    if (recorded) {
      // a duplicate: the recorded answer, and nothing changes but the applied index
      // (without logWal it resolves once durable, like the op it repeats: that may still be pending)
      result = decodeOpResult(recorded.value);
      this.stats.requestHits++;
    } else {
      try {
        if (!wellFormed(op)) throw new OpError(S.INVAL);
        op = this.monotonicTime(tx, op);
        result = await execOp(this.opEnv, tx, index, op);
        if (op.kind === 'write' && op.stable === 0) durable = false;
      } catch (e) {
        if (!(e instanceof OpError)) {
          this.fail(e);
          throw e;
        }
        result = { status: e.status };
        if (e.wcc) result.wcc = e.wcc;
        if (e.wcc2) result.wcc2 = e.wcc2;
        durable = false;
      }
      if (requestKey && hex !== undefined) this.recordRequest(tx, index, requestKey, hex, result);
    }
    if (this.logWal && isObj(op) && op.kind === 'write' && (recorded || result.status !== S.OK)) {
      // a WRITE that changed nothing: redo() must not write its bytes (it reads the log's op)
      const key = cutKey(index, NO_EFFECT);
      tx.alwaysOps.push({ type: 'put', key, value: EMPTY });
      this.cutRecords.push({ index, key });
    }
    try {
      await this.commit(tx, !recorded && result.status === S.OK);
    } catch (e) {
      this.fail(e);
      throw e;
    }
    return { result, durable };
  }

  /**
   * Time stamps never go backwards across the store: an op whose time is below the highest op time
   * applied so far (kept in the state record) is applied with that highest time instead. The same log
   * gives the same stamps on every replica. Times a SETATTR gives explicitly are the client's and
   * are not touched (only 'server' times come from the op's time).
   */
  protected monotonicTime(tx: Tx, op: StoreOp): StoreOp {
    const t = op.time;
    const st = tx.st;
    if (t.sec > st.maxTimeS || (t.sec === st.maxTimeS && t.nsec >= st.maxTimeN)) {
      st.maxTimeS = t.sec;
      st.maxTimeN = t.nsec;
      return op;
    }
    return { ...op, time: { sec: st.maxTimeS, nsec: st.maxTimeN } };
  }

  /** Record `result` for `key` in this op's batch (whatever its status), evicting the records of the
   * oldest op indexes beyond drcEntries: deterministic, the same on every replica. */
  protected recordRequest(tx: Tx, index: number, key: Buffer, hex: string, result: OpResult): void {
    const enc = encodeOpResult(result);
    tx.alwaysOps.push({ type: 'put', key: requestRecordKey(key), value: Buffer.concat([encodeIndex(index), enc]) });
    tx.alwaysOps.push({ type: 'put', key: requestOrderKey(index), value: key });
    this.drc.set(hex, { index, value: enc });
    this.drcOrder.push({ index, hex });
    while (this.drc.size > this.opts.drcEntries && this.drcHead < this.drcOrder.length) {
      const old = this.drcOrder[this.drcHead++];
      const cur = this.drc.get(old.hex);
      if (cur && cur.index === old.index) this.drc.delete(old.hex);
      tx.alwaysOps.push({ type: 'del', key: requestRecordKey(Buffer.from(old.hex, 'hex')) });
      tx.alwaysOps.push({ type: 'del', key: requestOrderKey(old.index) });
    }
    if (this.drcHead > 1024 && this.drcHead * 2 > this.drcOrder.length) {
      this.drcOrder = this.drcOrder.slice(this.drcHead);
      this.drcHead = 0;
    }
  }

  /** Before a write or a size change of `id` (to `size`): finish a pending truncation that it could
   * otherwise expose or undo. A smaller size just supersedes it. */
  protected async settleTruncate(id: number, size = Infinity): Promise<void> {
    const pt = this.pendingTruncates.get(id);
    if (!pt) return;
    if (size < pt.size) {
      // superseded by a smaller cut; one already running finishes first (a cut stats, then
      // truncates: running late beside the next one, it could cut bytes written after that)
      if (pt.running) await pt.running;
      return;
    }
    // (it stays pending while it runs: the writer waits for it before a checkpoint may cover its op,
    // which drops the op's cut record)
    pt.running ??= this.data.truncate(id, pt.size);
    try {
      await pt.running;
    } finally {
      if (this.pendingTruncates.get(id) === pt) this.pendingTruncates.delete(id);
    }
  }

  /** The data side of a size change of `ino` (as it was before this op) to `size`. */
  protected async resize(tx: Tx, ino: Inode, size: number): Promise<void> {
    if (ino.inline) {
      const cur = tx.inlineData(ino.fileid);
      if (size < cur.length) tx.setInline(ino.fileid, Buffer.from(cur.subarray(0, size)));
      // logWal: redo() replays this file's earlier inline writes into its data file if it has left
      // inline by the end of the redo range; the cut must be replayed after them (its record)
      if (this.logWal && size < ino.size) tx.cutRecord(ino.fileid, size);
      return;
    }
    await this.settleTruncate(ino.fileid, size);
    if (size < ino.size) tx.truncate(ino.fileid, size);
  }

  /**
   * Write to a file's data file. Small writes are journaled: their bytes go into this op's batch,
   * whose sync makes them durable, so they need no data-file fdatasync before it (one flush, not two).
   * A full local disk answers NOSPC (the bytes a partial write left beyond `cutTo` are cut).
   */
  protected async writeDataFile(
    tx: Tx,
    fileid: number,
    offset: number,
    data: Uint8Array,
    cutTo: number,
    wcc: Wcc,
    journaled = data.length <= this.opts.journalMaxWrite,
  ): Promise<void> {
    const j = journaled ? undefined : this.journaledAt.get(fileid);
    if (j !== undefined && j > this.ckptSynced) {
      // Replay must never redo this file's older journaled changes (writes, and cuts: they are
      // journaled too) over this write: sync every data file, so that the batch of this op is written
      // with a checkpoint covering every op before it (checkpointOps), which makes replay skip those
      // records. Only a durably recorded checkpoint counts (a background one may be synced and not
      // recorded yet, or recorded without sync).
      await this.data.syncDirty(true);
    }
    try {
      await this.data.write(fileid, offset, data, journaled ? 0 : tx.st.nextFileId, journaled);
      this.walBytes += data.length;
    } catch (err) {
      // logWal: a local fault is not an answer (a replica with space would answer OK): the store fails
      if (this.logWal) throw err;
      // The local disk is full (or over quota): a local-resource error, answered as NOSPC without
      // failing the store. The op then records nothing but the applied index. Not deterministic
      // across replicas (a cluster replica would have to stop applying instead); fine for a single
      // node. EIO etc. stay fatal.
      const code = (err as NodeJS.ErrnoException)?.code;
      if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
      await this.data.truncate(fileid, cutTo);
      throw new OpError(S.NOSPC, wcc);
    }
    if (journaled) {
      tx.journal(fileid, encodeJournalWrite(fileid, offset, data));
      this.stats.journalWrites++;
    }
  }
}
