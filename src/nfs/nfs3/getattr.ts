/** GETATTR (RFC 1813 §3.3.1): attributes of the object. No permission needed. */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { OK } from './core';
import type { Handler } from './reply';

export const getattr: Handler = async (core, ctx, req: m.Nfsv3GetattrRequest) => {
  const t = await core.resolve(ctx, req.object);
  return new m.Nfsv3GetattrResponse(OK, new m.Nfsv3GetattrResOk(core.fattr(t.attr, t.exp.id)));
};
