/**
 * The NFS version 3 program (RFC 1813, program 100003, version 3): decodes the arguments, runs the
 * procedure's handler (one module per procedure), encodes the result. NULL is answered here.
 * Malformed arguments → GARBAGE_ARGS; procedures above 21 → PROC_UNAVAIL; a credential flavor the
 * export does not take → AUTH_ERROR / AUTH_TOOWEAK.
 *
 * Non-idempotent procedures (SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME,
 * LINK) are declared to the RPC server (`isNonIdempotent`), whose duplicate request cache keeps
 * retransmits of them from running twice. A mutation that fails in the store (an exception, or
 * NFS3ERR_IO) may have taken a sync round down with it, and with it UNSTABLE data acknowledged
 * earlier: the write verifier is rotated before the reply (WRITE and COMMIT do it themselves).
 */
import type { ProgramResult, RpcCallContext, RpcProgram } from '../rpc-program';
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { Nfs3Status } from '../../store/types';
import type { ExportConfig } from '../../config';
import { createHash } from 'node:crypto';
import { normalizeAddress } from '../exports';
import { AuthTooWeak, GarbageArgs, Nfs3Core, Nfs3Error } from './core';
import { DropCall } from './op-sequencer';
import type { ExportRef, Nfs3Deps } from './deps';
import { failureReply } from './failure';
import { RawReply, type Handler, type Reply } from './reply';
import { RequestDecoder } from './xdr';
import { rotateWriteVerifier } from '../write-verifier';
import { getattr } from './getattr';
import { setattr } from './setattr';
import { lookup } from './lookup';
import { access } from './access';
import { readlink } from './readlink';
import { read } from './read';
import { write } from './write';
import { create } from './create';
import { mkdir } from './mkdir';
import { symlink } from './symlink';
import { mknod } from './mknod';
import { remove } from './remove';
import { rmdir } from './rmdir';
import { rename } from './rename';
import { link } from './link';
import { readdir } from './readdir';
import { readdirplus } from './readdirplus';
import { fsstat } from './fsstat';
import { fsinfo } from './fsinfo';
import { pathconf } from './pathconf';
import { commit } from './commit';

export type { ExportTableLike, ExportRef, Nfs3Deps, LoggerLike } from './deps';
export { LocalOpLog, DropCall, type OpLog } from './op-sequencer';

export const NFS_PROGRAM = 100003;
export const NFS_V3 = 3;

export const NFS3_PROC_NAMES = [
  'NULL', 'GETATTR', 'SETATTR', 'LOOKUP', 'ACCESS', 'READLINK', 'READ', 'WRITE', 'CREATE', 'MKDIR',
  'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK', 'READDIR', 'READDIRPLUS', 'FSSTAT',
  'FSINFO', 'PATHCONF', 'COMMIT',
] as const;

const HANDLERS: (Handler | undefined)[] = [
  undefined, getattr, setattr, lookup, access, readlink, read, write, create, mkdir, symlink, mknod,
  remove, rmdir, rename, link, readdir, readdirplus, fsstat, fsinfo, pathconf, commit,
];

/** procedures that change state: a retransmit must not run them again (RPC duplicate request cache) */
export const NFS3_NON_IDEMPOTENT: ReadonlySet<number> = new Set([2, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
const WRITE = 7;

const EMPTY = new Uint8Array(0);
const READ = 6;
/** READ replies with at least this much data send it without copying (see handle) */
const ZERO_COPY_MIN = 4096;
const XDR_PAD = [EMPTY, new Uint8Array(1), new Uint8Array(2), new Uint8Array(3)];
const GARBAGE: ProgramResult = { kind: 'garbage_args' };
const PROC_UNAVAIL: ProgramResult = { kind: 'proc_unavail' };
const TOO_WEAK: ProgramResult = { kind: 'auth_error', stat: 5 };
const SYSTEM_ERR: ProgramResult = { kind: 'system_err' };
const DROP: ProgramResult = { kind: 'drop' };

/**
 * Procedures whose calls get a request key (the replicated duplicate-request record answers their
 * retransmits, wherever the original ran): every non-idempotent one but WRITE. A WRITE puts the same
 * bytes at the same offset when it runs again, as on any NFSv3 server after a restart; naming it would
 * hash up to 1 MiB of data per call and add a record to the store per write, on the hottest path.
 */
export const NFS3_REQUEST_KEYED: ReadonlySet<number> = new Set([...NFS3_NON_IDEMPOTENT].filter((p) => p !== WRITE));

/**
 * The name of a call across retransmits: client address (not port: clients reconnect from another),
 * xid, procedure and a digest of the argument bytes (a reused xid with other arguments is another
 * call). 16 bytes of SHA-256.
 */
export function requestKeyOf(ctx: RpcCallContext, args: Reader): Uint8Array {
  const h = createHash('sha256');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(ctx.xid >>> 0, 0);
  head.writeUInt32BE(ctx.proc >>> 0, 4);
  h.update(normalizeAddress(ctx.remoteAddress));
  h.update(head);
  h.update(args.uint8.subarray(args.x, args.end));
  return new Uint8Array(h.digest().subarray(0, 16));
}

export function createNfs3Program<E extends ExportRef = ExportConfig>(deps: Nfs3Deps<E>): RpcProgram {
  const core = new Nfs3Core<E>(deps) as unknown as Nfs3Core<ExportRef>;
  const decoder = new RequestDecoder();
  const { log, onStatus } = deps;

  function procName(_vers: number, proc: number): string {
    return NFS3_PROC_NAMES[proc] ?? `PROC${proc}`;
  }

  async function handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult> {
    const proc = ctx.proc;
    if (proc === 0) return { kind: 'success', body: EMPTY };
    const handler = HANDLERS[proc];
    if (!handler) return PROC_UNAVAIL;
    // a node that is not the serving leader (or no longer is) answers nothing: the client retransmits
    // to whoever holds the service address
    if (deps.gate && !deps.gate.serving()) {
      // a leader without a valid lease (just elected, or a heartbeat round late) confirms its
      // leadership with a quorum round first (ReadIndex); anyone else answers nothing
      if (!deps.gate.confirm) return DROP;
      try {
        await deps.gate.confirm();
      } catch {
        return DROP;
      }
    }
    if (deps.requestKeys && NFS3_REQUEST_KEYED.has(proc)) ctx.requestKey = requestKeyOf(ctx, args);
    const req = decoder.decode(args, proc);
    if (req === undefined) return GARBAGE;
    let res: Reply;
    let failed = false;
    try {
      res = await handler(core, ctx, req);
    } catch (e) {
      if (e instanceof Nfs3Error) res = failureReply(proc, e.status);
      else if (e instanceof DropCall) return DROP;
      else if (e instanceof AuthTooWeak) return TOO_WEAK;
      else if (e instanceof GarbageArgs) return GARBAGE;
      else {
        log?.error({ err: e, proc: NFS3_PROC_NAMES[proc], xid: ctx.xid }, 'nfs3: call failed');
        res = failureReply(proc, Nfs3Status.IO);
        failed = true;
      }
    }
    // WRITE rotates on its own store failures (COMMIT, not a mutation, too); other mutations here
    if (proc !== WRITE && NFS3_NON_IDEMPOTENT.has(proc) && (failed || res.status === Nfs3Status.IO)) {
      rotateWriteVerifier(deps.verifier, 'op-failed');
      log?.warn({ proc: NFS3_PROC_NAMES[proc], xid: ctx.xid }, 'nfs3: mutation failed in the store; write verifier rotated');
    }
    // the answer leaves only while this node still serves: a call that outlived this node's lease
    // or leadership while it ran (a slow disk, an event-loop stall that delayed the release of the
    // service address) gets none, as one that arrived then would; the client retransmits to the
    // next leader (a mutation's outcome is in the log, and the replicated request record answers it)
    if (deps.gate && !deps.gate.serving()) {
      const data = proc === READ && res.status === Nfs3Status.OK ? (res as m.Nfsv3ReadResponse).resok?.data : undefined;
      if (data !== undefined && data.length >= ZERO_COPY_MIN) core.store.releaseRead?.(data);
      return DROP;
    }
    onStatus?.(NFS3_PROC_NAMES[proc], res.status);
    const enc = core.enc;
    const w = enc.writer;
    // READ data goes out as it came from the store: the reply is encoded with empty data, whose
    // opaque length (the last word written) is then patched, and the data and its XDR padding follow
    // as separate parts of the record (no copy of up to 1 MiB into the encoder and out again)
    const readData = proc === READ && res.status === Nfs3Status.OK ? (res as m.Nfsv3ReadResponse).resok?.data : undefined;
    const zeroCopy = readData !== undefined && readData.length >= ZERO_COPY_MIN;
    try {
      if (res instanceof RawReply) res.write(enc);
      else if (zeroCopy) {
        const ok = (res as m.Nfsv3ReadResponse).resok!;
        enc.nfs.writeMessage(new m.Nfsv3ReadResponse(res.status, new m.Nfsv3ReadResOk(ok.fileAttributes, ok.count, ok.eof, EMPTY), undefined) as any, proc, false);
      } else enc.nfs.writeMessage(res as any, proc, false);
    } catch (e) {
      // drop the partial reply so it cannot prefix the next one
      w.x = w.x0;
      log?.error({ err: e, proc: NFS3_PROC_NAMES[proc], xid: ctx.xid }, 'nfs3: reply encoding failed');
      return SYSTEM_ERR;
    }
    const body = enc.flush();
    if (!zeroCopy) return { kind: 'success', body };
    const n = readData.length;
    new DataView(body.buffer, body.byteOffset, body.byteLength).setUint32(body.byteLength - 4, n);
    const pad = (4 - (n & 3)) & 3;
    const store = core.store;
    const release = store.releaseRead ? () => store.releaseRead!(readData) : undefined;
    return { kind: 'success', body, tail: pad ? [readData, XDR_PAD[pad]] : [readData], release };
  }

  function isNonIdempotent(vers: number, proc: number): boolean {
    return vers === NFS_V3 && NFS3_NON_IDEMPOTENT.has(proc);
  }

  return { prog: NFS_PROGRAM, versions: [NFS_V3], name: 'nfs', procName, handle, isNonIdempotent };
}
