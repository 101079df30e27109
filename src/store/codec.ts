/**
 * Binary key layout and the compact inode record codec of the block store's LevelDB.
 *
 * Keys (all big-endian so LevelDB's byte order is numeric order):
 *   0x00 0x01                      state: applied index, next file id, file count, used bytes
 *   0x00 0x02                      store format version
 *   0x00 0x03                      clean-shutdown marker (absent while open)
 *   0x00 0x04                      data checkpoint: every data change of ops up to this index is in
 *                                  the data files durably (journal records up to it are obsolete)
 *   0x01 <fileid u64>              inode record (see encodeInode)
 *   0x02 <dir u64> <name utf8>     directory entry by name -> fileid, cookie
 *   0x03 <dir u64> <cookie u64>    cookie index -> fileid, name (READDIR walks this range)
 *   0x04 <fileid u64>              pending unlink of a data file
 *   0x05 <index u64> <n u8>        data journal record n of op `index` (see encodeJournalWrite)
 *   0x06 <fileid u64>              inline data of a small regular file (inode flag `inline`): its
 *                                  first bytes; bytes past them up to the size read as zeros
 *   0x07 <request key>             replicated duplicate-request record: the op index (u64 BE), then
 *                                  the encoded OpResult of the op that carried the key
 *   0x08 <index u64>               the request key recorded by op `index` (eviction order: oldest first)
 *   0x09 <index u64> <n u8>        logWal mode: cut record n of op `index` (fileid, size as in
 *                                  encodeJournalTruncate), for redo(); dropped by the next checkpoint
 */
import { FileType, type Attr, type OpResult, type Time, type Wcc, type WccAttr } from './types';

/** 2: data journal (0x05 records, 0x00 0x04 checkpoint) and inline data (0x06, inode flag 4); a v1
 * store opens as is (it has none of them) */
export const FORMAT_VERSION = 2;

export const KEY_STATE = Buffer.from([0x00, 0x01]);
export const KEY_VERSION = Buffer.from([0x00, 0x02]);
export const KEY_CLEAN = Buffer.from([0x00, 0x03]);
export const KEY_DATA_CKPT = Buffer.from([0x00, 0x04]);

export const P_INODE = 0x01;
export const P_ENTRY = 0x02;
export const P_COOKIE = 0x03;
export const P_UNLINK = 0x04;
export const P_JOURNAL = 0x05;
export const P_INLINE = 0x06;
export const P_REQUEST = 0x07;
export const P_REQUEST_ORDER = 0x08;
export const P_CUT = 0x09;

const TWO32 = 0x1_0000_0000;

export function writeU64BE(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO32), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

export function readU64BE(buf: Uint8Array, off: number): number {
  const b = buf as Buffer;
  return b.readUInt32BE(off) * TWO32 + b.readUInt32BE(off + 4);
}

function idKey(prefix: number, id: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = prefix;
  writeU64BE(k, 1, id);
  return k;
}

export const inodeKey = (id: number): Buffer => idKey(P_INODE, id);
export const unlinkKey = (id: number): Buffer => idKey(P_UNLINK, id);
export const inlineKey = (id: number): Buffer => idKey(P_INLINE, id);

export function entryKey(dir: number, name: string): Buffer {
  const n = Buffer.byteLength(name, 'utf8');
  const k = Buffer.allocUnsafe(9 + n);
  k[0] = P_ENTRY;
  writeU64BE(k, 1, dir);
  k.write(name, 9, 'utf8');
  return k;
}

/** [gte, lt) bounds of all entry keys of one directory */
export function entryRange(dir: number): { gte: Buffer; lt: Buffer } {
  return { gte: idKey(P_ENTRY, dir), lt: idKey(P_ENTRY, dir + 1) };
}

/** 17 bytes: a tag byte, then two u64 BE */
function tagged2(tag: number, a: number, b: number): Buffer {
  const k = Buffer.allocUnsafe(17);
  k[0] = tag;
  writeU64BE(k, 1, a);
  writeU64BE(k, 9, b);
  return k;
}

export const cookieKey = (dir: number, cookie: number): Buffer => tagged2(P_COOKIE, dir, cookie);

export function journalKey(index: number, n: number): Buffer {
  const k = Buffer.allocUnsafe(10);
  k[0] = P_JOURNAL;
  writeU64BE(k, 1, index);
  k[9] = n;
  return k;
}

/** Journal records of ops after `index` (in op order). */
export function journalRangeAfter(index: number): { gte: Buffer; lt: Buffer } {
  return { gte: journalKey(index + 1, 0), lt: Buffer.from([P_JOURNAL + 1]) };
}

export const JOURNAL_WRITE = 1;
export const JOURNAL_TRUNCATE = 2;

export type JournalRecord =
  | { kind: typeof JOURNAL_WRITE; fileid: number; offset: number; data: Uint8Array }
  | { kind: typeof JOURNAL_TRUNCATE; fileid: number; size: number };

/** A data write the journal makes durable: kind, fileid, offset (u64 BE), then the bytes. */
export function encodeJournalWrite(fileid: number, offset: number, data: Uint8Array): Buffer {
  const v = Buffer.allocUnsafe(17 + data.length);
  v[0] = JOURNAL_WRITE;
  writeU64BE(v, 1, fileid);
  writeU64BE(v, 9, offset);
  v.set(data, 17);
  return v;
}

/** A data file cut to `size`, journaled so that replay keeps writes and cuts in op order. */
export const encodeJournalTruncate = (fileid: number, size: number): Buffer => tagged2(JOURNAL_TRUNCATE, fileid, size);

export function decodeJournal(v: Uint8Array): JournalRecord {
  if (v.length < 17) throw new Error(`journal record of ${v.length} bytes`);
  const fileid = readU64BE(v, 1);
  const n = readU64BE(v, 9);
  if (v[0] === JOURNAL_WRITE) return { kind: JOURNAL_WRITE, fileid, offset: n, data: v.subarray(17) };
  if (v[0] === JOURNAL_TRUNCATE && v.length === 17) return { kind: JOURNAL_TRUNCATE, fileid, size: n };
  throw new Error(`journal record of unknown kind ${v[0]}`);
}

export function encodeIndex(index: number): Buffer {
  const v = Buffer.allocUnsafe(8);
  writeU64BE(v, 0, index);
  return v;
}

/** Entry value: fileid, cookie (both u64 BE). */
export function encodeEntry(fileid: number, cookie: number): Buffer {
  const v = Buffer.allocUnsafe(16);
  writeU64BE(v, 0, fileid);
  writeU64BE(v, 8, cookie);
  return v;
}

export function decodeEntry(v: Uint8Array): { fileid: number; cookie: number } {
  return { fileid: readU64BE(v, 0), cookie: readU64BE(v, 8) };
}

/** Cookie index value: fileid u64 BE, then the name. */
export function encodeCookieValue(fileid: number, name: string): Buffer {
  const n = Buffer.byteLength(name, 'utf8');
  const v = Buffer.allocUnsafe(8 + n);
  writeU64BE(v, 0, fileid);
  v.write(name, 8, 'utf8');
  return v;
}

export function decodeCookieValue(v: Uint8Array): { fileid: number; name: string } {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return { fileid: readU64BE(b, 0), name: b.toString('utf8', 8) };
}

export interface StoreState {
  applied: number;
  nextFileId: number;
  fileCount: number;
  usedBytes: number;
  /** highest op time applied so far (stamps never go below it, see monotonicTime) */
  maxTimeS: number;
  maxTimeN: number;
}

/** 44 bytes; a 32-byte record (before monotonic times) reads with a max time of 0 */
export function encodeState(s: StoreState): Buffer {
  const v = Buffer.allocUnsafe(44);
  v.writeDoubleLE(s.applied, 0);
  v.writeDoubleLE(s.nextFileId, 8);
  v.writeDoubleLE(s.fileCount, 16);
  v.writeDoubleLE(s.usedBytes, 24);
  v.writeDoubleLE(s.maxTimeS, 32);
  v.writeUInt32LE(s.maxTimeN, 40);
  return v;
}

export function decodeState(v: Uint8Array): StoreState {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return {
    applied: b.readDoubleLE(0),
    nextFileId: b.readDoubleLE(8),
    fileCount: b.readDoubleLE(16),
    usedBytes: b.readDoubleLE(24),
    maxTimeS: b.length >= 44 ? b.readDoubleLE(32) : 0,
    maxTimeN: b.length >= 44 ? b.readUInt32LE(40) : 0,
  };
}

/** Key of the request record of `key` (at most 64 bytes). */
export function requestKey(key: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(1 + key.length);
  k[0] = P_REQUEST;
  k.set(key, 1);
  return k;
}

export const requestOrderKey = (index: number): Buffer => idKey(P_REQUEST_ORDER, index);

export function cutKey(index: number, n: number): Buffer {
  const k = journalKey(index, n);
  k[0] = P_CUT;
  return k;
}

/** Cut records of op `index` (all n). */
export function cutRangeOf(index: number): { gte: Buffer; lt: Buffer } {
  return { gte: cutKey(index, 0), lt: cutKey(index + 1, 0) };
}

/** Every cut record of ops up to `index`. */
export function cutRangeUpTo(index: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.from([P_CUT]), lt: cutKey(index + 1, 0) };
}

// ---------------------------------------------------------------- OpResult codec

/** A growable little-endian byte writer (OpResult records are small: ~300 bytes). */
class ByteWriter {
  private buf = Buffer.allocUnsafe(256);
  private n = 0;
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.n++] = v;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
  }
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.n);
    this.n += 8;
  }
  time(t: Time): void {
    this.f64(t.sec);
    this.u32(t.nsec);
  }
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n));
  }
}

class ByteReader {
  private n = 0;
  constructor(private readonly b: Buffer) {}
  private need(k: number): void {
    if (this.n + k > this.b.length) throw new Error('truncated OpResult record');
  }
  u8(): number {
    this.need(1);
    return this.b[this.n++];
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.n);
    this.n += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.n);
    this.n += 8;
    return v;
  }
  time(): Time {
    const sec = this.f64();
    return { sec, nsec: this.u32() };
  }
  end(): void {
    if (this.n !== this.b.length) throw new Error('trailing bytes after OpResult record');
  }
}

const R_OBJ = 1;
const R_WCC = 2;
const R_WCC2 = 4;
const R_COUNT = 8;
const W_BEFORE = 1;
const W_AFTER = 2;
const OPRESULT_TAG = 1;

function writeAttr(w: ByteWriter, a: Attr): void {
  w.u8(a.type);
  w.u32(a.mode);
  w.u32(a.nlink);
  w.u32(a.uid);
  w.u32(a.gid);
  w.f64(a.size);
  w.f64(a.used);
  w.u32(a.rdev[0]);
  w.u32(a.rdev[1]);
  w.f64(a.fileid);
  w.f64(a.generation);
  w.time(a.atime);
  w.time(a.mtime);
  w.time(a.ctime);
}

function readAttr(r: ByteReader): Attr {
  const type = r.u8() as FileType;
  const mode = r.u32();
  const nlink = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const size = r.f64();
  const used = r.f64();
  const rdev: [number, number] = [r.u32(), r.u32()];
  const fileid = r.f64();
  const generation = r.f64();
  const atime = r.time();
  const mtime = r.time();
  const ctime = r.time();
  return { type, mode, nlink, uid, gid, size, used, rdev, fileid, generation, atime, mtime, ctime };
}

function writeWcc(w: ByteWriter, c: Wcc): void {
  w.u8((c.before ? W_BEFORE : 0) | (c.after ? W_AFTER : 0));
  if (c.before) {
    w.f64(c.before.size);
    w.time(c.before.mtime);
    w.time(c.before.ctime);
  }
  if (c.after) writeAttr(w, c.after);
}

function readWcc(r: ByteReader): Wcc {
  const f = r.u8();
  const c: Wcc = {};
  if (f & W_BEFORE) {
    const size = r.f64();
    const mtime = r.time();
    const before: WccAttr = { size, mtime, ctime: r.time() };
    c.before = before;
  }
  if (f & W_AFTER) c.after = readAttr(r);
  return c;
}

/** Every field of an OpResult (status, obj, wcc, wcc2, count), for the duplicate-request record. */
export function encodeOpResult(res: OpResult): Buffer {
  const w = new ByteWriter();
  w.u8(OPRESULT_TAG);
  w.u32(res.status);
  w.u8((res.obj ? R_OBJ : 0) | (res.wcc ? R_WCC : 0) | (res.wcc2 ? R_WCC2 : 0) | (res.count !== undefined ? R_COUNT : 0));
  if (res.obj) writeAttr(w, res.obj);
  if (res.wcc) writeWcc(w, res.wcc);
  if (res.wcc2) writeWcc(w, res.wcc2);
  if (res.count !== undefined) w.f64(res.count);
  return w.done();
}

export function decodeOpResult(v: Uint8Array): OpResult {
  const r = new ByteReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  if (r.u8() !== OPRESULT_TAG) throw new Error('not an OpResult record');
  const res: OpResult = { status: r.u32() };
  const f = r.u8();
  if (f & R_OBJ) res.obj = readAttr(r);
  if (f & R_WCC) res.wcc = readWcc(r);
  if (f & R_WCC2) res.wcc2 = readWcc(r);
  if (f & R_COUNT) res.count = r.f64();
  r.end();
  return res;
}

/** The stored form of an object. Immutable once put into the cache: changes make a copy. */
export interface Inode {
  type: FileType;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  rdev0: number;
  rdev1: number;
  fileid: number;
  generation: number;
  atimeS: number;
  atimeN: number;
  mtimeS: number;
  mtimeN: number;
  ctimeS: number;
  ctimeN: number;
  /** directories: the parent directory (root: itself) */
  parent: number;
  /** directories: next cookie to hand out (1 and 2 are "." and "..") */
  nextCookie: number;
  /** directories: number of entries (excluding "." and "..") */
  entries: number;
  /** EXCLUSIVE create verifier, 16 hex digits, or '' */
  verifier: string;
  /** symlink target, or '' */
  target: string;
  /** regular files: the data is inline (key 0x06), there is no data file to read */
  inline: boolean;
}

const HDR = 120;
const F_VERIFIER = 1;
const F_TARGET = 2;
const F_INLINE = 4;
const RECORD_TAG = 1;

/** Fixed 120-byte little-endian header plus the symlink target. About 10x cheaper than JSON. */
export function encodeInode(i: Inode): Buffer {
  const tlen = i.target ? Buffer.byteLength(i.target, 'utf8') : 0;
  const b = Buffer.allocUnsafe(HDR + tlen);
  b[0] = RECORD_TAG;
  b[1] = i.type;
  b[2] = (i.verifier ? F_VERIFIER : 0) | (tlen ? F_TARGET : 0) | (i.inline ? F_INLINE : 0);
  b[3] = 0;
  b.writeUInt32LE(i.mode, 4);
  b.writeUInt32LE(i.nlink, 8);
  b.writeUInt32LE(i.uid >>> 0, 12);
  b.writeUInt32LE(i.gid >>> 0, 16);
  b.writeUInt32LE(i.rdev0 >>> 0, 20);
  b.writeUInt32LE(i.rdev1 >>> 0, 24);
  b.writeUInt32LE(i.atimeN, 28);
  b.writeUInt32LE(i.mtimeN, 32);
  b.writeUInt32LE(i.ctimeN, 36);
  b.writeDoubleLE(i.size, 40);
  b.writeDoubleLE(i.fileid, 48);
  b.writeDoubleLE(i.generation, 56);
  b.writeDoubleLE(i.atimeS, 64);
  b.writeDoubleLE(i.mtimeS, 72);
  b.writeDoubleLE(i.ctimeS, 80);
  b.writeDoubleLE(i.parent, 88);
  b.writeDoubleLE(i.nextCookie, 96);
  b.writeDoubleLE(i.entries, 104);
  if (i.verifier) b.write(i.verifier, 112, 8, 'hex');
  else b.fill(0, 112, 120);
  if (tlen) b.write(i.target, HDR, 'utf8');
  return b;
}

export function decodeInode(v: Uint8Array): Inode {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (b.length < HDR || b[0] !== RECORD_TAG) throw new Error('corrupt inode record');
  const flags = b[2];
  return {
    type: b[1] as FileType,
    mode: b.readUInt32LE(4),
    nlink: b.readUInt32LE(8),
    uid: b.readUInt32LE(12),
    gid: b.readUInt32LE(16),
    rdev0: b.readUInt32LE(20),
    rdev1: b.readUInt32LE(24),
    atimeN: b.readUInt32LE(28),
    mtimeN: b.readUInt32LE(32),
    ctimeN: b.readUInt32LE(36),
    size: b.readDoubleLE(40),
    fileid: b.readDoubleLE(48),
    generation: b.readDoubleLE(56),
    atimeS: b.readDoubleLE(64),
    mtimeS: b.readDoubleLE(72),
    ctimeS: b.readDoubleLE(80),
    parent: b.readDoubleLE(88),
    nextCookie: b.readDoubleLE(96),
    entries: b.readDoubleLE(104),
    verifier: flags & F_VERIFIER ? b.toString('hex', 112, 120) : '',
    target: flags & F_TARGET ? b.toString('utf8', HDR) : '',
    inline: (flags & F_INLINE) !== 0,
  };
}
