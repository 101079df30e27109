import { FileType, Nfs3Status as S, type OpResult, type StoreOp, type Wcc } from '../types';
import { type OpEnv, OpError, dirOf, checkEntryName, touchDir, touchCtime } from './common';
import { type Tx } from '../tx';
import { toAttr, wccAttr } from '../attrs';
import { W, X, mayAccess } from '../permissions';

/** LINK: another name for a non-directory. */
export async function execLink(env: OpEnv, tx: Tx, _index: number, op: Extract<StoreOp, { kind: 'link' }>): Promise<OpResult> {
  const { time, cred } = op;
  const file = await tx.inode(op.file);
  if (!file) throw new OpError(S.STALE);
  const dir = await dirOf(tx, op.dir);
  const before = wccAttr(dir);
  const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
  try {
    if (file.type === FileType.DIR) throw new OpError(S.ISDIR);
    checkEntryName(op.name);
    if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
    if (await tx.entry(dir.fileid, op.name)) throw new OpError(S.EXIST);
    if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
    if (file.nlink + 1 > env.opts.maxLinks) throw new OpError(S.MLINK);
    const fe = tx.edit(file);
    fe.nlink++;
    touchCtime(fe, time);
    const d = tx.edit(dir);
    tx.addEntry(d, op.name, file.fileid);
    touchDir(d, time);
    const w: Wcc = { before, after: toAttr(d) };
    return { status: S.OK, obj: toAttr(fe), wcc: w, wcc2: w };
  } catch (err) {
    if (err instanceof OpError) throw new OpError(err.status, failWcc(), failWcc());
    throw err;
  }
}
