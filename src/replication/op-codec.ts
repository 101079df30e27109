/**
 * Binary codec of Raft log entries: a `StoreOp` (every NFS mutation) or a cluster configuration record.
 *
 * Layout (all integers big-endian):
 *   u8 format (1)   u8 kind (0 config, 1..10 op kinds, see OP_KINDS)
 *   op:     u8 flags (bit 0: request key follows)  [u8 len, key]  time  cred  <body of the kind>
 *   config: see encodeConfig
 *   u32: unsigned 32-bit; u64: two u32 (hi, lo), at most 2^53 - 1; time: u32 sec, u32 nsec;
 *   cred: u32 uid, u32 gid, u8 count (<= 64), count * u32; str8 / str16: u8 / u16 byte length + UTF-8;
 *   attrs (SetAttrs): u8 presence (bit 0 mode, 1 uid, 2 gid, 3 size; bits 4-5 atime, 6-7 mtime:
 *   0 unset, 1 'server', 2 time follows) then the present fields in that order.
 *
 * Encoding sizes the entry first and then writes it into one allocation; WRITE data is copied once.
 * Decoding checks every length against the bytes left before it reads or allocates, rejects anything
 * the encoder would not produce (unknown flags or enum values, non-canonical UTF-8, trailing bytes)
 * with `OpCodecError`, and returns WRITE data as a view of the input (no copy).
 */
import { FileType, type Cred, type SetAttrs, type StoreOp, type Time } from '../store/types';

export const OP_CODEC_FORMAT = 1;
export const MAX_GIDS = 64;
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
export const MAX_REQUEST_KEY_BYTES = 255;
export const MAX_EXPORTS = 0xffff;

/** Replicated settings that decide op results on every replica (they mirror StoreOptions). */
export interface ClusterConfigRecord {
  rootMode: number;
  rootUid: number;
  rootGid: number;
  maxFileSize: number;
  /** Infinity = unlimited */
  capacityBytes: number;
  /** Infinity = unlimited */
  maxFiles: number;
  maxLinks: number;
  exports: { id: number; path: string }[];
}

export type LogCommand =
  | { kind: 'op'; op: StoreOp; requestKey?: Uint8Array }
  | { kind: 'config'; config: ClusterConfigRecord };

export class OpCodecError extends Error {
  override readonly name = 'OpCodecError';
}

const KIND_CONFIG = 0;
const OP_KINDS = ['setattr', 'create', 'mkdir', 'symlink', 'mknod', 'remove', 'rmdir', 'rename', 'link', 'write'] as const;
type OpKind = StoreOp['kind'];
const CREATE_MODES = ['unchecked', 'guarded', 'exclusive'] as const;
const MKNOD_TYPES: readonly number[] = [FileType.BLK, FileType.CHR, FileType.SOCK, FileType.FIFO];
const TWO32 = 0x1_0000_0000;
const MAX_U64_HI = Math.floor(Number.MAX_SAFE_INTEGER / TWO32); // 0x1fffff
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const FLAG_REQUEST_KEY = 1;
const TIME_UNSET = 0;
const TIME_SERVER = 1;
const TIME_GIVEN = 2;

const fail = (msg: string): never => {
  throw new OpCodecError(msg);
};

// ---------------------------------------------------------------------------------------------------
// Encoding: `writeEntry` runs twice, first into a Sizer (validates, counts bytes), then into a Writer.

interface Sink {
  u8(n: number): void;
  u16(n: number): void;
  u32(n: number): void;
  u64(n: number): void;
  bytes(b: Uint8Array): void;
  /** a string already checked; `len` is its UTF-8 byte length */
  utf8(s: string, len: number): void;
}

class Sizer implements Sink {
  size = 0;
  u8(): void { this.size += 1; }
  u16(): void { this.size += 2; }
  u32(): void { this.size += 4; }
  u64(): void { this.size += 8; }
  bytes(b: Uint8Array): void { this.size += b.length; }
  utf8(_s: string, len: number): void { this.size += len; }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Writer implements Sink {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  u8(n: number): void { this.buf[this.pos++] = n; }
  u16(n: number): void { this.view.setUint16(this.pos, n); this.pos += 2; }
  u32(n: number): void { this.view.setUint32(this.pos, n); this.pos += 4; }
  u64(n: number): void {
    this.view.setUint32(this.pos, Math.floor(n / TWO32));
    this.view.setUint32(this.pos + 4, n >>> 0);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void { this.buf.set(b, this.pos); this.pos += b.length; }
  utf8(s: string, len: number): void {
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(this.pos, this.pos + len));
    if (written !== len) fail('string length changed while encoding');
    this.pos += len;
  }
  finish(): Uint8Array {
    if (this.pos !== this.buf.length) fail(`encoder wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

function checkUint(n: unknown, max: number, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max || Object.is(n, -0)) fail(`${what}: ${String(n)} is not an integer in 0..${max}`);
  return n as number;
}
const u32 = (s: Sink, n: unknown, what: string) => s.u32(checkUint(n, 0xffff_ffff, what));
const u64 = (s: Sink, n: unknown, what: string) => s.u64(checkUint(n, Number.MAX_SAFE_INTEGER, what));

function str(s: Sink, v: unknown, maxBytes: number, what: string): void {
  if (typeof v !== 'string') return fail(`${what}: not a string`);
  if (LONE_SURROGATE.test(v)) fail(`${what}: not well-formed Unicode`);
  const len = Buffer.byteLength(v, 'utf8');
  if (len > maxBytes) fail(`${what}: ${len} bytes, at most ${maxBytes}`);
  if (maxBytes <= 0xff) s.u8(len);
  else s.u16(len);
  s.utf8(v, len);
}

function time(s: Sink, t: Time, what: string): void {
  if (typeof t !== 'object' || t === null) fail(`${what}: not a time`);
  u32(s, t.sec, `${what}.sec`);
  u32(s, t.nsec, `${what}.nsec`);
}

function cred(s: Sink, c: Cred): void {
  u32(s, c.uid, 'cred.uid');
  u32(s, c.gid, 'cred.gid');
  if (!Array.isArray(c.gids) || c.gids.length > MAX_GIDS) fail(`cred.gids: more than ${MAX_GIDS}`);
  s.u8(c.gids.length);
  for (const g of c.gids) u32(s, g, 'cred.gids[]');
}

function timeHow(t: Time | 'server' | undefined): number {
  return t === undefined ? TIME_UNSET : t === 'server' ? TIME_SERVER : TIME_GIVEN;
}

function attrs(s: Sink, a: SetAttrs): void {
  const atime = timeHow(a.atime);
  const mtime = timeHow(a.mtime);
  s.u8((a.mode !== undefined ? 1 : 0) | (a.uid !== undefined ? 2 : 0) | (a.gid !== undefined ? 4 : 0) |
    (a.size !== undefined ? 8 : 0) | (atime << 4) | (mtime << 6));
  if (a.mode !== undefined) u32(s, a.mode, 'attrs.mode');
  if (a.uid !== undefined) u32(s, a.uid, 'attrs.uid');
  if (a.gid !== undefined) u32(s, a.gid, 'attrs.gid');
  if (a.size !== undefined) u64(s, a.size, 'attrs.size');
  if (atime === TIME_GIVEN) time(s, a.atime as Time, 'attrs.atime');
  if (mtime === TIME_GIVEN) time(s, a.mtime as Time, 'attrs.mtime');
}

function optionalPresent(s: Sink, v: unknown): boolean {
  s.u8(v === undefined ? 0 : 1);
  return v !== undefined;
}

function writeOp(s: Sink, op: StoreOp, requestKey: Uint8Array | undefined): void {
  const kind = OP_KINDS.indexOf(op.kind);
  if (kind < 0) fail(`unknown op kind ${String(op.kind)}`);
  s.u8(kind + 1);
  s.u8(requestKey !== undefined ? FLAG_REQUEST_KEY : 0);
  if (requestKey !== undefined) {
    if (!(requestKey instanceof Uint8Array) || requestKey.length > MAX_REQUEST_KEY_BYTES) fail('requestKey: not a Uint8Array of at most 255 bytes');
    s.u8(requestKey.length);
    s.bytes(requestKey);
  }
  time(s, op.time, 'time');
  cred(s, op.cred);
  switch (op.kind) {
    case 'setattr':
      u64(s, op.file, 'file');
      attrs(s, op.attrs);
      if (optionalPresent(s, op.guardCtime)) time(s, op.guardCtime!, 'guardCtime');
      return;
    case 'create': {
      u64(s, op.dir, 'dir');
      str(s, op.name, MAX_NAME_BYTES, 'name');
      const mode = CREATE_MODES.indexOf(op.mode);
      if (mode < 0) fail(`create mode ${String(op.mode)}`);
      s.u8(mode);
      attrs(s, op.attrs);
      if (optionalPresent(s, op.verifier)) {
        if (op.mode !== 'exclusive' || typeof op.verifier !== 'string' || !/^[0-9a-f]{16}$/.test(op.verifier)) {
          fail('verifier: 16 lower-case hex digits, EXCLUSIVE only');
        }
        s.bytes(Buffer.from(op.verifier!, 'hex'));
      }
      return;
    }
    case 'mkdir':
    case 'symlink':
      u64(s, op.dir, 'dir');
      str(s, op.name, MAX_NAME_BYTES, 'name');
      attrs(s, op.attrs);
      if (op.kind === 'symlink') str(s, op.target, MAX_PATH_BYTES, 'target');
      return;
    case 'mknod':
      u64(s, op.dir, 'dir');
      str(s, op.name, MAX_NAME_BYTES, 'name');
      if (!MKNOD_TYPES.includes(op.type)) fail(`mknod type ${String(op.type)}`);
      s.u8(op.type);
      attrs(s, op.attrs);
      if (optionalPresent(s, op.rdev)) {
        if (!Array.isArray(op.rdev) || op.rdev.length !== 2) fail('rdev: not [major, minor]');
        u32(s, op.rdev![0], 'rdev[0]');
        u32(s, op.rdev![1], 'rdev[1]');
      }
      return;
    case 'remove':
    case 'rmdir':
      u64(s, op.dir, 'dir');
      str(s, op.name, MAX_NAME_BYTES, 'name');
      return;
    case 'rename':
      u64(s, op.fromDir, 'fromDir');
      str(s, op.fromName, MAX_NAME_BYTES, 'fromName');
      u64(s, op.toDir, 'toDir');
      str(s, op.toName, MAX_NAME_BYTES, 'toName');
      return;
    case 'link':
      u64(s, op.file, 'file');
      u64(s, op.dir, 'dir');
      str(s, op.name, MAX_NAME_BYTES, 'name');
      return;
    case 'write':
      u64(s, op.file, 'file');
      u64(s, op.offset, 'offset');
      if (op.stable !== 0 && op.stable !== 1 && op.stable !== 2) fail(`write stable ${String(op.stable)}`);
      s.u8(op.stable);
      if (!(op.data instanceof Uint8Array)) fail('write data: not a Uint8Array');
      u32(s, op.data.length, 'write data length');
      s.bytes(op.data);
      return;
  }
}

/** A limit that may be Infinity (unlimited): u8 0 = unlimited, 1 = u64 follows. */
function limit(s: Sink, n: number, what: string): void {
  if (n === Infinity) return s.u8(0);
  s.u8(1);
  u64(s, n, what);
}

function writeConfig(s: Sink, c: ClusterConfigRecord): void {
  s.u8(KIND_CONFIG);
  u32(s, c.rootMode, 'rootMode');
  u32(s, c.rootUid, 'rootUid');
  u32(s, c.rootGid, 'rootGid');
  u64(s, c.maxFileSize, 'maxFileSize');
  limit(s, c.capacityBytes, 'capacityBytes');
  limit(s, c.maxFiles, 'maxFiles');
  u32(s, c.maxLinks, 'maxLinks');
  if (!Array.isArray(c.exports) || c.exports.length > MAX_EXPORTS) fail(`exports: more than ${MAX_EXPORTS}`);
  s.u16(c.exports.length);
  for (const e of c.exports) {
    u32(s, e.id, 'exports[].id');
    str(s, e.path, MAX_PATH_BYTES, 'exports[].path');
  }
}

function writeEntry(s: Sink, e: LogCommand): void {
  s.u8(OP_CODEC_FORMAT);
  if (e.kind === 'op') writeOp(s, e.op, e.requestKey);
  else if (e.kind === 'config') writeConfig(s, e.config);
  else fail(`unknown entry kind ${String((e as { kind: unknown }).kind)}`);
}

/** Encode a log entry into one fresh buffer. Throws OpCodecError for values it cannot represent
 * exactly (out-of-range integers, names > 255 bytes, paths > 4096 bytes, > 64 gids, ...). */
export function encodeEntry(e: LogCommand): Uint8Array {
  const sizer = new Sizer();
  writeEntry(sizer, e);
  const writer = new Writer(sizer.size);
  writeEntry(writer, e);
  return writer.finish();
}

// ---------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  private readonly view: DataView;
  pos = 0;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) fail(`${what}: ${n} bytes needed, ${this.buf.length - this.pos} left`);
  }
  u8(what: string): number { this.need(1, what); return this.buf[this.pos++]; }
  u16(what: string): number { this.need(2, what); const n = this.view.getUint16(this.pos); this.pos += 2; return n; }
  u32(what: string): number { this.need(4, what); const n = this.view.getUint32(this.pos); this.pos += 4; return n; }
  u64(what: string): number {
    this.need(8, what);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    if (hi > MAX_U64_HI) fail(`${what}: above 2^53 - 1`);
    this.pos += 8;
    return hi * TWO32 + lo;
  }
  /** a view of the next n bytes (no copy) */
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  str(maxBytes: number, what: string): string {
    const len = maxBytes <= 0xff ? this.u8(what) : this.u16(what);
    if (len > maxBytes) fail(`${what}: ${len} bytes, at most ${maxBytes}`);
    const bytes = this.bytes(len, what);
    try {
      return textDecoder.decode(bytes);
    } catch {
      return fail(`${what}: invalid UTF-8`);
    }
  }
  flag(what: string): boolean {
    const b = this.u8(what);
    if (b > 1) fail(`${what}: flag ${b}`);
    return b === 1;
  }
  end(): void {
    if (this.pos !== this.buf.length) fail(`${this.buf.length - this.pos} trailing bytes`);
  }
}

const readTime = (r: Reader, what: string): Time => ({ sec: r.u32(`${what}.sec`), nsec: r.u32(`${what}.nsec`) });

function readCred(r: Reader): Cred {
  const uid = r.u32('cred.uid');
  const gid = r.u32('cred.gid');
  const count = r.u8('cred.gids count');
  if (count > MAX_GIDS) fail(`cred.gids: ${count}, at most ${MAX_GIDS}`);
  const gids: number[] = [];
  for (let i = 0; i < count; i++) gids.push(r.u32('cred.gids[]'));
  return { uid, gid, gids };
}

function readSetTime(r: Reader, how: number, what: string): Time | 'server' | undefined {
  if (how === TIME_UNSET) return undefined;
  if (how === TIME_SERVER) return 'server';
  if (how === TIME_GIVEN) return readTime(r, what);
  return fail(`${what}: unknown setting ${how}`);
}

function readAttrs(r: Reader): SetAttrs {
  const p = r.u8('attrs presence');
  const a: SetAttrs = {};
  if (p & 1) a.mode = r.u32('attrs.mode');
  if (p & 2) a.uid = r.u32('attrs.uid');
  if (p & 4) a.gid = r.u32('attrs.gid');
  if (p & 8) a.size = r.u64('attrs.size');
  const atime = readSetTime(r, (p >> 4) & 3, 'attrs.atime');
  const mtime = readSetTime(r, (p >> 6) & 3, 'attrs.mtime');
  if (atime !== undefined) a.atime = atime;
  if (mtime !== undefined) a.mtime = mtime;
  return a;
}

function readOp(r: Reader, kind: OpKind): StoreOp {
  const time = readTime(r, 'time');
  const cred = readCred(r);
  const base = { time, cred };
  switch (kind) {
    case 'setattr': {
      const op: StoreOp = { kind, ...base, file: r.u64('file'), attrs: readAttrs(r) };
      if (r.flag('guardCtime present')) op.guardCtime = readTime(r, 'guardCtime');
      return op;
    }
    case 'create': {
      const dir = r.u64('dir');
      const name = r.str(MAX_NAME_BYTES, 'name');
      const mode = CREATE_MODES[r.u8('create mode')] ?? fail('create mode: unknown');
      const op: StoreOp = { kind, ...base, dir, name, mode, attrs: readAttrs(r) };
      if (r.flag('verifier present')) {
        if (mode !== 'exclusive') fail('verifier: EXCLUSIVE only');
        op.verifier = Buffer.from(r.bytes(8, 'verifier')).toString('hex');
      }
      return op;
    }
    case 'mkdir':
      return { kind, ...base, dir: r.u64('dir'), name: r.str(MAX_NAME_BYTES, 'name'), attrs: readAttrs(r) };
    case 'symlink':
      return { kind, ...base, dir: r.u64('dir'), name: r.str(MAX_NAME_BYTES, 'name'), attrs: readAttrs(r), target: r.str(MAX_PATH_BYTES, 'target') };
    case 'mknod': {
      const dir = r.u64('dir');
      const name = r.str(MAX_NAME_BYTES, 'name');
      const type = r.u8('mknod type');
      if (!MKNOD_TYPES.includes(type)) fail(`mknod type ${type}`);
      const op: StoreOp = { kind, ...base, dir, name, type: type as FileType.CHR, attrs: readAttrs(r) };
      if (r.flag('rdev present')) op.rdev = [r.u32('rdev[0]'), r.u32('rdev[1]')];
      return op;
    }
    case 'remove':
    case 'rmdir':
      return { kind, ...base, dir: r.u64('dir'), name: r.str(MAX_NAME_BYTES, 'name') };
    case 'rename':
      return {
        kind, ...base,
        fromDir: r.u64('fromDir'), fromName: r.str(MAX_NAME_BYTES, 'fromName'),
        toDir: r.u64('toDir'), toName: r.str(MAX_NAME_BYTES, 'toName'),
      };
    case 'link':
      return { kind, ...base, file: r.u64('file'), dir: r.u64('dir'), name: r.str(MAX_NAME_BYTES, 'name') };
    case 'write': {
      const file = r.u64('file');
      const offset = r.u64('offset');
      const stable = r.u8('write stable');
      if (stable > 2) fail(`write stable ${stable}`);
      const data = r.bytes(r.u32('write data length'), 'write data');
      return { kind, ...base, file, offset, stable: stable as 0 | 1 | 2, data };
    }
  }
}

function readLimit(r: Reader, what: string): number {
  return r.flag(`${what} limited`) ? r.u64(what) : Infinity;
}

function readConfig(r: Reader): ClusterConfigRecord {
  const config: ClusterConfigRecord = {
    rootMode: r.u32('rootMode'),
    rootUid: r.u32('rootUid'),
    rootGid: r.u32('rootGid'),
    maxFileSize: r.u64('maxFileSize'),
    capacityBytes: readLimit(r, 'capacityBytes'),
    maxFiles: readLimit(r, 'maxFiles'),
    maxLinks: r.u32('maxLinks'),
    exports: [],
  };
  const count = r.u16('exports count');
  for (let i = 0; i < count; i++) config.exports.push({ id: r.u32('exports[].id'), path: r.str(MAX_PATH_BYTES, 'exports[].path') });
  return config;
}

/** Decode one log entry. Throws OpCodecError for anything encodeEntry would not have produced.
 * WRITE data (and requestKey) are views of `b`: keep `b` unchanged while they are in use. */
export function decodeEntry(b: Uint8Array): LogCommand {
  if (!(b instanceof Uint8Array)) fail('not a Uint8Array');
  const r = new Reader(b);
  const format = r.u8('format');
  if (format !== OP_CODEC_FORMAT) fail(`unknown format ${format}`);
  const kind = r.u8('kind');
  let entry: LogCommand;
  if (kind === KIND_CONFIG) {
    entry = { kind: 'config', config: readConfig(r) };
  } else {
    const opKind = OP_KINDS[kind - 1] ?? fail(`unknown kind ${kind}`);
    const flags = r.u8('op flags');
    if (flags & ~FLAG_REQUEST_KEY) fail(`unknown op flags ${flags}`);
    const requestKey = flags & FLAG_REQUEST_KEY ? r.bytes(r.u8('requestKey length'), 'requestKey') : undefined;
    const op = readOp(r, opKind);
    entry = requestKey !== undefined ? { kind: 'op', op, requestKey } : { kind: 'op', op };
  }
  r.end();
  return entry;
}
