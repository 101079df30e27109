/**
 * Authentication of the admin endpoints' changes (add, remove, transfer-leader, verify) from off
 * loopback: header `x-hanfs-auth: SECONDS:NONCE:HMAC` with HMAC-SHA256(cluster secret, "SECONDS NONCE
 * METHOD PATH?QUERY"), NONCE 16 random bytes (hex), accepted within 5 minutes of the node's clock and
 * only once: a node remembers the headers it accepted for as long as they could be accepted, so a
 * request seen on the wire cannot be sent again (a replayed `verify` stalls every write for as long
 * as the nodes digest their stores; a replayed transfer-leader or add undoes what came after it).
 * From loopback, and for reads, none is needed; from elsewhere without a configured secret, changes
 * are refused.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const ADMIN_AUTH_HEADER = 'x-hanfs-auth';
const WINDOW_SECONDS = 300;
/** headers remembered at once (each needs the secret); beyond it changes are refused until some expire */
const MAX_REMEMBERED = 4096;

function mac(secret: Buffer, seconds: number, nonce: string, method: string, pathAndQuery: string): string {
  return createHmac('sha256', secret).update(`${seconds} ${nonce} ${method} ${pathAndQuery}`).digest('hex');
}

export function adminAuthHeader(secret: Buffer, method: string, pathAndQuery: string, nowMs = Date.now(), nonce = randomBytes(16).toString('hex')): string {
  const seconds = Math.floor(nowMs / 1000);
  return `${seconds}:${nonce}:${mac(secret, seconds, nonce, method, pathAndQuery)}`;
}

/** the headers a node accepted, until they expire (header -> seconds it was made at) */
export type AdminAuthSeen = Map<string, number>;

/** Valid for this request, within the window and, given `seen`, not accepted before (then remembered). */
export function adminAuthValid(
  secret: Buffer,
  method: string,
  pathAndQuery: string,
  header: string | undefined,
  nowMs = Date.now(),
  seen?: AdminAuthSeen,
): boolean {
  const m = /^(\d{1,12}):([0-9a-f]{32}):([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const seconds = Number(m[1]);
  if (Math.abs(nowMs / 1000 - seconds) > WINDOW_SECONDS) return false;
  if (!timingSafeEqual(Buffer.from(m[3]), Buffer.from(mac(secret, seconds, m[2], method, pathAndQuery)))) return false;
  if (!seen) return true;
  for (const [h, s] of seen) if (Math.abs(nowMs / 1000 - s) > WINDOW_SECONDS) seen.delete(h);
  if (seen.has(m[0]) || seen.size >= MAX_REMEMBERED) return false;
  seen.set(m[0], seconds);
  return true;
}
