/**
 * On-disk record format of the Raft log segments (see docs/raft-storage.md).
 *
 * A segment file is a sequence of records:
 *
 *   u32 LE payloadLength | u32 LE checksum | u8 type | payload
 *
 * checksum = crc32c(salt ++ lengthBytes ++ type ++ payload). The salt is 16 random bytes chosen when
 * the segment is created and kept in its header record (format version 2); it makes the checksums of
 * one segment differ from those of every other segment and unknown to anyone who cannot read the
 * segment, so that bytes inside an entry's data (client file data) that look like a record, or a
 * record copied from another segment, do not validate here. The header record itself is checked
 * without a salt (it carries the salt); so are all records of version 1 segments (no salt: the format
 * before 2026-12-03, still read and appended to). The salt enters as the CRC's starting value
 * (`seed` = crc32c(salt)), so it costs nothing per record.
 *
 * The checksum covers the length field, so a torn or zero-filled length is detected like any other
 * damage. Integers in payloads are little-endian u64 (safe integers only).
 */
import { randomBytes } from 'node:crypto';
import { crc32c } from './segment-crc32c';
import { EntryType, HardState } from './types';

export const RECORD_HEADER_BYTES = 9;
export const SEGMENT_MAGIC = 0x48524c47; // 'HRLG'
/** the version new segments are written in; version 1 (no salt) is still read */
export const SEGMENT_VERSION = 2;
export const SEGMENT_SALT_BYTES = 16;
/** the checksum seed of version 1 segments and of every segment's header record: no salt */
export const NO_SALT_SEED = 0;

export const enum RecordType {
  /** first record of every segment: the writer's state when the segment was created */
  SegmentHeader = 1,
  Entry = 2,
  HardState = 3,
  /** log base moved: compaction (reset=false) or an installed snapshot (reset=true) */
  Base = 4,
}

export interface SegmentHeaderRecord {
  seq: number;
  /** last log index/term when the segment was created */
  lastIndex: number;
  lastTerm: number;
  /** compaction base (index, term) when the segment was created */
  baseIndex: number;
  baseTerm: number;
  hardState: HardState;
}

/** A decoded header: its format version, and the seed of the checksums of the segment's other records. */
export interface DecodedSegmentHeader extends SegmentHeaderRecord {
  version: number;
  seed: number;
}

export interface EntryRecordHead {
  index: number;
  term: number;
  /** term of entry index-1 in this log when the entry was appended (log-matching check on replay) */
  prevTerm: number;
  type: EntryType;
}

export interface BaseRecord {
  index: number;
  term: number;
  reset: boolean;
}

const TWO32 = 2 ** 32;

export function putU64(b: Buffer, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a u64 safe integer: ${v}`);
  b.writeUInt32LE(v % TWO32, off);
  b.writeUInt32LE(Math.floor(v / TWO32), off + 4);
}

export function getU64(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  if (hi > 0x1fffff) throw new RangeError('u64 out of safe integer range');
  return b.readUInt32LE(off) + hi * TWO32;
}

/** The checksum seed of a segment with this salt: crc32c(salt), the CRC state after the salt. */
export function saltSeed(salt: Uint8Array): number {
  return crc32c(salt);
}

/** A new segment's salt: random, and never one whose seed is the unsalted one (then no record of a
 * version 1 segment, nor a header record, validates as a record of the new segment). */
export function newSegmentSalt(): Buffer {
  for (;;) {
    const salt = randomBytes(SEGMENT_SALT_BYTES);
    if (saltSeed(salt) !== NO_SALT_SEED) return salt;
  }
}

/** Build a complete record (header + payload) around a payload already written at offset 9 of buf,
 * its checksum started from `seed` (the segment's, or NO_SALT_SEED for a header). */
function seal(buf: Buffer, type: RecordType, seed: number): Buffer {
  const len = buf.length - RECORD_HEADER_BYTES;
  buf.writeUInt32LE(len, 0);
  buf[8] = type;
  let c = crc32c(buf, seed, 0, 4);
  c = crc32c(buf, c, 8, buf.length);
  buf.writeUInt32LE(c, 4);
  return buf;
}

/** The header record of a new (version 2) segment with this salt; its checksum has no salt. */
export function encodeSegmentHeader(h: SegmentHeaderRecord, salt: Uint8Array): Buffer {
  if (salt.length !== SEGMENT_SALT_BYTES) throw new RangeError(`segment salt of ${salt.length} bytes`);
  const b = Buffer.allocUnsafe(RECORD_HEADER_BYTES + 8 + SEGMENT_SALT_BYTES + 8 * 8);
  let o = RECORD_HEADER_BYTES;
  b.writeUInt32LE(SEGMENT_MAGIC, o);
  b.writeUInt32LE(SEGMENT_VERSION, o + 4);
  o += 8;
  b.set(salt, o);
  o += SEGMENT_SALT_BYTES;
  for (const v of [h.seq, h.lastIndex, h.lastTerm, h.baseIndex, h.baseTerm, h.hardState.term, h.hardState.vote, h.hardState.commit]) {
    putU64(b, o, v);
    o += 8;
  }
  return seal(b, RecordType.SegmentHeader, NO_SALT_SEED);
}

/** Decode a header record's payload: version 1 (no salt: the segment's records are checked without
 * one) or version 2 (a salt). */
export function decodeSegmentHeader(b: Buffer, start: number, end: number): DecodedSegmentHeader {
  if (end - start < 8) throw new Error('bad segment header length');
  if (b.readUInt32LE(start) !== SEGMENT_MAGIC) throw new Error('bad segment magic');
  const version = b.readUInt32LE(start + 4);
  let o = start + 8;
  let seed = NO_SALT_SEED;
  if (version === 2) {
    if (end - start !== 8 + SEGMENT_SALT_BYTES + 8 * 8) throw new Error('bad segment header length');
    seed = saltSeed(b.subarray(o, o + SEGMENT_SALT_BYTES));
    // a version 2 segment never has the unsalted seed (newSegmentSalt): such a header is not ours
    if (seed === NO_SALT_SEED) throw new Error('segment salt without effect');
    o += SEGMENT_SALT_BYTES;
  } else if (version === 1) {
    if (end - start !== 8 + 8 * 8) throw new Error('bad segment header length');
  } else throw new Error(`unsupported segment version ${version}`);
  return {
    version,
    seed,
    seq: getU64(b, o),
    lastIndex: getU64(b, o + 8),
    lastTerm: getU64(b, o + 16),
    baseIndex: getU64(b, o + 24),
    baseTerm: getU64(b, o + 32),
    hardState: { term: getU64(b, o + 40), vote: getU64(b, o + 48), commit: getU64(b, o + 56) },
  };
}

export const ENTRY_FIXED_BYTES = 8 * 3 + 1;

/**
 * An entry record as the parts it is written from: the record header with the entry's fixed fields,
 * and the entry's data as it is (not copied: a 1 MiB WRITE is written to the segment from the buffer
 * the op codec made). The checksum covers the length, the type, the fixed fields and the data.
 */
export interface EntryRecordParts {
  head: Buffer;
  data: Uint8Array;
  /** bytes of the whole record */
  length: number;
}

export function encodeEntryRecord(index: number, term: number, prevTerm: number, type: EntryType, data: Uint8Array, seed: number): EntryRecordParts {
  const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES + ENTRY_FIXED_BYTES);
  const o = RECORD_HEADER_BYTES;
  putU64(head, o, index);
  putU64(head, o + 8, term);
  putU64(head, o + 16, prevTerm);
  head[o + 24] = type;
  head.writeUInt32LE(ENTRY_FIXED_BYTES + data.length, 0);
  head[8] = RecordType.Entry;
  let c = crc32c(head, seed, 0, 4);
  c = crc32c(head, c, 8, head.length);
  c = crc32c(data, c);
  head.writeUInt32LE(c, 4);
  return { head, data, length: head.length + data.length };
}

export function decodeEntryHead(b: Buffer, start: number, end: number): EntryRecordHead {
  if (end - start < ENTRY_FIXED_BYTES) throw new Error('short entry record');
  const type = b[start + 24];
  if (type > 2) throw new Error(`bad entry type ${type}`);
  return { index: getU64(b, start), term: getU64(b, start + 8), prevTerm: getU64(b, start + 16), type: type as EntryType };
}

export const HARD_STATE_RECORD_BYTES = RECORD_HEADER_BYTES + 24;

export function encodeHardStateRecord(hs: HardState, seed: number): Buffer {
  const b = Buffer.allocUnsafe(HARD_STATE_RECORD_BYTES);
  putU64(b, RECORD_HEADER_BYTES, hs.term);
  putU64(b, RECORD_HEADER_BYTES + 8, hs.vote);
  putU64(b, RECORD_HEADER_BYTES + 16, hs.commit);
  return seal(b, RecordType.HardState, seed);
}

export function decodeHardState(b: Buffer, start: number, end: number): HardState {
  if (end - start !== 24) throw new Error('bad hard state record length');
  return { term: getU64(b, start), vote: getU64(b, start + 8), commit: getU64(b, start + 16) };
}

export const BASE_RECORD_BYTES = RECORD_HEADER_BYTES + 17;

export function encodeBaseRecord(r: BaseRecord, seed: number): Buffer {
  const b = Buffer.allocUnsafe(BASE_RECORD_BYTES);
  putU64(b, RECORD_HEADER_BYTES, r.index);
  putU64(b, RECORD_HEADER_BYTES + 8, r.term);
  b[RECORD_HEADER_BYTES + 16] = r.reset ? 1 : 0;
  return seal(b, RecordType.Base, seed);
}

export function decodeBase(b: Buffer, start: number, end: number): BaseRecord {
  if (end - start !== 17) throw new Error('bad base record length');
  return { index: getU64(b, start), term: getU64(b, start + 8), reset: b[start + 16] === 1 };
}

export type ParsedRecord =
  | { ok: true; type: RecordType; payloadStart: number; payloadEnd: number; next: number }
  | { ok: false; reason: 'short' | 'crc' | 'length' };

/** Parse the record starting at `off` of buf[0, end), its checksum started from `seed` (the segment's;
 * NO_SALT_SEED for a header record or a version 1 segment). Never throws. */
export function parseRecord(buf: Buffer, off: number, end: number, maxPayload: number, seed: number): ParsedRecord {
  if (end - off < RECORD_HEADER_BYTES) return { ok: false, reason: 'short' };
  const len = buf.readUInt32LE(off);
  if (len > maxPayload) return { ok: false, reason: 'length' };
  const next = off + RECORD_HEADER_BYTES + len;
  if (next > end) return { ok: false, reason: 'short' };
  const type = buf[off + 8];
  let c = crc32c(buf, seed, off, off + 4);
  c = crc32c(buf, c, off + 8, next);
  if (c !== buf.readUInt32LE(off + 4)) return { ok: false, reason: 'crc' };
  if (type < RecordType.SegmentHeader || type > RecordType.Base) return { ok: false, reason: 'crc' };
  return { ok: true, type: type as RecordType, payloadStart: off + RECORD_HEADER_BYTES, payloadEnd: next, next };
}

/** Offset of the first valid record (checksum started from the segment's `seed`) starting somewhere in
 * buf[from, end), or -1: used to tell a torn tail (nothing valid after the damage) from corruption in
 * the middle of the log (valid records follow). With a salted seed, record-like bytes inside a torn
 * entry's data (client data, or a record of another segment) are not taken for a valid record. */
export function anyValidRecordAfter(buf: Buffer, from: number, end: number, maxPayload: number, seed: number): number {
  // every valid record has a non-zero type byte at off + 8: offsets past the last non-zero byte
  // (a zero-filled, preallocated tail) cannot start one and are not scanned byte by byte
  const lastNz = lastNonZero(buf, from, end);
  for (let off = from; off + RECORD_HEADER_BYTES <= end && off + 8 <= lastNz; off++) {
    const len = buf.readUInt32LE(off);
    if (len > maxPayload || off + RECORD_HEADER_BYTES + len > end) continue;
    const t = buf[off + 8];
    if (t < RecordType.SegmentHeader || t > RecordType.Base) continue;
    const r = parseRecord(buf, off, end, maxPayload, seed);
    if (r.ok) return off;
  }
  return -1;
}

const ZEROS = Buffer.alloc(64 * 1024);

/** Offset of the last non-zero byte in buf[from, end), or -1 (compares 64 KiB blocks natively). */
export function lastNonZero(buf: Buffer, from: number, end: number): number {
  let hi = end;
  while (hi > from) {
    const lo = Math.max(from, hi - ZEROS.length);
    if (!buf.subarray(lo, hi).equals(ZEROS.subarray(0, hi - lo))) {
      for (let i = hi - 1; i >= lo; i--) if (buf[i] !== 0) return i;
    }
    hi = lo;
  }
  return -1;
}

/** buf[from, end) is all zero bytes (a preallocated segment's unwritten tail). */
export function allZero(buf: Buffer, from: number, end: number): boolean {
  return lastNonZero(buf, from, end) < 0;
}
