import { Nfs3Status as S, type OpResult, type StoreOp, type Wcc } from '../types';
import { type OpEnv, OpError, checkSetAttrs, applySetAttrs } from './common';
import { type Tx } from '../tx';
import { toAttr, wccAttr } from '../attrs';

/** SETATTR: attributes, a size change (with its data side), guarded by ctime. */
export async function execSetattr(env: OpEnv, tx: Tx, _index: number, op: Extract<StoreOp, { kind: 'setattr' }>): Promise<OpResult> {
  const { time, cred } = op;
  const ino = await tx.inode(op.file);
  if (!ino) throw new OpError(S.STALE);
  const wcc: Wcc = { before: wccAttr(ino), after: toAttr(ino) };
  if (op.guardCtime && (op.guardCtime.sec !== ino.ctimeS || op.guardCtime.nsec !== ino.ctimeN)) {
    throw new OpError(S.NOT_SYNC, wcc);
  }
  try {
    checkSetAttrs(env.opts, ino, op.attrs, cred);
    const e = tx.edit(ino);
    applySetAttrs(env.opts, tx, e, op.attrs, cred, time);
    if (op.attrs.size !== undefined) await env.resize(tx, ino, op.attrs.size);
    return { status: S.OK, obj: toAttr(e), wcc: { before: wccAttr(ino), after: toAttr(e) } };
  } catch (err) {
    if (err instanceof OpError) throw new OpError(err.status, wcc);
    throw err;
  }
}
