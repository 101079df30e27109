/**
 * FSINFO (RFC 1813 §3.3.19): 1 MiB reads and writes (max and preferred), 4 KiB multiples, 64 KiB
 * READDIR, the store's largest file, 1 ns time resolution, hard links, symlinks, homogeneous
 * PATHCONF, settable times.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { RW_MAX, OK } from './core';
import type { Handler } from './reply';

export const FSF3_LINK = 0x1;
export const FSF3_SYMLINK = 0x2;
export const FSF3_HOMOGENEOUS = 0x8;
export const FSF3_CANSETTIME = 0x10;
export const DTPREF = 64 * 1024;
/** the store's default maxFileSize */
export const DEFAULT_MAX_FILE_SIZE = 2 ** 43;

export const fsinfo: Handler = async (core, ctx, req: m.Nfsv3FsinfoRequest) => {
  const t = await core.resolve(ctx, req.fsroot);
  const maxFile = core.deps.storeLimits?.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
  return new m.Nfsv3FsinfoResponse(
    OK,
    new m.Nfsv3FsinfoResOk(
      core.postOp(t.attr, t.exp.id),
      RW_MAX, RW_MAX, 4096,
      RW_MAX, RW_MAX, 4096,
      DTPREF,
      BigInt(maxFile),
      { seconds: 0, nseconds: 1 },
      FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
    ),
  );
};
