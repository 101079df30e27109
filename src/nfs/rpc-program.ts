/**
 * The seam between the ONC RPC server (rpc-server.ts: record marking, call parsing, replies,
 * rejections) and the programs it serves (portmapper, MOUNT v3, NFS v3). A program never sees the
 * RPC header; it gets a decoded call context and its argument bytes, and returns its result bytes.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';

export const enum AuthFlavor {
  NONE = 0,
  SYS = 1,
}

export interface AuthSys {
  stamp: number;
  machine: string;
  uid: number;
  gid: number;
  gids: number[];
}

export interface RpcCallContext {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  flavor: AuthFlavor;
  /** present when flavor is AUTH_SYS */
  sys?: AuthSys;
  remoteAddress: string;
  remotePort: number;
  /**
   * The local end the call arrived on (the portmapper answers GETADDR for wildcard registrations with
   * the address the client reached). Always set by the RPC server; optional only so that contexts
   * built by hand (tests, direct program calls) need not invent one.
   */
  localAddress?: string;
  localPort?: number;
  transport: 'tcp' | 'udp';
  /** set by a program for its non-idempotent calls: a digest of (client address, xid, procedure,
   * arguments) naming the call across retransmits and reconnects (not the client's port) */
  requestKey?: Uint8Array;
}

/** accept_stat / reject outcomes a program may ask for. SUCCESS carries the encoded results. */
export type ProgramResult =
  /** `tail`: further result bytes sent after `body` as they are, without copying (READ data) */
  /** `release`: called once, when the reply has been handed to the socket (or given up): the tail's
   * memory may then be reused */
  | { kind: 'success'; body: Uint8Array; tail?: Uint8Array[]; release?: () => void }
  | { kind: 'proc_unavail' }
  | { kind: 'garbage_args' }
  | { kind: 'system_err' }
  /** reply MSG_DENIED / AUTH_ERROR with this auth_stat (e.g. 5 = AUTH_TOOWEAK) */
  | { kind: 'auth_error'; stat: number }
  /** send nothing (e.g. a duplicate in progress) */
  | { kind: 'drop' };

export interface RpcProgram {
  readonly prog: number;
  /** supported versions, ascending; others get PROG_MISMATCH with [min, max] */
  readonly versions: number[];
  readonly name: string;
  /** proc names by number for logs and metrics */
  procName(vers: number, proc: number): string;
  handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult>;
  /**
   * Procedures that must not run twice for one call (their effect or answer changes when repeated:
   * REMOVE, RENAME, CREATE, WRITE, MNT, ...). The RPC server's duplicate request cache
   * (duplicate-request-cache.ts) answers retransmits of these from the reply it sent and never runs
   * them again while the original is still running. Absent: nothing of this program is cached.
   */
  isNonIdempotent?(vers: number, proc: number): boolean;
}

/**
 * `program` with `isNonIdempotent` declared from outside (for a program that does not declare it
 * itself). The result delegates everything else to `program`.
 */
export function withNonIdempotent(program: RpcProgram, isNonIdempotent: (vers: number, proc: number) => boolean): RpcProgram {
  return {
    prog: program.prog,
    versions: program.versions,
    name: program.name,
    procName: (vers, proc) => program.procName(vers, proc),
    handle: (ctx, args) => program.handle(ctx, args),
    isNonIdempotent,
  };
}
