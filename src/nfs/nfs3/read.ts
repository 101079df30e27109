/**
 * READ (RFC 1813 §3.3.6). count is clipped to rtmax (1 MiB). Permission: read, or execute, or
 * ownership (knfsd's owner override; see permissions.ts). eof is true when the reply reaches the end
 * of the file.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status, type Attr } from '../../store/types';
import { RW_MAX, u64, OK } from './core';
import { mayRead } from './permissions';
import type { Handler } from './reply';

const EMPTY = new Uint8Array(0);

export const read: Handler = async (core, ctx, req: m.Nfsv3ReadRequest) => {
  const t = await core.resolve(ctx, req.file);
  const id = t.exp.id;
  const fail = (status: number, attr: Attr | undefined = t.attr) =>
    new m.Nfsv3ReadResponse(status, undefined, new m.Nfsv3ReadResFail(core.postOp(attr, id)));
  if (t.attr.type === FileType.DIR) return fail(Nfs3Status.ISDIR);
  if (t.attr.type !== FileType.REG) return fail(Nfs3Status.INVAL);
  if (!mayRead(t.attr, t.cred)) return fail(Nfs3Status.ACCES);
  const count = Math.min(req.count, RW_MAX);
  const offset = u64(req.offset);
  // nothing to read: an offset no file reaches, an empty request, or at/after the end (as of the
  // attributes just read)
  if (offset === undefined || count === 0 || offset >= t.attr.size) {
    const eof = offset === undefined || offset >= t.attr.size;
    return new m.Nfsv3ReadResponse(OK, new m.Nfsv3ReadResOk(core.postOp(t.attr, id), 0, eof, EMPTY));
  }
  const r = await core.store.read(t.fileId, offset, count);
  const attr = r.attr ?? t.attr;
  if (r.status !== Nfs3Status.OK) return fail(r.status, attr);
  const data = r.data ?? EMPTY;
  const eof = r.eof ?? offset + data.length >= attr.size;
  core.deps.onBytes?.('read', data.length);
  return new m.Nfsv3ReadResponse(OK, new m.Nfsv3ReadResOk(core.postOp(attr, id), data.length, eof, data));
};
