/** A store with every kind of object, shared by the snapshot and checksum tests. */
import { FileType } from '../../src/store/types';
import { randomBytesSeeded, rng } from '../support/util';
import type { Harness } from './helpers';

export interface Populated {
  dir: number;
  sub: number;
  small: number;
  holey: number;
  big: number;
  sparse: number;
  extended: number;
  shrunk: number;
  link: number;
  fifo: number;
}

/** directories, inline small files (one with a hole), a 3 MiB file, a 64 MiB sparse file, a file
 * extended by SETATTR, one shrunk by SETATTR, a symlink, a FIFO, a hard link, a removed file, and an
 * UNSTABLE write not yet committed */
export async function populate(h: Harness, seed: number): Promise<Populated> {
  const r = rng(seed);
  const ok = (s: number, what: string): void => {
    if (s !== 0) throw new Error(`${what}: status ${s}`);
  };
  const dir = await h.mkdir(1, 'dir');
  const sub = await h.mkdir(dir, 'sub');
  const small = await h.create(dir, 'small');
  ok((await h.write(small, 0, 'hello, small world')).status, 'write small');
  const holey = await h.create(1, 'holey');
  ok((await h.write(holey, 100, randomBytesSeeded(r, 3000))).status, 'write holey');
  const big = await h.create(sub, 'big');
  ok((await h.write(big, 0, randomBytesSeeded(r, 3 * 1024 * 1024 + 123))).status, 'write big');
  const sparse = await h.create(1, 'sparse');
  ok((await h.write(sparse, 64 * 1024 * 1024, randomBytesSeeded(r, 5000))).status, 'write sparse far');
  ok((await h.write(sparse, 1000, randomBytesSeeded(r, 70000))).status, 'write sparse near');
  const extended = await h.create(dir, 'extended');
  ok((await h.write(extended, 0, randomBytesSeeded(r, 20000))).status, 'write extended');
  ok((await h.op({ kind: 'setattr', file: extended, attrs: { size: 10 * 1024 * 1024 + 7 } })).status, 'extend');
  const shrunk = await h.create(dir, 'shrunk');
  ok((await h.write(shrunk, 0, randomBytesSeeded(r, 2 * 1024 * 1024))).status, 'write shrunk');
  ok((await h.op({ kind: 'setattr', file: shrunk, attrs: { size: 100_001 } })).status, 'shrink');
  const l = await h.op({ kind: 'symlink', dir: sub, name: 'link', attrs: {}, target: '../small' });
  ok(l.status, 'symlink');
  const f = await h.op({ kind: 'mknod', dir: 1, name: 'fifo', type: FileType.FIFO, attrs: { mode: 0o600 } });
  ok(f.status, 'mknod');
  ok((await h.op({ kind: 'link', file: big, dir: 1, name: 'big-again' })).status, 'link');
  const gone = await h.create(1, 'gone');
  ok((await h.write(gone, 0, randomBytesSeeded(r, 100_000))).status, 'write gone');
  ok((await h.op({ kind: 'remove', dir: 1, name: 'gone' })).status, 'remove');
  ok((await h.write(big, 500, randomBytesSeeded(r, 200_000), 0)).status, 'unstable write');
  return { dir, sub, small, holey, big, sparse, extended, shrunk, link: l.obj!.fileid, fifo: f.obj!.fileid };
}
