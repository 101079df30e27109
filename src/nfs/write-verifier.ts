/**
 * The NFSv3 write verifier (RFC 1813 §3.3.7, §3.3.21): 8 bytes returned by every WRITE and COMMIT.
 * A client that sees it change resends its UNSTABLE writes, so it must change whenever data the
 * server acknowledged as UNSTABLE could have been lost: at every process start, whenever this node
 * becomes the serving leader (another node's buffered data is not ours), and when making data durable
 * failed (a failed fsync may have dropped dirty pages: the NFS program rotates it itself then, with
 * `rotateWriteVerifier(bytes, reason)`). The NFS program reads the bytes of the array it was given on
 * every reply, so a rotation takes effect at once.
 */
import { randomBytes } from 'node:crypto';

export const WRITE_VERIFIER_SIZE = 8;

/** why the verifier changed (a bounded set: metric label) */
export type RotateReason = 'manual' | 'leader' | 'commit-failed' | 'write-failed' | 'op-failed';

/** the WriteVerifier owning an array of bytes, so a holder of the bytes alone can rotate it */
const owners = new WeakMap<Uint8Array, WriteVerifier>();

/** Write a new value into `bytes` in place: seconds since the epoch (high 4) and 4 random bytes. */
function pickNew(bytes: Uint8Array): void {
  const v = Buffer.from(bytes.buffer, bytes.byteOffset, WRITE_VERIFIER_SIZE);
  const prev = Buffer.from(v);
  do {
    v.writeUInt32BE(Math.floor(Date.now() / 1000) >>> 0, 0);
    randomBytes(4).copy(v, 4);
  } while (v.equals(prev));
}

export class WriteVerifier {
  readonly bytes: Uint8Array = new Uint8Array(WRITE_VERIFIER_SIZE);
  /** rotations since construction */
  rotations = 0;
  /** called after every rotation (metrics, logs) */
  onRotate: ((reason: RotateReason) => void) | undefined;

  constructor() {
    pickNew(this.bytes);
    owners.set(this.bytes, this);
  }

  /** Pick a new value (never the current one). */
  rotate(reason: RotateReason = 'manual'): void {
    pickNew(this.bytes);
    this.rotations++;
    this.onRotate?.(reason);
  }
}

/**
 * Rotate the verifier whose bytes these are (its WriteVerifier's `rotate`, so its hooks run), or, for
 * bytes no WriteVerifier owns, write a new value into them in place.
 */
export function rotateWriteVerifier(bytes: Uint8Array, reason: RotateReason): void {
  if (bytes.length < WRITE_VERIFIER_SIZE) throw new RangeError('write verifier is 8 bytes');
  const owner = owners.get(bytes);
  if (owner) owner.rotate(reason);
  else pickNew(bytes);
}

/** A copy of the verifier as it is now (replies that must carry the value of an earlier moment). */
export function snapshotVerifier(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.subarray(0, WRITE_VERIFIER_SIZE));
}
