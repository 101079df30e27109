/** READLINK (RFC 1813 §3.3.5). Not a symlink: INVAL. The target is UTF-8 (see xdr.ts). */
import type * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status, type Attr } from '../../store/types';
import { RawReply, type Handler } from './reply';

export const readlink: Handler = async (core, ctx, req: m.Nfsv3ReadlinkRequest) => {
  const t = await core.resolve(ctx, req.symlink);
  const id = t.exp.id;
  const fail = (status: number, attr: Attr | undefined) =>
    new RawReply(status, (enc) => {
      enc.u32(status);
      enc.postOpAttr(attr, id);
    });
  if (t.attr.type !== FileType.LNK) return fail(Nfs3Status.INVAL, t.attr);
  const r = await core.store.readlink(t.fileId);
  const attr = r.attr ?? t.attr;
  if (r.status !== Nfs3Status.OK || r.target === undefined) return fail(r.status || Nfs3Status.IO, attr);
  const target = r.target;
  return new RawReply(Nfs3Status.OK, (enc) => {
    enc.u32(Nfs3Status.OK);
    enc.postOpAttr(attr, id);
    enc.utf8String(target);
  });
};
