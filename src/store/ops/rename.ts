import { FileType, Nfs3Status as S, type OpResult, type StoreOp } from '../types';
import { type OpEnv, OpError, StoreCorruptError, dirOf, touchDir, touchCtime, dropLink, MAX_DIR_DEPTH } from './common';
import { type Tx } from '../tx';
import { toAttr, wccAttr } from '../attrs';
import { checkName } from '../op-validation';
import { W, X, mayAccess, stickyAllows } from '../permissions';
import { type Inode } from '../codec';
import { ROOT_ID } from '../store-core';

/** RENAME: POSIX cases (over an existing target, onto another link of the same file, directories across parents). */
export async function execRename(env: OpEnv, tx: Tx, _index: number, op: Extract<StoreOp, { kind: 'rename' }>): Promise<OpResult> {
  const { time, cred } = op;
  const from = await dirOf(tx, op.fromDir);
  const to = await dirOf(tx, op.toDir);
  const fromBefore = wccAttr(from);
  const toBefore = wccAttr(to);
  const fail = (s: S) => new OpError(s, { before: fromBefore, after: toAttr(from) }, { before: toBefore, after: toAttr(to) });
  const okResult = (): OpResult => {
    const f = (tx.changed.get(from.fileid) as Inode | undefined) ?? from;
    const t = (tx.changed.get(to.fileid) as Inode | undefined) ?? to;
    return { status: S.OK, wcc: { before: fromBefore, after: toAttr(f) }, wcc2: { before: toBefore, after: toAttr(t) } };
  };
  const s1 = checkName(op.fromName);
  if (s1 !== S.OK) throw fail(s1);
  const s2 = checkName(op.toName);
  if (s2 !== S.OK) throw fail(s2);
  if (!mayAccess(from, cred, X) || !mayAccess(to, cred, X)) throw fail(S.ACCES);
  const src = await tx.entry(from.fileid, op.fromName);
  if (!src) throw fail(S.NOENT);
  const sino = await tx.inode(src.fileid);
  if (!sino) throw new StoreCorruptError(`entry ${JSON.stringify(op.fromName)} of directory ${from.fileid} names missing inode ${src.fileid}`);
  if (!mayAccess(from, cred, W | X) || !mayAccess(to, cred, W | X)) throw fail(S.ACCES);
  if (from.fileid === to.fileid && op.fromName === op.toName) return okResult();
  const dst = await tx.entry(to.fileid, op.toName);
  const dino = dst ? await tx.inode(dst.fileid) : undefined;
  if (dst && !dino) throw new StoreCorruptError(`entry ${JSON.stringify(op.toName)} of directory ${to.fileid} names missing inode ${dst.fileid}`);
  // rename onto another link of the same file: POSIX says do nothing
  if (dst && dst.fileid === src.fileid) return okResult();
  const isDir = sino.type === FileType.DIR;
  if (dino) {
    if (isDir && dino.type !== FileType.DIR) throw fail(S.NOTDIR);
    if (!isDir && dino.type === FileType.DIR) throw fail(S.ISDIR);
    if (dino.type === FileType.DIR && dino.entries > 0) throw fail(S.NOTEMPTY);
  }
  if (!stickyAllows(from, sino, cred)) throw fail(S.PERM);
  if (dino && !stickyAllows(to, dino, cred)) throw fail(S.PERM);
  const moveDir = isDir && from.fileid !== to.fileid;
  if (moveDir) {
    // not into its own subtree
    let cur = to;
    for (let depth = 0; ; depth++) {
      if (cur.fileid === sino.fileid) throw fail(S.INVAL);
      if (cur.fileid === ROOT_ID) break;
      if (depth > MAX_DIR_DEPTH) throw fail(S.IO);
      const up = await tx.inode(cur.parent);
      if (!up) throw new StoreCorruptError(`directory ${cur.fileid} names missing parent ${cur.parent}`);
      cur = up;
    }
    // ".." of the moved directory changes: needs write permission on it (Linux does the same)
    if (!mayAccess(sino, cred, W)) throw fail(S.ACCES);
    if (!dino && to.nlink + 1 > env.opts.maxLinks) throw fail(S.MLINK);
  }
  const f = tx.edit(from);
  const t = tx.edit(to);
  tx.removeEntry(f, op.fromName, src.cookie);
  if (dst && dino) {
    tx.removeEntry(t, op.toName, dst.cookie);
    if (dino.type === FileType.DIR) {
      t.nlink--;
      tx.delete(dino);
    } else {
      dropLink(tx, dino, time);
    }
  }
  tx.addEntry(t, op.toName, sino.fileid);
  const s = tx.edit(sino);
  touchCtime(s, time);
  if (moveDir) {
    f.nlink--;
    t.nlink++;
    s.parent = t.fileid;
  }
  touchDir(f, time);
  touchDir(t, time);
  return okResult();
}
