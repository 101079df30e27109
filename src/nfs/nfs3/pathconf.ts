/** PATHCONF (RFC 1813 §3.3.20): what the store enforces. */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { NAME_MAX, OK } from './core';
import type { Handler } from './reply';

/** the store's default maxLinks */
export const DEFAULT_LINK_MAX = 65000;

export const pathconf: Handler = async (core, ctx, req: m.Nfsv3PathconfRequest) => {
  const t = await core.resolve(ctx, req.object);
  const linkMax = core.deps.storeLimits?.maxLinks ?? DEFAULT_LINK_MAX;
  return new m.Nfsv3PathconfResponse(
    OK,
    // no_trunc, chown_restricted, case_insensitive, case_preserving
    new m.Nfsv3PathconfResOk(core.postOp(t.attr, t.exp.id), linkMax, NAME_MAX, true, true, false, true),
  );
};
