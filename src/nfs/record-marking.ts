/**
 * ONC RPC record marking over byte streams (RFC 5531 §11).
 *
 * A record is a sequence of fragments; each fragment starts with a 4-byte big-endian header whose top
 * bit marks the last fragment and whose low 31 bits give the fragment length. The decoder checks the
 * running record size against a cap as soon as a fragment header arrives, before it buffers a single
 * byte of that fragment, so a hostile header (0x7fffffff, 0xffffffff) costs nothing. Fragment bodies
 * are kept as views of the incoming chunks and concatenated once when the record completes.
 */

export class RecordTooLargeError extends Error {
  constructor(readonly size: number, readonly max: number) {
    super(`RPC record of at least ${size} bytes exceeds the limit of ${max} bytes`);
    this.name = 'RecordTooLargeError';
  }
}

export class TooManyFragmentsError extends Error {
  constructor(readonly max: number) {
    super(`RPC record has more than ${max} fragments`);
    this.name = 'TooManyFragmentsError';
  }
}

export interface RecordDecoderOptions {
  /** largest record accepted (sum of its fragment lengths), bytes */
  maxRecordBytes: number;
  /** most fragments one record may have (bounds the bookkeeping for 1-byte fragments); default 16384 */
  maxFragments?: number;
}

const LAST_FRAGMENT = 0x80000000;
const LENGTH_MASK = 0x7fffffff;

export class RecordDecoder {
  private readonly max: number;
  private readonly maxFragments: number;
  /** bytes of a fragment header seen so far (0..3) and their value */
  private headerBytes = 0;
  private header = 0;
  /** bytes still expected in the current fragment body */
  private fragmentLeft = 0;
  private inFragment = false;
  private lastFragment = false;
  private fragments = 0;
  private parts: Uint8Array[] = [];
  private recordSize = 0;
  private failed: Error | undefined;

  constructor(opts: RecordDecoderOptions) {
    this.max = opts.maxRecordBytes;
    this.maxFragments = opts.maxFragments ?? 16384;
  }

  /** true while a record has begun but is not complete (used by the slow-client guard) */
  get hasPartialRecord(): boolean {
    return this.inFragment || this.headerBytes > 0 || this.fragments > 0;
  }

  /** bytes of the current partial record buffered so far */
  get bufferedBytes(): number {
    return this.recordSize;
  }

  /**
   * Feed bytes; returns the records completed by them (possibly none). Throws RecordTooLargeError or
   * TooManyFragmentsError; after a throw the decoder stays failed (the stream has lost framing).
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.failed) throw this.failed;
    const out: Uint8Array[] = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (!this.inFragment) {
        // accumulate the 4-byte header, byte by byte only when it straddles chunks
        if (this.headerBytes === 0 && n - pos >= 4) {
          this.header = ((chunk[pos] << 24) | (chunk[pos + 1] << 16) | (chunk[pos + 2] << 8) | chunk[pos + 3]) >>> 0;
          pos += 4;
          this.headerBytes = 4;
        } else {
          while (this.headerBytes < 4 && pos < n) {
            this.header = ((this.header << 8) | chunk[pos++]) >>> 0;
            this.headerBytes++;
          }
          if (this.headerBytes < 4) break;
        }
        const len = this.header & LENGTH_MASK;
        this.lastFragment = (this.header & LAST_FRAGMENT) !== 0;
        this.headerBytes = 0;
        this.header = 0;
        if (this.recordSize + len > this.max) {
          this.failed = new RecordTooLargeError(this.recordSize + len, this.max);
          this.reset();
          throw this.failed;
        }
        if (++this.fragments > this.maxFragments) {
          this.failed = new TooManyFragmentsError(this.maxFragments);
          this.reset();
          throw this.failed;
        }
        this.fragmentLeft = len;
        this.inFragment = true;
      }
      if (this.fragmentLeft > 0) {
        const take = Math.min(this.fragmentLeft, n - pos);
        if (take > 0) {
          this.parts.push(chunk.subarray(pos, pos + take));
          pos += take;
          this.fragmentLeft -= take;
          this.recordSize += take;
        }
      }
      if (this.fragmentLeft === 0) {
        this.inFragment = false;
        if (this.lastFragment) out.push(this.finishRecord());
      }
    }
    return out;
  }

  private finishRecord(): Uint8Array {
    const parts = this.parts;
    let record: Uint8Array;
    if (parts.length === 0) record = new Uint8Array(0);
    else if (parts.length === 1) record = parts[0];
    else record = Buffer.concat(parts, this.recordSize);
    this.reset();
    return record;
  }

  private reset(): void {
    this.parts = [];
    this.recordSize = 0;
    this.fragments = 0;
    this.fragmentLeft = 0;
    this.inFragment = false;
    this.lastFragment = false;
    this.headerBytes = 0;
    this.header = 0;
  }
}

/**
 * Record-marking headers for the record made of `parts`, split into fragments of at most
 * `maxFragment` bytes. Returns the chunks to write in order: header, body slice, header, body slice...
 * `body` parts are passed through without copying when a single fragment suffices.
 */
export function encodeRecord(parts: Uint8Array[], maxFragment = LENGTH_MASK): Uint8Array[] {
  if (maxFragment < 1 || maxFragment > LENGTH_MASK) throw new RangeError('bad maxFragment');
  let total = 0;
  for (const p of parts) total += p.length;
  if (total <= maxFragment) {
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32BE((LAST_FRAGMENT | total) >>> 0, 0);
    return [h, ...parts.filter((p) => p.length > 0)];
  }
  const out: Uint8Array[] = [];
  let left = total;
  let pi = 0;
  let po = 0;
  while (left > 0) {
    const fragLen = Math.min(left, maxFragment);
    left -= fragLen;
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32BE(((left === 0 ? LAST_FRAGMENT : 0) | fragLen) >>> 0, 0);
    out.push(h);
    let need = fragLen;
    while (need > 0) {
      const p = parts[pi];
      const take = Math.min(need, p.length - po);
      if (take > 0) out.push(p.subarray(po, po + take));
      po += take;
      need -= take;
      if (po >= p.length) {
        pi++;
        po = 0;
      }
    }
  }
  return out;
}

/**
 * A record of `total` bytes (the sum of `parts`) that fits in one fragment, as one buffer: the
 * fragment header followed by copies of the parts. For small replies one copy of a few hundred bytes
 * is cheaper than writing header and parts as separate chunks (one write instead of a corked writev).
 */
export function joinRecord(parts: readonly Uint8Array[], total: number): Buffer {
  if (total > LENGTH_MASK) throw new RangeError('record too large for one fragment');
  const out = Buffer.allocUnsafe(4 + total);
  out.writeUInt32BE((LAST_FRAGMENT | total) >>> 0, 0);
  let o = 4;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  if (o !== 4 + total) throw new RangeError('parts do not add up to the record length');
  return out;
}
