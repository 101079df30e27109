import { FileType, Nfs3Status as S, type OpResult, type SetAttrs, type StoreOp, type Wcc } from '../types';
import { type OpEnv, OpError, StoreCorruptError, dirOf, checkEntryName, newInode, touchDir, checkSetAttrs, applySetAttrs, normVerifier } from './common';
import { type Tx } from '../tx';
import { toAttr, wccAttr } from '../attrs';
import { isU32, MAX_SYMLINK_BYTES } from '../op-validation';
import { S_ISGID, W, X, inGroup, mayAccess } from '../permissions';
import { BLOCK } from '../data-files';

/** CREATE (unchecked, guarded, exclusive), MKDIR, SYMLINK, MKNOD: a new object and its directory entry. */
export async function execCreate(env: OpEnv, tx: Tx, index: number, op: Extract<StoreOp, { kind: 'create' | 'mkdir' | 'symlink' | 'mknod' }>): Promise<OpResult> {
  const { time, cred } = op;
  const dir = await dirOf(tx, op.dir);
  const before = wccAttr(dir);
  const failWcc = (): Wcc => ({ before, after: toAttr(dir) });
  try {
    checkEntryName(op.name);
    if (!mayAccess(dir, cred, X)) throw new OpError(S.ACCES);
    const existing = await tx.entry(dir.fileid, op.name);
    if (existing) {
      if (op.kind !== 'create' || op.mode === 'guarded') throw new OpError(S.EXIST);
      const obj = await tx.inode(existing.fileid);
      if (!obj) throw new StoreCorruptError(`entry ${JSON.stringify(op.name)} of directory ${dir.fileid} names missing inode ${existing.fileid}`);
      if (op.mode === 'exclusive') {
        if (obj.type === FileType.REG && obj.verifier !== '' && obj.verifier === normVerifier(op.verifier)) {
          return { status: S.OK, obj: toAttr(obj), wcc: { before, after: toAttr(dir) } };
        }
        throw new OpError(S.EXIST);
      }
      // UNCHECKED on an existing regular file: open it, truncating when a size is given
      if (obj.type !== FileType.REG) throw new OpError(S.EXIST);
      if (op.attrs.size === undefined) return { status: S.OK, obj: toAttr(obj), wcc: { before, after: toAttr(dir) } };
      const sattr: SetAttrs = { size: op.attrs.size };
      checkSetAttrs(env.opts, obj, sattr, cred);
      const e = tx.edit(obj);
      applySetAttrs(env.opts, tx, e, sattr, cred, time);
      await env.resize(tx, obj, op.attrs.size);
      return { status: S.OK, obj: toAttr(e), wcc: { before, after: toAttr(dir) } };
    }
    if (!mayAccess(dir, cred, W | X)) throw new OpError(S.ACCES);
    let type: FileType;
    let defMode: number;
    let attrs: SetAttrs = op.attrs ?? {};
    switch (op.kind) {
      case 'create':
        type = FileType.REG;
        defMode = 0o644;
        if (op.mode === 'exclusive') {
          if (normVerifier(op.verifier) === '') throw new OpError(S.INVAL);
          attrs = {}; // RFC 1813: EXCLUSIVE carries no attributes (the client SETATTRs next)
        }
        break;
      case 'mkdir':
        type = FileType.DIR;
        defMode = 0o755;
        attrs = { ...attrs, size: undefined };
        if (dir.nlink + 1 > env.opts.maxLinks) throw new OpError(S.MLINK);
        break;
      case 'symlink': {
        type = FileType.LNK;
        defMode = 0o777;
        if (typeof op.target !== 'string' || op.target.length === 0 || op.target.includes('\0')) throw new OpError(S.INVAL);
        if (Buffer.byteLength(op.target, 'utf8') > MAX_SYMLINK_BYTES) throw new OpError(S.NAMETOOLONG);
        attrs = { ...attrs, mode: undefined, size: undefined };
        break;
      }
      case 'mknod':
        type = op.type;
        defMode = 0o644;
        if (![FileType.CHR, FileType.BLK, FileType.SOCK, FileType.FIFO].includes(type)) throw new OpError(S.BADTYPE);
        if ((type === FileType.CHR || type === FileType.BLK) && cred.uid !== 0) throw new OpError(S.PERM);
        attrs = { ...attrs, size: undefined };
        break;
    }
    const ino = newInode(env.opts, tx, index, type, dir, cred, time);
    ino.mode = defMode;
    const { mode, ...rest } = attrs;
    checkSetAttrs(env.opts, ino, rest, cred);
    if (mode !== undefined) {
      if (!isU32(mode)) throw new OpError(S.INVAL);
      ino.mode = mode & 0o7777;
      if (cred.uid !== 0 && (ino.mode & S_ISGID) && !inGroup(cred, ino.gid) && type !== FileType.DIR) ino.mode &= ~S_ISGID;
    }
    if (type === FileType.DIR && (dir.mode & S_ISGID)) ino.mode |= S_ISGID;
    if (rest.uid !== undefined) ino.uid = rest.uid;
    if (rest.gid !== undefined) ino.gid = rest.gid;
    if (rest.size !== undefined && rest.size > 0) {
      const used = Math.ceil(rest.size / BLOCK) * BLOCK;
      if (tx.st.usedBytes + used > env.opts.capacityBytes) throw new OpError(S.NOSPC);
      tx.st.usedBytes += used;
      ino.size = rest.size;
    }
    const at = rest.atime === 'server' ? time : rest.atime;
    if (at) [ino.atimeS, ino.atimeN] = [at.sec, at.nsec];
    const mt = rest.mtime === 'server' ? time : rest.mtime;
    if (mt) [ino.mtimeS, ino.mtimeN] = [mt.sec, mt.nsec];
    if (op.kind === 'create' && op.mode === 'exclusive') ino.verifier = normVerifier(op.verifier);
    if (op.kind === 'symlink') {
      ino.target = op.target;
      ino.size = Buffer.byteLength(op.target, 'utf8');
    }
    if (op.kind === 'mknod' && (type === FileType.CHR || type === FileType.BLK)) {
      const rd = op.rdev ?? [0, 0];
      if (!isU32(rd[0]) || !isU32(rd[1])) throw new OpError(S.INVAL);
      [ino.rdev0, ino.rdev1] = rd;
    }
    // an id that is not a regular file must not keep a data file created ahead of use
    if (type !== FileType.REG) await env.data.discardPreallocated(ino.fileid);
    tx.create(ino);
    const d = tx.edit(dir);
    tx.addEntry(d, op.name, ino.fileid);
    if (type === FileType.DIR) d.nlink++;
    touchDir(d, time);
    return { status: S.OK, obj: toAttr(ino), wcc: { before, after: toAttr(d) } };
  } catch (err) {
    if (err instanceof OpError && !err.wcc) throw new OpError(err.status, failWcc());
    throw err;
  }
}
