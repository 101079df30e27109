/**
 * MKNOD (RFC 1813 §3.3.11): character and block devices (with major/minor), sockets and FIFOs.
 * Regular files, directories and symlinks have their own calls: BADTYPE. A type outside ftype3:
 * GARBAGE_ARGS.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { FileType, Nfs3Status, type StoreOp } from '../../store/types';
import { GarbageArgs, Nfs3Error, toSetAttrs, OK } from './core';
import { makeEntry } from './make-entry';
import type { Handler } from './reply';

export const mknod: Handler = async (core, ctx, req: m.Nfsv3MknodRequest) => {
  const what = req.what;
  const type = what.type as number;
  if (!(type >= FileType.REG && type <= FileType.FIFO)) throw new GarbageArgs();
  return makeEntry(
    core,
    ctx,
    req.where,
    (dir, name, base): StoreOp => {
      switch (what.type as number) {
        case FileType.CHR:
        case FileType.BLK: {
          const dev = (what.type as number) === FileType.CHR ? what.chr : what.blk;
          if (!dev) throw new GarbageArgs();
          return {
            kind: 'mknod', ...base, dir, name, type: what.type as number as FileType.CHR, attrs: toSetAttrs(dev.devAttributes),
            rdev: [dev.spec.specdata1, dev.spec.specdata2],
          };
        }
        case FileType.SOCK:
        case FileType.FIFO: {
          const sattr = (what.type as number) === FileType.SOCK ? what.sock : what.pipe;
          if (!sattr) throw new GarbageArgs();
          return { kind: 'mknod', ...base, dir, name, type: what.type as number as FileType.CHR, attrs: toSetAttrs(sattr) };
        }
        default:
          throw new Nfs3Error(Nfs3Status.BADTYPE);
      }
    },
    (obj, attrs, wcc) => new m.Nfsv3MknodResponse(OK, new m.Nfsv3MknodResOk(obj, attrs, wcc)),
    (status, wcc) => new m.Nfsv3MknodResponse(status, undefined, new m.Nfsv3MknodResFail(wcc)),
  );
};
