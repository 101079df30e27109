/** RMDIR (RFC 1813 §3.3.13): an empty directory (NOTEMPTY, NOTDIR from the store). */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { Nfs3Status } from '../../store/types';
import { removeEntry } from './remove-entry';
import type { Handler } from './reply';

export const rmdir: Handler = async (core, ctx, req: m.Nfsv3RmdirRequest) =>
  removeEntry(core, ctx, req.object, 'rmdir', (status, wcc) =>
    status === Nfs3Status.OK
      ? new m.Nfsv3RmdirResponse(status as number, new m.Nfsv3RmdirResOk(wcc))
      : new m.Nfsv3RmdirResponse(status as number, undefined, new m.Nfsv3RmdirResFail(wcc)),
  );
