/**
 * CREATE (RFC 1813 §3.3.8). UNCHECKED / GUARDED carry sattr3; EXCLUSIVE carries an 8-byte verifier
 * the store keeps with the file, so a retransmitted EXCLUSIVE CREATE with the same verifier
 * succeeds again (and one with another verifier fails EXIST); the client then sends SETATTR.
 */
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { GarbageArgs, toSetAttrs, OK } from './core';
import { makeEntry } from './make-entry';
import type { Handler } from './reply';

const MODES = ['unchecked', 'guarded', 'exclusive'] as const;

export const create: Handler = async (core, ctx, req: m.Nfsv3CreateRequest) => {
  const how = req.how;
  const mode = MODES[how.mode];
  if (mode === undefined) throw new GarbageArgs();
  if (mode === 'exclusive' ? how.verf?.length !== 8 : !how.objAttributes) throw new GarbageArgs();
  return makeEntry(
    core,
    ctx,
    req.where,
    (dir, name, base) =>
      mode === 'exclusive'
        ? { kind: 'create', ...base, dir, name, mode, attrs: {}, verifier: Buffer.from(how.verf!).toString('hex') }
        : { kind: 'create', ...base, dir, name, mode, attrs: toSetAttrs(how.objAttributes!) },
    (obj, attrs, wcc) => new m.Nfsv3CreateResponse(OK, new m.Nfsv3CreateResOk(obj, attrs, wcc)),
    (status, wcc) => new m.Nfsv3CreateResponse(status, undefined, new m.Nfsv3CreateResFail(wcc)),
  );
};
