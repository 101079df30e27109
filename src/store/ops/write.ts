import { FileType, Nfs3Status as S, type OpResult, type StoreOp, type Wcc } from '../types';
import { type OpEnv, OpError, killPrivs, EMPTY } from './common';
import { type Tx } from '../tx';
import { toAttr, usedOf, wccAttr } from '../attrs';
import { mayWriteData } from '../permissions';
import { BLOCK } from '../data-files';

/** WRITE: inline bytes (small files, in the batch) or the data file; a file outgrowing inline moves to a data file for good. */
export async function execWrite(env: OpEnv, tx: Tx, _index: number, op: Extract<StoreOp, { kind: 'write' }>): Promise<OpResult> {
  const { time, cred } = op;
  const ino = await tx.inode(op.file);
  if (!ino) throw new OpError(S.STALE);
  const wcc: Wcc = { before: wccAttr(ino), after: toAttr(ino) };
  if (ino.type === FileType.DIR) throw new OpError(S.ISDIR, wcc);
  if (ino.type !== FileType.REG) throw new OpError(S.INVAL, wcc);
  if (!(op.data instanceof Uint8Array) || !Number.isSafeInteger(op.offset) || op.offset < 0) throw new OpError(S.INVAL, wcc);
  if (!mayWriteData(ino, cred)) throw new OpError(S.ACCES, wcc);
  const len = op.data.length;
  const end = op.offset + len;
  if (end > env.opts.maxFileSize) throw new OpError(S.FBIG, wcc);
  const newSize = Math.max(ino.size, end);
  const oldUsed = usedOf(ino);
  const newUsed = Math.ceil(newSize / BLOCK) * BLOCK;
  if (newUsed > oldUsed && tx.st.usedBytes - oldUsed + newUsed > env.opts.capacityBytes) throw new OpError(S.NOSPC, wcc);
  if (len === 0) return { status: S.OK, count: 0, obj: toAttr(ino), wcc };
  const e = tx.edit(ino);
  if (ino.inline && end <= env.opts.inlineMax) {
    // small file: the bytes live in LevelDB, in this op's batch (no data file at all); an empty
    // file has none to read (inline bytes never reach past the size)
    const cur = ino.size === 0 ? EMPTY : tx.inlineData(ino.fileid);
    const next = Buffer.alloc(Math.max(cur.length, end));
    cur.copy(next);
    next.set(op.data, op.offset);
    tx.setInline(ino.fileid, next);
    env.stats.inlineWrites++;
  } else {
    if (ino.inline) {
      // outgrows inline: its bytes move to a data file, for good
      const cur = tx.inlineData(ino.fileid);
      e.inline = false;
      tx.setInline(ino.fileid, null);
      // (journaled only with the write itself: replay must not put them back over an unjournaled one)
      const withJournal = len <= env.opts.journalMaxWrite;
      if (cur.length > 0) await env.writeDataFile(tx, ino.fileid, 0, cur, 0, wcc, withJournal);
      await env.writeDataFile(tx, ino.fileid, op.offset, op.data, 0, wcc);
      // logWal: the moved bytes are in no log entry (only in the inline record this batch
      // deletes, and LevelDB may persist the batch any time): durable before the batch is queued
      if (env.logWal && cur.length > 0) await env.data.syncFile(ino.fileid);
    } else {
      await env.settleTruncate(ino.fileid);
      await env.writeDataFile(tx, ino.fileid, op.offset, op.data, ino.size, wcc);
    }
  }
  tx.st.usedBytes += newUsed - oldUsed;
  e.size = newSize;
  e.mtimeS = e.ctimeS = time.sec;
  e.mtimeN = e.ctimeN = time.nsec;
  if (cred.uid !== 0) killPrivs(e);
  return { status: S.OK, count: len, obj: toAttr(e), wcc: { before: wccAttr(ino), after: toAttr(e) } };
}
