/**
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78) as used by iSCSI (RFC 3720),
 * ext4 and etcd's WAL. Used to checksum log segment records, snapshot files and transport frames.
 * (Node's zlib.crc32 is the IEEE polynomial, not this one.)
 *
 * Inputs of NATIVE_MIN bytes or more go to `@node-rs/crc32` (SSE4.2/ARMv8 CRC instructions, ~7 GB/s
 * here against ~2 GB/s for the table below); shorter ones stay in JavaScript, where a call costs less
 * than crossing into native code (measured: 8 B 20 ns JS / 150 ns native, break-even ~200 B).
 * The table-driven slicing-by-8 code is also the reference the tests compare the native one with.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** below this many bytes the JavaScript loop is faster than the native call */
const NATIVE_MIN = 256;

const POLY = 0x82f63b78;

import { endianness } from 'node:os';

const TABLES: Int32Array[] = (() => {
  const t: Int32Array[] = [];
  for (let k = 0; k < 8; k++) t.push(new Int32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[0][n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[0][n] >>> 0;
    for (let k = 1; k < 8; k++) {
      c = (t[0][c & 0xff] ^ (c >>> 8)) >>> 0;
      t[k][n] = c;
    }
  }
  return t;
})();

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES;
const LE = endianness() === 'LE';

/**
 * Continue a CRC-32C over buf[start, end). Pass the previous return value as `crc` to chain
 * (start with 0). Returns an unsigned 32-bit integer.
 */
export function crc32c(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  if (end - start >= NATIVE_MIN) {
    return nativeCrc32c(Buffer.from(buf.buffer, buf.byteOffset + start, end - start), crc) >>> 0;
  }
  return crc32cTable(buf, crc, start, end);
}

/** the same CRC in JavaScript (slicing-by-8), for short inputs and as the tests' reference */
export function crc32cTable(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  let c = ~crc;
  let i = start;
  if (LE && end - i >= 1024) {
    // align to 4 bytes, then read two little-endian words per step through an Int32Array view
    while (((buf.byteOffset + i) & 3) !== 0) {
      c = T0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
      i++;
    }
    const pairs = (end - i) >>> 3;
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, pairs * 2);
    for (let k = 0; k < w.length; k += 2) {
      const a = c ^ w[k];
      const b = w[k + 1];
      c =
        T7[a & 0xff] ^
        T6[(a >>> 8) & 0xff] ^
        T5[(a >>> 16) & 0xff] ^
        T4[a >>> 24] ^
        T3[b & 0xff] ^
        T2[(b >>> 8) & 0xff] ^
        T1[(b >>> 16) & 0xff] ^
        T0[b >>> 24];
    }
    i += pairs * 8;
  }
  // short inputs: slicing-by-8 on bytes (no typed-array view to allocate)
  const end8 = end - ((end - i) & 7);
  while (i < end8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c =
      T7[a & 0xff] ^
      T6[(a >>> 8) & 0xff] ^
      T5[(a >>> 16) & 0xff] ^
      T4[a >>> 24] ^
      T3[buf[i + 4]] ^
      T2[buf[i + 5]] ^
      T1[buf[i + 6]] ^
      T0[buf[i + 7]];
    i += 8;
  }
  while (i < end) {
    c = T0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}
