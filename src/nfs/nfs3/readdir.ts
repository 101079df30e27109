/** READDIR (RFC 1813 §3.3.16). See readdir-common.ts. */
import type * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { readdirCommon } from './readdir-common';
import type { Handler } from './reply';

export const readdir: Handler = async (core, ctx, req: m.Nfsv3ReaddirRequest) =>
  readdirCommon(core, ctx, req.dir, req.cookie, req.cookieverf, req.count, false);
