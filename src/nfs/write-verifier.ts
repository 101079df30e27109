/**
 * The NFSv3 write verifier (RFC 1813 §3.3.7, §3.3.21): 8 bytes returned by every WRITE and COMMIT.
 * A client that sees it change resends its UNSTABLE writes, so it must change whenever data the
 * server acknowledged as UNSTABLE could have been lost: at every process start and whenever this
 * node becomes the serving leader (another node's buffered data is not ours). The NFS program reads
 * the bytes of the array it was given on every reply, so `rotate()` takes effect at once.
 */
import { randomBytes } from 'node:crypto';

export const WRITE_VERIFIER_SIZE = 8;

export class WriteVerifier {
  readonly bytes: Uint8Array = new Uint8Array(WRITE_VERIFIER_SIZE);

  constructor() {
    this.rotate();
  }

  /** Pick a new value: seconds since the epoch (high 4 bytes) and 4 random bytes. */
  rotate(): void {
    const v = Buffer.from(this.bytes.buffer, this.bytes.byteOffset, WRITE_VERIFIER_SIZE);
    const prev = Buffer.from(v);
    do {
      v.writeUInt32BE(Math.floor(Date.now() / 1000) >>> 0, 0);
      randomBytes(4).copy(v, 4);
    } while (v.equals(prev));
  }
}
