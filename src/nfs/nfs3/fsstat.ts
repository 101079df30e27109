/** FSSTAT (RFC 1813 §3.3.18): the store's space and file counts. invarsec 0: values change any time. */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { OK } from './core';
import type { Handler } from './reply';

export const fsstat: Handler = async (core, ctx, req: m.Nfsv3FsstatRequest) => {
  const t = await core.resolve(ctx, req.fsroot);
  const s = await core.store.fsstat();
  return new m.Nfsv3FsstatResponse(
    OK,
    new m.Nfsv3FsstatResOk(
      core.postOp(t.attr, t.exp.id),
      BigInt(s.tbytes), BigInt(s.fbytes), BigInt(s.abytes),
      BigInt(s.tfiles), BigInt(s.ffiles), BigInt(s.afiles),
      0,
    ),
  );
};
