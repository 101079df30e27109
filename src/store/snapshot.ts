/**
 * Streamed store snapshots: catch up a lagging or new replica while the source keeps applying ops.
 *
 * `writeSnapshot(store, out)` is a *fuzzy* snapshot. It reads every replicated LevelDB record through
 * ONE LevelDB iterator, which reads an implicit LevelDB snapshot: the metadata is exactly the state
 * after some op index, and the state record (`00 01`, the first key) read through that same iterator
 * names it; that is the snapshot's index. Before the iterator is made, the store's `sync()` is awaited,
 * so the index is at least `store.appliedIndex` at the call. Right after the inode record of a regular
 * file whose data lives in a data file, the content of that data file follows (read in chunks of at
 * most 1 MiB, while the iterator stays open). The data files are read live, so their bytes may be
 * NEWER than the index (ops applied after it have written them): that is fine, because the receiver
 * replays every log entry after the index, and those entries rewrite (or cut, or remove) every byte
 * changed after it. Bytes can never be OLDER than the index: an op writes its data (pwrite) before its
 * metadata batch reaches LevelDB. The snapshot rests on that rule of block-store.ts; a mode that keeps
 * an op's data out of the data file after its batch is in LevelDB (data only in a log until a later
 * checkpoint) would need those log records sent as well. A data file removed meanwhile reads as empty (its remove is after the
 * index and is replayed); bytes beyond the file's recorded size (newer extensions, a deferred cut not
 * done yet) are not sent, and the receiver sets every data file to its recorded size.
 *
 * The data files of the records ahead of the one being sent are read concurrently (a read-ahead
 * window of READ_AHEAD_FILES files and READ_AHEAD_BYTES bytes), the frames still go out in key order.
 * Memory is bounded: the read-ahead window, one chunk being read plus what `out` buffers (the writer
 * awaits 'drain' whenever `out.write()` returns false). All-zero chunks are not sent (holes stay holes
 * on the receiver).
 *
 * Key prefixes (see codec.ts) and what a snapshot does with them:
 *   00 01 state, 00 02 format version, 01 inodes, 02 entries, 03 cookies, 06 inline data:
 *       replicated state, sent as is.
 *   00 03 clean-shutdown marker: node-local (absent while a store is open), never sent. The receiver
 *       writes its own: a restore that got this far wrote every data file the metadata names, at its
 *       recorded size, and nothing else, and makes all of it durable before the ready marker, which is
 *       exactly what a clean close guarantees. So the first open skips the reconcile of data files
 *       against metadata that an unclean stop needs (a stat of every data file: minutes at 100k files).
 *   00 04 data checkpoint and 05 data journal records: node-local. The data-file bytes a journal record
 *       holds are already in the data file the snapshot reads (journaled writes are pwritten during
 *       apply), so records up to the index are obsolete, and the receiver records its own checkpoint
 *       at the snapshot index after syncing the data files it wrote.
 *   04 pending unlink: node-local (its inode is already gone, the data file is not sent), never sent.
 *   Any other prefix is refused on both sides: a new key kind must be classified here first.
 *
 * Stream format (all integers big-endian):
 *   header   "HANFSSNP" (8 bytes), format version u32 (1), index u64
 *   frames   type u8, body length u32, body
 *              1 META   key length u32, key, value (the rest of the body)
 *              2 DATA   fileid u64, offset u64, bytes (the rest); only right after the inode record
 *                       of that file (or another DATA frame of it), never past its recorded size
 *              255 END  SHA-256 (32 bytes) of every byte of the stream before this frame
 *   Every frame's body length is checked against a cap (MAX_FRAME_BODY) before anything is allocated.
 *
 * `restoreSnapshot(dataDir, input)` builds a complete store in `dataDir + '.incoming'` (the store at
 * `dataDir` must not be open), verifies the checksum, syncs every file and directory, writes the ready
 * marker `dataDir + '.restore-ready'` (synced), and only then swaps it in: `dataDir` is renamed to
 * `dataDir + '.old'`, the incoming store renamed to `dataDir`, the parent directory synced, the old
 * store and the marker removed. A crash leaves the old store or no store at `dataDir`, never a
 * half-written one; `finishInterruptedRestore(dataDir)` (start-up calls it before `openStore`) then
 * finishes the swap if the marker is there, else removes the partial incoming store and puts the old
 * one back. On any error the incoming directory is removed and `dataDir` is untouched. The data files
 * are written in the background, RESTORE_PARALLEL_FILES at once, each file's operations in order, with
 * at most RESTORE_BUFFER_BYTES of DATA held; all of them are done (or, on error, closed and done)
 * before the restore goes on past the stream or rejects.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { FileType } from './types';
import { nextStoredByte } from './sparse';
import {
  FORMAT_VERSION,
  KEY_CLEAN,
  KEY_DATA_CKPT,
  KEY_STATE,
  KEY_VERSION,
  P_COOKIE,
  P_ENTRY,
  P_INLINE,
  P_REQUEST,
  P_REQUEST_ORDER,
  P_CUT,
  P_INODE,
  P_JOURNAL,
  P_UNLINK,
  decodeInode,
  decodeState,
  encodeIndex,
  readU64BE,
  writeU64BE,
} from './codec';
import { openMetaDb, type LevelBlockStore } from './block-store';
import { DataFiles } from './data-files';

export const SNAPSHOT_MAGIC = Buffer.from('HANFSSNP', 'ascii');
export const SNAPSHOT_VERSION = 1;
const HEADER_BYTES = 8 + 4 + 8;

export const FRAME_META = 1;
export const FRAME_DATA = 2;
export const FRAME_END = 255;
const FRAME_HDR = 5;

/** the largest chunk of a data file one DATA frame carries */
export const MAX_DATA_CHUNK = 1024 * 1024;
/** largest frame body accepted: a data chunk plus its 16-byte head, or a META record (the largest
 * value is an inline-data record, bounded by `inlineMax`; 16 MiB leaves room for any sane setting) */
export const MAX_FRAME_BODY = 16 * 1024 * 1024 + 16;

/** data files the writer reads ahead of the one it is sending, and the bytes it holds for them */
export const READ_AHEAD_FILES = 32;
export const READ_AHEAD_BYTES = 32 * 1024 * 1024;
/** data files the restore has in flight (open, written, cut, closed), and the DATA bytes it holds */
export const RESTORE_PARALLEL_FILES = 32;
export const RESTORE_BUFFER_BYTES = 32 * 1024 * 1024;

export interface SnapshotWriteOptions {
  /** bytes read from a data file at once (default and maximum 1 MiB) */
  chunkBytes?: number;
  /** data files read ahead at once (default READ_AHEAD_FILES; 1: only the next one) */
  readAheadFiles?: number;
  /** bytes held for records and data read ahead (default READ_AHEAD_BYTES); a data file larger
   * than a quarter of it is not read ahead but streamed chunk by chunk when its turn comes */
  readAheadBytes?: number;
}

/** What a restore did, and where its time went (logged by catch-up). */
export interface SnapshotRestoreResult {
  /** the snapshot's index: replay the log from index + 1 */
  index: number;
  /** data files written */
  dataFiles: number;
  /** receiving the stream, writing the metadata and writing and syncing the data files, ms */
  streamMs: number;
  /** making the rest of the incoming store durable (LevelDB's files, the directories), ms */
  syncMs: number;
  /** the ready marker and the swap, ms */
  swapMs: number;
}

export interface SnapshotRestoreOptions {
  /** frames with a larger body are refused (default and maximum MAX_FRAME_BODY) */
  maxFrameBody?: number;
  /** data files being written at once (default RESTORE_PARALLEL_FILES; 1: one after the other) */
  parallelFiles?: number;
  /** bytes of DATA frames held until their writes are done (default RESTORE_BUFFER_BYTES); past it
   * the stream is not read on until writes finish */
  bufferBytes?: number;
  /** refuse a snapshot of an index below this one as soon as its header is read (SnapshotTooOldError),
   * before a byte of it is stored: a lagging source's snapshot is of no use to a node that needs the
   * log after this index */
  minIndex?: number;
}

/** The stream's snapshot is older than SnapshotRestoreOptions.minIndex: nothing was stored. */
export class SnapshotTooOldError extends Error {
  constructor(
    readonly index: number,
    readonly minIndex: number,
  ) {
    super(`snapshot at index ${index} is older than the ${minIndex} needed`);
  }
}

/** How a snapshot treats a LevelDB key: 'send' (replicated state) or 'skip' (node-local). Throws for a
 * key it does not know, so that a new key kind cannot silently be dropped or copied. */
export function snapshotKeyClass(key: Uint8Array): 'send' | 'skip' {
  if (key.length === 0) throw new Error('empty LevelDB key');
  const p = key[0];
  if (p === 0x00) {
    const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    if (k.equals(KEY_STATE) || k.equals(KEY_VERSION)) return 'send';
    if (k.equals(KEY_CLEAN) || k.equals(KEY_DATA_CKPT)) return 'skip';
  } else if (p === P_INODE || p === P_ENTRY || p === P_COOKIE || p === P_INLINE || p === P_REQUEST || p === P_REQUEST_ORDER) {
    // (the duplicate-request records are replicated state: a retransmit answered the same anywhere)
    return 'send';
  } else if (p === P_UNLINK || p === P_JOURNAL || p === P_CUT) {
    // (cut records serve this node's crash recovery (redo) only)
    return 'skip';
  }
  throw new Error(`unknown LevelDB key ${Buffer.from(key).toString('hex')}: classify it in snapshot.ts`);
}

/** Write `buf` to `out`, waiting for 'drain' when its buffer is full. */
async function put(out: NodeJS.WritableStream | Writable, buf: Buffer): Promise<void> {
  if (out.write(buf)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: unknown): void => {
      out.removeListener('drain', onDrain);
      out.removeListener('error', onError);
      out.removeListener('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onError = (e: unknown): void => done(e ?? new Error('snapshot output failed'));
    const onClose = (): void => done(new Error('snapshot output closed'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

function frameHeader(type: number, bodyLen: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HDR);
  h[0] = type;
  h.writeUInt32BE(bodyLen, 1);
  return h;
}

const ZEROS = Buffer.alloc(MAX_DATA_CHUNK);

function allZero(b: Buffer): boolean {
  let off = 0;
  while (off < b.length) {
    const n = Math.min(ZEROS.length, b.length - off);
    if (!b.subarray(off, off + n).equals(ZEROS.subarray(0, n))) return false;
    off += n;
  }
  return true;
}

/** one record to send, with the data file that follows it (if any) */
interface Outgoing {
  /** the META frame */
  frame: Buffer;
  data?: { file: string; fileid: number; size: number };
  /** the data file's frames (header, bytes, header, bytes...), being read ahead; unset: the file is
   * streamed when its turn comes */
  frames?: Promise<Buffer[]>;
  /** bytes it holds of the read-ahead window */
  held: number;
}

/**
 * Stream a fuzzy snapshot of `store` to `out` (see the top of this file). Applies go on meanwhile.
 * Does not end `out`. Resolves with the snapshot's exact metadata index (the receiver replays the log
 * from index + 1), the bytes written and the stream's SHA-256 (hex, as in its END frame).
 *
 * Frames go out in LevelDB key order, each data file right after its inode record, exactly as if the
 * files were read one by one; but the records ahead of the one being sent are taken from the
 * iterator early and the data files among them read concurrently (at most `readAheadFiles` files
 * and `readAheadBytes` bytes), so that a store of many small files costs no round trip per file.
 */
export async function writeSnapshot(
  store: LevelBlockStore,
  out: NodeJS.WritableStream | Writable,
  opts: SnapshotWriteOptions = {},
): Promise<{ index: number; bytes: number; checksum: string }> {
  const chunkBytes = Math.max(4096, Math.min(MAX_DATA_CHUNK, opts.chunkBytes ?? MAX_DATA_CHUNK));
  const aheadFiles = Math.max(1, Math.floor(opts.readAheadFiles ?? READ_AHEAD_FILES));
  const aheadBytes = Math.max(0, opts.readAheadBytes ?? READ_AHEAD_BYTES);
  const aheadFileMax = Math.floor(aheadBytes / 4);
  const aheadRecords = 4 * aheadFiles + 64; // records held in all, with or without data
  const startIndex = store.appliedIndex;
  await store.sync(); // everything applied before the call is in LevelDB: the index is >= startIndex
  const hash = createHash('sha256');
  let bytes = 0;
  const emit = async (b: Buffer): Promise<void> => {
    hash.update(b);
    bytes += b.length;
    await put(out, b);
  };
  const it = store.metaDb.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const ahead: Outgoing[] = [];
  let aheadReading = 0; // files of `ahead` being read ahead
  let aheadHeld = 0; // bytes `ahead` holds
  let iterated = false;
  /** take records from the iterator while the window has room, starting the reads of their files */
  const fill = async (): Promise<void> => {
    while (!iterated && (ahead.length === 0 || (ahead.length < aheadRecords && aheadReading < aheadFiles && aheadHeld < aheadBytes))) {
      const kv = await it.next();
      if (kv === undefined) {
        iterated = true;
        break;
      }
      const [key, value] = kv;
      if (snapshotKeyClass(key) === 'skip') continue;
      const body = 4 + key.length + value.length;
      if (body > MAX_FRAME_BODY) throw new Error(`LevelDB record of ${body} bytes exceeds the snapshot frame cap`);
      const frame = Buffer.allocUnsafe(FRAME_HDR + body);
      frame[0] = FRAME_META;
      frame.writeUInt32BE(body, 1);
      frame.writeUInt32BE(key.length, 5);
      key.copy(frame, 9);
      value.copy(frame, 9 + key.length);
      const o: Outgoing = { frame, held: frame.length };
      if (key[0] === P_INODE) {
        const ino = decodeInode(value);
        if (ino.type === FileType.REG && !ino.inline && ino.size > 0) {
          o.data = { file: store.data.pathOf(ino.fileid), fileid: ino.fileid, size: ino.size };
          if (ino.size <= aheadFileMax) {
            const frames: Buffer[] = [];
            o.frames = dataFrames(o.data.file, o.data.fileid, o.data.size, chunkBytes, (h, c) => void frames.push(h, c)).then(() => frames);
            o.frames.catch(() => undefined); // (awaited when its turn comes, or at the end)
            o.held += ino.size;
            aheadReading++;
          }
        }
      }
      ahead.push(o);
      aheadHeld += o.held;
    }
  };
  let index = -1;
  try {
    for (;;) {
      await fill();
      const o = ahead[0]; // (stays in `ahead` until sent: the finally below waits for its read)
      if (!o) break;
      if (index < 0) {
        // the state record is the very first key (00 01 sorts before everything sent)
        const key = o.frame.subarray(9, 9 + o.frame.readUInt32BE(5));
        if (!key.equals(KEY_STATE)) throw new Error('store has no state record');
        index = decodeState(o.frame.subarray(9 + key.length)).applied;
        if (index < startIndex) throw new Error(`snapshot index ${index} below applied index ${startIndex} at the start`);
        const h = Buffer.allocUnsafe(HEADER_BYTES);
        SNAPSHOT_MAGIC.copy(h, 0);
        h.writeUInt32BE(SNAPSHOT_VERSION, 8);
        writeU64BE(h, 12, index);
        await emit(h);
      }
      await emit(o.frame);
      if (o.frames) {
        const frames = await o.frames;
        aheadReading--;
        for (const b of frames) await emit(b);
      } else if (o.data) {
        await dataFrames(o.data.file, o.data.fileid, o.data.size, chunkBytes, async (h, c) => {
          await emit(h);
          await emit(c);
        });
      }
      ahead.shift();
      aheadHeld -= o.held;
    }
  } finally {
    // no read of a data file goes on after the call (a failed send leaves reads ahead behind)
    await Promise.allSettled(ahead.map((o) => o.frames));
    await it.close();
  }
  if (index < 0) throw new Error('store has no state record');
  const digest = hash.digest();
  const end = Buffer.concat([frameHeader(FRAME_END, 32), digest]);
  bytes += end.length;
  await put(out, end);
  return { index, bytes, checksum: digest.toString('hex') };
}

/** The DATA frames of one data file up to `size`, header and bytes handed to `each` in order (a
 * missing file is empty; all-zero chunks are skipped). */
async function dataFrames(
  file: string,
  fileid: number,
  size: number,
  chunkBytes: number,
  each: (head: Buffer, chunk: Buffer) => Promise<void> | void,
): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed after the index
    throw err;
  }
  try {
    // (no fstat: a file shorter than `size`, cut meanwhile, ends in a hole or a short read below)
    const len = size;
    let off = 0;
    while (off < len) {
      // holes are not read (a file written at 1 TiB holds a few KiB): go to the next stored byte
      const next = nextStoredByte(fh.fd, off);
      if (next === undefined || next >= len) break;
      if (next > off) off = next - (next % 4096);
      const want = Math.min(chunkBytes, len - off);
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, off + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const chunk = buf.subarray(0, got);
      if (got > 0 && !allZero(chunk)) {
        const head = Buffer.allocUnsafe(FRAME_HDR + 16);
        head[0] = FRAME_DATA;
        head.writeUInt32BE(16 + got, 1);
        writeU64BE(head, 5, fileid);
        writeU64BE(head, 13, off);
        await each(head, chunk);
      }
      if (got < want) break; // cut meanwhile: the rest is newer than the index anyway
      off += got;
    }
  } finally {
    await fh.close();
  }
}

/** Exact reads from an async byte source, never buffering more than asked for plus one chunk. */
class ByteReader {
  private readonly it: AsyncIterator<unknown>;
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  constructor(src: AsyncIterable<unknown>) {
    this.it = src[Symbol.asyncIterator]();
  }
  /** exactly n bytes, or null at a clean end of the stream before any of them */
  async read(n: number): Promise<Buffer | null> {
    while (this.have < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const v = r.value;
      const b = Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : typeof v === 'string' ? Buffer.from(v) : null;
      if (!b) throw new Error('snapshot input yields a non-byte chunk');
      if (b.length === 0) continue;
      this.chunks.push(b);
      this.have += b.length;
    }
    if (this.have < n) {
      if (this.have === 0 && n > 0) return null;
      throw new Error(`snapshot stream truncated (${this.have} of ${n} bytes)`);
    }
    let out: Buffer;
    if (this.chunks[0].length >= n) {
      out = this.chunks[0].subarray(0, n);
      if (this.chunks[0].length === n) this.chunks.shift();
      else this.chunks[0] = this.chunks[0].subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0];
        const take = Math.min(c.length, n - off);
        c.copy(out, off, 0, take);
        off += take;
        if (take === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    this.have -= n;
    return out;
  }
  async atEnd(): Promise<boolean> {
    return (await this.read(1)) === null;
  }
  async close(): Promise<void> {
    await this.it.return?.().catch(() => undefined);
  }
}

async function fsyncPath(p: string): Promise<void> {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** how many fsyncs fsyncAll keeps in flight: concurrent fsyncs share ext4/XFS journal commits,
 * so a tree of many small files syncs in a fraction of the time one-after-the-other takes */
const FSYNC_PARALLEL = 32;

/** fsync every file and directory under `dir` (and `dir` itself): files first, then the
 * directories that name them, deepest first, `dir` last */
async function fsyncTree(dir: string): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
    dirs.push(d);
  };
  await walk(dir);
  await fsyncAll(files);
  await fsyncAll(dirs.slice(0, -1));
  await fsyncPath(dir);
}

/** fsync every path of `list`, FSYNC_PARALLEL at once */
async function fsyncAll(list: string[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < list.length) await fsyncPath(list[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_PARALLEL, list.length) }, worker));
}

const META_BATCH_OPS = 4096;
const META_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Restore a snapshot stream into a fresh store at `dataDir` (see the top of this file), replacing any
 * store there once the whole stream has arrived and its checksum matched. Resolves with the snapshot's
 * index: the log must be replayed into the store from index + 1.
 */
export async function restoreSnapshot(
  dataDir: string,
  input: AsyncIterable<Buffer> | Readable,
  opts: SnapshotRestoreOptions = {},
): Promise<SnapshotRestoreResult> {
  const started = Date.now();
  const maxBody = Math.min(MAX_FRAME_BODY, opts.maxFrameBody ?? MAX_FRAME_BODY);
  const maxFiles = Math.max(1, Math.floor(opts.parallelFiles ?? RESTORE_PARALLEL_FILES));
  const maxBuffered = Math.max(0, opts.bufferBytes ?? RESTORE_BUFFER_BYTES);
  const target = path.resolve(dataDir);
  const incoming = target + '.incoming';
  const old = target + '.old';
  await finishInterruptedRestore(target);
  await fsp.mkdir(incoming, { recursive: true });
  const reader = new ByteReader(input as AsyncIterable<unknown>);
  const db = openMetaDb(incoming);
  let dbOpen = false;
  let swapping = false;
  // Data files are written in the background, up to maxFiles at once, each file's operations
  // chained in order (open, its writes, cut, close). `file` is the one whose DATA frames may come
  // next, `writing` the files finished in the stream whose operations may still run. The first
  // failure of any of them is `failure`; the next wait of the stream loop throws it.
  let file: FileJob | undefined;
  let writing: FileJob[] = [];
  let buffered = 0; // bytes of DATA frames whose writes are not done
  let failure: { err: unknown } | undefined;
  let aborted = false;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const fail = (err: unknown): void => {
    failure ??= { err };
    poke();
  };
  const chain = (f: FileJob, op: () => Promise<void>): void => {
    f.tail = f.tail.then(() => {
      if (aborted) throw new Error('snapshot restore aborted');
      return op();
    });
    f.tail.catch(fail);
  };
  /** the file's last operation: close it (after the others, whether they failed or not) */
  const closeAfter = (f: FileJob): void => {
    f.done = f.tail
      .catch(() => undefined)
      .then(async () => {
        const fh = f.fh;
        f.fh = undefined;
        await fh?.close();
      })
      .catch(fail)
      .finally(() => {
        f.settled = true;
        poke();
      });
  };
  /** wait until the stream may go on holding `n` more DATA bytes (and, with `newFile`, one more file) */
  const room = async (n: number, newFile: boolean): Promise<void> => {
    for (;;) {
      if (failure) throw failure.err;
      writing = writing.filter((f) => !f.settled);
      if (newFile && writing.length >= maxFiles) await writing[0].done;
      else if (buffered > 0 && buffered + n > maxBuffered) await new Promise<void>((resolve) => (wake = resolve));
      else return;
    }
  };
  try {
    await db.open();
    dbOpen = true;
    const blocks = new DataFiles(incoming, 1);
    await fsp.mkdir(blocks.blocksDir, { recursive: true });
    const hash = createHash('sha256');
    const header = await reader.read(HEADER_BYTES);
    if (!header) throw new Error('empty snapshot stream');
    if (!header.subarray(0, 8).equals(SNAPSHOT_MAGIC)) throw new Error('not a hanfs snapshot stream (bad magic)');
    const version = header.readUInt32BE(8);
    if (version !== SNAPSHOT_VERSION) throw new Error(`snapshot stream format ${version} not supported (${SNAPSHOT_VERSION})`);
    const index = readU64BE(header, 12);
    if (opts.minIndex !== undefined && index < opts.minIndex) throw new SnapshotTooOldError(index, opts.minIndex);
    hash.update(header);

    let batch: { type: 'put'; key: Buffer; value: Buffer }[] = [];
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await db.batch(batch); // not synced one by one: LevelDB's files are fsynced at the end
      batch = [];
      batchBytes = 0;
    };
    const shards = new Map<string, Promise<unknown>>(); // shard directories made (or being made)
    const open = async (f: FileJob): Promise<fsp.FileHandle> => {
      const p = blocks.pathOf(f.fileid);
      const dir = path.dirname(p);
      let made = shards.get(dir);
      if (!made) {
        made = fsp.mkdir(dir, { recursive: true });
        made.catch(() => undefined);
        shards.set(dir, made);
      }
      await made;
      return fsp.open(p, 'w'); // fresh store: created empty (O_TRUNC is harmless)
    };
    const finishFile = (): void => {
      if (!file) return;
      const f = file;
      file = undefined;
      chain(f, async () => {
        f.fh ??= await open(f);
        // cut to (or extend sparsely up to) the recorded size; a file written
        // up to its size already has it
        if (f.end !== f.size) await f.fh.truncate(f.size);
        // durable now, while the stream goes on (up to maxFiles of these overlap and share journal
        // commits); the directories that name the files are synced at the end
        await f.fh.datasync();
      });
      closeAfter(f);
      writing.push(f);
    };
    let sawState = false;
    let stateApplied = -1;
    let version2 = false;
    let lastKey: Buffer | undefined;
    let dataFiles = 0;
    for (;;) {
      const fh = await reader.read(FRAME_HDR);
      if (!fh) throw new Error('snapshot stream truncated (no END frame)');
      const type = fh[0];
      const len = fh.readUInt32BE(1);
      if (type === FRAME_END) {
        if (len !== 32) throw new Error(`snapshot END frame of ${len} bytes`);
        const want = hash.digest();
        const got = await reader.read(32);
        if (!got) throw new Error('snapshot stream truncated (END frame)');
        if (!got.equals(want)) throw new Error('snapshot checksum mismatch: the stream is corrupt');
        if (!(await reader.atEnd())) throw new Error('bytes after the snapshot END frame');
        break;
      }
      if (len > maxBody) throw new Error(`snapshot frame of ${len} bytes exceeds the cap of ${maxBody}`);
      const body = await reader.read(len);
      if (!body) throw new Error('snapshot stream truncated (frame body)');
      hash.update(fh);
      hash.update(body);
      if (type === FRAME_META) {
        if (len < 4) throw new Error('snapshot META frame too short');
        const klen = body.readUInt32BE(0);
        if (klen < 1 || klen > len - 4) throw new Error('snapshot META frame with a bad key length');
        const key = Buffer.from(body.subarray(4, 4 + klen));
        const value = Buffer.from(body.subarray(4 + klen));
        if (snapshotKeyClass(key) !== 'send') throw new Error(`snapshot carries node-local key ${key.toString('hex')}`);
        if (lastKey && Buffer.compare(lastKey, key) >= 0) throw new Error('snapshot META keys out of order');
        lastKey = key;
        finishFile();
        if (key.equals(KEY_STATE)) {
          if (value.length !== 32 && value.length !== 44) throw new Error('snapshot state record malformed');
          stateApplied = decodeState(value).applied;
          sawState = true;
        } else if (key.equals(KEY_VERSION)) {
          if (value.length !== 4 || value.readUInt32BE(0) > FORMAT_VERSION) throw new Error('snapshot of an unsupported store format');
          version2 = true;
        } else if (key[0] === P_INODE) {
          if (key.length !== 9) throw new Error('snapshot inode key malformed');
          const ino = decodeInode(value);
          if (ino.fileid !== readU64BE(key, 1)) throw new Error('snapshot inode record under the wrong key');
          if (ino.type === FileType.REG && !ino.inline) {
            if (!Number.isSafeInteger(ino.size) || ino.size < 0) throw new Error('snapshot inode with a bad size');
            await room(0, true);
            file = { fileid: ino.fileid, size: ino.size, end: 0, tail: Promise.resolve(), settled: false };
            dataFiles++;
          }
        }
        batch.push({ type: 'put', key, value });
        batchBytes += key.length + value.length;
        if (batch.length >= META_BATCH_OPS || batchBytes >= META_BATCH_BYTES) await flush();
      } else if (type === FRAME_DATA) {
        if (len < 16) throw new Error('snapshot DATA frame too short');
        const fileid = readU64BE(body, 0);
        const offset = readU64BE(body, 8);
        const data = body.subarray(16);
        if (!file || file.fileid !== fileid) throw new Error(`snapshot DATA frame of file ${fileid} out of place`);
        if (offset + data.length > file.size) throw new Error(`snapshot DATA frame beyond the size of file ${fileid}`);
        await room(data.length, false);
        const f = file;
        f.end = Math.max(f.end, offset + data.length);
        buffered += data.length; // (`data` is never reused by the reader: it may be held)
        chain(f, async () => {
          try {
            f.fh ??= await open(f);
            let done = 0;
            while (done < data.length) done += (await f.fh.write(data, done, data.length - done, offset + done)).bytesWritten;
          } finally {
            buffered -= data.length;
            poke();
          }
        });
      } else {
        throw new Error(`snapshot frame of unknown type ${type}`);
      }
    }
    finishFile();
    await Promise.all(writing.map((f) => f.done)); // every data file written, cut and closed
    if (failure) throw failure.err;
    if (!sawState || !version2) throw new Error('snapshot without state or version record');
    if (stateApplied !== index) throw new Error(`snapshot header index ${index} differs from its state record (${stateApplied})`);
    // the data files hold every change up to the index (each synced before it was closed, the
    // directories naming them synced below, before the ready marker): that is the data checkpoint
    batch.push({ type: 'put', key: KEY_DATA_CKPT, value: encodeIndex(index) });
    batch.push({ type: 'put', key: KEY_CLEAN, value: Buffer.from([1]) }); // (see the top of this file)
    await flush();
    await db.close();
    dbOpen = false;
    const streamed = Date.now();
    // every data file was synced before it was closed; now the rest of the store (LevelDB's files)
    // and the directories that name the files, deepest first
    for (const e of await fsp.readdir(incoming, { withFileTypes: true })) {
      const p = path.join(incoming, e.name);
      if (p === blocks.blocksDir) continue;
      if (e.isDirectory()) await fsyncTree(p);
      else if (e.isFile()) await fsyncPath(p);
    }
    await fsyncAll([...shards.keys()]);
    await fsyncPath(blocks.blocksDir);
    await fsyncPath(incoming);
    const synced = Date.now();
    // swap in. The ready marker says the incoming store is complete and durable: from here on a
    // crash is finished forward by finishInterruptedRestore(), before it rolled back.
    await fsp.rm(old, { recursive: true, force: true });
    swapping = true; // from here on a failure is left to finishInterruptedRestore()
    await writeDurably(target + READY_SUFFIX, `${index}\n`);
    await swapIn(target);
    return { index, dataFiles, streamMs: streamed - started, syncMs: synced - streamed, swapMs: Date.now() - synced };
  } catch (err) {
    // a data file that failed first failed the restore (a later error may be its consequence)
    const first = failure ? failure.err : err;
    // stop the data files' operations not started yet, close every file, and wait for all of them
    aborted = true;
    if (file) {
      closeAfter(file);
      writing.push(file);
      file = undefined;
    }
    await Promise.all(writing.map((f) => f.done));
    if (dbOpen) await db.close().catch(() => undefined);
    if (!swapping) await fsp.rm(incoming, { recursive: true, force: true }).catch(() => undefined);
    throw first;
  } finally {
    await reader.close();
  }
}

const READY_SUFFIX = '.restore-ready';

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function writeDurably(file: string, text: string): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsyncPath(path.dirname(file));
}

/** The complete incoming store (ready marker written) takes `target`'s place; the old one goes. */
async function swapIn(target: string): Promise<void> {
  const parent = path.dirname(target);
  if (await exists(target + '.incoming')) {
    if (await exists(target)) {
      await fsp.rm(target + '.old', { recursive: true, force: true });
      await fsp.rename(target, target + '.old');
    }
    await fsp.rename(target + '.incoming', target);
    await fsyncPath(parent);
  } else if (!(await exists(target)) && (await exists(target + '.old'))) {
    // (cannot happen through restoreSnapshot; never drop the only store there is)
    await fsp.rename(target + '.old', target);
    await fsyncPath(parent);
  }
  await fsp.rm(target + '.old', { recursive: true, force: true });
  await fsp.rm(target + READY_SUFFIX, { force: true });
  await fsyncPath(parent);
}

/**
 * Finish or undo a restore a crash interrupted; call it before opening the store at start-up (a
 * crash between the two renames of the swap leaves no store at `dataDir`, and `openStore` would
 * create an empty one). With the ready marker the incoming store is complete and durable, so the
 * swap is finished ('completed'); without it the incoming store is partial and removed, and an old
 * store set aside is put back ('rolled-back'). 'none': nothing was left over.
 */
export async function finishInterruptedRestore(dataDir: string): Promise<'none' | 'completed' | 'rolled-back'> {
  const target = path.resolve(dataDir);
  const incoming = target + '.incoming';
  const old = target + '.old';
  if (await exists(target + READY_SUFFIX)) {
    await swapIn(target);
    return 'completed';
  }
  const hadIncoming = await exists(incoming);
  const hadOld = await exists(old);
  if (!hadIncoming && !hadOld) return 'none';
  await fsp.rm(incoming, { recursive: true, force: true });
  if (hadOld) {
    if (await exists(target)) await fsp.rm(old, { recursive: true, force: true });
    else await fsp.rename(old, target);
  }
  await fsyncPath(path.dirname(target));
  return 'rolled-back';
}

/** a data file being restored */
interface FileJob {
  fileid: number;
  /** its recorded size */
  size: number;
  /** the end of its furthest DATA frame */
  end: number;
  fh?: fsp.FileHandle;
  /** its last operation so far */
  tail: Promise<void>;
  /** set when its stream part is over: settles (never rejects) once it is closed */
  done?: Promise<void>;
  settled: boolean;
}
