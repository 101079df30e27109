/**
 * Permission answers for the calls the NFS layer decides itself (ACCESS, READ, LOOKUP, READDIR);
 * mutations are checked by the store inside apply(), which has the op's credentials.
 * The rules are POSIX mode bits as Linux applies them: one class (owner, else group incl.
 * supplementary groups, else other); uid 0 may read and write anything and execute what has any x
 * bit (directories are always searchable for it). ACCESS bits per object type follow knfsd.
 */
import { FileType, type Attr, type Cred } from '../../store/types';

export const ACCESS3_READ = 0x1;
export const ACCESS3_LOOKUP = 0x2;
export const ACCESS3_MODIFY = 0x4;
export const ACCESS3_EXTEND = 0x8;
export const ACCESS3_DELETE = 0x10;
export const ACCESS3_EXECUTE = 0x20;

const R = 4;
const W = 2;
const X = 1;

export function inGroup(cred: Cred, gid: number): boolean {
  return cred.gid === gid || cred.gids.includes(gid);
}

/** The rwx bits (0..7) this caller gets on this object. */
export function permBits(attr: Attr, cred: Cred): number {
  if (cred.uid === 0) {
    const anyX = attr.type === FileType.DIR || (attr.mode & 0o111) !== 0;
    return R | W | (anyX ? X : 0);
  }
  if (cred.uid === attr.uid) return (attr.mode >> 6) & 7;
  if (inGroup(cred, attr.gid)) return (attr.mode >> 3) & 7;
  return attr.mode & 7;
}

/** ACCESS3 bits granted (before masking with what was asked). */
export function accessGranted(attr: Attr, cred: Cred, readOnlyExport: boolean): number {
  const p = permBits(attr, cred);
  let g = 0;
  if (p & R) g |= ACCESS3_READ;
  if (attr.type === FileType.DIR) {
    if (p & X) g |= ACCESS3_LOOKUP;
    if ((p & W) && (p & X)) g |= ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
  } else {
    if (p & W) g |= ACCESS3_MODIFY | ACCESS3_EXTEND;
    if (p & X) g |= ACCESS3_EXECUTE;
  }
  if (readOnlyExport) g &= ~(ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE);
  return g;
}

/**
 * READ: allowed with read permission, or execute permission (a client must read a program to run
 * it), or to the file's owner whatever the mode (the client checked permissions at open; a file
 * created 0444 or chmod'ed after open must stay readable through the open descriptor). This is
 * knfsd's NFSD_MAY_READ | NFSD_MAY_OWNER_OVERRIDE | NFSD_MAY_READ_IF_EXEC.
 */
export function mayRead(attr: Attr, cred: Cred): boolean {
  if (cred.uid === attr.uid) return true;
  return (permBits(attr, cred) & (R | X)) !== 0;
}

/** LOOKUP needs search (x) permission on the directory. */
export function mayLookup(dir: Attr, cred: Cred): boolean {
  return (permBits(dir, cred) & X) !== 0;
}

/** READDIR / READDIRPLUS need read permission on the directory. */
export function mayList(dir: Attr, cred: Cred): boolean {
  return (permBits(dir, cred) & R) !== 0;
}
