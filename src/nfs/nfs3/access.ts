/** ACCESS (RFC 1813 §3.3.4): which of the asked rights the caller has, truthfully from the mode. */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { accessGranted } from './permissions';
import { OK } from './core';
import type { Handler } from './reply';

export const access: Handler = async (core, ctx, req: m.Nfsv3AccessRequest) => {
  const t = await core.resolve(ctx, req.object);
  const granted = accessGranted(t.attr, t.cred, t.exp.readOnly) & req.access;
  return new m.Nfsv3AccessResponse(OK, new m.Nfsv3AccessResOk(core.postOp(t.attr, t.exp.id), granted));
};
