/**
 * SETATTR (RFC 1813 §3.3.2). The guard (ctime check) and the permission checks are decided by the
 * store inside apply, atomically with the change; NOT_SYNC comes from there.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { Nfs3Status, type SetAttrs, type Time } from '../../store/types';
import { GarbageArgs, Nfs3Error, toSetAttrs, OK } from './core';
import type { Handler } from './reply';

export const setattr: Handler = async (core, ctx, req: m.Nfsv3SetattrRequest) => {
  const t = await core.resolve(ctx, req.object);
  const id = t.exp.id;
  const fail = (status: number) =>
    new m.Nfsv3SetattrResponse(status, undefined, new m.Nfsv3SetattrResFail(core.wccUnchanged(t.attr, id)));
  let attrs: SetAttrs;
  let guardCtime: Time | undefined;
  try {
    attrs = toSetAttrs(req.newAttributes);
    if (req.guard.check) {
      const g = req.guard.objCtime;
      if (!g) throw new GarbageArgs();
      guardCtime = { sec: g.seconds, nsec: g.nseconds };
    }
  } catch (e) {
    if (e instanceof Nfs3Error) return fail(e.status);
    throw e;
  }
  if (t.exp.readOnly) return fail(Nfs3Status.ROFS);
  const r = await core.submit({ kind: 'setattr', time: core.now(), cred: t.cred, file: t.fileId, attrs, guardCtime }, ctx);
  const wcc = core.opWcc(r, r.wcc, t.attr, id, r.obj);
  return r.status === Nfs3Status.OK
    ? new m.Nfsv3SetattrResponse(OK, new m.Nfsv3SetattrResOk(wcc))
    : new m.Nfsv3SetattrResponse(r.status as number, undefined, new m.Nfsv3SetattrResFail(wcc));
};
