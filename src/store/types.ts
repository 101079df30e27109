/**
 * The contract of the local block store.
 *
 * Every mutation is a serializable, deterministic `StoreOp`. The store applies ops strictly in index
 * order through `apply(index, op)`; the same sequence of ops yields the same file ids, handles,
 * directory cookies and attributes on any machine (invariant 2). Ops carry everything that would
 * otherwise be read from the local environment: the time stamp, the caller's credentials.
 *
 * Errors are NFSv3 status codes (`nfsstat3`, RFC 1813 §2.6) so the NFS layer forwards them unchanged.
 */

/** nfsstat3 values the store can return. */
export const enum Nfs3Status {
  OK = 0,
  PERM = 1,
  NOENT = 2,
  IO = 5,
  NXIO = 6,
  ACCES = 13,
  EXIST = 17,
  XDEV = 18,
  NODEV = 19,
  NOTDIR = 20,
  ISDIR = 21,
  INVAL = 22,
  FBIG = 27,
  NOSPC = 28,
  ROFS = 30,
  MLINK = 31,
  NAMETOOLONG = 63,
  NOTEMPTY = 66,
  DQUOT = 69,
  STALE = 70,
  REMOTE = 71,
  BADHANDLE = 10001,
  NOT_SYNC = 10002,
  BAD_COOKIE = 10003,
  NOTSUPP = 10004,
  TOOSMALL = 10005,
  SERVERFAULT = 10006,
  BADTYPE = 10007,
  JUKEBOX = 10008,
}

/** ftype3 */
export const enum FileType {
  REG = 1,
  DIR = 2,
  BLK = 3,
  CHR = 4,
  LNK = 5,
  SOCK = 6,
  FIFO = 7,
}

/** nfstime3 as (seconds, nanoseconds). */
export interface Time {
  sec: number;
  nsec: number;
}

/** Everything fattr3 needs, plus the store's own bookkeeping. Integers above 2^53 never occur. */
export interface Attr {
  type: FileType;
  /** permission bits and setuid/setgid/sticky (07777) */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** bytes actually allocated (multiple of the block size) */
  used: number;
  /** major, minor for CHR/BLK */
  rdev: [number, number];
  fileid: number;
  /** generation of this file id; part of the handle */
  generation: number;
  atime: Time;
  mtime: Time;
  ctime: Time;
}

/** AUTH_SYS credentials after export squashing. */
export interface Cred {
  uid: number;
  gid: number;
  gids: number[];
}

/** sattr3: each field optional (undefined = don't set). 'server' means set to the op's time. */
export interface SetAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Time | 'server';
  mtime?: Time | 'server';
}

/** A file is named by its file id; handles are the NFS layer's business (see handle.ts). */
export type FileId = number;

interface OpBase {
  /** Time assigned by the proposer; all time stamps the op sets come from here. */
  time: Time;
  cred: Cred;
}

export type StoreOp =
  | (OpBase & { kind: 'setattr'; file: FileId; attrs: SetAttrs; guardCtime?: Time })
  | (OpBase & {
      kind: 'create';
      dir: FileId;
      name: string;
      /** UNCHECKED overwrites (truncating to attrs.size if given), GUARDED fails with EXIST,
       * EXCLUSIVE stores the verifier and succeeds again for a retransmit with the same verifier. */
      mode: 'unchecked' | 'guarded' | 'exclusive';
      attrs: SetAttrs;
      /** 8-byte create verifier, hex, EXCLUSIVE only */
      verifier?: string;
    })
  | (OpBase & { kind: 'mkdir'; dir: FileId; name: string; attrs: SetAttrs })
  | (OpBase & { kind: 'symlink'; dir: FileId; name: string; attrs: SetAttrs; target: string })
  | (OpBase & {
      kind: 'mknod';
      dir: FileId;
      name: string;
      type: FileType.CHR | FileType.BLK | FileType.SOCK | FileType.FIFO;
      attrs: SetAttrs;
      rdev?: [number, number];
    })
  | (OpBase & { kind: 'remove'; dir: FileId; name: string })
  | (OpBase & { kind: 'rmdir'; dir: FileId; name: string })
  | (OpBase & { kind: 'rename'; fromDir: FileId; fromName: string; toDir: FileId; toName: string })
  | (OpBase & { kind: 'link'; file: FileId; dir: FileId; name: string })
  | (OpBase & {
      kind: 'write';
      file: FileId;
      offset: number;
      data: Uint8Array;
      /** UNSTABLE (0) may stay buffered; DATA_SYNC (1) / FILE_SYNC (2) are durable when apply resolves */
      stable: 0 | 1 | 2;
    });

/** Attributes of an object before a change, as wcc_attr (RFC 1813 §2.6). */
export interface WccAttr {
  size: number;
  mtime: Time;
  ctime: Time;
}

export interface Wcc {
  before?: WccAttr;
  after?: Attr;
}

/** Result of apply(). status != OK means the op changed nothing (but was still consumed in order). */
export interface OpResult {
  status: Nfs3Status;
  /** the object created / written / changed */
  obj?: Attr;
  /** wcc of the (first) directory or of the file for setattr/write */
  wcc?: Wcc;
  /** wcc of the target directory for rename/link */
  wcc2?: Wcc;
  /** bytes written, for write */
  count?: number;
}

export interface DirEntry {
  name: string;
  fileid: FileId;
  /** Stable cookie: valid across restarts and identical on every replica. Never 0. */
  cookie: number;
}

export interface ReaddirResult {
  status: Nfs3Status;
  dirAttr?: Attr;
  entries: DirEntry[];
  eof: boolean;
  /** 8-byte cookie verifier, hex */
  cookieverf: string;
}

export interface FsStat {
  tbytes: number;
  fbytes: number;
  abytes: number;
  tfiles: number;
  ffiles: number;
  afiles: number;
}

/** The local block store. One instance per data directory. */
export interface BlockStore {
  /** Index of the last op whose effects are recorded (durably once `sync()` resolves). */
  readonly appliedIndex: number;
  readonly rootFileId: FileId;
  /** Apply op number `index` (must be appliedIndex + 1, or with `logWal` any index above the last
   * one queued; index <= appliedIndex is a no-op replay and resolves with the status it had, or OK).
   * Deterministic. `requestKey` (at most 64 bytes): the duplicate-request record; an op whose key is
   * recorded changes nothing and resolves with the recorded result. */
  apply(index: number, op: StoreOp, requestKey?: Uint8Array): Promise<OpResult>;
  getattr(file: FileId): Promise<Attr | undefined>;
  /** getattr of many files at once (READDIRPLUS); undefined for those that do not exist */
  getattrMany(files: readonly FileId[]): Promise<(Attr | undefined)[]>;
  lookup(dir: FileId, name: string): Promise<{ status: Nfs3Status; obj?: Attr; dirAttr?: Attr }>;
  /** entries with cookie > `cookie`, at most `maxEntries` of them */
  readdir(dir: FileId, cookie: number, cookieverf: string | undefined, maxEntries: number): Promise<ReaddirResult>;
  read(file: FileId, offset: number, count: number): Promise<{ status: Nfs3Status; attr?: Attr; data?: Uint8Array; eof?: boolean }>;
  /** Optional: the data of a read() is no longer in use (its reply was sent); the store may reuse its
   * memory. Calling it for other buffers, or twice, is harmless; not calling it only costs reuse. */
  releaseRead?(data: Uint8Array): void;
  readlink(file: FileId): Promise<{ status: Nfs3Status; attr?: Attr; target?: string }>;
  /** Make every applied op durable (data and metadata). Concurrent callers share fsyncs. */
  sync(file?: FileId): Promise<void>;
  fsstat(): Promise<FsStat>;
  close(): Promise<void>;
}

/** Options of `openStore(dataDir, options)` (src/store/block-store.ts). All optional. Every replica of
 * a cluster must use the same values: they decide op results (NOSPC, FBIG, MLINK). */
export interface StoreOptions {
  /** mode, uid, gid of the root directory of a fresh store (default 0755, 0, 0) */
  rootMode?: number;
  rootUid?: number;
  rootGid?: number;
  /** largest file size; writes/truncates beyond give FBIG (default 2^43 = 8 TiB) */
  maxFileSize?: number;
  /** capacity in bytes (sum of `used` of all files); growth beyond gives NOSPC (default unlimited) */
  capacityBytes?: number;
  /** most objects (inodes) the store holds; creates beyond give NOSPC (default unlimited) */
  maxFiles?: number;
  /** nlink cap; LINK / MKDIR / RENAME beyond give MLINK (default 65000) */
  maxLinks?: number;
  /** inode records cached in memory (default 16384: an inode object costs ~0.7 KB of heap; 65536 of
   * them lifted the daemon to 250 MB RSS in a 100 000-file directory for no measurable gain) */
  inodeCacheSize?: number;
  /** open data file descriptors cached (default 256) */
  fdCacheSize?: number;
  /** largest READ count served; larger requests are clipped (default 4 MiB) */
  maxReadBytes?: number;
  /** WRITEs of up to this many bytes are journaled: their bytes go into the LevelDB batch that
   * records the write, so a stable write costs one sync instead of a data fdatasync plus a metadata
   * sync; the data files catch up at background checkpoints (default 64 KiB; 0 journals nothing) */
  journalMaxWrite?: number;
  /** a regular file keeps its data inline in LevelDB (no data file: one LevelDB write per stable
   * write, nothing to open or fdatasync) while every byte written lies below this offset; a write
   * beyond moves the data to a data file for good (default 16 KiB; 0: never inline) */
  inlineMax?: number;
  /** "The log is the write-ahead log" (a cluster's Raft log holds every op durably before it is
   * applied): apply() resolves once the op is applied in memory, LevelDB batches are written without
   * sync and without a data barrier, nothing is journaled, and a background checkpoint (fdatasync of
   * the data files, then a durable checkpoint record) advances `durableIndex`. After a crash, the ops
   * in (durableIndex, appliedIndex] must be handed to redo() and then finishRedo() called. Local I/O
   * faults (ENOSPC, EIO) fail the store instead of answering NOSPC. (default false) */
  logWal?: boolean;
  /** duplicate-request records kept (apply's requestKey), oldest op index evicted first (default 8192) */
  drcEntries?: number;
  /** logWal: a checkpoint starts this long after the first op since the last one (default 1000 ms) ... */
  checkpointIntervalMs?: number;
  /** ... or once this many data bytes were written since (default 64 MiB) ... */
  checkpointBytes?: number;
  /** ... or once this many ops were applied since (default 16384) */
  checkpointOps?: number;
  /** logWal: called after each durable checkpoint with its index (the log may be compacted up to it) */
  onDurable?: (index: number) => void;
}
