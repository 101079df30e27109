/** What every op needs: the store it runs against (OpEnv), its errors, and the shared rules of
 * new objects, links, times and SETATTR. One file per op kind next to this one. */
import { FileType, Nfs3Status as S, type Cred, type SetAttrs, type StoreOptions, type Time, type Wcc } from '../types';
import type { Inode } from '../codec';
import type { DataFiles } from '../data-files';
import { BLOCK } from '../data-files';
import { usedOf } from '../attrs';
import { checkName, isU32, validTime } from '../op-validation';
import { S_ISGID, S_ISUID, W, inGroup, mayAccess, mayWriteData } from '../permissions';
import type { Tx } from '../tx';
import type { StoreStats } from '../store-core';

export { normVerifier } from '../op-validation';
export { EMPTY } from '../tx';

export const MAX_DIR_DEPTH = 100_000;

/** The limits from the store options that decide op results (the same on every replica). */
export type OpLimits = Required<Pick<StoreOptions, 'maxFileSize' | 'capacityBytes' | 'maxFiles' | 'maxLinks' | 'inlineMax' | 'journalMaxWrite'>>;

/** The store as the ops see it: limits, data files, and the data side of writes and size changes. */
export interface OpEnv {
  readonly opts: OpLimits;
  readonly logWal: boolean;
  readonly data: DataFiles;
  readonly stats: StoreStats;
  /** the data side of a size change of `ino` (as it was before this op) to `size` */
  resize(tx: Tx, ino: Inode, size: number): Promise<void>;
  /** finish a pending cut of `id` that a write or size change (to `size`) could expose or undo */
  settleTruncate(id: number, size?: number): Promise<void>;
  /** write to a file's data file (journaled, or NOSPC, as the mode says) */
  writeDataFile(tx: Tx, fileid: number, offset: number, data: Uint8Array, cutTo: number, wcc: Wcc, journaled?: boolean): Promise<void>;
}

/** Errors that end an op early with a status. */
export class OpError {
  constructor(
    readonly status: S,
    readonly wcc?: Wcc,
    readonly wcc2?: Wcc,
  ) {}
}

/**
 * The store's own records contradict each other (a directory entry naming an inode that is not
 * there, a parent chain that breaks): local corruption. Not an answer (NFS3ERR_IO here but not on
 * the other replicas would make this replica answer, and record, what they do not): it fails the
 * store, which stops applying and serving.
 */
export class StoreCorruptError extends Error {
  constructor(what: string) {
    super(`store corrupt: ${what}`);
  }
}

export async function dirOf(tx: Tx, id: number): Promise<Inode> {
  const d = await tx.inode(id);
  if (!d) throw new OpError(S.STALE);
  if (d.type !== FileType.DIR) throw new OpError(S.NOTDIR);
  return d;
}

/** OpError unless `name` is a valid entry name */
export function checkEntryName(name: string, wcc?: Wcc): void {
  const s = checkName(name);
  if (s !== S.OK) throw new OpError(s, wcc);
}

export function newInode(opts: OpLimits, tx: Tx, index: number, type: FileType, dir: Inode, cred: Cred, time: Time): Inode {
  if (tx.st.fileCount + 1 > opts.maxFiles) throw new OpError(S.NOSPC);
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
    inline: type === FileType.REG && opts.inlineMax > 0,
  };
}

export function touchDir(d: Inode, time: Time): void {
  d.mtimeS = d.ctimeS = time.sec;
  d.mtimeN = d.ctimeN = time.nsec;
}

export function touchCtime(i: Inode, time: Time): void {
  i.ctimeS = time.sec;
  i.ctimeN = time.nsec;
}

/** Drop one link of a non-directory; delete it (and its data) when it was the last. */
export function dropLink(tx: Tx, ino: Inode, time: Time): void {
  if (ino.nlink <= 1) {
    tx.delete(ino);
  } else {
    const e = tx.edit(ino);
    e.nlink--;
    touchCtime(e, time);
  }
}

/** Validate sattr3 for `ino` as `cred` (OpError when it may not be applied); applySetAttrs applies it. */
export function checkSetAttrs(opts: OpLimits, ino: Inode, attrs: SetAttrs, cred: Cred): void {
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
    if (attrs.size > opts.maxFileSize) throw new OpError(S.FBIG);
  }
}

export function applySetAttrs(opts: OpLimits, tx: Tx, e: Inode, attrs: SetAttrs, cred: Cred, time: Time): void {
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
    killPrivs(e);
  }
  if (attrs.size !== undefined) {
    const oldUsed = usedOf(e);
    const newUsed = Math.ceil(attrs.size / BLOCK) * BLOCK;
    if (newUsed > oldUsed && tx.st.usedBytes - oldUsed + newUsed > opts.capacityBytes) throw new OpError(S.NOSPC);
    tx.st.usedBytes += newUsed - oldUsed;
    e.size = attrs.size;
    if (attrs.mtime === undefined) {
      e.mtimeS = time.sec;
      e.mtimeN = time.nsec;
    }
    if (!root && attrs.mode === undefined) killPrivs(e);
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
  touchCtime(e, time);
}

/** clear setuid, and setgid when group-executable (Linux should_remove_suid) */
export function killPrivs(e: Inode): void {
  if (e.mode & S_ISUID) e.mode &= ~S_ISUID;
  if ((e.mode & S_ISGID) && (e.mode & 0o010)) e.mode &= ~S_ISGID;
}
