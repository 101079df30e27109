/**
 * Authentication of the admin endpoints' changes (add, remove, transfer-leader, verify) from off
 * loopback: header `x-hanfs-auth: SECONDS:HMAC` with HMAC-SHA256(cluster secret, "SECONDS METHOD
 * PATH?QUERY"), accepted within 5 minutes of the node's clock. From loopback, and for reads, none is
 * needed; from elsewhere without a configured secret, changes are refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const ADMIN_AUTH_HEADER = 'x-hanfs-auth';
const WINDOW_SECONDS = 300;

function mac(secret: Buffer, seconds: number, method: string, pathAndQuery: string): string {
  return createHmac('sha256', secret).update(`${seconds} ${method} ${pathAndQuery}`).digest('hex');
}

export function adminAuthHeader(secret: Buffer, method: string, pathAndQuery: string, nowMs = Date.now()): string {
  const seconds = Math.floor(nowMs / 1000);
  return `${seconds}:${mac(secret, seconds, method, pathAndQuery)}`;
}

export function adminAuthValid(secret: Buffer, method: string, pathAndQuery: string, header: string | undefined, nowMs = Date.now()): boolean {
  const m = /^(\d{1,12}):([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const seconds = Number(m[1]);
  if (Math.abs(nowMs / 1000 - seconds) > WINDOW_SECONDS) return false;
  return timingSafeEqual(Buffer.from(m[2]), Buffer.from(mac(secret, seconds, method, pathAndQuery)));
}
