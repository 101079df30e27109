/**
 * The common path of CREATE, MKDIR, SYMLINK and MKNOD: resolve the directory, check it, the name
 * and the export, apply the op, and answer (post_op_fh3, post_op_attr, dir wcc_data) or (dir wcc).
 */
import type { Nfsv3DirOpArgs, Nfsv3PostOpAttr, Nfsv3PostOpFh, Nfsv3WccData } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import type { RpcCallContext } from '../rpc-program';
import { FileType, Nfs3Status, type Cred, type StoreOp, type Time } from '../../store/types';
import { checkNewName, Nfs3Error, type Nfs3Core } from './core';
import type { ExportRef } from './deps';
import type { LibReply } from './reply';

export async function makeEntry(
  core: Nfs3Core<ExportRef>,
  ctx: RpcCallContext,
  where: Nfsv3DirOpArgs,
  /** builds the op; may throw Nfs3Error (bad attributes) or GarbageArgs */
  build: (dir: number, name: string, base: { time: Time; cred: Cred }) => StoreOp,
  ok: (obj: Nfsv3PostOpFh, attrs: Nfsv3PostOpAttr, dirWcc: Nfsv3WccData) => LibReply,
  fail: (status: number, dirWcc: Nfsv3WccData) => LibReply,
): Promise<LibReply> {
  const d = await core.resolve(ctx, where.dir);
  const id = d.exp.id;
  let op: StoreOp;
  try {
    op = build(d.fileId, where.name, { time: core.now(), cred: d.cred });
  } catch (e) {
    if (e instanceof Nfs3Error) return fail(e.status, core.wccUnchanged(d.attr, id));
    throw e;
  }
  let status: number = Nfs3Status.OK;
  if (d.attr.type !== FileType.DIR) status = Nfs3Status.NOTDIR;
  else if ((status = checkNewName(where.name)) !== Nfs3Status.OK) {
    // status set
  } else if (d.exp.readOnly) status = Nfs3Status.ROFS;
  if (status !== Nfs3Status.OK) return fail(status, core.wccUnchanged(d.attr, id));
  const r = await core.submit(op, ctx);
  const dirWcc = core.opWcc(r, r.wcc, d.attr, id);
  if (r.status !== Nfs3Status.OK) return fail(r.status, dirWcc);
  return ok(core.postOpFh(id, r.obj), core.postOp(r.obj, id), dirWcc);
}
