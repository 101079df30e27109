/** MKDIR (RFC 1813 §3.3.9). */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { toSetAttrs, OK } from './core';
import { makeEntry } from './make-entry';
import type { Handler } from './reply';

export const mkdir: Handler = async (core, ctx, req: m.Nfsv3MkdirRequest) =>
  makeEntry(
    core,
    ctx,
    req.where,
    (dir, name, base) => ({ kind: 'mkdir', ...base, dir, name, attrs: toSetAttrs(req.attributes) }),
    (obj, attrs, wcc) => new m.Nfsv3MkdirResponse(OK, new m.Nfsv3MkdirResOk(obj, attrs, wcc)),
    (status, wcc) => new m.Nfsv3MkdirResponse(status, undefined, new m.Nfsv3MkdirResFail(wcc)),
  );
