/**
 * Compact binary encoding of Raft messages and the transport's frames.
 *
 * Frame (on the wire): u32 LE payloadLength | u32 LE crc32c(payload) | payload
 * Payload: u8 kind, then the kind's body:
 *   Challenge (acceptor -> dialer):  16-byte nonce
 *   Hello (dialer -> acceptor):      u8 version | u8 lane | u64 from | u64 to | u16 idLen | clusterId utf8 | 32-byte HMAC
 *   Accept (acceptor -> dialer):     empty
 *   Message:                         an encoded Message (below)
 *
 * Message: u8 type | u64 from | u64 to | u64 term | u16 flags | optional fields in flag order:
 *   index u64, logTerm u64, commit u64, context f64, entries (u32 n, n × [u64 index, u64 term,
 *   u8 type, u32 len, data]), snapshot (u64 index, u64 term, conf lists (u32 n, u64 ids), u64 offset,
 *   u8 done, u32 len, data). `reject` is two flag bits (present, value).
 * Integers are little-endian; every length is checked against the bytes actually present.
 */
import { crc32c } from './segment-crc32c';
import { getU64, putU64 } from './segment-format';
import { ConfState, Entry, EntryType, Message, MsgType } from './types';

export const FRAME_HEADER_BYTES = 8;

export const enum FrameKind {
  Challenge = 1,
  Hello = 2,
  Accept = 3,
  Message = 4,
}

export class CodecError extends Error {
  override name = 'CodecError';
}

const F_INDEX = 1 << 0;
const F_LOGTERM = 1 << 1;
const F_COMMIT = 1 << 2;
const F_CONTEXT = 1 << 3;
const F_ENTRIES = 1 << 4;
const F_SNAPSHOT = 1 << 5;
const F_REJECT = 1 << 6;
const F_REJECT_TRUE = 1 << 7;

const MAX_MSG_TYPE = 14;

class Writer {
  buf: Buffer;
  off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  u8(v: number) {
    this.buf[this.off++] = v;
  }
  u16(v: number) {
    this.buf.writeUInt16LE(v, this.off);
    this.off += 2;
  }
  u32(v: number) {
    this.buf.writeUInt32LE(v, this.off);
    this.off += 4;
  }
  u64(v: number) {
    putU64(this.buf, this.off, v);
    this.off += 8;
  }
  f64(v: number) {
    this.buf.writeDoubleLE(v, this.off);
    this.off += 8;
  }
  bytes(b: Uint8Array) {
    this.buf.set(b, this.off);
    this.off += b.length;
  }
}

class Reader {
  off: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.off = start;
  }
  need(n: number) {
    if (n < 0 || this.off + n > this.end) throw new CodecError('truncated message');
  }
  u8() {
    this.need(1);
    return this.buf[this.off++];
  }
  u16() {
    this.need(2);
    const v = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  u32() {
    this.need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  u64() {
    this.need(8);
    let v: number;
    try {
      v = getU64(this.buf, this.off);
    } catch {
      throw new CodecError('integer out of range');
    }
    this.off += 8;
    return v;
  }
  f64() {
    this.need(8);
    const v = this.buf.readDoubleLE(this.off);
    this.off += 8;
    return v;
  }
  /** a copy: decoded data must not alias the receive buffer (entries are kept in caches and logs) */
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = new Uint8Array(n);
    b.set(this.buf.subarray(this.off, this.off + n));
    this.off += n;
    return b;
  }
}

function confBytes(c: ConfState): number {
  return 12 + 8 * (c.voters.length + c.learners.length + c.votersOutgoing.length);
}

function encodedMessageBytes(m: Message): number {
  let n = 1 + 8 * 3 + 2;
  if (m.index !== undefined) n += 8;
  if (m.logTerm !== undefined) n += 8;
  if (m.commit !== undefined) n += 8;
  if (m.context !== undefined) n += 8;
  if (m.entries !== undefined) {
    n += 4;
    for (const e of m.entries) n += 8 + 8 + 1 + 4 + e.data.length;
  }
  if (m.snapshot !== undefined) n += 16 + confBytes(m.snapshot.meta.conf) + 8 + 1 + 4 + m.snapshot.data.length;
  return n;
}

function writeMessage(w: Writer, m: Message): void {
  let flags = 0;
  if (m.index !== undefined) flags |= F_INDEX;
  if (m.logTerm !== undefined) flags |= F_LOGTERM;
  if (m.commit !== undefined) flags |= F_COMMIT;
  if (m.context !== undefined) flags |= F_CONTEXT;
  if (m.entries !== undefined) flags |= F_ENTRIES;
  if (m.snapshot !== undefined) flags |= F_SNAPSHOT;
  if (m.reject !== undefined) flags |= F_REJECT | (m.reject ? F_REJECT_TRUE : 0);
  w.u8(m.type);
  w.u64(m.from);
  w.u64(m.to);
  w.u64(m.term);
  w.u16(flags);
  if (m.index !== undefined) w.u64(m.index);
  if (m.logTerm !== undefined) w.u64(m.logTerm);
  if (m.commit !== undefined) w.u64(m.commit);
  if (m.context !== undefined) w.f64(m.context);
  if (m.entries !== undefined) {
    w.u32(m.entries.length);
    for (const e of m.entries) {
      w.u64(e.index);
      w.u64(e.term);
      w.u8(e.type);
      w.u32(e.data.length);
      w.bytes(e.data);
    }
  }
  if (m.snapshot !== undefined) {
    const s = m.snapshot;
    w.u64(s.meta.index);
    w.u64(s.meta.term);
    for (const l of [s.meta.conf.voters, s.meta.conf.learners, s.meta.conf.votersOutgoing]) {
      w.u32(l.length);
      for (const id of l) w.u64(id);
    }
    w.u64(s.offset);
    w.u8(s.done ? 1 : 0);
    w.u32(s.data.length);
    w.bytes(s.data);
  }
}

function readIds(r: Reader): number[] {
  const n = r.u32();
  r.need(n * 8);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.u64());
  return out;
}

function readMessage(r: Reader): Message {
  const type = r.u8();
  if (type < 1 || type > MAX_MSG_TYPE) throw new CodecError(`unknown message type ${type}`);
  const m: Message = { type: type as MsgType, from: r.u64(), to: r.u64(), term: r.u64() };
  const flags = r.u16();
  if (flags & ~0xff) throw new CodecError('unknown message flags');
  if (flags & F_INDEX) m.index = r.u64();
  if (flags & F_LOGTERM) m.logTerm = r.u64();
  if (flags & F_COMMIT) m.commit = r.u64();
  if (flags & F_CONTEXT) m.context = r.f64();
  if (flags & F_ENTRIES) {
    const n = r.u32();
    r.need(n * 21); // each entry has at least 21 bytes: bound n before allocating
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++) {
      const index = r.u64();
      const term = r.u64();
      const et = r.u8();
      if (et > 2) throw new CodecError(`bad entry type ${et}`);
      const len = r.u32();
      entries.push({ index, term, type: et as EntryType, data: r.bytes(len) });
    }
    m.entries = entries;
  }
  if (flags & F_SNAPSHOT) {
    const index = r.u64();
    const term = r.u64();
    const conf: ConfState = { voters: readIds(r), learners: readIds(r), votersOutgoing: readIds(r) };
    const offset = r.u64();
    const done = r.u8();
    if (done > 1) throw new CodecError('bad snapshot done flag');
    const len = r.u32();
    m.snapshot = { meta: { index, term, conf }, offset, data: r.bytes(len), done: done === 1 };
  }
  if (flags & F_REJECT) m.reject = (flags & F_REJECT_TRUE) !== 0;
  else if (flags & F_REJECT_TRUE) throw new CodecError('bad reject flags');
  if (r.off !== r.end) throw new CodecError('trailing bytes after message');
  return m;
}

/** Encode a message payload (no frame header). */
export function encodeMessage(m: Message): Buffer {
  const w = new Writer(encodedMessageBytes(m));
  writeMessage(w, m);
  return w.buf;
}

/** Decode a message payload; throws CodecError on any malformed input. */
export function decodeMessage(b: Buffer, start = 0, end = b.length): Message {
  return readMessage(new Reader(b, start, end));
}

/** Encode a complete frame carrying a Message. */
export function encodeMessageFrame(m: Message): Buffer {
  const n = encodedMessageBytes(m) + 1;
  const w = new Writer(FRAME_HEADER_BYTES + n);
  w.off = FRAME_HEADER_BYTES;
  w.u8(FrameKind.Message);
  writeMessage(w, m);
  return sealFrame(w.buf);
}

/** Fill in the length and checksum of a frame whose payload starts at offset 8. */
export function sealFrame(buf: Buffer): Buffer {
  buf.writeUInt32LE(buf.length - FRAME_HEADER_BYTES, 0);
  buf.writeUInt32LE(crc32c(buf, 0, FRAME_HEADER_BYTES), 4);
  return buf;
}

export function frameChecksumOk(frame: Buffer): boolean {
  return crc32c(frame, 0, FRAME_HEADER_BYTES) === frame.readUInt32LE(4);
}

export interface Hello {
  version: number;
  lane: number;
  from: number;
  to: number;
  clusterId: string;
  mac: Buffer;
}

export const HELLO_VERSION = 1;
export const MAC_BYTES = 32;

export function encodeChallenge(nonce: Buffer): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + nonce.length);
  b[FRAME_HEADER_BYTES] = FrameKind.Challenge;
  nonce.copy(b, FRAME_HEADER_BYTES + 1);
  return sealFrame(b);
}

export function encodeHello(h: Hello): Buffer {
  const id = Buffer.from(h.clusterId, 'utf8');
  if (id.length > 255) throw new RangeError('cluster id too long');
  const w = new Writer(FRAME_HEADER_BYTES + 1 + 2 + 16 + 2 + id.length + MAC_BYTES);
  w.off = FRAME_HEADER_BYTES;
  w.u8(FrameKind.Hello);
  w.u8(h.version);
  w.u8(h.lane);
  w.u64(h.from);
  w.u64(h.to);
  w.u16(id.length);
  w.bytes(id);
  w.bytes(h.mac);
  return sealFrame(w.buf);
}

export function decodeHello(b: Buffer, start: number, end: number): Hello {
  const r = new Reader(b, start, end);
  const version = r.u8();
  const lane = r.u8();
  const from = r.u64();
  const to = r.u64();
  const idLen = r.u16();
  if (idLen > 255) throw new CodecError('cluster id too long');
  r.need(idLen);
  const clusterId = b.toString('utf8', r.off, r.off + idLen);
  r.off += idLen;
  r.need(MAC_BYTES);
  const mac = Buffer.from(b.subarray(r.off, r.off + MAC_BYTES));
  r.off += MAC_BYTES;
  if (r.off !== end) throw new CodecError('trailing bytes after hello');
  return { version, lane, from, to, clusterId, mac };
}

export function encodeAccept(): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1);
  b[FRAME_HEADER_BYTES] = FrameKind.Accept;
  return sealFrame(b);
}

/**
 * Incremental frame decoder with a size cap checked from the header before anything is allocated.
 * push() returns complete frames (each a Buffer holding header + payload, checksum verified); throws
 * CodecError on an oversize length or a checksum mismatch (the caller drops the connection).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;

  constructor(public maxPayload: number) {}

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < FRAME_HEADER_BYTES) break;
        const head = this.peek(FRAME_HEADER_BYTES);
        const len = head.readUInt32LE(0);
        if (len > this.maxPayload) throw new CodecError(`frame of ${len} bytes exceeds the cap of ${this.maxPayload}`);
        if (len === 0) throw new CodecError('empty frame');
        this.need = FRAME_HEADER_BYTES + len;
      }
      if (this.have < this.need) break;
      const frame = this.take(this.need);
      this.need = -1;
      if (!frameChecksumOk(frame)) throw new CodecError('frame checksum mismatch');
      out.push(frame);
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    let k = 0;
    let len = 0;
    while (len < n) len += this.chunks[k++].length;
    const b = Buffer.concat(this.chunks.slice(0, k), len);
    this.chunks.splice(0, k, b);
    return b;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let o = 0;
      while (o < n) {
        const c = this.chunks[0];
        const k = Math.min(c.length, n - o);
        c.copy(out, o, 0, k);
        o += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.have -= n;
    return out;
  }
}
