/** The common path of REMOVE and RMDIR: checks, apply, dir wcc_data. */
import type { Nfsv3DirOpArgs, Nfsv3WccData } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import type { RpcCallContext } from '../rpc-program';
import { FileType, Nfs3Status } from '../../store/types';
import { checkName, isDot, type Nfs3Core } from './core';
import type { ExportRef } from './deps';
import type { LibReply } from './reply';

/** Name check for calls that name an existing entry to remove or rename. */
export function checkOldName(name: string): Nfs3Status {
  const s = checkName(name);
  if (s === Nfs3Status.NAMETOOLONG) return s;
  // "." and ".." cannot be removed or renamed (POSIX rmdir/rename: EINVAL)
  if (s !== Nfs3Status.OK || isDot(name)) return s === Nfs3Status.OK ? Nfs3Status.INVAL : Nfs3Status.NOENT;
  return Nfs3Status.OK;
}

export async function removeEntry(
  core: Nfs3Core<ExportRef>,
  ctx: RpcCallContext,
  what: Nfsv3DirOpArgs,
  kind: 'remove' | 'rmdir',
  reply: (status: number, dirWcc: Nfsv3WccData) => LibReply,
): Promise<LibReply> {
  const d = await core.resolve(ctx, what.dir);
  const id = d.exp.id;
  let status: number = Nfs3Status.OK;
  if (d.attr.type !== FileType.DIR) status = Nfs3Status.NOTDIR;
  else if ((status = checkOldName(what.name)) !== Nfs3Status.OK) {
    // status set
  } else if (d.exp.readOnly) status = Nfs3Status.ROFS;
  if (status !== Nfs3Status.OK) return reply(status, core.wccUnchanged(d.attr, id));
  const r = await core.submit({ kind, time: core.now(), cred: d.cred, dir: d.fileId, name: what.name }, ctx);
  return reply(r.status, core.opWcc(r, r.wcc, d.attr, id));
}
