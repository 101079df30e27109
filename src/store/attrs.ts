/** Attributes as NFS sees them (fattr3, wcc_attr), from the stored inode record. */
import { FileType, type Attr, type WccAttr } from './types';
import { BLOCK } from './data-files';
import type { Inode } from './codec';

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

export function wccAttr(i: Inode): WccAttr {
  return { size: i.size, mtime: { sec: i.mtimeS, nsec: i.mtimeN }, ctime: { sec: i.ctimeS, nsec: i.ctimeN } };
}

/** Cookie verifier of a directory: constant for its life (cookies are never reused), different for a
 * different directory or generation. */
export function cookieVerf(i: Inode): string {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(i.fileid >>> 0, 0);
  b.writeUInt32BE((i.generation + 1) >>> 0, 4);
  return b.toString('hex');
}
