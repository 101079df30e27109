/** Shape checks of ops and names: bad input becomes an NFS status (INVAL, NAMETOOLONG), never an exception. */
import { Nfs3Status as S, type StoreOp, type Time } from './types';

export const MAX_NAME_BYTES = 255;
export const MAX_SYMLINK_BYTES = 4096;

export const isU32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
export const validTime = (t: Time | undefined): boolean =>
  !!t && isU32(t.sec) && isU32(t.nsec) && t.nsec < 1_000_000_000;

export const isId = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n);
export const isObj = (o: unknown): boolean => typeof o === 'object' && o !== null;

/** Shape check of an op (bad input is an INVAL result, never an exception inside apply). */
export function wellFormed(op: StoreOp): boolean {
  if (!isObj(op) || !validTime(op.time) || !isObj(op.cred)) return false;
  const { cred } = op;
  if (!isU32(cred.uid) || !isU32(cred.gid) || !Array.isArray(cred.gids) || cred.gids.length > 64 || !cred.gids.every(isU32)) return false;
  switch (op.kind) {
    case 'setattr':
      return isId(op.file) && isObj(op.attrs) && (op.guardCtime === undefined || validTime(op.guardCtime));
    case 'create':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && ['unchecked', 'guarded', 'exclusive'].includes(op.mode);
    case 'mkdir':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs);
    case 'symlink':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && typeof op.target === 'string';
    case 'mknod':
      return isId(op.dir) && typeof op.name === 'string' && isObj(op.attrs) && (op.rdev === undefined || Array.isArray(op.rdev));
    case 'remove':
    case 'rmdir':
      return isId(op.dir) && typeof op.name === 'string';
    case 'rename':
      return isId(op.fromDir) && isId(op.toDir) && typeof op.fromName === 'string' && typeof op.toName === 'string';
    case 'link':
      return isId(op.file) && isId(op.dir) && typeof op.name === 'string';
    case 'write':
      return isId(op.file) && op.data instanceof Uint8Array && [0, 1, 2].includes(op.stable);
    default:
      return false;
  }
}

/** RFC 1813 name rules: NAMETOOLONG above 255 bytes; INVAL for "", ".", "..", "/" or NUL. */
export function checkName(name: string): S {
  if (typeof name !== 'string' || name.length === 0) return S.INVAL;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return S.NAMETOOLONG;
  if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return S.INVAL;
  return S.OK;
}

/** An EXCLUSIVE create verifier as stored: 16 lower-case hex digits, or '' when malformed. */
export function normVerifier(v: string | undefined): string {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{16}$/.test(v)) return '';
  return v.toLowerCase();
}
