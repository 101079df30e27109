/** REMOVE (RFC 1813 §3.3.12): a non-directory entry (the store answers ISDIR for a directory). */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { Nfs3Status } from '../../store/types';
import { removeEntry } from './remove-entry';
import type { Handler } from './reply';

export const remove: Handler = async (core, ctx, req: m.Nfsv3RemoveRequest) =>
  removeEntry(core, ctx, req.object, 'remove', (status, wcc) =>
    status === Nfs3Status.OK
      ? new m.Nfsv3RemoveResponse(status as number, new m.Nfsv3RemoveResOk(wcc))
      : new m.Nfsv3RemoveResponse(status as number, undefined, new m.Nfsv3RemoveResFail(wcc)),
  );
