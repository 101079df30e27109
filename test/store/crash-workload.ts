/**
 * The deterministic op log of the crash test: op number i is a pure function of i, so a restarted
 * child resumes at appliedIndex + 1 exactly as a Raft log replay would, and the parent can compute the
 * state any applied prefix must have produced.
 *
 * Indices 1..5 make directories d0..d4 (file ids 2..6). Then step s (from 0) has four ops:
 *   p0 create d(s%5)/f<s>            (file id 7 + s; GUARDED)
 *   p1 FILE_SYNC write of content(s) at offset 0
 *   p2 UNSTABLE append of 500 bytes
 *   p3 s%3==2: truncate f<s> to 100 (setattr)
 *      s%3==1: rename d((s-1)%5)/f<s-1> -> d(s%5)/g<s-1>
 *      s%3==0 and s>=2: remove d((s-2)%5)/f<s-2>
 *      otherwise (s=0): touch f<s> (setattr mtime)
 * so file s ends, depending on s%3: 0 -> renamed by step s+1, 1 -> removed by step s+2, 2 -> truncated.
 */
import type { StoreOp } from '../../src/store/types';

const CRED = { uid: 0, gid: 0, gids: [] };
const DIRS = 5;

export function dirId(k: number): number {
  return 2 + (k % DIRS);
}

export function fileId(s: number): number {
  return 7 + s;
}

export function content(s: number): Buffer {
  const unit = Buffer.from(`step ${s};`);
  const len = ((s % 7) + 1) * 1000;
  const b = Buffer.alloc(len);
  for (let o = 0; o < len; o += unit.length) unit.copy(b, o);
  return b;
}

export function appendix(s: number): Buffer {
  return Buffer.alloc(500, 0x41 + (s % 26));
}

export function stepOf(i: number): { s: number; p: number } {
  return { s: Math.floor((i - 6) / 4), p: (i - 6) % 4 };
}

export function indexOf(s: number, p: number): number {
  return 6 + 4 * s + p;
}

export function crashOp(i: number): StoreOp {
  const time = { sec: 1_700_000_000 + i, nsec: (i * 7919) % 1_000_000_000 };
  if (i <= DIRS) return { kind: 'mkdir', dir: 1, name: `d${i - 1}`, attrs: { mode: 0o755 }, time, cred: CRED };
  const { s, p } = stepOf(i);
  switch (p) {
    case 0:
      return { kind: 'create', dir: dirId(s), name: `f${s}`, mode: 'guarded', attrs: { mode: 0o644 }, time, cred: CRED };
    case 1:
      return { kind: 'write', file: fileId(s), offset: 0, data: content(s), stable: 2, time, cred: CRED };
    case 2:
      return { kind: 'write', file: fileId(s), offset: content(s).length, data: appendix(s), stable: 0, time, cred: CRED };
    default:
      if (s % 3 === 2) return { kind: 'setattr', file: fileId(s), attrs: { size: 100 }, time, cred: CRED };
      if (s % 3 === 0 && s >= 2) return { kind: 'remove', dir: dirId(s - 2), name: `f${s - 2}`, time, cred: CRED };
      if (s % 3 === 1) return { kind: 'rename', fromDir: dirId(s - 1), fromName: `f${s - 1}`, toDir: dirId(s), toName: `g${s - 1}`, time, cred: CRED };
      return { kind: 'setattr', file: fileId(s), attrs: { mtime: 'server' }, time, cred: CRED };
  }
}

/** Where file s must be, and its bytes, once ops 1..applied are applied; undefined: must not exist. */
export function expected(s: number, applied: number): { dir: number; name: string; data: Buffer } | undefined {
  if (indexOf(s, 0) > applied) return undefined;
  let data: Buffer = Buffer.alloc(0);
  if (indexOf(s, 1) <= applied) data = content(s);
  if (indexOf(s, 2) <= applied) data = Buffer.concat([data, appendix(s)]);
  let dir = dirId(s);
  let name = `f${s}`;
  if (s % 3 === 2 && indexOf(s, 3) <= applied) data = data.subarray(0, 100);
  if (s % 3 === 0 && indexOf(s + 1, 3) <= applied) {
    dir = dirId(s + 1);
    name = `g${s}`;
  }
  if (s % 3 === 1 && indexOf(s + 2, 3) <= applied) return undefined;
  return { dir, name, data };
}
