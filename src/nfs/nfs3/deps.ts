/**
 * What the NFSv3 program needs from the rest of hanfs. The export table (src/nfs/exports.ts)
 * implements ExportTableLike; tests may pass a hand-made one.
 */
import type { ExportConfig } from '../../config';
import type { BlockStore, Cred, StoreOptions, Time } from '../../store/types';
import type { RpcCallContext } from '../rpc-program';
import type { OpLog } from './op-sequencer';

/** The part of an export the NFS program reads itself. */
export interface ExportRef {
  id: number;
  readOnly: boolean;
}

export interface ExportTableLike<E extends ExportRef = ExportConfig> {
  byId(id: number): E | undefined;
  /** may a client at `address` use this export (its configured networks)? */
  clientAllowed(exp: E, address: string): boolean;
  /** credentials after squashing; undefined = flavor not acceptable here → AUTH_ERROR AUTH_TOOWEAK */
  effectiveCred(exp: E, ctx: RpcCallContext): Cred | undefined;
}

/** pino-compatible subset */
export interface LoggerLike {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Nfs3Deps<E extends ExportRef = ExportConfig> {
  store: BlockStore;
  exports: ExportTableLike<E>;
  /** 8-byte write verifier; read on every reply, so changing its bytes in place takes effect at once */
  verifier: Uint8Array;
  /** where mutations go; default a LocalOpLog over `store` (the seam Raft replaces) */
  opLog?: OpLog;
  log?: LoggerLike;
  onStatus?: (proc: string, status: number) => void;
  onBytes?: (dir: 'read' | 'write', n: number) => void;
  /** the store's limits as opened (FSINFO maxfilesize, PATHCONF linkmax); defaults are the store's */
  storeLimits?: Pick<StoreOptions, 'maxFileSize' | 'maxLinks'>;
  /** time stamp for mutations; default the wall clock */
  now?: () => Time;
  /** a cluster: calls are answered only while this says so (the serving leader), dropped otherwise */
  gate?: {
    serving(): boolean;
    /** the leader's lease is not valid (yet) but it may still lead: resolves once a quorum confirmed
     * its leadership and it applied everything committed before (ReadIndex); rejects if it cannot */
    confirm?(): Promise<void>;
  };
  /** name non-idempotent calls (ctx.requestKey) for a replicated duplicate request record */
  requestKeys?: boolean;
}
