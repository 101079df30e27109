/**
 * LOOKUP (RFC 1813 §3.3.3). Needs search permission on the directory. "." is the directory itself;
 * ".." is its parent (the export root is its own parent). A name that cannot exist (empty, with '/'
 * or NUL) is NOENT.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status, type Attr } from '../../store/types';
import { checkName, OK } from './core';
import { mayLookup } from './permissions';
import type { Handler } from './reply';

export const lookup: Handler = async (core, ctx, req: m.Nfsv3LookupRequest) => {
  const d = await core.resolve(ctx, req.what.dir);
  const id = d.exp.id;
  const fail = (status: number, dirAttr: Attr | undefined = d.attr) =>
    new m.Nfsv3LookupResponse(status as number, undefined, new m.Nfsv3LookupResFail(core.postOp(dirAttr, id)));
  if (d.attr.type !== FileType.DIR) return fail(Nfs3Status.NOTDIR);
  const name = req.what.name;
  const ns = checkName(name);
  if (ns === Nfs3Status.NAMETOOLONG) return fail(ns);
  if (!mayLookup(d.attr, d.cred)) return fail(Nfs3Status.ACCES);
  if (ns !== Nfs3Status.OK) return fail(Nfs3Status.NOENT);
  let obj: Attr | undefined;
  let dirAttr: Attr | undefined = d.attr;
  if (name === '.' || (name === '..' && d.fileId === core.store.rootFileId)) {
    obj = d.attr;
  } else {
    const r = await core.store.lookup(d.fileId, name);
    if (r.dirAttr) dirAttr = r.dirAttr;
    if (r.status !== Nfs3Status.OK || !r.obj) return fail(r.status === Nfs3Status.OK ? Nfs3Status.NOENT : r.status, dirAttr);
    obj = r.obj;
  }
  return new m.Nfsv3LookupResponse(
    OK,
    new m.Nfsv3LookupResOk(core.fhOf(id, obj), core.postOp(obj, id), core.postOp(dirAttr, id)),
  );
};
