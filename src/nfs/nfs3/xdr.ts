/**
 * XDR glue around @jsonjoy.com/json-pack 18.28.0 (lib/nfs/v3), checked against RFC 1813.
 *
 * Requests are decoded by the library's Nfsv3Decoder with three defects worked around here
 * (see docs/nfs3.md):
 *  - filename3 / nfspath3 are decoded as UTF-8 with invalid sequences silently replaced by U+FFFD,
 *    so two different byte names could map to one stored name. We check UTF-8 validity and never
 *    decode more than MAX_STRING_CHARS bytes (a longer one is answered NAMETOOLONG anyway).
 *  - variable-length opaques past the end of the arguments are silently cut short (subarray
 *    clamps); we check the cursor against the end after decoding (→ GARBAGE_ARGS).
 *  - nfs_fh3 longer than NFS3_FHSIZE (64) is accepted; we reject it as GARBAGE_ARGS like knfsd.
 * Invalid union discriminants (createmode3, time_how, ftype3) are accepted by the library and
 * checked by the handlers (→ GARBAGE_ARGS).
 *
 * Replies are encoded by the library's Nfsv3Encoder, except READDIR, READDIRPLUS and READLINK: the
 * library writes entry lists recursively (a long list overflows the stack), and writes strings
 * without reserving room for the length word first; those three are written here with exact sizes.
 */
import { isUtf8 } from 'node:buffer';
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { XdrDecoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrDecoder';
import { XdrEncoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrEncoder';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder';
import { Nfsv3Fh } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import type { Attr, Time } from '../../store/types';

/** NFS3_FHSIZE */
export const MAX_FH_BYTES = 64;
/** strings are decoded up to this many bytes; longer ones keep only a prefix (> any limit we check) */
export const MAX_STRING_CHARS = 4097;

const utf8Slice: (this: Uint8Array, start: number, end: number) => string = (Buffer.prototype as any).utf8Slice;

function pad4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/**
 * Read an XDR string (filename3, nfspath3) strictly as UTF-8: the store keeps names as JS strings
 * and measures them in UTF-8 bytes, so only valid UTF-8 round-trips exactly. Invalid UTF-8 comes
 * back as INVALID_NAME (contains NUL, so every name check refuses it: INVAL, or NOENT for lookups).
 * A string longer than MAX_STRING_CHARS bytes is not decoded: TOO_LONG_NAME stands in (its length
 * exceeds every limit, so it is answered NAMETOOLONG).
 */
function readName(xdr: XdrDecoder): string {
  const size = xdr.readUnsignedInt();
  const r = xdr.reader;
  const start = r.x;
  if (start + size > r.uint8.length) throw new RangeError('string past end of arguments');
  r.x = start + pad4(size);
  if (size > MAX_STRING_CHARS) return TOO_LONG_NAME;
  const bytes = r.uint8.subarray(start, start + size);
  if (!isUtf8(bytes)) return INVALID_NAME;
  return utf8Slice.call(r.uint8, start, start + size);
}

export const INVALID_NAME = '\0<invalid utf-8>';
export const TOO_LONG_NAME = 'x'.repeat(MAX_STRING_CHARS);

function readFh(xdr: XdrDecoder): Nfsv3Fh {
  const size = xdr.readUnsignedInt();
  if (size > MAX_FH_BYTES) throw new RangeError('nfs_fh3 longer than NFS3_FHSIZE');
  const r = xdr.reader;
  if (r.x + size > r.uint8.length) throw new RangeError('handle past end of arguments');
  return new Nfsv3Fh(xdr.readOpaque(size));
}

/** Request decoder: the library's, with readFilename and readFh replaced (they are private there). */
export class RequestDecoder {
  private readonly dec = new Nfsv3Decoder();

  constructor() {
    const xdr: XdrDecoder = (this.dec as any).xdr;
    (this.dec as any).readFilename = () => readName(xdr);
    (this.dec as any).readFh = () => readFh(xdr);
  }

  /** The decoded request message, or undefined if the arguments are malformed (→ GARBAGE_ARGS). */
  decode(args: Reader, proc: number): any | undefined {
    let m: unknown;
    try {
      m = this.dec.decodeMessage(args, proc, true);
    } catch {
      return undefined;
    }
    if (m === undefined || args.x > args.uint8.length) return undefined;
    return m;
  }
}

/** UTF-8 byte length of a name or path (what it takes on the wire). */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** XDR size of a string/opaque of n bytes, length word included */
export function xdrStringSize(n: number): number {
  return 4 + pad4(n);
}

/** Sizes on the wire (RFC 1813 §2.6, §3.3.16, §3.3.17). */
export const FATTR3_SIZE = 84;
export const POST_OP_ATTR_SIZE = 4 + FATTR3_SIZE;

/** Encoders and one shared writer; a reply is encoded synchronously and flushed at once (nothing may
 * keep a view of the writer's buffer across a flush). */
export class ReplyEncoder {
  // replies are encoded into one 2 MiB buffer (a 1 MiB READ reply still fits with its header) and
  // copied out by flush()
  readonly writer = new Writer(2 * 1024 * 1024);
  readonly nfs = new Nfsv3Encoder(this.writer);
  readonly xdr = new XdrEncoder(this.writer);

  u32(v: number): void {
    this.xdr.writeUnsignedInt(v);
  }

  u64(v: number): void {
    const w = this.writer;
    w.ensureCapacity(8);
    w.view.setUint32(w.x, Math.floor(v / 0x100000000), false);
    w.view.setUint32(w.x + 4, v >>> 0, false);
    w.x += 8;
  }

  bool(v: boolean): void {
    this.xdr.writeUnsignedInt(v ? 1 : 0);
  }

  time(t: Time): void {
    this.u32(t.sec);
    this.u32(t.nsec);
  }

  fattr(a: Attr, fsid: number): void {
    this.u32(a.type);
    this.u32(a.mode);
    this.u32(a.nlink);
    this.u32(a.uid);
    this.u32(a.gid);
    this.u64(a.size);
    this.u64(a.used);
    this.u32(a.rdev[0]);
    this.u32(a.rdev[1]);
    this.u64(fsid);
    this.u64(a.fileid);
    this.time(a.atime);
    this.time(a.mtime);
    this.time(a.ctime);
  }

  postOpAttr(a: Attr | undefined, fsid: number): void {
    if (a) {
      this.bool(true);
      this.fattr(a, fsid);
    } else this.bool(false);
  }

  /** a string as XDR string, UTF-8 */
  utf8String(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    const w = this.writer;
    this.u32(n);
    const padded = pad4(n);
    w.ensureCapacity(padded);
    Buffer.from(w.uint8.buffer, w.uint8.byteOffset, w.uint8.byteLength).write(s, w.x, n, 'utf8');
    for (let i = n; i < padded; i++) w.uint8[w.x + i] = 0;
    w.x += padded;
  }

  opaque(b: Uint8Array): void {
    this.xdr.writeOpaque(b);
  }

  varOpaque(b: Uint8Array): void {
    this.xdr.writeVarlenOpaque(b);
  }

  /**
   * The current reply, copied out into a buffer of exactly its size: a reply may stay queued on a
   * socket whose client does not read, and a view would pin the writer's whole 2 MiB buffer (one per
   * 1 MiB READ reply). Since nothing keeps a view of the writer's buffer, it is then reused from
   * its start.
   */
  flush(): Uint8Array {
    const w = this.writer;
    const view = w.flush();
    const out = Buffer.allocUnsafe(view.length);
    out.set(view);
    w.x = w.x0 = 0;
    return out;
  }
}
