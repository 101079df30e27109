/**
 * The shared core of the block store: constants, counters, pending-batch bookkeeping, and the
 * StoreCore base class holding every piece of state; the concerns build on it, one layer a file:
 * group-commit.ts (the writer), journal-checkpoints.ts, wal-checkpoints.ts, recovery.ts, apply.ts
 * (with ops/), reads.ts, and block-store.ts (open, close).
 */
import { Level } from 'level';
import * as path from 'node:path';
import {
  Nfs3Status as S,
  type Attr,
  type BlockStore,
  type FileId,
  type FsStat,
  type OpResult,
  type ReaddirResult,
  type StoreOp,
  type StoreOptions,
} from './types';
import { inlineKey, decodeInode, entryKey, inodeKey, type Inode, type StoreState } from './codec';
import { DataFiles } from './data-files';
import { Mutex } from './mutex';
import { LruCache } from './lru-cache';
import { entryOverlayKey, type BatchOp, type CookieEntry } from './tx';

export type MetaDb = Level<Buffer, Buffer>;

export const ROOT_ID = 1;
export const DEFAULT_MAX_FILE_SIZE = 2 ** 43;
export const RECENT_RESULTS = 4096;
/** WRITEs up to this size are journaled (bytes in the LevelDB batch): one sync, not two */
export const DEFAULT_JOURNAL_MAX_WRITE = 64 * 1024;
/** regular files keep their data inline (in LevelDB, no data file) while it fits in this many bytes */
export const DEFAULT_INLINE_MAX = 16 * 1024;
/** a checkpoint (sync of journaled data files) starts after this many journaled bytes ... */
export const CKPT_BYTES = 16 * 1024 * 1024;
/** ... or once this many data files have journaled changes ... */
export const CKPT_FILES = 2048;
/** ... or this long after the first journaled write since the last one */
export const CKPT_INTERVAL_MS = 1000;
/** logWal checkpoints: defaults of checkpointIntervalMs, checkpointBytes, checkpointOps */
export const WAL_CKPT_INTERVAL_MS = 1000;
export const WAL_CKPT_BYTES = 64 * 1024 * 1024;
export const WAL_CKPT_OPS = 16384;
/** duplicate-request records kept by default; a request key is at most this long */
export const DEFAULT_DRC_ENTRIES = 8192;
export const MAX_REQUEST_KEY_BYTES = 64;
/** an empty key range (no record lives under 0xf0): compacting it flushes the memtable, nothing else */
export const FLUSH_RANGE_START = Buffer.from([0xf0]);
export const FLUSH_RANGE_END = Buffer.from([0xf0, 0x00]);
/** cut record number marking a WRITE op that failed or was a duplicate: redo() skips its bytes */
export const NO_EFFECT = 0xff;

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
  /** ops answered from their duplicate-request record (a retransmit of an op already applied) */
  requestHits: number;
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

export interface PendingBatch {
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
export const MAX_PENDING_BATCHES = 4096;
/** journaled bytes in pending batches beyond which apply() waits for the writer */
export const MAX_PENDING_JOURNAL_BYTES = 32 * 1024 * 1024;
/** most bytes of journal records in one LevelDB write */
export const MAX_WRITE_JOURNAL_BYTES = 8 * 1024 * 1024;

/** Written batches not yet covered by a checkpoint: the last op index of a writer pass, its fullSeq,
 * and the journal records of the pass (dropped once a checkpoint covers them). */
export interface Uncheckpointed {
  index: number;
  fullSeq: number;
  keys: Buffer[];
  bytes: number;
}

export interface Waiter {
  index: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * The state every layer of the store shares (see block-store.ts for the design): options, the inode
 * cache, the overlay of batches not yet written, journal / checkpoint / redo / request-record state,
 * and the synchronous point reads that applies and readers alike go through.
 */
export abstract class StoreCore implements BlockStore {
  readonly rootFileId = ROOT_ID;
  protected state!: StoreState;
  protected lastQueued = 0;
  protected readonly mutex = new Mutex();
  protected readonly cache: LruCache<Inode>;
  protected readonly inflight = new Map<number, Promise<OpResult>>();
  /** status of the last RECENT_RESULTS ops, for replays (a ring: no garbage, no old-space growth) */
  protected readonly recentIndex = new Float64Array(RECENT_RESULTS);
  protected readonly recentStatus = new Int32Array(RECENT_RESULTS);
  protected pendingMarkerDeletes: Buffer[] = [];
  /** shrinking truncations recorded in metadata but not yet done to the data file: the writer does them
   * once their batch is written (durable), so a crash never leaves data cut under a recorded larger size */
  protected readonly pendingTruncates = new Map<number, { size: number; index: number; running?: Promise<void> }>();
  /** metadata batches applied in memory, not yet written to LevelDB (oldest first) */
  protected pending: PendingBatch[] = [];
  /** newest inode records / directory entries of pending batches (null: deleted); reads look here
   * first. (Cookie records and unlink markers are never point-read: READDIR flushes first.) */
  protected readonly inodeOverlay = new Map<number, { v: Buffer | null; seq: number }>();
  protected readonly inlineOverlay = new Map<number, { v: Buffer | null; seq: number }>();
  protected readonly entryOverlay = new Map<string, { v: Buffer | null; seq: number }>();
  /** dir -> cookie -> pending cookie record (null: deleted) */
  protected readonly cookieOverlay = new Map<number, Map<number, { e: CookieEntry | null; seq: number }>>();
  protected overlaySeq = 0;
  protected writerRunning = false;
  protected writerDone: Promise<void> = Promise.resolve();
  /** highest op index whose batch is in LevelDB: every write is a sync write, so the durable one */
  protected writtenIndex = 0;
  protected flushWaiters: Waiter[] = [];
  /** journal state: written passes not covered by a checkpoint (oldest first), their bytes */
  protected unckpt: Uncheckpointed[] = [];
  protected unckptBytes = 0;
  /** the data files hold every change of ops up to here (recorded: ckptRecorded, of which durably,
   * by a sync:true write: ckptSynced; only the latter may be relied on, see writeDataFile) */
  protected ckptUpto = 0;
  protected ckptRecorded = 0;
  protected ckptSynced = 0;
  /** the writer should write the checkpoint with a sync write even alone (checkpoint()) */
  protected ckptSyncWanted = false;
  /** fileid -> last op index that journaled a change (write or cut) of it, while above ckptSynced */
  protected readonly journaledAt = new Map<number, number>();
  /** obsolete journal records, to drop with the next write */
  protected ckptDrops: Buffer[] = [];
  protected pendingJournalBytes = 0;
  protected ckptRunning = false;
  protected ckptTimer: NodeJS.Timeout | undefined = undefined;
  protected closed = false;
  protected broken: unknown = undefined;
  /** logWal: the last durable checkpoint: data and metadata of every op up to here survive a power loss */
  protected durable = 0;
  /** logWal: cut records written or pending, oldest first, with their op index */
  protected cutRecords: { index: number; key: Buffer }[] = [];
  /** logWal: data files of removed files, unlinked once a checkpoint covers the REMOVE (until then a
   * power loss may lose the batch that removed the file, and the file would need its data again) */
  protected walUnlinks: { index: number; id: number }[] = [];
  /** logWal: work since the last checkpoint started, and its timer */
  protected walBytes = 0;
  protected walOps = 0;
  protected walTimer: NodeJS.Timeout | undefined = undefined;
  protected walChain: Promise<unknown> = Promise.resolve();
  protected walRunning = false;
  /** logWal recovery: ops in (durable, applied] must be redone before anything is applied */
  protected redoPending = false;
  protected redoLast = 0;
  protected readonly redoTouched = new Set<number>();
  /** duplicate-request records: key (hex) -> the op index and encoded OpResult; eviction order */
  protected readonly drc = new Map<string, { index: number; value: Buffer }>();
  protected drcOrder: { index: number; hex: string }[] = [];
  protected drcHead = 0;
  /** "the log is the write-ahead log" (see StoreOptions.logWal) */
  readonly logWal: boolean;
  protected readonly onDurable: ((index: number) => void) | undefined;
  protected readonly opts: Required<Omit<StoreOptions, 'rootMode' | 'rootUid' | 'rootGid' | 'logWal' | 'onDurable'>>;
  readonly data: DataFiles;
  readonly stats: StoreStats;
  recovery: RecoveryReport = { cleanShutdown: true, pendingUnlinksFinished: 0, orphanDataFilesRemoved: 0, dataFilesTruncated: 0, journalReplayed: 0 };

  /** The limits that decide op results (NOSPC, FBIG, MLINK), as opened: every replica must have the same. */
  get limits(): { maxFileSize: number; capacityBytes: number; maxFiles: number; maxLinks: number } {
    const o = this.opts;
    return { maxFileSize: o.maxFileSize, capacityBytes: o.capacityBytes, maxFiles: o.maxFiles, maxLinks: o.maxLinks };
  }

  protected constructor(
    readonly dataDir: string,
    protected readonly db: MetaDb,
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
      requestHits: 0,
    };
  }

  /** Last op applied (visible to reads). Its record reaches LevelDB (durably) once the writer has
   * written its batch: log compaction must use `durableAppliedIndex` (or call sync() first). */
  get appliedIndex(): number {
    return this.state.applied;
  }

  /** The metadata LevelDB, for readers outside the apply path (snapshot.ts, checksum.ts); never
   * write to it. */
  get metaDb(): MetaDb {
    return this.db;
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

  protected getInodeSync(id: number): Buffer | undefined {
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

  protected check(): void {
    if (this.closed) throw new Error('block store is closed');
    if (this.broken) throw new Error(`block store failed: ${String(this.broken)}`);
  }

  /** A local I/O error: the store stops (data may have been lost, and a later fdatasync would not
   * report it again), and everyone waiting for the writer hears of it. */
  protected fail(e: unknown): void {
    this.broken ??= e;
    const ws = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of ws) w.reject(this.broken);
  }

  // the layers above implement these (journal-checkpoints.ts, wal-checkpoints.ts)
  protected abstract checkpointWritable(): boolean;
  protected abstract checkpointSyncDue(): boolean;
  protected abstract checkpointOps(group: PendingBatch[], sync: boolean): { ops: BatchOp[]; upto: number };
  protected abstract checkpointSynced(upto: number): void;
  protected abstract scheduleCheckpoint(): void;
  protected abstract scheduleWalCheckpoint(): void;

  abstract apply(index: number, op: StoreOp, requestKey?: Uint8Array): Promise<OpResult>;
  abstract getattr(file: FileId): Promise<Attr | undefined>;
  abstract getattrMany(files: readonly FileId[]): Promise<(Attr | undefined)[]>;
  abstract lookup(dir: FileId, name: string): Promise<{ status: S; obj?: Attr; dirAttr?: Attr }>;
  abstract readdir(dir: FileId, cookie: number, cookieverf: string | undefined, maxEntries: number): Promise<ReaddirResult>;
  abstract read(file: FileId, offset: number, count: number): Promise<{ status: S; attr?: Attr; data?: Uint8Array; eof?: boolean }>;
  abstract readlink(file: FileId): Promise<{ status: S; attr?: Attr; target?: string }>;
  abstract sync(file?: FileId): Promise<void>;
  abstract fsstat(): Promise<FsStat>;
  abstract close(): Promise<void>;
}

/**
 * Write a batch of pre-encoded Buffer keys and values, sync:true (see the top of this file: a sync:false
 * write is not made durable by a later sync write once LevelDB has rotated its log). abstract-level's public batch()
 * clones and re-validates every operation (about half the cost of a create under load); with 'buffer'
 * encodings there is nothing to encode, so the batch goes straight to classic-level's _batch(), the
 * documented implementation hook that batch() itself ends in. Falls back to batch() if it is absent.
 */
export function writeBatch(db: MetaDb, ops: BatchOp[], sync = true): Promise<void> {
  const impl = (db as unknown as { _batch?: (ops: BatchOp[], opts: object) => Promise<void> })._batch;
  if (typeof impl === 'function' && db.status === 'open') return impl.call(db, ops, { sync });
  return db.batch(ops, { sync });
}
