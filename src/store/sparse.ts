/**
 * Holes of sparse data files: where is the next byte that is stored (lseek SEEK_DATA)? A file written
 * at 1 TiB holds a few KiB but reads as 1 TiB of zeros; the store checksum and the snapshot stream
 * skip its holes instead of reading them. lseek with SEEK_DATA/SEEK_HOLE comes from `fs-ext` (a
 * native addon); where it is missing or the file system does not support it, every byte counts as
 * stored (correct, only slower).
 */
const SEEK_DATA = 3;

type SeekSync = (fd: number, offset: number, whence: number) => number;

let seekSync: SeekSync | undefined;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  seekSync = (require('fs-ext') as { seekSync: SeekSync }).seekSync;
} catch {
  seekSync = undefined;
}

/** true when holes can be found (fs-ext loaded) */
export const holesDetectable = seekSync !== undefined;

/**
 * The offset of the first stored byte at or after `off` in the open file `fd`, or undefined when
 * nothing is stored from `off` on. Without SEEK_DATA support: `off` itself.
 */
export function nextStoredByte(fd: number, off: number): number | undefined {
  if (!seekSync) return off;
  try {
    return seekSync(fd, off, SEEK_DATA);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENXIO') return undefined; // only a hole (or nothing) from off on
    if (code === 'EINVAL' || code === 'ENOSYS' || code === 'EOPNOTSUPP') return off;
    throw e;
  }
}
