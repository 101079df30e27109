/**
 * The open segment files of the Raft log and the records queued for the newest one: records are
 * queued by emit() and written to the OS by flush() (one writev of all of them, no copy); a full
 * segment is closed (fdatasync'ed) and the next one created (from a preallocated file when one is
 * ready). Tracks which files and whether the directory need an fsync; the group commit
 * (group-commit.ts) does those and deletes segments that compaction left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Segment, StorageIo, StorageLogger, StorageStats, noteFsync } from './log-storage-types';
import { EntryRecordParts, NO_SALT_SEED, SegmentHeaderRecord, encodeSegmentHeader, newSegmentSalt, saltSeed } from './segment-format';
import { segName } from './segment-files';
import { SegmentPreallocator } from './segment-preallocator';

/** the most buffers one writev takes (Linux IOV_MAX) */
const IOV_MAX = 1024;

export interface SegmentWriterOptions {
  dir: string;
  segmentBytes: number;
  io: StorageIo;
  log: StorageLogger;
  st: StorageStats;
  /** the header record of a new segment `seq`: the log's state when it is created */
  segmentHeader: (seq: number) => SegmentHeaderRecord;
  /** the storage is closed or failed */
  stopped: () => boolean;
}

export class SegmentWriter {
  /** oldest first; the last one is the current segment, appended to */
  segments: Segment[] = [];
  readonly prealloc: SegmentPreallocator;

  private readonly dir: string;
  private readonly segmentBytes: number;
  private readonly io: StorageIo;
  private readonly log: StorageLogger;
  private readonly st: StorageStats;
  private readonly segmentHeader: (seq: number) => SegmentHeaderRecord;

  /** records (or their parts) not yet written to the OS, in order */
  private pending: Uint8Array[] = [];
  private pendingLength = 0;
  /** bytes written to the OS since open */
  private writtenBytes = 0;
  private dirty = new Set<number>();
  private dirDirty = false;

  constructor(o: SegmentWriterOptions) {
    this.dir = o.dir;
    this.segmentBytes = o.segmentBytes;
    this.io = o.io;
    this.log = o.log;
    this.st = o.st;
    this.segmentHeader = o.segmentHeader;
    this.prealloc = new SegmentPreallocator(o.dir, o.segmentBytes, o.log, o.st, o.stopped);
  }

  get cur(): Segment {
    return this.segments[this.segments.length - 1];
  }

  /** the open segment `seq` */
  segment(seq: number): Segment {
    return this.segments[seq - this.segments[0].seq];
  }

  /** bytes queued, not yet written to the OS */
  get pendingBytes(): number {
    return this.pendingLength;
  }

  /** bytes written to the OS since open */
  get written(): number {
    return this.writtenBytes;
  }

  /** some segment or the directory has changes not yet fsynced */
  get hasUnsyncedFiles(): boolean {
    return this.dirDirty || this.dirty.size > 0;
  }

  /** The segment fds and whether the directory need an fsync for what is written so far; from now
   * on they count as clean. */
  takeUnsynced(): { fds: number[]; dir: boolean } {
    const fds = [...this.dirty];
    this.dirty.clear();
    const dir = this.dirDirty;
    this.dirDirty = false;
    return { fds, dir };
  }

  /** Queue a record of `length` bytes for the current segment (rolling first if it is full); returns
   * its position. `encode` builds it (whole, or as a head and the data written after it) with the
   * checksum seed of the segment it goes to, known only once the roll is decided. */
  emit(length: number, encode: (seed: number) => Buffer | EntryRecordParts): { seq: number; off: number } {
    let cur = this.cur;
    if (cur.size + this.pendingLength + length > this.segmentBytes && cur.size + this.pendingLength > 0) {
      this.roll();
      cur = this.cur;
    }
    const rec = encode(cur.seed);
    if (rec.length !== length) throw new Error('record length differs from the length emitted');
    const off = cur.size + this.pendingLength;
    if (Buffer.isBuffer(rec)) this.queue(rec, length);
    else {
      this.queue(rec.head, length);
      if (rec.data.length > 0) this.pending.push(rec.data);
    }
    return { seq: cur.seq, off };
  }

  /** queue `rec` (the first part of a record of `length` bytes) */
  private queue(rec: Buffer, length: number): void {
    this.pending.push(rec);
    this.pendingLength += length;
  }

  /** Records are written to the OS in one write per sync() (or per MiB), not one per call. */
  maybeFlush(): void {
    if (this.pendingLength >= 1 << 20) this.flush();
  }

  flush(): void {
    if (this.pendingLength === 0) return;
    const cur = this.cur;
    const bufs = this.pending;
    this.pending = [];
    const n = this.pendingLength;
    this.pendingLength = 0;
    // one writev of the records' parts as they are (no copy into one buffer), IOV_MAX at a time; a
    // short write goes on from where it stopped
    let pos = cur.size;
    for (let i = 0; i < bufs.length; ) {
      let group = bufs.slice(i, i + IOV_MAX);
      i += group.length;
      let want = 0;
      for (const b of group) want += b.length;
      while (want > 0) {
        const w = this.io.writevSync(cur.fd, group, pos);
        if (w <= 0) throw new Error(`writev wrote ${w} bytes`);
        pos += w;
        want -= w;
        if (want > 0) group = skipBytes(group, w);
      }
    }
    cur.size += n;
    this.writtenBytes += n;
    this.dirty.add(cur.fd);
    if (cur.size >= this.segmentBytes / 2 && this.prealloc.startedFor !== cur.seq) this.prealloc.start(cur.seq);
  }

  /** Close the current segment (fsynced now, so a later segment never survives a crash that an
   * earlier one's tail did not) and start the next. */
  roll(): void {
    this.flush();
    const old = this.cur;
    // a preallocated segment is cut where its records end: only the newest segment has a zero tail
    // (replay accepts zeros as the end of the log there and nowhere else). The fdatasync below makes
    // the new length durable before the next segment's name exists.
    if (fs.fstatSync(old.fd).size > old.size) fs.ftruncateSync(old.fd, old.size);
    const t0 = process.hrtime.bigint();
    this.io.fdatasyncSync(old.fd);
    noteFsync(this.st, Number(process.hrtime.bigint() - t0) / 1e9);
    this.dirty.delete(old.fd);
    this.createSegment(old.seq + 1);
  }

  /** Create segment `seq` (the current one from now on) with a salt of its own (also when it is a
   * preallocated file: the salt is chosen here, not when the file was zero-filled) and write its
   * header record to the OS. */
  createSegment(seq: number): void {
    const file = path.join(this.dir, segName(seq));
    const fd = this.prealloc.take(file) ?? fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const salt = newSegmentSalt();
    const seg: Segment = { seq, file, fd, size: 0, seed: saltSeed(salt) };
    this.segments.push(seg);
    this.dirDirty = true;
    const header = encodeSegmentHeader(this.segmentHeader(seq), salt);
    this.queue(header, header.length);
    this.flush();
  }

  /** The current segment is of version 1 (no salt: opened from a log written before segments had
   * one); appends to it would keep the old checksums. */
  get currentUnsalted(): boolean {
    return this.cur.seed === NO_SALT_SEED;
  }

  /** Delete the segments before `seq` (never the current one). */
  deleteSegmentsBefore(seq: number): void {
    while (this.segments.length > 1 && this.segments[0].seq < seq) {
      const s = this.segments.shift()!;
      try {
        fs.closeSync(s.fd);
        fs.unlinkSync(s.file);
        this.log.info({ segment: s.seq }, 'raft log segment deleted after compaction');
      } catch (e) {
        this.log.warn({ segment: s.seq, err: (e as Error).message }, 'could not delete compacted segment');
      }
    }
  }

  /** Close every segment's fd and forget the segments. */
  closeAll(): void {
    for (const s of this.segments) {
      try {
        fs.closeSync(s.fd);
      } catch {
        /* closed */
      }
    }
    this.segments = [];
  }
}

/** the buffers after their first `n` bytes */
function skipBytes(bufs: Uint8Array[], n: number): Uint8Array[] {
  let k = 0;
  while (k < bufs.length && n >= bufs[k].length) n -= bufs[k++].length;
  const rest = bufs.slice(k);
  if (rest.length > 0 && n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}
