/**
 * ONC RPC authentication flavors (RFC 5531 §8.2, §9, §14): decides which credentials a call carries
 * and whether they are acceptable, before any program sees the call. Only AUTH_NONE and AUTH_SYS are
 * served; the reply verifier is always AUTH_NONE.
 */
import { AuthFlavor, type AuthSys } from './rpc-program';

/** auth_stat (RFC 5531 §9) */
export const enum AuthStat {
  OK = 0,
  BADCRED = 1,
  REJECTEDCRED = 2,
  BADVERF = 3,
  REJECTEDVERF = 4,
  TOOWEAK = 5,
}

/** RFC 5531 §8.2: opaque_auth bodies are at most 400 bytes */
export const MAX_AUTH_BYTES = 400;
/** RFC 5531 Appendix A: machinename<255>, gids<16> */
export const MAX_MACHINE_NAME = 255;
export const MAX_AUTH_SYS_GIDS = 16;

const FLAVOR_SHORT = 2;

export type AuthResult =
  | { ok: true; flavor: AuthFlavor; sys?: AuthSys }
  | { ok: false; stat: AuthStat };

function u32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/**
 * Parse authsys_parms strictly: every length in bounds, padding present, nothing left over.
 * Returns undefined when malformed.
 */
export function parseAuthSys(body: Uint8Array): AuthSys | undefined {
  const n = body.length;
  let p = 0;
  if (n < 20) return undefined; // stamp, name len, uid, gid, gid count
  const stamp = u32(body, p);
  p += 4;
  const nameLen = u32(body, p);
  p += 4;
  if (nameLen > MAX_MACHINE_NAME) return undefined;
  const padded = (nameLen + 3) & ~3;
  if (p + padded + 12 > n) return undefined;
  const machine = Buffer.from(body.buffer, body.byteOffset + p, nameLen).toString('latin1');
  p += padded;
  const uid = u32(body, p);
  p += 4;
  const gid = u32(body, p);
  p += 4;
  const count = u32(body, p);
  p += 4;
  if (count > MAX_AUTH_SYS_GIDS) return undefined;
  if (p + count * 4 !== n) return undefined;
  const gids: number[] = new Array(count);
  for (let i = 0; i < count; i++, p += 4) gids[i] = u32(body, p);
  return { stamp, machine, uid, gid, gids };
}

/**
 * Check a call's credential and verifier. RFC 5531 §9: a credential the server cannot accept is
 * AUTH_BADCRED (malformed, or a flavor it does not know) or AUTH_REJECTEDCRED (AUTH_SHORT: the client
 * must start over with its full credential); a verifier that does not fit the flavor is AUTH_BADVERF.
 */
export function checkAuth(credFlavor: number, cred: Uint8Array, verfFlavor: number, verf: Uint8Array): AuthResult {
  switch (credFlavor) {
    case AuthFlavor.NONE:
      if (cred.length !== 0) return { ok: false, stat: AuthStat.BADCRED };
      if (verfFlavor !== AuthFlavor.NONE || verf.length !== 0) return { ok: false, stat: AuthStat.BADVERF };
      return { ok: true, flavor: AuthFlavor.NONE };
    case AuthFlavor.SYS: {
      const sys = parseAuthSys(cred);
      if (!sys) return { ok: false, stat: AuthStat.BADCRED };
      if (verfFlavor !== AuthFlavor.NONE || verf.length !== 0) return { ok: false, stat: AuthStat.BADVERF };
      return { ok: true, flavor: AuthFlavor.SYS, sys };
    }
    case FLAVOR_SHORT:
      // we never hand out short-hand credentials, so any is stale: start over with AUTH_SYS
      return { ok: false, stat: AuthStat.REJECTEDCRED };
    default:
      // AUTH_DH, AUTH_KERB, RPCSEC_GSS, unknown: not served here
      return { ok: false, stat: AuthStat.BADCRED };
  }
}

/** Encode authsys_parms (used by tests and by clients of our own). */
export function encodeAuthSys(sys: AuthSys): Uint8Array {
  const name = Buffer.from(sys.machine, 'latin1');
  const padded = (name.length + 3) & ~3;
  const out = Buffer.alloc(20 + padded + 4 * sys.gids.length);
  let p = 0;
  out.writeUInt32BE(sys.stamp >>> 0, p);
  p += 4;
  out.writeUInt32BE(name.length, p);
  p += 4;
  name.copy(out, p);
  p += padded;
  out.writeUInt32BE(sys.uid >>> 0, p);
  p += 4;
  out.writeUInt32BE(sys.gid >>> 0, p);
  p += 4;
  out.writeUInt32BE(sys.gids.length, p);
  p += 4;
  for (const g of sys.gids) {
    out.writeUInt32BE(g >>> 0, p);
    p += 4;
  }
  return out;
}
