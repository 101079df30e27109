/**
 * COMMIT (RFC 1813 §3.3.21): make every applied op durable (the store syncs data and metadata; the
 * whole file, whatever offset/count say) and answer with the server's write verifier as it is once
 * the sync is done (if it changed meanwhile, the client sees a new one and resends: safe). Attributes
 * do not change: wcc before = after.
 *
 * A failing sync may have lost UNSTABLE data acknowledged earlier (a failed fsync can drop dirty
 * pages): the verifier is rotated before the NFS3ERR_IO reply, so every later WRITE/COMMIT carries a
 * new one and clients resend everything they had not seen committed (invariant 1).
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status } from '../../store/types';
import { rotateWriteVerifier, snapshotVerifier } from '../write-verifier';
import { OK } from './core';
import { DropCall } from './op-sequencer';
import type { Handler } from './reply';

export const commit: Handler = async (core, ctx, req: m.Nfsv3CommitRequest) => {
  const t = await core.resolve(ctx, req.file);
  const id = t.exp.id;
  const fail = (status: number) =>
    new m.Nfsv3CommitResponse(status, undefined, new m.Nfsv3CommitResFail(core.wccUnchanged(t.attr, id)));
  if (t.attr.type === FileType.DIR) return fail(Nfs3Status.ISDIR);
  if (t.attr.type !== FileType.REG) return fail(Nfs3Status.INVAL);
  try {
    if (core.opLog.commitBarrier) await core.opLog.commitBarrier();
    else await core.store.sync(t.fileId);
  } catch (e) {
    if (e instanceof DropCall) throw e;
    rotateWriteVerifier(core.verifier, 'commit-failed');
    core.deps.log?.error({ err: e, fileId: t.fileId }, 'nfs3 commit: sync failed; write verifier rotated');
    return fail(Nfs3Status.IO);
  }
  return new m.Nfsv3CommitResponse(OK, new m.Nfsv3CommitResOk(core.wccUnchanged(t.attr, id), snapshotVerifier(core.verifier)));
};
