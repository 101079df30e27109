/**
 * POSIX permission checks done inside apply() from the op's credentials, so every replica reaches the
 * same verdict. Modelled on Linux (and knfsd's owner override for writes to a file one owns).
 */
import { FileType, type Cred } from './types';
import type { Inode } from './codec';

export const R = 4;
export const W = 2;
export const X = 1;

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;

export function inGroup(cred: Cred, gid: number): boolean {
  return cred.gid === gid || cred.gids.includes(gid);
}

/** May `cred` access `ino` for all of the bits in `want` (R|W|X)? */
export function mayAccess(ino: Inode, cred: Cred, want: number): boolean {
  if (cred.uid === 0) {
    // root: read/write always; execute only on directories or when any x bit is set
    if (want & X && ino.type !== FileType.DIR && (ino.mode & 0o111) === 0) return false;
    return true;
  }
  let bits: number;
  if (cred.uid === ino.uid) bits = (ino.mode >> 6) & 7;
  else if (inGroup(cred, ino.gid)) bits = (ino.mode >> 3) & 7;
  else bits = ino.mode & 7;
  return (bits & want) === want;
}

/** Write access to file data: knfsd lets the owner write whatever the mode (a file created 0444 by
 * open(O_CREAT|O_WRONLY) must take the data that follows). */
export function mayWriteData(ino: Inode, cred: Cred): boolean {
  return cred.uid === ino.uid || mayAccess(ino, cred, W);
}

/** Sticky directory rule for removing/renaming away `victim` from `dir`. */
export function stickyAllows(dir: Inode, victim: Inode, cred: Cred): boolean {
  if (!(dir.mode & S_ISVTX) || cred.uid === 0) return true;
  return cred.uid === dir.uid || cred.uid === victim.uid;
}
