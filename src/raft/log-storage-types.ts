/**
 * Errors, options, I/O hooks and statistics of the durable Raft log storage (log-storage.ts, which
 * re-exports everything public here), and the open-segment record its parts share.
 */

export class StorageFailedError extends Error {
  override name = 'StorageFailedError';
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
  }
}

/** The log on disk is damaged in a way that is not a torn tail: refuse to start. */
export class LogCorruptionError extends Error {
  override name = 'LogCorruptionError';
}

export interface StorageLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SyncBatchInfo {
  /** wall time of the fsync(s) of this batch */
  seconds: number;
  /** bytes written since the previous batch */
  bytes: number;
  /** entries appended since the previous batch */
  entries: number;
  /** sync() callers this batch resolved */
  callers: number;
  /** files fsynced (segments + directory) */
  files: number;
}

/** The I/O calls that decide durability, replaceable for fault injection and crash simulation. */
export interface StorageIo {
  fdatasync(fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void;
  /** used when a segment is rolled */
  fdatasyncSync(fd: number): void;
  /** fsync of the log directory (a new segment's name) */
  fsyncDir(dir: string): Promise<void>;
  /** write the buffers back to back at `pos` (at most IOV_MAX of them); returns the bytes written */
  writevSync(fd: number, bufs: Uint8Array[], pos: number): number;
}

export interface LogStorageOptions {
  dir: string;
  /** roll to a new segment when the current one reaches this size (default 64 MiB) */
  segmentBytes?: number;
  /** largest record payload accepted (default 64 MiB + 1 KiB) */
  maxRecordBytes?: number;
  /** bytes of entry data kept in the read cache (default 16 MiB) */
  cacheBytes?: number;
  logger?: StorageLogger;
  onSync?: (b: SyncBatchInfo) => void;
  /** fault injection for tests */
  io?: Partial<StorageIo>;
}

export interface StorageStats {
  syncBatches: number;
  syncedEntries: number;
  syncCallers: number;
  maxBatchEntries: number;
  fsyncSecondsTotal: number;
  maxFsyncSeconds: number;
  segments: number;
  indexBytes: number;
  cacheBytes: number;
  cacheEntries: number;
  /** bytes cut from a torn tail at open */
  recoveredTornBytes: number;
  /** rolls that renamed a preallocated (zero-filled, fdatasync'ed) file into the new segment */
  preallocatedSegments: number;
  /** a preallocated file for the next segment is ready */
  nextSegmentReady: boolean;
}

/** One segment file of the log, open; `size` is the bytes written to the OS (queued records not counted). */
export interface Segment {
  seq: number;
  file: string;
  fd: number;
  size: number;
  /** the seed of its records' checksums: from the salt in its header (version 2), or NO_SALT_SEED
   * (version 1, written before segments had a salt) */
  seed: number;
}

export const noopLogger: StorageLogger = { info() {}, warn() {}, error() {} };

/** Count one fsync (or group of fsyncs) of `sec` seconds in the stats. */
export function noteFsync(st: StorageStats, sec: number): void {
  st.fsyncSecondsTotal += sec;
  if (sec > st.maxFsyncSeconds) st.maxFsyncSeconds = sec;
}
