/**
 * LINK (RFC 1813 §3.3.15): a new name for an existing non-directory in a directory of the same
 * export (else XDEV). MLINK, ISDIR, EXIST come from the store.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import type { Nfsv3PostOpAttr, Nfsv3WccData } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { FileType, Nfs3Status } from '../../store/types';
import { checkNewName, EMPTY_WCC, Nfs3Error, type Resolved } from './core';
import type { ExportRef } from './deps';
import type { Handler } from './reply';

const reply = (status: number, file: Nfsv3PostOpAttr, dir: Nfsv3WccData) =>
  status === Nfs3Status.OK
    ? new m.Nfsv3LinkResponse(status as number, new m.Nfsv3LinkResOk(file, dir))
    : new m.Nfsv3LinkResponse(status as number, undefined, new m.Nfsv3LinkResFail(file, dir));

export const link: Handler = async (core, ctx, req: m.Nfsv3LinkRequest) => {
  const f = await core.resolve(ctx, req.file);
  let d: Resolved<ExportRef>;
  try {
    d = await core.resolve(ctx, req.link.dir);
  } catch (e) {
    if (e instanceof Nfs3Error) return reply(e.status, core.postOp(f.attr, f.exp.id), EMPTY_WCC);
    throw e;
  }
  const id = d.exp.id;
  let status: number = Nfs3Status.OK;
  if (f.exp.id !== id) status = Nfs3Status.XDEV;
  else if (d.attr.type !== FileType.DIR) status = Nfs3Status.NOTDIR;
  else if ((status = checkNewName(req.link.name)) !== Nfs3Status.OK) {
    // status set
  } else if (d.exp.readOnly) status = Nfs3Status.ROFS;
  if (status !== Nfs3Status.OK) return reply(status, core.postOp(f.attr, f.exp.id), core.wccUnchanged(d.attr, id));
  const r = await core.submit({ kind: 'link', time: core.now(), cred: d.cred, file: f.fileId, dir: d.fileId, name: req.link.name }, ctx);
  const fileAttr = r.status === Nfs3Status.OK ? r.obj : (r.obj ?? f.attr);
  return reply(r.status, core.postOp(fileAttr, id), core.opWcc(r, r.wcc2 ?? r.wcc, d.attr, id));
};
