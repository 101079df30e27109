/**
 * Durable Raft log storage: segment files of checksummed records, group-committed fsync, an in-memory
 * index (entry index -> segment, offset) and a bounded read cache. Design and failure model in
 * docs/raft-storage.md.
 *
 * Contract with the caller (the driver in raft-node.ts):
 *  - append(), setHardState(), compact() are visible to readers at once; their records are written
 *    to the OS by the next sync() (one write for all of them) and durable when it resolves. Persist (sync) before sending any message
 *    that depends on what was written.
 *  - sync() is group commit: one fsync covers everything written before it started; concurrent
 *    callers share it.
 *  - applySnapshot()/saveSnapshot() make the snapshot file durable before they resolve.
 *  - After any I/O error the storage is failed: every later call throws StorageFailedError and no
 *    pending sync() resolves. Nothing is acknowledged that was not persisted.
 *  - Calls other than sync() are made one at a time (the driver serializes them).
 *
 * The parts: log-storage-types.ts (errors, options, stats), log-dir-lock.ts (the LOCK file),
 * segment-recovery.ts (replay at open), segment-writer.ts (segment files, queued records, writev,
 * rolling) with segment-preallocator.ts, group-commit.ts (fdatasync and sync() waiters),
 * log-entry-cache.ts (read cache); on-disk format in segment-format.ts, index in segment-index.ts,
 * snapshot file in segment-snapshot-file.ts.
 */
import * as fs from 'node:fs';
import { GroupCommit } from './group-commit';
import { lockLogDir, unlockLogDir } from './log-dir-lock';
import { LogEntryCache } from './log-entry-cache';
import { LogStorageOptions, StorageFailedError, StorageIo, StorageLogger, StorageStats, noopLogger } from './log-storage-types';
import {
  BASE_RECORD_BYTES,
  BaseRecord,
  HARD_STATE_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  RecordType,
  SegmentHeaderRecord,
  decodeEntryHead,
  encodeBaseRecord,
  encodeEntryRecord,
  encodeHardStateRecord,
  parseRecord,
  ENTRY_FIXED_BYTES,
} from './segment-format';
import { SegmentIndex } from './segment-index';
import { recoverSegments } from './segment-recovery';
import { fsyncDir, readSnapshotFile, writeSnapshotFile } from './segment-snapshot-file';
import { SegmentWriter } from './segment-writer';
import { Entry, EntryType, HardState, LogReader, Snapshot } from './types';

export { LogCorruptionError, StorageFailedError } from './log-storage-types';
export type { LogStorageOptions, StorageIo, StorageLogger, StorageStats, SyncBatchInfo } from './log-storage-types';

export class LogStorage implements LogReader {
  private readonly dir: string;
  private readonly maxRecordBytes: number;
  private readonly log: StorageLogger;

  private index = new SegmentIndex();
  private base = { index: 0, term: 0 };
  private hs: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot | undefined;

  private readonly cache: LogEntryCache;
  private readonly writer: SegmentWriter;
  private readonly commit: GroupCommit;

  private failure: StorageFailedError | undefined;
  private closed = false;

  private st: StorageStats = {
    syncBatches: 0,
    syncedEntries: 0,
    syncCallers: 0,
    maxBatchEntries: 0,
    fsyncSecondsTotal: 0,
    maxFsyncSeconds: 0,
    segments: 0,
    indexBytes: 0,
    cacheBytes: 0,
    cacheEntries: 0,
    recoveredTornBytes: 0,
    preallocatedSegments: 0,
    nextSegmentReady: false,
  };

  private constructor(o: LogStorageOptions) {
    this.dir = o.dir;
    const segmentBytes = o.segmentBytes ?? 64 * 1024 * 1024;
    this.maxRecordBytes = o.maxRecordBytes ?? 64 * 1024 * 1024 + 1024;
    this.cache = new LogEntryCache(o.cacheBytes ?? 16 * 1024 * 1024);
    this.log = o.logger ?? noopLogger;
    const io: StorageIo = {
      fdatasync: o.io?.fdatasync ?? fs.fdatasync,
      fdatasyncSync: o.io?.fdatasyncSync ?? fs.fdatasyncSync,
      fsyncDir: o.io?.fsyncDir ?? fsyncDir,
      writevSync: o.io?.writevSync ?? ((fd, bufs, pos) => fs.writevSync(fd, bufs, pos)),
    };
    this.writer = new SegmentWriter({
      dir: o.dir,
      segmentBytes,
      io,
      log: this.log,
      st: this.st,
      segmentHeader: (seq) => this.segmentHeader(seq),
      stopped: () => this.closed || this.failure !== undefined,
    });
    this.commit = new GroupCommit(this.writer, io, o.dir, this.st, o.onSync, {
      failure: () => this.failure,
      fail: (e, op) => this.fail(e, op),
      firstLiveSegment: () => this.firstLiveSegment(),
    });
  }

  /** Open (or create) the storage in `dir`: verify the snapshot, replay the segments, cut a torn tail.
   * Throws LogCorruptionError / SnapshotCorruptError on damage that is not a torn tail. */
  static async open(o: LogStorageOptions): Promise<LogStorage> {
    const s = new LogStorage(o);
    await fs.promises.mkdir(o.dir, { recursive: true, mode: 0o700 });
    lockLogDir(o.dir);
    try {
      s.snap = readSnapshotFile(o.dir);
      await s.recover();
      s.reconcileSnapshot();
      s.writer.flush();
      await s.sync();
    } catch (e) {
      s.writer.closeAll();
      unlockLogDir(o.dir);
      throw e;
    }
    return s;
  }

  // ---------------------------------------------------------------- LogReader

  firstIndex(): number {
    this.check();
    return this.base.index + 1;
  }

  lastIndex(): number {
    this.check();
    return this.base.index + this.index.length;
  }

  term(i: number): number | undefined {
    this.check();
    if (i === this.base.index) return this.base.term;
    if (this.index.has(i)) return this.index.term(i);
    return undefined;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    this.check();
    if (lo <= this.base.index) throw new RangeError(`entries(${lo}): compacted (first index ${this.base.index + 1})`);
    if (hi > this.lastIndex() + 1) throw new RangeError(`entries(${lo}, ${hi}): beyond last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    let i = lo;
    while (i < hi) {
      const c = this.cache.get(i);
      let batch: Entry[];
      if (c) batch = [c];
      else batch = this.readRange(i, hi, maxBytes - size);
      for (const e of batch) {
        size += e.data.length + 16;
        if (out.length > 0 && size > maxBytes) return out;
        out.push(e);
        i++;
      }
    }
    return out;
  }

  snapshot(): Snapshot | undefined {
    this.check();
    return this.snap;
  }

  // ---------------------------------------------------------------- state

  hardState(): HardState {
    this.check();
    return { ...this.hs };
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  stats(): StorageStats {
    return {
      ...this.st,
      segments: this.writer.segments.length,
      indexBytes: this.index.memoryBytes(),
      cacheBytes: this.cache.bytes,
      cacheEntries: this.cache.entries,
      nextSegmentReady: this.writer.prealloc.ready,
    };
  }

  // ---------------------------------------------------------------- writes

  /** Append entries. Entries the log already has (same index and term) are skipped; the first one
   * that conflicts (same index, other term) replaces that entry and everything after it. Visible at
   * once, durable after the next sync(). Throws RangeError on a caller error (gap, compacted index,
   * overwriting a committed entry) without changing anything. The entries' data is not copied: it
   * is written to the segment from the caller's buffers at the next sync(), with the checksum taken
   * now, so it must not change after the call (entries are immutable everywhere: the transport
   * decodes them into their own buffers, proposals are freshly encoded). */
  append(entries: Entry[]): void {
    this.check();
    if (entries.length === 0) return;
    const first = entries[0].index;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      if (e.index !== first + k || !Number.isSafeInteger(e.index)) throw new RangeError('append: entries not contiguous');
      if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange && e.type !== EntryType.Noop) throw new RangeError('append: bad entry type');
      if (!Number.isSafeInteger(e.term) || e.term < 0) throw new RangeError('append: bad term');
      if (e.data.length + ENTRY_FIXED_BYTES > this.maxRecordBytes) throw new RangeError('append: entry too large');
    }
    const last = this.lastIndex();
    if (first <= this.base.index) throw new RangeError(`append: index ${first} is compacted (base ${this.base.index})`);
    if (first > last + 1) throw new RangeError(`append: gap (append ${first}, last ${last})`);
    // Entries already present with the same term are skipped, never rewritten: rewriting would open
    // a window in which a crash cuts the log back below entries this node already acknowledged.
    let skip = 0;
    while (skip < entries.length && first + skip <= last && this.index.term(first + skip) === entries[skip].term) skip++;
    if (skip === entries.length) return;
    const from = first + skip;
    if (from <= last) {
      if (from <= this.hs.commit) throw new RangeError(`append: would overwrite committed entry ${from} (commit ${this.hs.commit})`);
      this.index.truncateFrom(from);
      for (let i = from; i <= last; i++) this.cache.delete(i);
    }
    try {
      for (let k = skip; k < entries.length; k++) {
        const e = entries[k];
        const prevTerm = this.term(e.index - 1)!;
        const payload = ENTRY_FIXED_BYTES + e.data.length;
        const pos = this.writer.emit(RECORD_HEADER_BYTES + payload, (seed) => encodeEntryRecord(e.index, e.term, prevTerm, e.type, e.data, seed));
        this.index.push(e.index, e.term, pos.seq, pos.off, payload);
        this.cache.put(e.index, e);
        this.commit.entriesWritten++;
      }
      this.writer.maybeFlush();
    } catch (e) {
      throw this.fail(e, 'append');
    }
  }

  /** Record the hard state; durable after the next sync(). */
  setHardState(hs: HardState): void {
    this.check();
    if (hs.term === this.hs.term && hs.vote === this.hs.vote && hs.commit === this.hs.commit) return;
    if (hs.term < this.hs.term) throw new RangeError(`setHardState: term goes back ${this.hs.term} -> ${hs.term}`);
    for (const v of [hs.term, hs.vote, hs.commit]) if (!Number.isSafeInteger(v) || v < 0) throw new RangeError('setHardState: bad value');
    try {
      this.writer.emit(HARD_STATE_RECORD_BYTES, (seed) => encodeHardStateRecord(hs, seed));
      this.writer.maybeFlush();
    } catch (e) {
      throw this.fail(e, 'setHardState');
    }
    this.hs = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /** Drop entries <= index (their state is in a snapshot). Old segments are deleted once the
   * compaction record is durable. */
  compact(index: number): void {
    this.check();
    if (index <= this.base.index) return;
    if (index > this.lastIndex()) throw new RangeError(`compact(${index}) beyond last index ${this.lastIndex()}`);
    const t = this.term(index)!;
    this.writeBase({ index, term: t, reset: false });
  }

  /** Persist a snapshot of the local state machine (does not change the log; compact() after). */
  async saveSnapshot(s: Snapshot): Promise<void> {
    this.check();
    if (this.snap && s.meta.index <= this.snap.meta.index) return;
    try {
      await writeSnapshotFile(this.dir, s);
    } catch (e) {
      throw this.fail(e, 'saveSnapshot');
    }
    this.snap = s;
    this.log.info({ index: s.meta.index, term: s.meta.term, bytes: s.data.length }, 'raft snapshot saved');
  }

  /** Install a snapshot received from the leader: the snapshot file is durable when this resolves,
   * and the log is reset to start after it (the reset record is durable after the next sync()). */
  async applySnapshot(s: Snapshot): Promise<void> {
    this.check();
    if (s.meta.index < this.base.index) throw new RangeError(`applySnapshot(${s.meta.index}) older than base ${this.base.index}`);
    try {
      await writeSnapshotFile(this.dir, s);
    } catch (e) {
      throw this.fail(e, 'applySnapshot');
    }
    this.check();
    this.snap = s;
    this.writeBase({ index: s.meta.index, term: s.meta.term, reset: true });
    this.log.info({ index: s.meta.index, term: s.meta.term, bytes: s.data.length }, 'raft snapshot installed');
  }

  /** Group commit: resolves when everything written before the call is on stable storage. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StorageFailedError('storage closed'));
    if (this.writer.pendingBytes > 0) {
      try {
        this.writer.flush();
      } catch (e) {
        return Promise.reject(this.fail(e, 'write'));
      }
    }
    return this.commit.wait();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.failure) {
      try {
        await this.sync();
      } catch {
        /* failed: close anyway */
      }
    }
    while (this.commit.syncing) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    if (this.writer.prealloc.running) await this.writer.prealloc.close();
    this.writer.closeAll();
    unlockLogDir(this.dir);
  }

  // ---------------------------------------------------------------- internals: writing

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new StorageFailedError('storage closed');
  }

  private fail(e: unknown, op: string): StorageFailedError {
    if (this.failure) return this.failure;
    const err = new StorageFailedError(`raft log storage failed in ${op}: ${(e as Error)?.message ?? e}`, e);
    this.failure = err;
    this.writer.prealloc.cancel();
    this.log.error({ err: (e as Error)?.message, op, dir: this.dir }, 'raft log storage failed; node must stop');
    this.commit.rejectAll(err);
    return err;
  }

  private writeBase(r: BaseRecord): void {
    try {
      this.writer.emit(BASE_RECORD_BYTES, (seed) => encodeBaseRecord(r, seed));
      this.writer.maybeFlush();
    } catch (e) {
      throw this.fail(e, 'base');
    }
    if (r.reset || r.index >= this.base.index + this.index.length) {
      this.index.reset(r.index + 1);
      this.cache.clear();
    } else {
      for (let i = this.base.index + 1; i <= r.index; i++) this.cache.delete(i);
      this.index.dropThrough(r.index);
    }
    this.base = { index: r.index, term: r.term };
  }

  /** the header record of a new segment: the log's state now */
  private segmentHeader(seq: number): SegmentHeaderRecord {
    const last = this.base.index + this.index.length;
    return {
      seq,
      lastIndex: last,
      lastTerm: this.term(last)!,
      baseIndex: this.base.index,
      baseTerm: this.base.term,
      hardState: this.hs,
    };
  }

  /** seq of the segment holding entry firstIndex (or the current segment when the log is empty) */
  private firstLiveSegment(): number {
    if (this.index.length > 0) return this.index.seg(this.base.index + 1);
    return this.writer.cur.seq;
  }

  // ---------------------------------------------------------------- internals: reading

  /** Read entries from i on (at least one, fewer than hi) with one pread: a run of entries that lie
   * back to back in one segment (small gaps such as hard-state records are read over), about
   * `budget` bytes. Every record's checksum is verified; data is copied out of the read buffer. */
  private readRange(i: number, hi: number, budget: number): Entry[] {
    const idx = this.index;
    const seq = idx.seg(i);
    const seg = this.writer.segment(seq);
    const start = idx.off(i);
    let end = start + RECORD_HEADER_BYTES + idx.len(i);
    const limit = Math.min(8 << 20, Math.max(budget, 0) + 64 * 1024);
    let j = i + 1;
    while (j < hi && idx.seg(j) === seq && !this.cache.has(j)) {
      const o = idx.off(j);
      if (o < end || o - end > 4096) break;
      const e2 = o + RECORD_HEADER_BYTES + idx.len(j);
      if (e2 - start > limit) break;
      end = e2;
      j++;
    }
    const buf = Buffer.allocUnsafe(end - start);
    try {
      if (this.writer.pendingBytes > 0) this.writer.flush();
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(seg.fd, buf, got, buf.length - got, start + got);
        if (n === 0) throw new Error(`short read of entries ${i}..${j - 1} in segment ${seq}`);
        got += n;
      }
    } catch (e) {
      throw this.fail(e, 'read');
    }
    const out: Entry[] = [];
    const single = j === i + 1;
    for (let k = i; k < j; k++) {
      const off = idx.off(k) - start;
      const r = parseRecord(buf, off, off + RECORD_HEADER_BYTES + idx.len(k), this.maxRecordBytes, seg.seed);
      if (!r.ok || r.type !== RecordType.Entry) throw this.fail(new Error(`entry ${k} unreadable (${r.ok ? 'type' : r.reason}) in segment ${seq} at ${idx.off(k)}`), 'read');
      const h = decodeEntryHead(buf, r.payloadStart, r.payloadEnd);
      if (h.index !== k || h.term !== idx.term(k)) throw this.fail(new Error(`entry ${k} mismatch on disk`), 'read');
      const view = buf.subarray(r.payloadStart + ENTRY_FIXED_BYTES, r.payloadEnd);
      const e: Entry = { index: k, term: h.term, type: h.type, data: single ? view : new Uint8Array(view) };
      this.cache.put(k, e);
      out.push(e);
    }
    return out;
  }

  // ---------------------------------------------------------------- internals: open

  private async recover(): Promise<void> {
    const r = await recoverSegments({
      dir: this.dir,
      maxRecordBytes: this.maxRecordBytes,
      log: this.log,
      st: this.st,
      index: this.index,
      segments: this.writer.segments,
    });
    this.base = r.base;
    this.hs = r.hardState;
    if (this.writer.segments.length === 0) this.writer.createSegment(1);
    else if (this.writer.currentUnsalted) {
      // the newest segment is of version 1 (no salt): new records go to a new, salted segment, so
      // that a torn record's data can no longer pass for a valid record from the first restart on
      this.writer.roll();
      this.log.info({ segment: this.writer.cur.seq }, 'raft log: new segment in the salted format (version 2) after a version 1 segment');
    }
    this.log.info(
      { dir: this.dir, firstIndex: this.base.index + 1, lastIndex: this.base.index + this.index.length, segments: this.writer.segments.length, hardState: this.hs },
      'raft log opened',
    );
  }

  private reconcileSnapshot(): void {
    const s = this.snap;
    if (!s || s.meta.index <= this.base.index) return;
    // the snapshot file is newer than the log's base (crash between the snapshot rename and the
    // base record): keep the entries after it if the log contains the snapshot's last entry
    const keep = this.term(s.meta.index) === s.meta.term;
    this.log.warn({ snapshotIndex: s.meta.index, keep }, 'raft log: catching the log base up to the snapshot file');
    this.writeBase({ index: s.meta.index, term: s.meta.term, reset: !keep });
  }
}
