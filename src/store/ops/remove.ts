import { FileType, Nfs3Status as S, type OpResult, type StoreOp, type Wcc } from '../types';
import { type OpEnv, OpError, StoreCorruptError, dirOf, checkEntryName, touchDir, dropLink } from './common';
import { type Tx } from '../tx';
import { toAttr, wccAttr } from '../attrs';
import { W, X, mayAccess, stickyAllows } from '../permissions';

/** REMOVE and RMDIR: the entry goes, the object with its last link (its data file once the batch is written). */
export async function execRemove(env: OpEnv, tx: Tx, _index: number, op: Extract<StoreOp, { kind: 'remove' | 'rmdir' }>): Promise<OpResult> {
  const { time, cred } = op;
  const dir = await dirOf(tx, op.dir);
  const before = wccAttr(dir);
  const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
  try {
    if (op.kind === 'rmdir' && (op.name === '.' || op.name === '..')) throw new OpError(S.INVAL);
    checkEntryName(op.name);
    if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
    const ent = await tx.entry(dir.fileid, op.name);
    if (!ent) throw new OpError(S.NOENT);
    const ino = await tx.inode(ent.fileid);
    if (!ino) throw new StoreCorruptError(`entry ${JSON.stringify(op.name)} of directory ${dir.fileid} names missing inode ${ent.fileid}`);
    if (op.kind === 'remove' && ino.type === FileType.DIR) throw new OpError(S.ISDIR);
    if (op.kind === 'rmdir' && ino.type !== FileType.DIR) throw new OpError(S.NOTDIR);
    if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
    if (!stickyAllows(dir, ino, cred)) throw new OpError(S.PERM);
    if (ino.type === FileType.DIR && ino.entries > 0) throw new OpError(S.NOTEMPTY);
    const d = tx.edit(dir);
    tx.removeEntry(d, op.name, ent.cookie);
    if (ino.type === FileType.DIR) {
      d.nlink--;
      tx.delete(ino);
    } else {
      dropLink(tx, ino, time);
    }
    touchDir(d, time);
    return { status: S.OK, wcc: { before, after: toAttr(d) } };
  } catch (err) {
    if (err instanceof OpError && !err.wcc) throw new OpError(err.status, failWcc());
    throw err;
  }
}
