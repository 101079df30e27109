/**
 * State and helpers every NFSv3 procedure handler shares: handle resolution (export, client network,
 * credentials, existence), conversions from store types to the codec's structs, names, time.
 */
import {
  Nfsv3Fattr,
  Nfsv3Fh,
  Nfsv3PostOpAttr,
  Nfsv3PostOpFh,
  Nfsv3PreOpAttr,
  Nfsv3SpecData,
  Nfsv3Time,
  Nfsv3WccAttr,
  Nfsv3WccData,
  type Nfsv3Sattr,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { decodeHandle, handleFor, ROOT_HANDLE_FILE_ID, sameGeneration } from '../file-handle';
import type { RpcCallContext } from '../rpc-program';
import {
  Nfs3Status,
  type Attr,
  type BlockStore,
  type Cred,
  type OpResult,
  type SetAttrs,
  type StoreOp,
  type Time,
  type Wcc,
} from '../../store/types';
import type { ExportRef, Nfs3Deps } from './deps';
import { LocalOpLog, type OpLog } from './op-sequencer';
import { ReplyEncoder, utf8Bytes } from './xdr';

/** NFS3_OK as a plain number (the codec's status type is its own enum) */
export const OK = 0 as number;

/** largest name (bytes) and path (bytes) we accept */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;
/** FSINFO rtmax/wtmax */
export const RW_MAX = 1024 * 1024;
/** largest file offset + 1; sizes stay exact JS integers */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** An NFS3ERR_* answer with no attributes to report (the handler knew nothing yet). */
export class Nfs3Error extends Error {
  constructor(readonly status: number) {
    super(`nfs3 status ${status}`);
  }
}
/** Reply AUTH_ERROR / AUTH_TOOWEAK: the export does not accept this call's credential flavor. */
export class AuthTooWeak extends Error {}
/** Reply GARBAGE_ARGS: the arguments decoded but are not valid XDR for their type. */
export class GarbageArgs extends Error {}

export interface Resolved<E extends ExportRef> {
  exp: E;
  fileId: number;
  /** attributes read once while resolving; pre-op attributes for mutations */
  attr: Attr;
  cred: Cred;
}

const EMPTY_PRE = new Nfsv3PreOpAttr(false);
const EMPTY_POST = new Nfsv3PostOpAttr(false);
export const EMPTY_WCC = new Nfsv3WccData(EMPTY_PRE, EMPTY_POST);
export const NO_ATTR = EMPTY_POST;

/** Wall clock with sub-millisecond digits (from the monotonic clock, so times within one ms differ). */
function wallClock(): Time {
  const ms = Date.now();
  const sec = Math.floor(ms / 1000);
  const sub = Math.floor((performance.now() % 1) * 1e6);
  return { sec, nsec: (ms - sec * 1000) * 1e6 + sub };
}

export class Nfs3Core<E extends ExportRef> {
  readonly store: BlockStore;
  readonly opLog: OpLog;
  readonly enc = new ReplyEncoder();
  readonly now: () => Time;

  constructor(readonly deps: Nfs3Deps<E>) {
    this.store = deps.store;
    this.opLog = deps.opLog ?? new LocalOpLog(deps.store);
    this.now = deps.now ?? wallClock;
  }

  get verifier(): Uint8Array {
    return this.deps.verifier;
  }

  /**
   * Handle → export, caller and current attributes. Throws Nfs3Error (BADHANDLE, STALE, ACCES) or
   * AuthTooWeak.
   */
  async resolve(ctx: RpcCallContext, fh: Nfsv3Fh): Promise<Resolved<E>> {
    const h = decodeHandle(fh.data);
    if (!h) throw new Nfs3Error(Nfs3Status.BADHANDLE);
    const exports = this.deps.exports;
    const exp = exports.byId(h.exportId);
    if (!exp) throw new Nfs3Error(Nfs3Status.STALE);
    if (!exports.clientAllowed(exp, ctx.remoteAddress)) throw new Nfs3Error(Nfs3Status.ACCES);
    const cred = exports.effectiveCred(exp, ctx);
    if (!cred) throw new AuthTooWeak();
    const isRoot = h.fileId === ROOT_HANDLE_FILE_ID;
    const fileId = isRoot ? this.store.rootFileId : h.fileId;
    if (!isRoot && fileId === this.store.rootFileId) throw new Nfs3Error(Nfs3Status.STALE);
    const attr = await this.store.getattr(fileId);
    if (!attr || (!isRoot && !sameGeneration(h.generation, attr.generation))) throw new Nfs3Error(Nfs3Status.STALE);
    return { exp, fileId, attr, cred };
  }

  fhOf(exportId: number, attr: Attr): Nfsv3Fh {
    return new Nfsv3Fh(this.handleBytes(exportId, attr));
  }

  handleBytes(exportId: number, attr: Attr): Buffer {
    return handleFor(exportId, attr.fileid, attr.generation, this.store.rootFileId);
  }

  postOpFh(exportId: number, attr: Attr | undefined): Nfsv3PostOpFh {
    return attr ? new Nfsv3PostOpFh(true, this.fhOf(exportId, attr)) : new Nfsv3PostOpFh(false);
  }

  fattr(a: Attr, exportId: number): Nfsv3Fattr {
    return new Nfsv3Fattr(
      a.type as number,
      a.mode,
      a.nlink,
      a.uid,
      a.gid,
      BigInt(a.size),
      BigInt(a.used),
      new Nfsv3SpecData(a.rdev[0], a.rdev[1]),
      BigInt(exportId),
      BigInt(a.fileid),
      nfsTime(a.atime),
      nfsTime(a.mtime),
      nfsTime(a.ctime),
    );
  }

  postOp(a: Attr | undefined, exportId: number): Nfsv3PostOpAttr {
    return a ? new Nfsv3PostOpAttr(true, this.fattr(a, exportId)) : EMPTY_POST;
  }

  /** wcc_data from the store's result; `pre` fills in a missing before when we have it. */
  wcc(w: Wcc | undefined, exportId: number, pre?: Attr): Nfsv3WccData {
    const before = w?.before ?? pre;
    return new Nfsv3WccData(
      before ? new Nfsv3PreOpAttr(true, new Nfsv3WccAttr(BigInt(before.size), nfsTime(before.mtime), nfsTime(before.ctime))) : EMPTY_PRE,
      this.postOp(w?.after, exportId),
    );
  }

  /**
   * wcc_data of an op's object: the store's (taken atomically with the change) when it gave one,
   * completed from what we read before (`pre`) and the op's result object (`after`).
   */
  opWcc(r: OpResult, w: Wcc | undefined, pre: Attr, exportId: number, after?: Attr): Nfsv3WccData {
    const failed = r.status !== Nfs3Status.OK;
    if (w) return this.wcc({ before: w.before ?? pre, after: w.after ?? (failed ? pre : after) }, exportId);
    return failed ? this.wccUnchanged(pre, exportId) : this.wcc({ before: pre, after }, exportId);
  }

  /** wcc_data for an object a failed call did not change: before = after = what we read. */
  wccUnchanged(a: Attr, exportId: number): Nfsv3WccData {
    return this.wcc({ before: a, after: a }, exportId);
  }

  /** Submit a mutation of the call `ctx` (its requestKey, if the program set one, goes with it). */
  submit(op: StoreOp, ctx?: RpcCallContext): Promise<OpResult> {
    return this.opLog.submit(op, ctx?.requestKey);
  }
}

export function nfsTime(t: Time): Nfsv3Time {
  return new Nfsv3Time(t.sec, t.nsec);
}

/** Convert a u64 from the wire; undefined if it is not an exact JS integer. */
export function u64(v: bigint): number | undefined {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

/** Names: NAMETOOLONG over NAME_MAX bytes (UTF-8); empty, or containing '/' or NUL (or invalid UTF-8): INVAL. */
export function checkName(name: string): Nfs3Status {
  if (name.length > NAME_MAX || (name.length > NAME_MAX / 4 && utf8Bytes(name) > NAME_MAX)) return Nfs3Status.NAMETOOLONG;
  if (name.length === 0 || name.includes('/') || name.includes('\0')) return Nfs3Status.INVAL;
  return Nfs3Status.OK;
}

export function isDot(name: string): boolean {
  return name === '.' || name === '..';
}

/** Name check for calls that create a directory entry: "." and ".." always exist. */
export function checkNewName(name: string): Nfs3Status {
  const s = checkName(name);
  if (s !== Nfs3Status.OK) return s;
  return isDot(name) ? Nfs3Status.EXIST : Nfs3Status.OK;
}

function toTime(t: Nfsv3Time | undefined): Time {
  if (!t) throw new GarbageArgs();
  if (t.nseconds >= 1_000_000_000) throw new Nfs3Error(Nfs3Status.INVAL);
  return { sec: t.seconds, nsec: t.nseconds };
}

/**
 * sattr3 → SetAttrs. Throws GarbageArgs for a time_how outside the enum, Nfs3Error INVAL for
 * nseconds >= 10^9, FBIG for a size beyond MAX_FILE_SIZE. Mode keeps the 07777 bits (like knfsd).
 */
export function toSetAttrs(s: Nfsv3Sattr): SetAttrs {
  const out: SetAttrs = {};
  if (s.mode.set) out.mode = (s.mode.mode ?? 0) & 0o7777;
  if (s.uid.set) out.uid = s.uid.uid;
  if (s.gid.set) out.gid = s.gid.gid;
  if (s.size.set) {
    const size = u64(s.size.size ?? 0n);
    if (size === undefined || size > MAX_FILE_SIZE) throw new Nfs3Error(Nfs3Status.FBIG);
    out.size = size;
  }
  switch (s.atime.how) {
    case 0:
      break;
    case 1:
      out.atime = 'server';
      break;
    case 2:
      out.atime = toTime(s.atime.atime);
      break;
    default:
      throw new GarbageArgs();
  }
  switch (s.mtime.how) {
    case 0:
      break;
    case 1:
      out.mtime = 'server';
      break;
    case 2:
      out.mtime = toTime(s.mtime.mtime);
      break;
    default:
      throw new GarbageArgs();
  }
  return out;
}

/** Two handles of one call (RENAME, LINK) must be on the same export, else XDEV. */
export function sameExport(a: Resolved<ExportRef>, b: Resolved<ExportRef>): boolean {
  return a.exp.id === b.exp.id;
}
