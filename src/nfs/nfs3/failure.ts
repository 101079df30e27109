/**
 * The failure result of each procedure with no attributes to report: used when a call fails before
 * anything was known about its objects (bad or stale handle, client not allowed, unexpected error).
 * Every resfail arm of RFC 1813 is here with its post_op_attr / wcc_data empty.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { EMPTY_WCC, NO_ATTR } from './core';
import type { LibReply } from './reply';

export function failureReply(proc: number, status: number): LibReply {
  switch (proc) {
    case 1:
      return new m.Nfsv3GetattrResponse(status);
    case 2:
      return new m.Nfsv3SetattrResponse(status, undefined, new m.Nfsv3SetattrResFail(EMPTY_WCC));
    case 3:
      return new m.Nfsv3LookupResponse(status, undefined, new m.Nfsv3LookupResFail(NO_ATTR));
    case 4:
      return new m.Nfsv3AccessResponse(status, undefined, new m.Nfsv3AccessResFail(NO_ATTR));
    case 5:
      return new m.Nfsv3ReadlinkResponse(status, undefined, new m.Nfsv3ReadlinkResFail(NO_ATTR));
    case 6:
      return new m.Nfsv3ReadResponse(status, undefined, new m.Nfsv3ReadResFail(NO_ATTR));
    case 7:
      return new m.Nfsv3WriteResponse(status, undefined, new m.Nfsv3WriteResFail(EMPTY_WCC));
    case 8:
      return new m.Nfsv3CreateResponse(status, undefined, new m.Nfsv3CreateResFail(EMPTY_WCC));
    case 9:
      return new m.Nfsv3MkdirResponse(status, undefined, new m.Nfsv3MkdirResFail(EMPTY_WCC));
    case 10:
      return new m.Nfsv3SymlinkResponse(status, undefined, new m.Nfsv3SymlinkResFail(EMPTY_WCC));
    case 11:
      return new m.Nfsv3MknodResponse(status, undefined, new m.Nfsv3MknodResFail(EMPTY_WCC));
    case 12:
      return new m.Nfsv3RemoveResponse(status, undefined, new m.Nfsv3RemoveResFail(EMPTY_WCC));
    case 13:
      return new m.Nfsv3RmdirResponse(status, undefined, new m.Nfsv3RmdirResFail(EMPTY_WCC));
    case 14:
      return new m.Nfsv3RenameResponse(status, undefined, new m.Nfsv3RenameResFail(EMPTY_WCC, EMPTY_WCC));
    case 15:
      return new m.Nfsv3LinkResponse(status, undefined, new m.Nfsv3LinkResFail(NO_ATTR, EMPTY_WCC));
    case 16:
      return new m.Nfsv3ReaddirResponse(status, undefined, new m.Nfsv3ReaddirResFail(NO_ATTR));
    case 17:
      return new m.Nfsv3ReaddirplusResponse(status, undefined, new m.Nfsv3ReaddirplusResFail(NO_ATTR));
    case 18:
      return new m.Nfsv3FsstatResponse(status, undefined, new m.Nfsv3FsstatResFail(NO_ATTR));
    case 19:
      return new m.Nfsv3FsinfoResponse(status, undefined, new m.Nfsv3FsinfoResFail(NO_ATTR));
    case 20:
      return new m.Nfsv3PathconfResponse(status, undefined, new m.Nfsv3PathconfResFail(NO_ATTR));
    case 21:
      return new m.Nfsv3CommitResponse(status, undefined, new m.Nfsv3CommitResFail(EMPTY_WCC));
    default:
      throw new Error(`no NFSv3 procedure ${proc}`);
  }
}
