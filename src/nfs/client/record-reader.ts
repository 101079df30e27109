/**
 * ONC RPC record marking (RFC 5531 §11) reader for the client side, with a cap on the record size
 * checked before any allocation. Each fragment header is a big-endian u32: the top bit marks the
 * last fragment, the low 31 bits are the fragment length. Records that arrive whole inside one
 * chunk are handed out as zero-copy views; otherwise one buffer of the announced size is filled.
 */
export class RecordTooLargeError extends Error {
  constructor(readonly size: number, readonly max: number) {
    super(`RPC record of ${size} bytes exceeds cap of ${max}`);
  }
}

export class RecordReader {
  private hdr = Buffer.alloc(4);
  private hdrFill = 0;
  /** remaining bytes of the current fragment; -1 while reading a header */
  private fragLeft = -1;
  private fragLast = false;
  /** buffer being filled for the current fragment (when not zero-copy) */
  private fragBuf: Buffer | null = null;
  private fragFill = 0;
  /** completed earlier fragments of the current record */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private failed = false;

  constructor(
    readonly maxRecordBytes: number,
    private readonly onRecord: (record: Buffer) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /** bytes of a partial record currently buffered (0 when between records) */
  get pendingBytes(): number {
    return this.partsBytes + this.fragFill + this.hdrFill;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.fragLeft < 0) {
        // fast path: a whole header in this chunk
        let word: number;
        if (this.hdrFill === 0 && len - pos >= 4) {
          word = chunk.readUInt32BE(pos);
          pos += 4;
        } else {
          while (this.hdrFill < 4 && pos < len) this.hdr[this.hdrFill++] = chunk[pos++];
          if (this.hdrFill < 4) return;
          word = this.hdr.readUInt32BE(0);
          this.hdrFill = 0;
        }
        this.fragLast = (word & 0x80000000) !== 0;
        const fragLen = word & 0x7fffffff;
        if (this.partsBytes + fragLen > this.maxRecordBytes) {
          this.failed = true;
          this.onError(new RecordTooLargeError(this.partsBytes + fragLen, this.maxRecordBytes));
          return;
        }
        this.fragLeft = fragLen;
        this.fragFill = 0;
        this.fragBuf = null;
        if (fragLen === 0) {
          this.finishFragment(Buffer.alloc(0));
          continue;
        }
        // zero-copy when the whole fragment is here and it is the whole record
        if (len - pos >= fragLen && this.parts.length === 0 && this.fragLast) {
          const view = chunk.subarray(pos, pos + fragLen);
          pos += fragLen;
          this.fragLeft = -1;
          this.onRecord(view);
          if (this.failed) return;
          continue;
        }
        this.fragBuf = Buffer.allocUnsafe(fragLen);
      }
      const take = Math.min(this.fragLeft, len - pos);
      chunk.copy(this.fragBuf!, this.fragFill, pos, pos + take);
      pos += take;
      this.fragFill += take;
      this.fragLeft -= take;
      if (this.fragLeft === 0) {
        const frag = this.fragBuf!;
        this.fragBuf = null;
        this.fragFill = 0;
        this.finishFragment(frag);
        if (this.failed) return;
      }
    }
  }

  private finishFragment(frag: Buffer): void {
    this.fragLeft = -1;
    if (!this.fragLast) {
      this.parts.push(frag);
      this.partsBytes += frag.length;
      return;
    }
    let record = frag;
    if (this.parts.length > 0) {
      this.parts.push(frag);
      record = Buffer.concat(this.parts, this.partsBytes + frag.length);
      this.parts = [];
      this.partsBytes = 0;
    }
    this.onRecord(record);
  }
}

/** Encode one record as a single last fragment (header + body). */
export function encodeRecord(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE((0x80000000 | body.length) >>> 0, 0);
  out.set(body, 4);
  return out;
}
