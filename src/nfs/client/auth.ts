/** RPC credentials: AUTH_NONE and AUTH_SYS (RFC 5531 appendix A), encoded once and reused. */
import { AuthFlavor } from './constants';

export interface Credential {
  readonly flavor: number;
  /** the opaque body, already XDR-encoded (at most 400 bytes for a well-formed credential) */
  readonly body: Uint8Array;
}

export const AUTH_NONE: Credential = Object.freeze({ flavor: AuthFlavor.NONE, body: new Uint8Array(0) });

export interface AuthSysParams {
  uid: number;
  gid: number;
  gids?: number[];
  machine?: string;
  stamp?: number;
}

export function authSys(p: AuthSysParams): Credential {
  const machine = Buffer.from(p.machine ?? 'hanfs-client', 'utf8');
  const gids = p.gids ?? [];
  const padded = (machine.length + 3) & ~3;
  const body = Buffer.alloc(4 + 4 + padded + 4 + 4 + 4 + 4 * gids.length);
  let x = 0;
  body.writeUInt32BE((p.stamp ?? 0) >>> 0, x); x += 4;
  body.writeUInt32BE(machine.length, x); x += 4;
  machine.copy(body, x); x += padded;
  body.writeUInt32BE(p.uid >>> 0, x); x += 4;
  body.writeUInt32BE(p.gid >>> 0, x); x += 4;
  body.writeUInt32BE(gids.length, x); x += 4;
  for (const g of gids) { body.writeUInt32BE(g >>> 0, x); x += 4; }
  return { flavor: AuthFlavor.SYS, body };
}

/** A credential with arbitrary flavor and body bytes, for error-path tests. */
export function rawCredential(flavor: number, body: Uint8Array): Credential {
  return { flavor, body };
}

export const AUTH_ROOT: Credential = authSys({ uid: 0, gid: 0 });
