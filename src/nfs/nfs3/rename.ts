/**
 * RENAME (RFC 1813 §3.3.14). Both directories must be on the same export (else XDEV); the store
 * decides the rest atomically (EXIST/NOTEMPTY for a target in the way, INVAL for moving a directory
 * into itself, ...). Both wcc_data are reported, also on failure.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import type { Nfsv3WccData } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { FileType, Nfs3Status } from '../../store/types';
import { checkName, EMPTY_WCC, Nfs3Error, type Resolved } from './core';
import type { ExportRef } from './deps';
import { checkOldName } from './remove-entry';
import type { Handler } from './reply';

const reply = (status: number, from: Nfsv3WccData, to: Nfsv3WccData) =>
  status === Nfs3Status.OK
    ? new m.Nfsv3RenameResponse(status as number, new m.Nfsv3RenameResOk(from, to))
    : new m.Nfsv3RenameResponse(status as number, undefined, new m.Nfsv3RenameResFail(from, to));

export const rename: Handler = async (core, ctx, req: m.Nfsv3RenameRequest) => {
  const f = await core.resolve(ctx, req.from.dir);
  const fid = f.exp.id;
  let t: Resolved<ExportRef>;
  try {
    t = await core.resolve(ctx, req.to.dir);
  } catch (e) {
    if (e instanceof Nfs3Error) return reply(e.status, core.wccUnchanged(f.attr, fid), EMPTY_WCC);
    throw e;
  }
  const tid = t.exp.id;
  let status: number = Nfs3Status.OK;
  if (fid !== tid) status = Nfs3Status.XDEV;
  else if (f.attr.type !== FileType.DIR || t.attr.type !== FileType.DIR) status = Nfs3Status.NOTDIR;
  else if ((status = checkOldName(req.from.name)) !== Nfs3Status.OK) {
    // status set
  } else if ((status = checkName(req.to.name)) !== Nfs3Status.OK) {
    // status set
  } else if (req.to.name === '.' || req.to.name === '..') status = Nfs3Status.INVAL;
  else if (f.exp.readOnly) status = Nfs3Status.ROFS;
  if (status !== Nfs3Status.OK) return reply(status, core.wccUnchanged(f.attr, fid), core.wccUnchanged(t.attr, tid));
  const r = await core.submit({
    kind: 'rename', time: core.now(), cred: f.cred,
    fromDir: f.fileId, fromName: req.from.name, toDir: t.fileId, toName: req.to.name,
  }, ctx);
  return reply(r.status, core.opWcc(r, r.wcc, f.attr, fid), core.opWcc(r, r.wcc2 ?? (f.fileId === t.fileId ? r.wcc : undefined), t.attr, tid));
};
