/** Op execution: one function per op kind, each in its own file. */
import { Nfs3Status as S, type OpResult, type StoreOp } from '../types';
import type { Tx } from '../tx';
import { OpError, type OpEnv } from './common';
import { execCreate } from './create';
import { execLink } from './link';
import { execRemove } from './remove';
import { execRename } from './rename';
import { execSetattr } from './setattr';
import { execWrite } from './write';

export { OpError, type OpEnv, type OpLimits } from './common';

/** Run op `index` in `tx`: its result, or an OpError (the op changes nothing). */
export function execOp(env: OpEnv, tx: Tx, index: number, op: StoreOp): Promise<OpResult> {
  switch (op.kind) {
    case 'setattr':
      return execSetattr(env, tx, index, op);
    case 'create':
    case 'mkdir':
    case 'symlink':
    case 'mknod':
      return execCreate(env, tx, index, op);
    case 'remove':
    case 'rmdir':
      return execRemove(env, tx, index, op);
    case 'rename':
      return execRename(env, tx, index, op);
    case 'link':
      return execLink(env, tx, index, op);
    case 'write':
      return execWrite(env, tx, index, op);
    default:
      return Promise.reject(new OpError(S.INVAL));
  }
}
