/**
 * The NFSv3 write verifier of a cluster: unique to (cluster, leadership term, rotation). A new leader
 * has a new one, so clients resend every UNSTABLE write they had not seen committed under the old
 * one; a leader that may have lost acknowledged-but-uncommitted data rotates within its term.
 * Derived, not random: the same inputs give the same bytes on any node (tests and `status` can name
 * it), different inputs practically never collide (SHA-256).
 */
import { createHash } from 'node:crypto';
import { WRITE_VERIFIER_SIZE } from '../nfs/write-verifier';

export function termVerifier(clusterId: string, term: number, rotation = 0): Uint8Array {
  const h = createHash('sha256').update(`hanfs-verifier\0${clusterId}\0${term}\0${rotation}`).digest();
  return new Uint8Array(h.subarray(0, WRITE_VERIFIER_SIZE));
}
