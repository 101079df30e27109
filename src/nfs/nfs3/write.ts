/**
 * WRITE (RFC 1813 §3.3.7). count must equal the opaque data length (else GARBAGE_ARGS, like knfsd).
 * More than wtmax (1 MiB) is cut to wtmax (a short write the client continues). UNSTABLE goes to
 * the store as stable 0 and is answered UNSTABLE; DATA_SYNC and FILE_SYNC go as FILE_SYNC (data and
 * metadata durable when apply resolves) and are answered FILE_SYNC. The data is a view into the RPC
 * record: no copy is made here.
 *
 * The verifier in the reply is the server's as it was when the data was handed to the store: if it
 * rotates while the write is in progress (a sync failed and may have lost this data), the client
 * sees the old one here and a new one on COMMIT, and resends. If the op fails in the store (it
 * rejects, or answers NFS3ERR_IO), acknowledged UNSTABLE data may be lost with it: the verifier is
 * rotated before the NFS3ERR_IO reply.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status, type OpResult } from '../../store/types';
import { rotateWriteVerifier, snapshotVerifier } from '../write-verifier';
import { GarbageArgs, RW_MAX, u64, OK } from './core';
import { DropCall } from './op-sequencer';
import type { Handler } from './reply';

export const write: Handler = async (core, ctx, req: m.Nfsv3WriteRequest) => {
  if (req.stable > 2 || req.data.length !== req.count) throw new GarbageArgs();
  const t = await core.resolve(ctx, req.file);
  const id = t.exp.id;
  const fail = (status: number) =>
    new m.Nfsv3WriteResponse(status, undefined, new m.Nfsv3WriteResFail(core.wccUnchanged(t.attr, id)));
  if (t.attr.type === FileType.DIR) return fail(Nfs3Status.ISDIR);
  if (t.attr.type !== FileType.REG) return fail(Nfs3Status.INVAL);
  if (t.exp.readOnly) return fail(Nfs3Status.ROFS);
  const data = req.data.length > RW_MAX ? req.data.subarray(0, RW_MAX) : req.data;
  const offset = u64(req.offset);
  if (offset === undefined || offset + data.length > Number.MAX_SAFE_INTEGER) return fail(Nfs3Status.FBIG);
  const stable = req.stable === 0 ? 0 : 2;
  // a replicated op log answers once the write is committed on a majority's disks: FILE_SYNC
  const answered = core.opLog.stableOnApply ? 2 : stable;
  const verf = snapshotVerifier(core.verifier);
  let r: OpResult;
  try {
    r = await core.submit({ kind: 'write', time: core.now(), cred: t.cred, file: t.fileId, offset, data, stable }, ctx);
  } catch (e) {
    // (not the serving leader any more: no answer, the client retransmits to the next one)
    if (e instanceof DropCall) throw e;
    rotateWriteVerifier(core.verifier, 'write-failed');
    core.deps.log?.error({ err: e, fileId: t.fileId, stable }, 'nfs3 write: apply failed; write verifier rotated');
    return fail(Nfs3Status.IO);
  }
  if (r.status === Nfs3Status.IO) {
    rotateWriteVerifier(core.verifier, 'write-failed');
    core.deps.log?.error({ fileId: t.fileId, stable }, 'nfs3 write: store answered IO; write verifier rotated');
  }
  const wcc = core.opWcc(r, r.wcc, t.attr, id, r.obj);
  if (r.status !== Nfs3Status.OK) return new m.Nfsv3WriteResponse(r.status as number, undefined, new m.Nfsv3WriteResFail(wcc));
  const n = r.count ?? data.length;
  core.deps.onBytes?.('write', n);
  return new m.Nfsv3WriteResponse(OK, new m.Nfsv3WriteResOk(wcc, n, answered, verf));
};
