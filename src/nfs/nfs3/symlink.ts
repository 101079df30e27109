/** SYMLINK (RFC 1813 §3.3.10). The target is UTF-8 of at most PATH_MAX bytes (else NAMETOOLONG). */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { Nfs3Status } from '../../store/types';
import { Nfs3Error, PATH_MAX, toSetAttrs, OK } from './core';
import { makeEntry } from './make-entry';
import { utf8Bytes } from './xdr';
import type { Handler } from './reply';

export const symlink: Handler = async (core, ctx, req: m.Nfsv3SymlinkRequest) =>
  makeEntry(
    core,
    ctx,
    req.where,
    (dir, name, base) => {
      const target = req.symlinkData;
      if (utf8Bytes(target) > PATH_MAX) throw new Nfs3Error(Nfs3Status.NAMETOOLONG);
      if (target.length === 0 || target.includes('\0')) throw new Nfs3Error(Nfs3Status.INVAL);
      return { kind: 'symlink', ...base, dir, name, attrs: toSetAttrs(req.symlinkAttributes), target };
    },
    (obj, attrs, wcc) => new m.Nfsv3SymlinkResponse(OK, new m.Nfsv3SymlinkResOk(obj, attrs, wcc)),
    (status, wcc) => new m.Nfsv3SymlinkResponse(status, undefined, new m.Nfsv3SymlinkResFail(wcc)),
  );
