/**
 * NFSv3 file handles: 32 opaque bytes that name a file for the life of the file, on every replica.
 *
 *   byte  0      format version (1)
 *   bytes 1..3   zero
 *   bytes 4..7   export id, u32 big-endian
 *   bytes 8..15  file id, u64 big-endian (0 = the export root, whatever the store's root id is)
 *   bytes 16..19 generation of the file id, low 32 bits, big-endian
 *   bytes 20..31 first 12 bytes of SHA-256("hanfs-fh-v1" || bytes 0..19)
 *
 * Nothing machine-local goes in: the same (export, file, generation) gives the same bytes on every
 * node, so a handle from the old leader works on the new one (invariant 2). The checksum is not a
 * secret; it only makes a random or damaged handle fail with BADHANDLE instead of naming some file.
 * The root is always encoded with file id 0 and generation 0 so it has exactly one handle however
 * it was reached (MNT, LOOKUP "..", READDIRPLUS), and MOUNT can make it without asking the store.
 *
 * SHA-256 costs more than the rest of a GETATTR's decoding, so the checksums of recently made or
 * verified handles are kept per process (bytes 0..19 → bytes 20..31, at most CHECKSUM_CACHE_MAX,
 * oldest dropped first; a handle that fails the check is not kept). Only checksums computed here go
 * in, so a forged or damaged handle is still compared against the true checksum of its first 20
 * bytes and refused; the bytes of every handle are unchanged.
 */
import { createHash } from 'node:crypto';

export const FH_SIZE = 32;
export const FH_VERSION = 1;
/** file id written into the handle of an export's root directory */
export const ROOT_HANDLE_FILE_ID = 0;

const SUM_OFFSET = 20;
const SUM_BYTES = 12;
const DOMAIN = Buffer.from('hanfs-fh-v1', 'latin1');
const MAX_U32 = 0xffffffff;

export interface HandleFields {
  exportId: number;
  /** ROOT_HANDLE_FILE_ID for the export root */
  fileId: number;
  /** low 32 bits of the file's generation: compare with sameGeneration() */
  generation: number;
}

/** Does a handle's generation field match the file's (full) generation? */
export function sameGeneration(handleGeneration: number, fileGeneration: number): boolean {
  return handleGeneration === fileGeneration >>> 0;
}

function checksum(head: Uint8Array): Buffer {
  return createHash('sha256').update(DOMAIN).update(head).digest();
}

/** checksums kept (see the module comment); about 150 bytes each */
export const CHECKSUM_CACHE_MAX = 8192;
/** latin1 string of bytes 0..19 → latin1 string of bytes 20..31 (insertion order = age) */
const sums = new Map<string, string>();
const latin1Slice: (this: Uint8Array, start: number, end: number) => string = (Buffer.prototype as any).latin1Slice;

function remember(head: string, sum: string): void {
  if (sums.size >= CHECKSUM_CACHE_MAX) sums.delete(sums.keys().next().value as string);
  sums.set(head, sum);
}

/** the true checksum of bytes 0..19 of `fh`, as a 12-character latin1 string */
function computeSum(fh: Uint8Array): string {
  return latin1Slice.call(checksum(fh.subarray(0, SUM_OFFSET)), 0, SUM_BYTES);
}

/** entries in the checksum cache (tests) */
export function checksumCacheSize(): number {
  return sums.size;
}

export function encodeHandle(exportId: number, fileId: number, generation: number): Buffer {
  if (!Number.isSafeInteger(fileId) || fileId < 0) throw new RangeError(`bad file id ${fileId}`);
  if (!Number.isInteger(exportId) || exportId < 0 || exportId > MAX_U32) throw new RangeError(`bad export id ${exportId}`);
  if (!Number.isSafeInteger(generation) || generation < 0) throw new RangeError(`bad generation ${generation}`);
  const fh = Buffer.alloc(FH_SIZE);
  fh[0] = FH_VERSION;
  fh.writeUInt32BE(exportId, 4);
  fh.writeUInt32BE(Math.floor(fileId / 0x100000000), 8);
  fh.writeUInt32BE(fileId >>> 0, 12);
  fh.writeUInt32BE(generation >>> 0, 16);
  const head = latin1Slice.call(fh, 0, SUM_OFFSET);
  let sum = sums.get(head);
  if (sum === undefined) remember(head, (sum = computeSum(fh)));
  fh.write(sum, SUM_OFFSET, SUM_BYTES, 'latin1');
  return fh;
}

/**
 * The handle of any object: the store's root directory always gets the root handle, everything
 * else (export id, file id, generation). MOUNT uses this for a MNT below the export root.
 */
export function handleFor(exportId: number, fileId: number, generation: number, rootFileId: number): Buffer {
  return fileId === rootFileId ? rootHandle(exportId) : encodeHandle(exportId, fileId, generation);
}

/** The handle MOUNT returns for an export's root directory. */
export function rootHandle(exportId: number): Buffer {
  return encodeHandle(exportId, ROOT_HANDLE_FILE_ID, 0);
}

function u32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/**
 * Parse a handle. undefined means it is not one of ours (wrong length, version, reserved bytes or
 * checksum): answer NFS3ERR_BADHANDLE. Whether the file still exists is the caller's question
 * (NFS3ERR_STALE).
 */
export function decodeHandle(fh: Uint8Array): HandleFields | undefined {
  if (fh.length !== FH_SIZE || fh[0] !== FH_VERSION || fh[1] !== 0 || fh[2] !== 0 || fh[3] !== 0) return undefined;
  const hi = u32(fh, 8);
  // file ids are below 2^53 (store contract); a larger one was never issued
  if (hi >= 0x200000) return undefined;
  const head = latin1Slice.call(fh, 0, SUM_OFFSET);
  const known = sums.get(head);
  const sum = known ?? computeSum(fh);
  for (let i = 0; i < SUM_BYTES; i++) if (sum.charCodeAt(i) !== fh[SUM_OFFSET + i]) return undefined;
  // only a handle that checked out is remembered: random handles cannot push good ones out
  if (known === undefined) remember(head, sum);
  return { exportId: u32(fh, 4), fileId: hi * 0x100000000 + u32(fh, 12), generation: u32(fh, 16) };
}
