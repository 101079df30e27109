/** READDIRPLUS (RFC 1813 §3.3.17): entries with attributes and handles. See readdir-common.ts. */
import type * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { readdirCommon } from './readdir-common';
import type { Handler } from './reply';

export const readdirplus: Handler = async (core, ctx, req: m.Nfsv3ReaddirplusRequest) =>
  readdirCommon(core, ctx, req.dir, req.cookie, req.cookieverf, req.maxcount, true);
