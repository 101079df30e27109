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
 */
import { Level } from 'level';
import * as path from 'node:path';
import { promises as fsp } from 'node:fs';
import {
  FileType,
  Nfs3Status as S,
  type Attr,
  type BlockStore,
  type Cred,
  type DirEntry,
  type FileId,
  type FsStat,
  type OpResult,
  type ReaddirResult,
  type SetAttrs,
  type StoreOp,
  type StoreOptions,
  type Time,
  type Wcc,
  type WccAttr,
} from './types';
import {
  FORMAT_VERSION,
  KEY_CLEAN,
  KEY_DATA_CKPT,
  KEY_STATE,
  JOURNAL_WRITE,
  P_JOURNAL,
  decodeJournal,
  encodeIndex,
  encodeJournalTruncate,
  encodeJournalWrite,
  journalKey,
  journalRangeAfter,
  inlineKey,
  KEY_VERSION,
  P_UNLINK,
  cookieKey,
  decodeCookieValue,
  decodeEntry,
  decodeInode,
  decodeState,
  encodeCookieValue,
  encodeEntry,
  encodeInode,
  encodeState,
  entryKey,
  inodeKey,
  readU64BE,
  unlinkKey,
  type Inode,
  type StoreState,
  P_CUT,
  P_REQUEST_ORDER,
  cutKey,
  cutRangeOf,
  cutRangeUpTo,
  decodeOpResult,
  encodeOpResult,
  requestKey as requestRecordKey,
  requestOrderKey,
} from './codec';
import { BLOCK, DataFiles } from './data-files';
import { S_ISGID, S_ISUID, W, X, inGroup, mayAccess, mayWriteData, stickyAllows } from './permissions';

export { BLOCK } from './data-files';

export type MetaDb = Level<Buffer, Buffer>;
type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export const ROOT_ID = 1;
export const MAX_NAME_BYTES = 255;
export const MAX_SYMLINK_BYTES = 4096;
const DEFAULT_MAX_FILE_SIZE = 2 ** 43;
const MAX_DIR_DEPTH = 100_000;
const RECENT_RESULTS = 4096;
/** WRITEs up to this size are journaled (bytes in the LevelDB batch): one sync, not two */
export const DEFAULT_JOURNAL_MAX_WRITE = 64 * 1024;
/** regular files keep their data inline (in LevelDB, no data file) while it fits in this many bytes */
export const DEFAULT_INLINE_MAX = 16 * 1024;
/** a checkpoint (sync of journaled data files) starts after this many journaled bytes ... */
const CKPT_BYTES = 16 * 1024 * 1024;
/** ... or once this many data files have journaled changes ... */
const CKPT_FILES = 2048;
/** ... or this long after the first journaled write since the last one */
const CKPT_INTERVAL_MS = 1000;
/** logWal checkpoints: defaults of checkpointIntervalMs, checkpointBytes, checkpointOps */
const WAL_CKPT_INTERVAL_MS = 1000;
const WAL_CKPT_BYTES = 64 * 1024 * 1024;
const WAL_CKPT_OPS = 16384;
/** duplicate-request records kept by default; a request key is at most this long */
export const DEFAULT_DRC_ENTRIES = 8192;
export const MAX_REQUEST_KEY_BYTES = 64;
/** an empty key range (no record lives under 0xf0): compacting it flushes the memtable, nothing else */
const FLUSH_RANGE_START = Buffer.from([0xf0]);
const FLUSH_RANGE_END = Buffer.from([0xf0, 0x00]);
/** cut record number marking a WRITE op that failed or was a duplicate: redo() skips its bytes */
const NO_EFFECT = 0xff;

export interface StoreStats {
  /** fdatasync of data files */
  readonly dataFsyncs: number;
  /** fsync of data directories (new data files) */
  readonly dirFsyncs: number;
  /** LevelDB writes with sync:true */
  dbSyncs: number;
  /** group commits: the writer's LevelDB sync writes of pending batches (each covers every op in it) */
  groupCommits: number;
  /** LevelDB point reads plus iterator entries read */
  dbReads: number;
  /** WRITEs made durable by the journal (their bytes in the LevelDB batch) */
  journalWrites: number;
  /** checkpoints: journaled data synced to the data files, their journal records dropped */
  checkpoints: number;
  /** WRITEs whose bytes stayed inline (small files) */
  inlineWrites: number;
  /** logWal: LevelDB memtable flushes (each checkpoint makes the unsynced batches durable with one) */
  memtableFlushes: number;
}

export interface RecoveryReport {
  cleanShutdown: boolean;
  pendingUnlinksFinished: number;
  orphanDataFilesRemoved: number;
  dataFilesTruncated: number;
  /** journal records (writes, cuts) replayed into the data files at start-up */
  journalReplayed: number;
}

export function metaPath(dataDir: string): string {
  return path.join(dataDir, 'meta');
}

export function openMetaDb(dataDir: string): MetaDb {
  return new Level<Buffer, Buffer>(metaPath(dataDir), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
}

export function usedOf(i: Inode): number {
  return i.type === FileType.REG ? Math.ceil(i.size / BLOCK) * BLOCK : 0;
}

export function toAttr(i: Inode): Attr {
  return {
    type: i.type,
    mode: i.mode,
    nlink: i.nlink,
    uid: i.uid,
    gid: i.gid,
    size: i.size,
    used: usedOf(i),
    rdev: [i.rdev0, i.rdev1],
    fileid: i.fileid,
    generation: i.generation,
    atime: { sec: i.atimeS, nsec: i.atimeN },
    mtime: { sec: i.mtimeS, nsec: i.mtimeN },
    ctime: { sec: i.ctimeS, nsec: i.ctimeN },
  };
}

function wccAttr(i: Inode): WccAttr {
  return { size: i.size, mtime: { sec: i.mtimeS, nsec: i.mtimeN }, ctime: { sec: i.ctimeS, nsec: i.ctimeN } };
}

/** getattrMany reads cache misses with one range scan when there are at least SCAN_MIN of them and
 * their file ids span at most SCAN_SPAN times as many ids */
const SCAN_MIN = 8;
const SCAN_SPAN = 2;

/** Cookie verifier of a directory: constant for its life (cookies are never reused), different for a
 * different directory or generation. */
export function cookieVerf(i: Inode): string {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(i.fileid >>> 0, 0);
  b.writeUInt32BE((i.generation + 1) >>> 0, 4);
  return b.toString('hex');
}

const isU32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
const validTime = (t: Time | undefined): boolean =>
  !!t && isU32(t.sec) && isU32(t.nsec) && t.nsec < 1_000_000_000;

const isId = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n);
const isObj = (o: unknown): boolean => typeof o === 'object' && o !== null;

/** Shape check of an op (bad input is an INVAL result, never an exception inside apply). */
export function wellFormed(op: StoreOp): boolean {
  if (!isObj(op) || !validTime(op.time) || !isObj(op.cred)) return false;
  const { cred } = op;
  if (!isU32(cred.uid) || !isU32(cred.gid) || !Array.isArray(cred.gids) || cred.gids.length > 64 || !cred.gids.every(isU32)) return false;
  switch (op.kind) {
    case 'setattr':
      return isId(op.file) && isObj(op.attrs) && (op.guardCtime === undefined || validTime(op.guardCtime));
    case 'create':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && ['unchecked', 'guarded', 'exclusive'].includes(op.mode);
    case 'mkdir':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs);
    case 'symlink':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && typeof op.target === 'string';
    case 'mknod':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && (op.rdev === undefined || Array.isArray(op.rdev));
    case 'remove':
    case 'rmdir':
      return isId(op.dir) && typeof op.name === 'string';
    case 'rename':
      return isId(op.fromDir) && isId(op.toDir) && typeof op.fromName === 'string' && typeof op.toName === 'string';
    case 'link':
      return isId(op.file) && isId(op.dir) && typeof op.name === 'string';
    case 'write':
      return isId(op.file) && op.data instanceof Uint8Array && [0, 1, 2].includes(op.stable);
    default:
      return false;
  }
}

const entryOverlayKey = (dir: number, name: string): string => `${dir}/${name}`;

/** RFC 1813 name rules: NAMETOOLONG above 255 bytes; INVAL for "", ".", "..", "/" or NUL. */
export function checkName(name: string): S {
  if (typeof name !== 'string' || name.length === 0) return S.INVAL;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return S.NAMETOOLONG;
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return S.INVAL;
  return S.OK;
}

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }
}

/**
 * Bounded cache with LRU-like eviction in two generations: hits in the old generation move to the
 * young one; when the young one is full it becomes the old one and the old one is dropped. O(1) per
 * operation with no Map iteration (evicting from the front of one big Map by delete + keys().next()
 * degrades with the deleted slots V8 leaves at the front).
 */
class LruCache<V> {
  private young = new Map<number, V>();
  private old = new Map<number, V>();
  private readonly half: number;
  constructor(max: number) {
    this.half = Math.max(1, Math.floor(max / 2));
  }
  get(k: number): V | undefined {
    const v = this.young.get(k);
    if (v !== undefined) return v;
    const o = this.old.get(k);
    if (o !== undefined) {
      this.old.delete(k);
      this.put(k, o);
    }
    return o;
  }
  /** get without refreshing: a scan (READDIRPLUS of a big directory) does not reorder the cache */
  peek(k: number): V | undefined {
    return this.young.get(k) ?? this.old.get(k);
  }
  set(k: number, v: V): void {
    this.old.delete(k);
    this.put(k, v);
  }
  private put(k: number, v: V): void {
    this.young.set(k, v);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }
  delete(k: number): void {
    this.young.delete(k);
    this.old.delete(k);
  }
  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/** Errors that end an op early with a status. */
class OpError {
  constructor(
    readonly status: S,
    readonly wcc?: Wcc,
    readonly wcc2?: Wcc,
  ) {}
}

/** One op's view and changes: read-your-writes, each inode read at most once. */
class Tx {
  readonly ops: BatchOp[] = [];
  private readonly seen = new Map<number, Inode | null>();
  readonly changed = new Map<number, Inode | null>();
  /** data files to unlink once the batch is written */
  readonly unlinks: number[] = [];
  /** data files to cut [fileid, size] once the batch is written */
  readonly truncates: [number, number][] = [];
  /** directory entry changes, for the overlay */
  readonly entryChanges: [string, Buffer | null][] = [];
  /** cookie index changes, for the overlay READDIR merges */
  readonly cookieChanges: [number, number, CookieEntry | null][] = [];
  /** inline data changes (null: deleted), for the overlay */
  readonly inlineChanges = new Map<number, Buffer | null>();
  /** journal records this op put in its batch, and the files they change */
  readonly journalKeys: Buffer[] = [];
  readonly journalFiles = new Set<number>();
  journalBytes = 0;
  /** ops that go into the batch whether or not the op succeeded (duplicate-request records) */
  readonly alwaysOps: BatchOp[] = [];
  /** logWal: cut record keys this op put in its batch */
  readonly cutKeys: Buffer[] = [];
  readonly st: StoreState;
  constructor(
    private readonly store: LevelBlockStore,
    st: StoreState,
  ) {
    this.st = { ...st };
  }
  async inode(id: number): Promise<Inode | undefined> {
    const c = this.changed.get(id);
    if (c !== undefined) return c ?? undefined;
    const s = this.seen.get(id);
    if (s !== undefined) return s ?? undefined;
    const i = this.store.inodeSync(id);
    this.seen.set(id, i ?? null);
    return i;
  }
  /** a mutable copy of an inode already read, the same copy for every call in this op */
  edit(i: Inode): Inode {
    const c = this.changed.get(i.fileid);
    if (c) return c;
    const copy = { ...i };
    this.changed.set(i.fileid, copy);
    return copy;
  }
  create(i: Inode): void {
    this.changed.set(i.fileid, i);
  }
  /** inline data of an inline file as this op sees it (empty: none yet) */
  inlineData(id: number): Buffer {
    const c = this.inlineChanges.get(id);
    if (c !== undefined) return c ?? EMPTY;
    return this.store.getInlineSync(id) ?? EMPTY;
  }
  setInline(id: number, data: Buffer | null): void {
    this.inlineChanges.set(id, data);
  }
  /** a data journal record of this op (key: its index and position in the op) */
  journal(fileid: number, value: Buffer): void {
    const key = journalKey(this.st.applied, this.journalKeys.length);
    this.journalKeys.push(key);
    this.journalFiles.add(fileid);
    this.journalBytes += value.length;
    this.ops.push({ type: 'put', key, value });
  }
  /** cut `fileid`'s data file to `size` once the batch is written; journaled to keep replay order */
  truncate(fileid: number, size: number): void {
    this.truncates.push([fileid, size]);
    if (this.store.logWal) {
      // no journal: a cut record for redo(), which replays writes from the log and cuts from these
      const key = cutKey(this.st.applied, this.cutKeys.length);
      this.cutKeys.push(key);
      this.ops.push({ type: 'put', key, value: encodeJournalTruncate(fileid, size) });
      return;
    }
    this.journal(fileid, encodeJournalTruncate(fileid, size));
  }
  delete(i: Inode): void {
    this.changed.set(i.fileid, null);
    this.st.fileCount--;
    this.st.usedBytes -= usedOf(i);
    if (i.type === FileType.REG) {
      if (i.inline) this.inlineChanges.set(i.fileid, null);
      // (an inline file may still have an empty data file, created ahead of use)
      this.ops.push({ type: 'put', key: unlinkKey(i.fileid), value: Buffer.alloc(0) });
      this.unlinks.push(i.fileid);
    }
  }
  async entry(dir: number, name: string): Promise<{ fileid: number; cookie: number } | undefined> {
    const v = this.store.getEntrySync(dir, name);
    return v ? decodeEntry(v) : undefined;
  }
  addEntry(dir: Inode, name: string, fileid: number): void {
    const cookie = dir.nextCookie++;
    dir.entries++;
    const value = encodeEntry(fileid, cookie);
    this.entryChanges.push([entryOverlayKey(dir.fileid, name), value]);
    this.cookieChanges.push([dir.fileid, cookie, { fileid, name }]);
    this.ops.push({ type: 'put', key: entryKey(dir.fileid, name), value });
    this.ops.push({ type: 'put', key: cookieKey(dir.fileid, cookie), value: encodeCookieValue(fileid, name) });
  }
  removeEntry(dir: Inode, name: string, cookie: number): void {
    dir.entries--;
    this.entryChanges.push([entryOverlayKey(dir.fileid, name), null]);
    this.cookieChanges.push([dir.fileid, cookie, null]);
    this.ops.push({ type: 'del', key: entryKey(dir.fileid, name) });
    this.ops.push({ type: 'del', key: cookieKey(dir.fileid, cookie) });
  }
}

const EMPTY = Buffer.alloc(0);

interface CookieEntry {
  fileid: number;
  name: string;
}

interface PendingBatch {
  ops: BatchOp[];
  index: number;
  /** the batch may be written once data.syncedGateSeq >= gateSeq: the data changes of this op (and
   * all before it) that the journal does not cover are durable */
  gateSeq: number;
  /** every data change of this op (and all before it) is in the data files once data.syncedSeq >= fullSeq */
  fullSeq: number;
  /** journal records in this batch, and their bytes */
  journalKeys: Buffer[];
  journalBytes: number;
  /** data files to unlink once this batch (holding their unlink markers) is written */
  unlinks: number[];
  /** data files to cut [fileid, size] once this batch (recording the smaller size) is written */
  truncates: [number, number][];
  /** logWal: cut records in this batch (dropped by the checkpoint that covers it) */
  cutKeys: Buffer[];
  /** overlay slots this batch set: [inode ids, entry keys], with the sequence number they got */
  inodeKeys: [number, number][];
  inlineKeys: [number, number][];
  entryKeys: [string, number][];
  cookieKeys: [number, number, number][];
}

/** pending batches beyond which apply() waits for the writer (bounds memory) */
const MAX_PENDING_BATCHES = 4096;
/** journaled bytes in pending batches beyond which apply() waits for the writer */
const MAX_PENDING_JOURNAL_BYTES = 32 * 1024 * 1024;
/** most bytes of journal records in one LevelDB write */
const MAX_WRITE_JOURNAL_BYTES = 8 * 1024 * 1024;

/** Written batches not yet covered by a checkpoint: the last op index of a writer pass, its fullSeq,
 * and the journal records of the pass (dropped once a checkpoint covers them). */
interface Uncheckpointed {
  index: number;
  fullSeq: number;
  keys: Buffer[];
  bytes: number;
}

interface Waiter {
  index: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class LevelBlockStore implements BlockStore {
  readonly rootFileId = ROOT_ID;
  private state!: StoreState;
  private lastQueued = 0;
  private readonly mutex = new Mutex();
  private readonly cache: LruCache<Inode>;
  private readonly inflight = new Map<number, Promise<OpResult>>();
  /** status of the last RECENT_RESULTS ops, for replays (a ring: no garbage, no old-space growth) */
  private readonly recentIndex = new Float64Array(RECENT_RESULTS);
  private readonly recentStatus = new Int32Array(RECENT_RESULTS);
  private pendingMarkerDeletes: Buffer[] = [];
  /** shrinking truncations recorded in metadata but not yet done to the data file: the writer does them
   * once their batch is written (durable), so a crash never leaves data cut under a recorded larger size */
  private readonly pendingTruncates = new Map<number, { size: number; index: number; running?: Promise<void> }>();
  /** metadata batches applied in memory, not yet written to LevelDB (oldest first) */
  private pending: PendingBatch[] = [];
  /** newest inode records / directory entries of pending batches (null: deleted); reads look here
   * first. (Cookie records and unlink markers are never point-read: READDIR flushes first.) */
  private readonly inodeOverlay = new Map<number, { v: Buffer | null; seq: number }>();
  private readonly inlineOverlay = new Map<number, { v: Buffer | null; seq: number }>();
  private readonly entryOverlay = new Map<string, { v: Buffer | null; seq: number }>();
  /** dir -> cookie -> pending cookie record (null: deleted) */
  private readonly cookieOverlay = new Map<number, Map<number, { e: CookieEntry | null; seq: number }>>();
  private overlaySeq = 0;
  private writerRunning = false;
  private writerDone: Promise<void> = Promise.resolve();
  /** highest op index whose batch is in LevelDB: every write is a sync write, so the durable one */
  private writtenIndex = 0;
  private flushWaiters: Waiter[] = [];
  /** journal state: written passes not covered by a checkpoint (oldest first), their bytes */
  private unckpt: Uncheckpointed[] = [];
  private unckptBytes = 0;
  /** the data files hold every change of ops up to here (recorded: ckptRecorded, of which durably,
   * by a sync:true write: ckptSynced; only the latter may be relied on, see writeDataFile) */
  private ckptUpto = 0;
  private ckptRecorded = 0;
  private ckptSynced = 0;
  /** the writer should write the checkpoint with a sync write even alone (checkpoint()) */
  private ckptSyncWanted = false;
  /** fileid -> last op index that journaled a change (write or cut) of it, while above ckptSynced */
  private readonly journaledAt = new Map<number, number>();
  /** obsolete journal records, to drop with the next write */
  private ckptDrops: Buffer[] = [];
  private pendingJournalBytes = 0;
  private ckptRunning = false;
  private ckptTimer: NodeJS.Timeout | undefined = undefined;
  private closed = false;
  private broken: unknown = undefined;
  /** logWal: the last durable checkpoint: data and metadata of every op up to here survive a power loss */
  private durable = 0;
  /** logWal: cut records written or pending, oldest first, with their op index */
  private cutRecords: { index: number; key: Buffer }[] = [];
  /** logWal: work since the last checkpoint started, and its timer */
  private walBytes = 0;
  private walOps = 0;
  private walTimer: NodeJS.Timeout | undefined = undefined;
  private walChain: Promise<unknown> = Promise.resolve();
  private walRunning = false;
  /** logWal recovery: ops in (durable, applied] must be redone before anything is applied */
  private redoPending = false;
  private redoLast = 0;
  private readonly redoTouched = new Set<number>();
  /** duplicate-request records: key (hex) -> the op index and encoded OpResult; eviction order */
  private readonly drc = new Map<string, { index: number; value: Buffer }>();
  private drcOrder: { index: number; hex: string }[] = [];
  private drcHead = 0;
  /** "the log is the write-ahead log" (see StoreOptions.logWal) */
  readonly logWal: boolean;
  private readonly onDurable: ((index: number) => void) | undefined;
  private readonly opts: Required<Omit<StoreOptions, 'rootMode' | 'rootUid' | 'rootGid' | 'logWal' | 'onDurable'>>;
  readonly data: DataFiles;
  readonly stats: StoreStats;
  recovery: RecoveryReport = { cleanShutdown: true, pendingUnlinksFinished: 0, orphanDataFilesRemoved: 0, dataFilesTruncated: 0, journalReplayed: 0 };

  private constructor(
    readonly dataDir: string,
    private readonly db: MetaDb,
    options: StoreOptions,
  ) {
    this.opts = {
      maxFileSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
      capacityBytes: options.capacityBytes ?? Infinity,
      maxFiles: options.maxFiles ?? Infinity,
      maxLinks: options.maxLinks ?? 65000,
      inodeCacheSize: options.inodeCacheSize ?? 16384,
      fdCacheSize: options.fdCacheSize ?? 256,
      maxReadBytes: options.maxReadBytes ?? 4 * 1024 * 1024,
      // logWal: nothing is journaled (the log holds the bytes; checkpoints sync the data files)
      journalMaxWrite: options.logWal ? 0 : (options.journalMaxWrite ?? DEFAULT_JOURNAL_MAX_WRITE),
      inlineMax: options.inlineMax ?? DEFAULT_INLINE_MAX,
      drcEntries: Math.max(0, Math.floor(options.drcEntries ?? DEFAULT_DRC_ENTRIES)),
      checkpointIntervalMs: options.checkpointIntervalMs ?? WAL_CKPT_INTERVAL_MS,
      checkpointBytes: options.checkpointBytes ?? WAL_CKPT_BYTES,
      checkpointOps: options.checkpointOps ?? WAL_CKPT_OPS,
    };
    this.logWal = options.logWal === true;
    this.onDurable = options.onDurable;
    this.cache = new LruCache(this.opts.inodeCacheSize);
    const data = (this.data = new DataFiles(dataDir, this.opts.fdCacheSize));
    this.stats = {
      // every data barrier counts (the writer's, checkpoints', backpressure's): read where they are counted
      get dataFsyncs() {
        return data.stats.fsyncs;
      },
      get dirFsyncs() {
        return data.stats.dirFsyncs;
      },
      dbSyncs: 0,
      groupCommits: 0,
      dbReads: 0,
      journalWrites: 0,
      checkpoints: 0,
      inlineWrites: 0,
      memtableFlushes: 0,
    };
  }

  /** Last op applied (visible to reads). Its record reaches LevelDB (durably) once the writer has
   * written its batch: log compaction must use `durableAppliedIndex` (or call sync() first). */
  get appliedIndex(): number {
    return this.state.applied;
  }

  /** Batches applied in memory but not yet written to LevelDB (a gauge for metrics and tests). */
  get pendingBatches(): number {
    return this.pending.length;
  }

  /** Every op up to here is durable: data and metadata survive a crash or power loss. */
  get durableAppliedIndex(): number {
    return this.logWal ? this.durable : this.writtenIndex;
  }

  /** Data and metadata of every op up to here are durable in the store alone (a log may be compacted
   * up to it): with logWal the last durably recorded checkpoint, else every written batch. */
  get durableIndex(): number {
    return this.durableAppliedIndex;
  }

  /** The local fault that stopped the store (undefined while it works). */
  get failure(): unknown {
    return this.broken;
  }

  /** logWal recovery: ops in (durableIndex, appliedIndex] still to be handed to redo() (then
   * finishRedo()); apply() refuses to run before. */
  get needsRedo(): boolean {
    return this.redoPending;
  }

  /** Counters of the store (file count, bytes used) as recorded. */
  get counters(): Readonly<StoreState> {
    return this.state;
  }

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

  private async init(options: StoreOptions): Promise<void> {
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

  private async finishPendingUnlinks(): Promise<void> {
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
  private async replayJournal(): Promise<number> {
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
  private async loadRequestRecords(): Promise<void> {
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
  private async reconcileDataFiles(): Promise<void> {
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

  /** @internal Synchronous point read of a directory entry (applies and readers alike): memtable /
   * block cache hits cost microseconds, where a thread pool round trip costs far more. Overlay and
   * LevelDB are read in the same tick, so no batch write can slip in between. */
  getEntrySync(dir: number, name: string): Buffer | undefined {
    const o = this.entryOverlay.get(entryOverlayKey(dir, name));
    if (o) return o.v ?? undefined;
    this.stats.dbReads++;
    return this.db.getSync(entryKey(dir, name));
  }

  /** @internal inline data of a file, pending changes first (apply path: synchronous read) */
  getInlineSync(id: number): Buffer | undefined {
    const o = this.inlineOverlay.get(id);
    if (o) return o.v ?? undefined;
    this.stats.dbReads++;
    return this.db.getSync(inlineKey(id));
  }

  private getInodeSync(id: number): Buffer | undefined {
    const o = this.inodeOverlay.get(id);
    if (o) return o.v ?? undefined;
    this.stats.dbReads++;
    return this.db.getSync(inodeKey(id));
  }

  /**
   * @internal Read an inode through the cache (applies and readers alike). A miss reads the overlay
   * and LevelDB synchronously (`getSync`): no op can commit between the read and the cache fill, so
   * what is cached is never older than the newest commit (a reader that awaited a thread-pool `get`
   * could otherwise cache a record an op replaced meanwhile).
   */
  inodeSync(id: number): Inode | undefined {
    if (!Number.isSafeInteger(id) || id <= 0) return undefined;
    const c = this.cache.get(id);
    if (c) return c;
    const v = this.getInodeSync(id);
    if (!v) return undefined;
    const i = decodeInode(v);
    this.cache.set(id, i);
    return i;
  }

  private check(): void {
    if (this.closed) throw new Error('block store is closed');
    if (this.broken) throw new Error(`block store failed: ${String(this.broken)}`);
  }

  // ---------------------------------------------------------------- apply

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

  private async applyLocked(index: number, op: StoreOp, requestKey?: Buffer): Promise<{ result: OpResult; durable: boolean }> {
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
    } else {
      try {
        if (!wellFormed(op)) throw new OpError(S.INVAL);
        op = this.monotonicTime(tx, op);
        result = await this.exec(tx, index, op);
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
  private monotonicTime(tx: Tx, op: StoreOp): StoreOp {
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
  private recordRequest(tx: Tx, index: number, key: Buffer, hex: string, result: OpResult): void {
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

  /** A local I/O error: the store stops (data may have been lost, and a later fdatasync would not
   * report it again), and everyone waiting for the writer hears of it. */
  private fail(e: unknown): void {
    this.broken ??= e;
    const ws = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of ws) w.reject(this.broken);
  }

  /** Before a write or a size change of `id` (to `size`): finish a pending truncation that it could
   * otherwise expose or undo. A smaller size just supersedes it. */
  private async settleTruncate(id: number, size = Infinity): Promise<void> {
    const pt = this.pendingTruncates.get(id);
    if (!pt || size < pt.size) return;
    if (pt.running) {
      await pt.running;
      return;
    }
    this.pendingTruncates.delete(id);
    await this.data.truncate(id, pt.size);
  }

  /**
   * Record an op's changes: in memory at once (cache, overlay, state), in LevelDB by the writer, which
   * writes batches in index order and only once the data they describe is durable (so the recorded
   * position never runs ahead of durable data, whenever LevelDB itself persists its log or memtable).
   */
  private async commit(tx: Tx, ok: boolean): Promise<void> {
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

  private kickWriter(): void {
    if (this.writerRunning || this.broken || (this.pending.length === 0 && !this.checkpointWritable() && !this.checkpointSyncDue())) return;
    this.writerRunning = true;
    this.writerDone = this.runWriter();
  }

  private async runWriter(): Promise<void> {
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
            if (!pt || pt.index !== b.index || pt.running) continue;
            pt.running = this.data.truncate(id, size);
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

  // ---------------------------------------------------------------- data journal checkpoints

  /** a written pass is covered by synced data files: a checkpoint record can be written */
  private checkpointWritable(): boolean {
    return this.unckpt.length > 0 && this.unckpt[0].fullSeq <= this.data.syncedSeq;
  }

  /** Move the data checkpoint over every written pass whose data files are synced, collecting the
   * journal records that become obsolete. */
  private advanceCheckpoint(): void {
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
  private checkpointOps(group: PendingBatch[], sync: boolean): { ops: BatchOp[]; upto: number } {
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
  private checkpointSynced(upto: number): void {
    if (upto <= this.ckptSynced) return;
    this.ckptSynced = upto;
    for (const [id, index] of this.journaledAt) if (index <= upto) this.journaledAt.delete(id);
  }

  /**
   * Make the data of every op applied so far durable in the data files and record that durably
   * (a sync write): afterwards the journal holds nothing up to the returned index, now or after a
   * crash (a clean point, e.g. before a snapshot).
   */
  async checkpoint(): Promise<number> {
    this.check();
    if (this.logWal) return this.walCheckpoint();
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
  private checkpointSyncDue(): boolean {
    return this.ckptSyncWanted && this.ckptSynced < this.ckptUpto;
  }

  /** journal records written and not yet dropped by a checkpoint (a gauge) */
  get journalBacklogBytes(): number {
    return this.unckptBytes;
  }

  /** Start a checkpoint once enough journal has piled up, or soon after the first journaled write. */
  private scheduleCheckpoint(): void {
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
  private startCheckpoint(): void {
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

  // ---------------------------------------------------------------- logWal checkpoints

  /** Start a checkpoint once enough work piled up since the last one, or soon after the first op. */
  private scheduleWalCheckpoint(): void {
    if (this.walRunning || this.closed || this.broken || this.state.applied <= this.durable) return;
    if (this.walBytes >= this.opts.checkpointBytes || this.walOps >= this.opts.checkpointOps) {
      this.startWalCheckpoint();
    } else if (!this.walTimer) {
      this.walTimer = setTimeout(() => this.startWalCheckpoint(), this.opts.checkpointIntervalMs);
      this.walTimer.unref();
    }
  }

  private startWalCheckpoint(): void {
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
  private walCheckpoint(): Promise<number> {
    const p = this.walChain.then(() => this.walCheckpointNow());
    this.walChain = p.catch(() => undefined);
    return p;
  }

  private async walCheckpointNow(): Promise<number> {
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
  private async flushMemtable(): Promise<void> {
    await (this.db as unknown as { compactRange(a: Buffer, b: Buffer): Promise<void> }).compactRange(FLUSH_RANGE_START, FLUSH_RANGE_END);
    this.stats.memtableFlushes++;
  }

  // ---------------------------------------------------------------- logWal recovery

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

  private resolveFlushWaiters(): void {
    if (this.flushWaiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.flushWaiters) {
      if (w.index <= this.writtenIndex) w.resolve();
      else still.push(w);
    }
    this.flushWaiters = still;
  }

  // ---------------------------------------------------------------- group commit

  /**
   * Resolves once op `index` (and every op before it) is durable: its batch is written to LevelDB; for
   * an op not applied yet, once it is applied and written. The writer writes a batch only once the
   * data it relies on is synced (its gate) and every write is a sync write, so a written batch is a
   * durable one: the group commit is the writer's, which writes everything pending in one LevelDB
   * write while the previous one (or the data barrier) runs.
   */
  private waitDurable(index: number): Promise<void> {
    if (index <= this.writtenIndex) return Promise.resolve();
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.flushWaiters.push({ index, resolve, reject });
      this.kickWriter();
    });
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

  // ---------------------------------------------------------------- op execution

  private async dirOf(tx: Tx, id: number): Promise<Inode> {
    const d = await tx.inode(id);
    if (!d) throw new OpError(S.STALE);
    if (d.type !== FileType.DIR) throw new OpError(S.NOTDIR);
    return d;
  }

  private name(name: string, wcc?: Wcc): void {
    const s = checkName(name);
    if (s !== S.OK) throw new OpError(s, wcc);
  }

  private newInode(tx: Tx, index: number, type: FileType, dir: Inode, cred: Cred, time: Time): Inode {
    if (tx.st.fileCount + 1 > this.opts.maxFiles) throw new OpError(S.NOSPC);
    const fileid = tx.st.nextFileId++;
    tx.st.fileCount++;
    const sgidDir = (dir.mode & S_ISGID) !== 0;
    return {
      type,
      mode: 0,
      nlink: type === FileType.DIR ? 2 : 1,
      uid: cred.uid,
      gid: sgidDir ? dir.gid : cred.gid,
      size: 0,
      rdev0: 0,
      rdev1: 0,
      fileid,
      generation: index,
      atimeS: time.sec,
      atimeN: time.nsec,
      mtimeS: time.sec,
      mtimeN: time.nsec,
      ctimeS: time.sec,
      ctimeN: time.nsec,
      parent: type === FileType.DIR ? dir.fileid : 0,
      nextCookie: type === FileType.DIR ? 3 : 0,
      entries: 0,
      verifier: '',
      target: '',
      inline: type === FileType.REG && this.opts.inlineMax > 0,
    };
  }

  private touchDir(d: Inode, time: Time): void {
    d.mtimeS = d.ctimeS = time.sec;
    d.mtimeN = d.ctimeN = time.nsec;
  }

  private touchCtime(i: Inode, time: Time): void {
    i.ctimeS = time.sec;
    i.ctimeN = time.nsec;
  }

  /** Drop one link of a non-directory; delete it (and its data) when it was the last. */
  private dropLink(tx: Tx, ino: Inode, time: Time): void {
    if (ino.nlink <= 1) {
      tx.delete(ino);
    } else {
      const e = tx.edit(ino);
      e.nlink--;
      this.touchCtime(e, time);
    }
  }

  /** Validate sattr3 for `ino` as `cred` (OpError when it may not be applied); applySetAttrs applies it. */
  private checkSetAttrs(ino: Inode, attrs: SetAttrs, cred: Cred): void {
    const root = cred.uid === 0;
    const owner = root || cred.uid === ino.uid;
    if (attrs.mode !== undefined && !isU32(attrs.mode)) throw new OpError(S.INVAL);
    if (attrs.uid !== undefined && !isU32(attrs.uid)) throw new OpError(S.INVAL);
    if (attrs.gid !== undefined && !isU32(attrs.gid)) throw new OpError(S.INVAL);
    for (const t of [attrs.atime, attrs.mtime]) {
      if (t !== undefined && t !== 'server' && !validTime(t)) throw new OpError(S.INVAL);
    }
    if (attrs.uid !== undefined && !root && (cred.uid !== ino.uid || attrs.uid !== ino.uid)) throw new OpError(S.PERM);
    if (attrs.gid !== undefined && !root) {
      if (cred.uid !== ino.uid || (attrs.gid !== ino.gid && !inGroup(cred, attrs.gid))) throw new OpError(S.PERM);
    }
    if (attrs.mode !== undefined && !owner) throw new OpError(S.PERM);
    for (const t of [attrs.atime, attrs.mtime]) {
      if (t === undefined) continue;
      if (t === 'server') {
        if (!owner && !mayAccess(ino, cred, W)) throw new OpError(S.ACCES);
      } else if (!owner) throw new OpError(S.PERM);
    }
    if (attrs.size !== undefined) {
      if (typeof attrs.size !== 'number' || !Number.isInteger(attrs.size) || attrs.size < 0) throw new OpError(S.INVAL);
      if (ino.type !== FileType.REG) throw new OpError(S.INVAL);
      if (!mayWriteData(ino, cred)) throw new OpError(S.ACCES);
      if (attrs.size > this.opts.maxFileSize) throw new OpError(S.FBIG);
    }
  }

  private applySetAttrs(tx: Tx, e: Inode, attrs: SetAttrs, cred: Cred, time: Time): void {
    const root = cred.uid === 0;
    const chown = (attrs.uid !== undefined && attrs.uid !== e.uid) || (attrs.gid !== undefined && attrs.gid !== e.gid);
    if (attrs.uid !== undefined) e.uid = attrs.uid;
    if (attrs.gid !== undefined) e.gid = attrs.gid;
    if (attrs.mode !== undefined) {
      let m = attrs.mode & 0o7777;
      // like Linux: a non-root caller outside the file's group cannot set setgid
      if (!root && (m & S_ISGID) && !inGroup(cred, e.gid) && e.type !== FileType.DIR) m &= ~S_ISGID;
      e.mode = m;
    } else if (chown && e.type !== FileType.DIR) {
      this.killPrivs(e);
    }
    if (attrs.size !== undefined) {
      const oldUsed = usedOf(e);
      const newUsed = Math.ceil(attrs.size / BLOCK) * BLOCK;
      if (newUsed > oldUsed && tx.st.usedBytes - oldUsed + newUsed > this.opts.capacityBytes) throw new OpError(S.NOSPC);
      tx.st.usedBytes += newUsed - oldUsed;
      e.size = attrs.size;
      if (attrs.mtime === undefined) {
        e.mtimeS = time.sec;
        e.mtimeN = time.nsec;
      }
      if (!root && attrs.mode === undefined) this.killPrivs(e);
    }
    const at = attrs.atime === 'server' ? time : attrs.atime;
    if (at) {
      e.atimeS = at.sec;
      e.atimeN = at.nsec;
    }
    const mt = attrs.mtime === 'server' ? time : attrs.mtime;
    if (mt) {
      e.mtimeS = mt.sec;
      e.mtimeN = mt.nsec;
    }
    this.touchCtime(e, time);
  }

  /** clear setuid, and setgid when group-executable (Linux should_remove_suid) */
  private killPrivs(e: Inode): void {
    if (e.mode & S_ISUID) e.mode &= ~S_ISUID;
    if ((e.mode & S_ISGID) && (e.mode & 0o010)) e.mode &= ~S_ISGID;
  }

  private async exec(tx: Tx, index: number, op: StoreOp): Promise<OpResult> {
    const { time, cred } = op;
    switch (op.kind) {
      case 'setattr': {
        const ino = await tx.inode(op.file);
        if (!ino) throw new OpError(S.STALE);
        const wcc: Wcc = { before: wccAttr(ino), after: toAttr(ino) };
        if (op.guardCtime && (op.guardCtime.sec !== ino.ctimeS || op.guardCtime.nsec !== ino.ctimeN)) {
          throw new OpError(S.NOT_SYNC, wcc);
        }
        try {
          this.checkSetAttrs(ino, op.attrs, cred);
          const e = tx.edit(ino);
          this.applySetAttrs(tx, e, op.attrs, cred, time);
          if (op.attrs.size !== undefined) await this.resize(tx, ino, op.attrs.size);
          return { status: S.OK, obj: toAttr(e), wcc: { before: wccAttr(ino), after: toAttr(e) } };
        } catch (err) {
          if (err instanceof OpError) throw new OpError(err.status, wcc);
          throw err;
        }
      }

      case 'create':
      case 'mkdir':
      case 'symlink':
      case 'mknod': {
        const dir = await this.dirOf(tx, op.dir);
        const before = wccAttr(dir);
        const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
        try {
          this.name(op.name);
          if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
          const existing = await tx.entry(dir.fileid, op.name);
          if (existing) {
            if (op.kind !== 'create' || op.mode === 'guarded') throw new OpError(S.EXIST);
            const obj = await tx.inode(existing.fileid);
            if (!obj) throw new OpError(S.IO);
            if (op.mode === 'exclusive') {
              if (obj.type === FileType.REG && obj.verifier !== '' && obj.verifier === normVerifier(op.verifier)) {
                return { status: S.OK, obj: toAttr(obj), wcc: { before, after: toAttr(dir) } };
              }
              throw new OpError(S.EXIST);
            }
            // UNCHECKED on an existing regular file: open it, truncating when a size is given
            if (obj.type !== FileType.REG) throw new OpError(S.EXIST);
            if (op.attrs.size === undefined) return { status: S.OK, obj: toAttr(obj), wcc: { before, after: toAttr(dir) } };
            const sattr: SetAttrs = { size: op.attrs.size };
            this.checkSetAttrs(obj, sattr, cred);
            const e = tx.edit(obj);
            this.applySetAttrs(tx, e, sattr, cred, time);
            await this.resize(tx, obj, op.attrs.size);
            return { status: S.OK, obj: toAttr(e), wcc: { before, after: toAttr(dir) } };
          }
          if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
          let type: FileType;
          let defMode: number;
          let attrs: SetAttrs = op.attrs ?? {};
          switch (op.kind) {
            case 'create':
              type = FileType.REG;
              defMode = 0o644;
              if (op.mode === 'exclusive') {
                if (normVerifier(op.verifier) === '') throw new OpError(S.INVAL);
                attrs = {}; // RFC 1813: EXCLUSIVE carries no attributes (the client SETATTRs next)
              }
              break;
            case 'mkdir':
              type = FileType.DIR;
              defMode = 0o755;
              attrs = { ...attrs, size: undefined };
              if (dir.nlink + 1 > this.opts.maxLinks) throw new OpError(S.MLINK);
              break;
            case 'symlink': {
              type = FileType.LNK;
              defMode = 0o777;
              if (typeof op.target !== 'string' || op.target.length === 0 || op.target.includes('\0')) throw new OpError(S.INVAL);
              if (Buffer.byteLength(op.target, 'utf8') > MAX_SYMLINK_BYTES) throw new OpError(S.NAMETOOLONG);
              attrs = { ...attrs, mode: undefined, size: undefined };
              break;
            }
            case 'mknod':
              type = op.type;
              defMode = 0o644;
              if (![FileType.CHR, FileType.BLK, FileType.SOCK, FileType.FIFO].includes(type)) throw new OpError(S.BADTYPE);
              if ((type === FileType.CHR || type === FileType.BLK) && cred.uid !== 0) throw new OpError(S.PERM);
              attrs = { ...attrs, size: undefined };
              break;
          }
          const ino = this.newInode(tx, index, type, dir, cred, time);
          ino.mode = defMode;
          const { mode, ...rest } = attrs;
          this.checkSetAttrs(ino, rest, cred);
          if (mode !== undefined) {
            if (!isU32(mode)) throw new OpError(S.INVAL);
            ino.mode = mode & 0o7777;
            if (cred.uid !== 0 && (ino.mode & S_ISGID) && !inGroup(cred, ino.gid) && type !== FileType.DIR) ino.mode &= ~S_ISGID;
          }
          if (type === FileType.DIR && (dir.mode & S_ISGID)) ino.mode |= S_ISGID;
          if (rest.uid !== undefined) ino.uid = rest.uid;
          if (rest.gid !== undefined) ino.gid = rest.gid;
          if (rest.size !== undefined && rest.size > 0) {
            const used = Math.ceil(rest.size / BLOCK) * BLOCK;
            if (tx.st.usedBytes + used > this.opts.capacityBytes) throw new OpError(S.NOSPC);
            tx.st.usedBytes += used;
            ino.size = rest.size;
          }
          const at = rest.atime === 'server' ? time : rest.atime;
          if (at) [ino.atimeS, ino.atimeN] = [at.sec, at.nsec];
          const mt = rest.mtime === 'server' ? time : rest.mtime;
          if (mt) [ino.mtimeS, ino.mtimeN] = [mt.sec, mt.nsec];
          if (op.kind === 'create' && op.mode === 'exclusive') ino.verifier = normVerifier(op.verifier);
          if (op.kind === 'symlink') {
            ino.target = op.target;
            ino.size = Buffer.byteLength(op.target, 'utf8');
          }
          if (op.kind === 'mknod' && (type === FileType.CHR || type === FileType.BLK)) {
            const rd = op.rdev ?? [0, 0];
            if (!isU32(rd[0]) || !isU32(rd[1])) throw new OpError(S.INVAL);
            [ino.rdev0, ino.rdev1] = rd;
          }
          // an id that is not a regular file must not keep a data file created ahead of use
          if (type !== FileType.REG) await this.data.discardPreallocated(ino.fileid);
          tx.create(ino);
          const d = tx.edit(dir);
          tx.addEntry(d, op.name, ino.fileid);
          if (type === FileType.DIR) d.nlink++;
          this.touchDir(d, time);
          return { status: S.OK, obj: toAttr(ino), wcc: { before, after: toAttr(d) } };
        } catch (err) {
          if (err instanceof OpError && !err.wcc) throw new OpError(err.status, failWcc());
          throw err;
        }
      }

      case 'remove':
      case 'rmdir': {
        const dir = await this.dirOf(tx, op.dir);
        const before = wccAttr(dir);
        const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
        try {
          if (op.kind === 'rmdir' && (op.name === '.' || op.name === '..')) throw new OpError(S.INVAL);
          this.name(op.name);
          if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
          const ent = await tx.entry(dir.fileid, op.name);
          if (!ent) throw new OpError(S.NOENT);
          const ino = await tx.inode(ent.fileid);
          if (!ino) throw new OpError(S.IO);
          if (op.kind === 'remove' && ino.type === FileType.DIR) throw new OpError(S.ISDIR);
          if (op.kind === 'rmdir' && ino.type !== FileType.DIR) throw new OpError(S.NOTDIR);
          if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
          if (!stickyAllows(dir, ino, cred)) throw new OpError(S.PERM);
          if (ino.type === FileType.DIR && ino.entries > 0) throw new OpError(S.NOTEMPTY);
          const d = tx.edit(dir);
          tx.removeEntry(d, op.name, ent.cookie);
          if (ino.type === FileType.DIR) {
            d.nlink--;
            tx.delete(ino);
          } else {
            this.dropLink(tx, ino, time);
          }
          this.touchDir(d, time);
          return { status: S.OK, wcc: { before, after: toAttr(d) } };
        } catch (err) {
          if (err instanceof OpError && !err.wcc) throw new OpError(err.status, failWcc());
          throw err;
        }
      }

      case 'rename': {
        const from = await this.dirOf(tx, op.fromDir);
        const to = await this.dirOf(tx, op.toDir);
        const fromBefore = wccAttr(from);
        const toBefore = wccAttr(to);
        const fail = (s: S) => new OpError(s, { before: fromBefore, after: toAttr(from) }, { before: toBefore, after: toAttr(to) });
        const okResult = (): OpResult => {
          const f = (tx.changed.get(from.fileid) as Inode | undefined) ?? from;
          const t = (tx.changed.get(to.fileid) as Inode | undefined) ?? to;
          return { status: S.OK, wcc: { before: fromBefore, after: toAttr(f) }, wcc2: { before: toBefore, after: toAttr(t) } };
        };
        const s1 = checkName(op.fromName);
        if (s1 !== S.OK) throw fail(s1);
        const s2 = checkName(op.toName);
        if (s2 !== S.OK) throw fail(s2);
        if (!mayAccess(from, cred, X) || !mayAccess(to, cred, X)) throw fail(S.ACCES);
        const src = await tx.entry(from.fileid, op.fromName);
        if (!src) throw fail(S.NOENT);
        const sino = await tx.inode(src.fileid);
        if (!sino) throw fail(S.IO);
        if (!mayAccess(from, cred, W | X) || !mayAccess(to, cred, W | X)) throw fail(S.ACCES);
        if (from.fileid === to.fileid && op.fromName === op.toName) return okResult();
        const dst = await tx.entry(to.fileid, op.toName);
        const dino = dst ? await tx.inode(dst.fileid) : undefined;
        if (dst && !dino) throw fail(S.IO);
        // rename onto another link of the same file: POSIX says do nothing
        if (dst && dst.fileid === src.fileid) return okResult();
        const isDir = sino.type === FileType.DIR;
        if (dino) {
          if (isDir && dino.type !== FileType.DIR) throw fail(S.NOTDIR);
          if (!isDir && dino.type === FileType.DIR) throw fail(S.ISDIR);
          if (dino.type === FileType.DIR && dino.entries > 0) throw fail(S.NOTEMPTY);
        }
        if (!stickyAllows(from, sino, cred)) throw fail(S.PERM);
        if (dino && !stickyAllows(to, dino, cred)) throw fail(S.PERM);
        const moveDir = isDir && from.fileid !== to.fileid;
        if (moveDir) {
          // not into its own subtree
          let cur = to;
          for (let depth = 0; ; depth++) {
            if (cur.fileid === sino.fileid) throw fail(S.INVAL);
            if (cur.fileid === ROOT_ID) break;
            if (depth > MAX_DIR_DEPTH) throw fail(S.IO);
            const up = await tx.inode(cur.parent);
            if (!up) throw fail(S.IO);
            cur = up;
          }
          // ".." of the moved directory changes: needs write permission on it (Linux does the same)
          if (!mayAccess(sino, cred, W)) throw fail(S.ACCES);
          if (!dino && to.nlink + 1 > this.opts.maxLinks) throw fail(S.MLINK);
        }
        const f = tx.edit(from);
        const t = tx.edit(to);
        tx.removeEntry(f, op.fromName, src.cookie);
        if (dst && dino) {
          tx.removeEntry(t, op.toName, dst.cookie);
          if (dino.type === FileType.DIR) {
            t.nlink--;
            tx.delete(dino);
          } else {
            this.dropLink(tx, dino, time);
          }
        }
        tx.addEntry(t, op.toName, sino.fileid);
        const s = tx.edit(sino);
        this.touchCtime(s, time);
        if (moveDir) {
          f.nlink--;
          t.nlink++;
          s.parent = t.fileid;
        }
        this.touchDir(f, time);
        this.touchDir(t, time);
        return okResult();
      }

      case 'link': {
        const file = await tx.inode(op.file);
        if (!file) throw new OpError(S.STALE);
        const dir = await this.dirOf(tx, op.dir);
        const before = wccAttr(dir);
        const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
        try {
          if (file.type === FileType.DIR) throw new OpError(S.ISDIR);
          this.name(op.name);
          if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
          if (await tx.entry(dir.fileid, op.name)) throw new OpError(S.EXIST);
          if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
          if (file.nlink + 1 > this.opts.maxLinks) throw new OpError(S.MLINK);
          const fe = tx.edit(file);
          fe.nlink++;
          this.touchCtime(fe, time);
          const d = tx.edit(dir);
          tx.addEntry(d, op.name, file.fileid);
          this.touchDir(d, time);
          const w: Wcc = { before, after: toAttr(d) };
          return { status: S.OK, obj: toAttr(fe), wcc: w, wcc2: w };
        } catch (err) {
          if (err instanceof OpError) throw new OpError(err.status, failWcc(), failWcc());
          throw err;
        }
      }

      case 'write': {
        const ino = await tx.inode(op.file);
        if (!ino) throw new OpError(S.STALE);
        const wcc: Wcc = { before: wccAttr(ino), after: toAttr(ino) };
        if (ino.type === FileType.DIR) throw new OpError(S.ISDIR, wcc);
        if (ino.type !== FileType.REG) throw new OpError(S.INVAL, wcc);
        if (!(op.data instanceof Uint8Array) || !Number.isSafeInteger(op.offset) || op.offset < 0) throw new OpError(S.INVAL, wcc);
        if (!mayWriteData(ino, cred)) throw new OpError(S.ACCES, wcc);
        const len = op.data.length;
        const end = op.offset + len;
        if (end > this.opts.maxFileSize) throw new OpError(S.FBIG, wcc);
        const newSize = Math.max(ino.size, end);
        const oldUsed = usedOf(ino);
        const newUsed = Math.ceil(newSize / BLOCK) * BLOCK;
        if (newUsed > oldUsed && tx.st.usedBytes - oldUsed + newUsed > this.opts.capacityBytes) throw new OpError(S.NOSPC, wcc);
        if (len === 0) return { status: S.OK, count: 0, obj: toAttr(ino), wcc };
        const e = tx.edit(ino);
        if (ino.inline && end <= this.opts.inlineMax) {
          // small file: the bytes live in LevelDB, in this op's batch (no data file at all); an empty
          // file has none to read (inline bytes never reach past the size)
          const cur = ino.size === 0 ? EMPTY : tx.inlineData(ino.fileid);
          const next = Buffer.alloc(Math.max(cur.length, end));
          cur.copy(next);
          next.set(op.data, op.offset);
          tx.setInline(ino.fileid, next);
          this.stats.inlineWrites++;
        } else {
          if (ino.inline) {
            // outgrows inline: its bytes move to a data file, for good
            const cur = tx.inlineData(ino.fileid);
            e.inline = false;
            tx.setInline(ino.fileid, null);
            // (journaled only with the write itself: replay must not put them back over an unjournaled one)
            const withJournal = len <= this.opts.journalMaxWrite;
            if (cur.length > 0) await this.writeDataFile(tx, ino.fileid, 0, cur, 0, wcc, withJournal);
            await this.writeDataFile(tx, ino.fileid, op.offset, op.data, 0, wcc);
            // logWal: the moved bytes are in no log entry (only in the inline record this batch
            // deletes, and LevelDB may persist the batch any time): durable before the batch is queued
            if (this.logWal && cur.length > 0) await this.data.syncFile(ino.fileid);
          } else {
            await this.settleTruncate(ino.fileid);
            await this.writeDataFile(tx, ino.fileid, op.offset, op.data, ino.size, wcc);
          }
        }
        tx.st.usedBytes += newUsed - oldUsed;
        e.size = newSize;
        e.mtimeS = e.ctimeS = time.sec;
        e.mtimeN = e.ctimeN = time.nsec;
        if (cred.uid !== 0) this.killPrivs(e);
        return { status: S.OK, count: len, obj: toAttr(e), wcc: { before: wccAttr(ino), after: toAttr(e) } };
      }

      default:
        throw new OpError(S.INVAL);
    }
  }

  /** The data side of a size change of `ino` (as it was before this op) to `size`. */
  private async resize(tx: Tx, ino: Inode, size: number): Promise<void> {
    if (ino.inline) {
      const cur = tx.inlineData(ino.fileid);
      if (size < cur.length) tx.setInline(ino.fileid, Buffer.from(cur.subarray(0, size)));
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
  private async writeDataFile(
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

  // ---------------------------------------------------------------- reads

  async getattr(file: FileId): Promise<Attr | undefined> {
    this.check();
    const i = this.inodeSync(file);
    return i ? toAttr(i) : undefined;
  }

  /**
   * Attributes of many files (READDIRPLUS). Scan-resistant: it neither fills nor reorders the inode
   * cache, so listing a directory bigger than the cache does not flush it. Cache misses are read with
   * one LevelDB range scan when their file ids are dense (files created together; a scan costs about
   * a quarter of point reads), else with point reads. The scan is asynchronous: if an op was applied
   * meanwhile, what it read may be older than that op, and the misses are read again synchronously.
   */
  async getattrMany(files: readonly FileId[]): Promise<(Attr | undefined)[]> {
    this.check();
    const out: (Attr | undefined)[] = new Array(files.length).fill(undefined);
    const misses: number[] = []; // indexes into files
    for (let k = 0; k < files.length; k++) {
      const id = files[k];
      if (!Number.isSafeInteger(id) || id <= 0) continue;
      const c = this.cache.peek(id);
      if (c) {
        out[k] = toAttr(c);
        continue;
      }
      const o = this.inodeOverlay.get(id);
      if (o) {
        if (o.v) out[k] = toAttr(decodeInode(o.v));
        continue;
      }
      misses.push(k);
    }
    if (misses.length === 0) return out;
    let lo = Infinity;
    let hi = -Infinity;
    for (const k of misses) {
      lo = Math.min(lo, files[k]);
      hi = Math.max(hi, files[k]);
    }
    const span = hi - lo + 1;
    if (misses.length >= SCAN_MIN && span <= misses.length * SCAN_SPAN) {
      const applied = this.appliedIndex;
      // values only (an inode record holds its file id): the keys would double the buffers made
      const found = new Map<number, Inode>();
      const it = this.db.values({ gte: inodeKey(lo), lt: inodeKey(hi + 1), limit: span });
      try {
        for (;;) {
          const batch = await it.nextv(1024);
          if (batch.length === 0) break;
          this.stats.dbReads += batch.length;
          for (const v of batch) {
            const ino = decodeInode(v);
            found.set(ino.fileid, ino);
          }
        }
      } finally {
        await it.close();
      }
      this.check();
      if (this.appliedIndex === applied) {
        for (const k of misses) {
          const ino = found.get(files[k]);
          if (ino) out[k] = toAttr(ino);
        }
        return out;
      }
    }
    for (const k of misses) {
      // the overlay first: an op may have been applied while the scan ran
      const v = this.getInodeSync(files[k]);
      if (v) out[k] = toAttr(decodeInode(v));
    }
    return out;
  }

  async lookup(dir: FileId, name: string): Promise<{ status: S; obj?: Attr; dirAttr?: Attr }> {
    this.check();
    const d = this.inodeSync(dir);
    if (!d) return { status: S.STALE };
    const dirAttr = toAttr(d);
    if (d.type !== FileType.DIR) return { status: S.NOTDIR, dirAttr };
    if (name === '.') return { status: S.OK, obj: dirAttr, dirAttr };
    if (name === '..') {
      const p = d.parent === d.fileid ? d : this.inodeSync(d.parent);
      return p ? { status: S.OK, obj: toAttr(p), dirAttr } : { status: S.STALE, dirAttr };
    }
    const s = checkName(name);
    if (s === S.NAMETOOLONG) return { status: s, dirAttr };
    if (s !== S.OK) return { status: S.NOENT, dirAttr };
    const v = this.getEntrySync(dir, name);
    if (!v) return { status: S.NOENT, dirAttr };
    const obj = this.inodeSync(decodeEntry(v).fileid);
    if (!obj) return { status: S.NOENT, dirAttr };
    return { status: S.OK, obj: toAttr(obj), dirAttr };
  }

  async readdir(dir: FileId, cookie: number, cookieverf: string | undefined, maxEntries: number): Promise<ReaddirResult> {
    this.check();
    const d = this.inodeSync(dir);
    if (!d) return { status: S.STALE, entries: [], eof: false, cookieverf: '0000000000000000' };
    const verf = cookieVerf(d);
    const dirAttr = toAttr(d);
    if (d.type !== FileType.DIR) return { status: S.NOTDIR, dirAttr, entries: [], eof: false, cookieverf: verf };
    if (!Number.isSafeInteger(cookie) || cookie < 0) return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    if (cookie !== 0 && cookieverf !== undefined && cookieverf.toLowerCase() !== verf) {
      return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    }
    if (cookie >= d.nextCookie) return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    const max = Math.max(1, Math.min(Math.floor(maxEntries) || 1, 1_000_000));
    const entries: DirEntry[] = [];
    if (cookie < 1) entries.push({ name: '.', fileid: d.fileid, cookie: 1 });
    if (cookie < 2 && entries.length < max) entries.push({ name: '..', fileid: d.parent, cookie: 2 });
    const room = max - entries.length;
    const from = Math.max(cookie, 2);
    // Pending (not yet written) cookie records override LevelDB's; new ones carry the newest cookies.
    // The overlay is copied in the same tick the iterator takes its LevelDB snapshot, so a batch the
    // writer completes meanwhile is seen once either way.
    const ov = this.cookieOverlay.get(dir);
    const snap = ov ? [...ov] : [];
    const shadowed = new Set(snap.map(([c]) => c));
    const dbSnapshot = this.db.snapshot(); // synchronous: same instant as the overlay copy
    const found: DirEntry[] = [];
    // one extra entry tells whether this page ends the directory
    const want = room + 1;
    const it = this.db.iterator({ gt: cookieKey(dir, from), lt: cookieKey(dir + 1, 0), limit: want + snap.length, snapshot: dbSnapshot });
    try {
      let taken = 0;
      for (;;) {
        const batch = await it.nextv(Math.min(want + snap.length - taken, 1024));
        if (batch.length === 0) break;
        taken += batch.length;
        this.stats.dbReads += batch.length;
        for (const [k, v] of batch) {
          const c = readU64BE(k, 9);
          if (shadowed.has(c)) continue;
          const { fileid, name } = decodeCookieValue(v);
          found.push({ name, fileid, cookie: c });
        }
        if (found.length >= want) break;
      }
    } finally {
      await it.close();
      await dbSnapshot.close();
    }
    if (snap.length) {
      for (const [c, { e }] of snap) if (e && c > from) found.push({ name: e.name, fileid: e.fileid, cookie: c });
      found.sort((a, b) => a.cookie - b.cookie);
    }
    const got = found.length;
    for (let i = 0; i < Math.min(room, got); i++) entries.push(found[i]);
    return { status: S.OK, dirAttr, entries, eof: got <= room, cookieverf: verf };
  }

  async read(file: FileId, offset: number, count: number): Promise<{ status: S; attr?: Attr; data?: Uint8Array; eof?: boolean }> {
    this.check();
    const i = this.inodeSync(file);
    if (!i) return { status: S.STALE };
    const attr = toAttr(i);
    if (i.type === FileType.DIR) return { status: S.ISDIR, attr };
    if (i.type !== FileType.REG) return { status: S.INVAL, attr };
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(count) || count < 0) return { status: S.INVAL, attr };
    const n = Math.max(0, Math.min(count, this.opts.maxReadBytes, i.size - offset));
    let data: Buffer;
    if (i.inline) {
      // bytes past the inline data (up to the size) are zeros
      const cur = this.getInlineSync(i.fileid) ?? EMPTY; // (small: a synchronous read, like inode misses)
      data = Buffer.alloc(n);
      if (offset < cur.length) cur.copy(data, 0, offset, Math.min(cur.length, offset + n));
    } else {
      data = await this.data.read(i.fileid, offset, n);
    }
    return { status: S.OK, attr, data, eof: offset + n >= i.size };
  }

  releaseRead(data: Uint8Array): void {
    this.data.recycleRead(data);
  }

  async readlink(file: FileId): Promise<{ status: S; attr?: Attr; target?: string }> {
    this.check();
    const i = this.inodeSync(file);
    if (!i) return { status: S.STALE };
    if (i.type !== FileType.LNK) return { status: S.INVAL, attr: toAttr(i) };
    return { status: S.OK, attr: toAttr(i), target: i.target };
  }

  async fsstat(): Promise<FsStat> {
    this.check();
    const sf = await fsp.statfs(this.dataDir);
    const tbytes0 = sf.blocks * sf.bsize;
    const fbytes0 = sf.bfree * sf.bsize;
    const abytes0 = sf.bavail * sf.bsize;
    const cap = this.opts.capacityBytes;
    const used = this.state.usedBytes;
    const tbytes = Math.min(tbytes0, cap);
    const fbytes = Math.max(0, Math.min(fbytes0, cap - used));
    const abytes = Math.max(0, Math.min(abytes0, cap - used));
    const files = this.state.fileCount;
    const tfiles = Number.isFinite(this.opts.maxFiles) ? this.opts.maxFiles : files + sf.ffree;
    const ffiles = Math.max(0, Math.min(tfiles - files, sf.ffree));
    return { tbytes, fbytes, abytes, tfiles, ffiles, afiles: ffiles };
  }

  async close(): Promise<void> {
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

/**
 * Write a batch of pre-encoded Buffer keys and values, sync:true (see the top of this file: a sync:false
 * write is not made durable by a later sync write once LevelDB has rotated its log). abstract-level's public batch()
 * clones and re-validates every operation (about half the cost of a create under load); with 'buffer'
 * encodings there is nothing to encode, so the batch goes straight to classic-level's _batch(), the
 * documented implementation hook that batch() itself ends in. Falls back to batch() if it is absent.
 */
function writeBatch(db: MetaDb, ops: BatchOp[], sync = true): Promise<void> {
  const impl = (db as unknown as { _batch?: (ops: BatchOp[], opts: object) => Promise<void> })._batch;
  if (typeof impl === 'function' && db.status === 'open') return impl.call(db, ops, { sync });
  return db.batch(ops, { sync });
}

function normVerifier(v: string | undefined): string {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{16}$/.test(v)) return '';
  return v.toLowerCase();
}

/** Open (creating if needed) the block store in `dataDir` (uses dataDir/meta and dataDir/blocks). */
export function openStore(dataDir: string, options: StoreOptions = {}): Promise<LevelBlockStore> {
  return LevelBlockStore.open(dataDir, options);
}
