/**
 * Start-up and recovery: a fresh store, pending unlinks, journal replay, data files left by a crash,
 * request records; with logWal, redo() of the ops after the durable checkpoint.
 */
import * as path from 'node:path';
import { promises as fsp } from 'node:fs';
import { FileType, type StoreOp, type StoreOptions } from './types';
import {
  FORMAT_VERSION,
  KEY_CLEAN,
  KEY_DATA_CKPT,
  KEY_STATE,
  KEY_VERSION,
  JOURNAL_WRITE,
  P_JOURNAL,
  P_UNLINK,
  P_REQUEST_ORDER,
  decodeJournal,
  encodeIndex,
  journalRangeAfter,
  decodeState,
  encodeInode,
  encodeState,
  inodeKey,
  readU64BE,
  cutKey,
  cutRangeOf,
  cutRangeUpTo,
  requestKey as requestRecordKey,
  type Inode,
} from './codec';
import { type BatchOp } from './tx';
import { isObj } from './op-validation';
import { ROOT_ID, NO_EFFECT, writeBatch } from './store-core';
import { WalCheckpoints } from './wal-checkpoints';

export abstract class StoreRecovery extends WalCheckpoints {
  protected async init(options: StoreOptions): Promise<void> {
    await this.data.init();
    const ver = await this.db.get(KEY_VERSION);
    if (!ver) {
      const root: Inode = {
        type: FileType.DIR,
        mode: (options.rootMode ?? 0o755) & 0o7777,
        nlink: 2,
        uid: options.rootUid ?? 0,
        gid: options.rootGid ?? 0,
        size: 0,
        rdev0: 0,
        rdev1: 0,
        fileid: ROOT_ID,
        generation: 0,
        atimeS: 0,
        atimeN: 0,
        mtimeS: 0,
        mtimeN: 0,
        ctimeS: 0,
        ctimeN: 0,
        parent: ROOT_ID,
        nextCookie: 3,
        entries: 0,
        verifier: '',
        target: '',
        inline: false,
      };
      const v = Buffer.alloc(4);
      v.writeUInt32BE(FORMAT_VERSION);
      this.state = { applied: 0, nextFileId: ROOT_ID + 1, fileCount: 1, usedBytes: 0, maxTimeS: 0, maxTimeN: 0 };
      await this.db.batch(
        [
          { type: 'put', key: KEY_VERSION, value: v },
          { type: 'put', key: inodeKey(ROOT_ID), value: encodeInode(root) },
          { type: 'put', key: KEY_STATE, value: encodeState(this.state) },
          { type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(0) },
        ],
        { sync: true },
      );
      this.stats.dbSyncs++;
    } else {
      const version = ver.readUInt32BE(0);
      if (version > FORMAT_VERSION) {
        throw new Error(`store format ${version} in ${this.dataDir} is newer than this hanfs supports (${FORMAT_VERSION})`);
      }
      const st = await this.db.get(KEY_STATE);
      if (!st) throw new Error(`store in ${this.dataDir} has no state record`);
      this.state = decodeState(st);
    }
    this.lastQueued = this.state.applied;
    this.writtenIndex = this.state.applied;
    const clean = (await this.db.get(KEY_CLEAN)) !== undefined;
    this.recovery.cleanShutdown = clean;
    await this.finishPendingUnlinks();
    let replayed = 0;
    if (this.logWal) {
      // journal records can only be left by a run without logWal, which made every batch durable
      // (its start-up replay moves the checkpoint to the applied index, as it would have)
      const j = await this.db.keys({ gte: Buffer.from([P_JOURNAL]), lt: Buffer.from([P_JOURNAL + 1]), limit: 1 }).all();
      if (j.length > 0) replayed = await this.replayJournal();
      const ckv = await this.db.get(KEY_DATA_CKPT);
      this.durable = ckv && ckv.length === 8 ? Math.min(readU64BE(ckv, 0), this.state.applied) : 0;
      this.redoPending = this.durable < this.state.applied;
      this.redoLast = this.durable;
      for await (const [k] of this.db.iterator({ ...cutRangeUpTo(this.state.applied), values: false })) {
        this.cutRecords.push({ index: readU64BE(k, 1), key: k });
      }
    } else {
      replayed = await this.replayJournal();
    }
    await this.loadRequestRecords();
    this.ckptUpto = this.ckptRecorded = this.ckptSynced = this.state.applied;
    if (!clean || replayed > 0) await this.reconcileDataFiles();
    await this.db.del(KEY_CLEAN, { sync: true });
    this.stats.dbSyncs++;
  }

  protected async finishPendingUnlinks(): Promise<void> {
    const lo = Buffer.from([P_UNLINK]);
    const hi = Buffer.from([P_UNLINK + 1]);
    const keys = await this.db.keys({ gte: lo, lt: hi }).all();
    if (keys.length === 0) return;
    for (const k of keys) await this.data.unlink(readU64BE(k, 1));
    await this.data.syncDirty();
    await this.db.batch(
      keys.map((key) => ({ type: 'del' as const, key })),
      { sync: true },
    );
    this.stats.dbSyncs++;
    this.recovery.pendingUnlinksFinished = keys.length;
  }

  /**
   * Redo the journal records after the data checkpoint, in op order, into the data files (writes and
   * cuts of files that still exist; a removed file's records are skipped), sync the data files, then
   * drop every journal record and move the checkpoint to the applied index. Records up to the
   * checkpoint are obsolete: the data files held them durably when it was recorded, and any later
   * change to the same bytes is either replayed here or was never recorded (an unsynced, unrecorded
   * UNSTABLE write, which the new write verifier tells clients to resend).
   */
  protected async replayJournal(): Promise<number> {
    const ckv = await this.db.get(KEY_DATA_CKPT);
    const ckpt = ckv && ckv.length === 8 ? readU64BE(ckv, 0) : 0;
    let replayed = 0;
    for await (const [, v] of this.db.iterator(journalRangeAfter(ckpt))) {
      const r = decodeJournal(v);
      const ino = this.inodeSync(r.fileid);
      if (!ino || ino.type !== FileType.REG || ino.inline) continue;
      if (r.kind === JOURNAL_WRITE) await this.data.write(r.fileid, r.offset, r.data);
      else await this.data.truncate(r.fileid, r.size);
      replayed++;
    }
    const keys = await this.db.keys({ gte: Buffer.from([P_JOURNAL]), lt: Buffer.from([P_JOURNAL + 1]) }).all();
    if (keys.length === 0 && ckpt === this.state.applied) return replayed;
    await this.data.syncDirty(true);
    const ops: BatchOp[] = keys.map((key) => ({ type: 'del' as const, key }));
    ops.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(this.state.applied) });
    await this.db.batch(ops, { sync: true });
    this.stats.dbSyncs++;
    this.recovery.journalReplayed = replayed;
    return replayed;
  }

  /** Load the duplicate-request records (at most drcEntries of them were kept, plus any a smaller
   * drcEntries now evicts with the next op). */
  protected async loadRequestRecords(): Promise<void> {
    const lo = Buffer.from([P_REQUEST_ORDER]);
    const hi = Buffer.from([P_REQUEST_ORDER + 1]);
    for await (const [k, key] of this.db.iterator({ gte: lo, lt: hi })) {
      const index = readU64BE(k, 1);
      const v = await this.db.get(requestRecordKey(key));
      if (!v || v.length < 8) continue;
      const hex = key.toString('hex');
      this.drc.set(hex, { index, value: v.subarray(8) });
      this.drcOrder.push({ index, hex });
    }
  }

  /** After an unclean stop: drop data files of no live regular file, cut data beyond recorded size. */
  protected async reconcileDataFiles(): Promise<void> {
    const shards = await fsp.readdir(this.data.blocksDir).catch(() => [] as string[]);
    for (const shard of shards) {
      const dir = path.join(this.data.blocksDir, shard);
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const file = path.join(dir, name);
        const id = /^[0-9a-f]{16}$/.test(name) ? parseInt(name, 16) : NaN;
        const ino = this.inodeSync(id);
        if (!ino && id >= this.state.nextFileId && this.data.pathOf(id) === file) {
          // pre-created ahead of use: keep it if empty (nothing can have written to it)
          const st = await fsp.stat(file);
          if (st.size === 0) continue;
        }
        // (an inline file's data file can only be left over: an interrupted move out of inline)
        if (!ino || ino.type !== FileType.REG || ino.inline || this.data.pathOf(id) !== file) {
          await fsp.rm(file, { force: true, recursive: true });
          this.recovery.orphanDataFilesRemoved++;
          continue;
        }
        const st = await fsp.stat(file);
        if (st.size > ino.size) {
          const fh = await fsp.open(file, 'r+');
          try {
            await fh.truncate(ino.size);
            await fh.datasync();
          } finally {
            await fh.close();
          }
          this.recovery.dataFilesTruncated++;
        }
      }
    }
  }

  /**
   * Redo the data effects of op `index`, one of (durableIndex, appliedIndex] after a crash, in index
   * order, before anything is applied. LevelDB holds the metadata of these ops (appliedIndex is what
   * it holds), but after a power loss the data files may lack their writes and cuts: a write's bytes
   * are written again if the file exists now as a regular file with a data file (not inline); a cut
   * (a shrinking size change by SETATTR or CREATE) is done again from the op's cut record. Writes and
   * cuts replayed in op order over the data at the checkpoint give the data at appliedIndex (a byte
   * is last set by the last op of the range that wrote or cut it, or kept from the checkpoint).
   * Extensions need nothing: the bytes past a data file's end read as zeros.
   *
   * This relies on file ids never being reused: a file id is `nextFileId++` of the state record (it
   * only grows, and is never handed out again after a REMOVE), so an op naming file F in the log
   * can only mean the file F that exists now, or one that is gone for good.
   */
  async redo(index: number, op: StoreOp): Promise<void> {
    this.check();
    if (!this.redoPending) throw new Error('nothing to redo');
    if (!Number.isSafeInteger(index) || index <= this.redoLast || index > this.state.applied) {
      throw new Error(`redo of op ${index} out of order (last ${this.redoLast}, applied ${this.state.applied})`);
    }
    this.redoLast = index;
    try {
      if (isObj(op) && op.kind === 'write') {
        if (op.data instanceof Uint8Array && op.data.length > 0 && Number.isSafeInteger(op.offset) && op.offset >= 0) {
          const ino = this.inodeSync(op.file);
          const noEffect = this.db.getSync(cutKey(index, NO_EFFECT)) !== undefined;
          if (ino && ino.type === FileType.REG && !ino.inline && !noEffect) {
            await this.data.write(op.file, op.offset, op.data);
            this.redoTouched.add(op.file);
          }
        }
      } else if (isObj(op) && (op.kind === 'setattr' || op.kind === 'create')) {
        for await (const [, v] of this.db.iterator(cutRangeOf(index))) {
          const r = decodeJournal(v);
          if (r.kind === JOURNAL_WRITE) continue;
          const ino = this.inodeSync(r.fileid);
          if (!ino || ino.type !== FileType.REG || ino.inline) continue;
          await this.data.truncate(r.fileid, r.size);
          this.redoTouched.add(r.fileid);
        }
      }
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /**
   * End of redo: cut every data file redo touched to its recorded size, sync the data files and
   * record a durable checkpoint at appliedIndex; apply() runs from now on. (Without a redo pending,
   * nothing to do.)
   */
  async finishRedo(): Promise<number> {
    this.check();
    if (!this.redoPending) return this.durable;
    const upto = this.state.applied;
    try {
      for (const id of this.redoTouched) {
        const ino = this.inodeSync(id);
        if (ino && ino.type === FileType.REG && !ino.inline) await this.data.truncate(id, ino.size);
      }
      await this.data.syncDirty(true);
      await this.flushMemtable();
      const ops: BatchOp[] = this.cutRecords.map((c) => ({ type: 'del' as const, key: c.key }));
      ops.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(upto) });
      await writeBatch(this.db, ops, true);
      this.stats.dbSyncs++;
      this.stats.checkpoints++;
    } catch (e) {
      this.fail(e);
      throw e;
    }
    this.cutRecords = [];
    this.redoTouched.clear();
    this.redoPending = false;
    this.durable = upto;
    this.onDurable?.(upto);
    return upto;
  }
}
