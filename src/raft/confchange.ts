/** Encoding of ConfChange entry payloads: 1 byte kind (1 addLearner, 2 promote, 3 remove) + u32 BE node. */
import type { ConfChange } from './types';

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const b = new Uint8Array(5);
  b[0] = cc.type === 'addLearner' ? 1 : cc.type === 'promote' ? 2 : 3;
  new DataView(b.buffer).setUint32(1, cc.node >>> 0, false);
  return b;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.byteLength !== 5) throw new Error('raft: bad ConfChange payload');
  const node = new DataView(data.buffer, data.byteOffset, 5).getUint32(1, false);
  switch (data[0]) {
    case 1:
      return { type: 'addLearner', node };
    case 2:
      return { type: 'promote', node };
    case 3:
      return { type: 'remove', node };
    default:
      throw new Error('raft: bad ConfChange kind');
  }
}
