import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import type { Cred, OpResult, SetAttrs, StoreOp, StoreOptions, Time } from '../../src/store/types';

export const ROOT: Cred = { uid: 0, gid: 0, gids: [] };
export const ALICE: Cred = { uid: 1000, gid: 1000, gids: [1000, 50] };
export const BOB: Cred = { uid: 1001, gid: 1001, gids: [1001] };

export function tmpDir(tag = 'store'): string {
  return mkdtempSync(path.join(os.tmpdir(), `hanfs-${tag}-`));
}

export function rmDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

type Dist<T> = T extends unknown ? Omit<T, 'time' | 'cred'> & { time?: Time; cred?: Cred } : never;
export type OpInput = Dist<StoreOp>;

/** A store plus the op index counter a Raft layer would keep; times advance 1 s per op. */
export class Harness {
  index = 0;
  clock = 1_700_000_000;
  constructor(
    public store: LevelBlockStore,
    readonly dir: string,
  ) {
    this.index = store.appliedIndex;
  }

  static async open(dir = tmpDir(), opts: StoreOptions = {}): Promise<Harness> {
    return new Harness(await openStore(dir, opts), dir);
  }

  async reopen(opts: StoreOptions = {}): Promise<void> {
    await this.store.close();
    this.store = await openStore(this.dir, opts);
    this.index = this.store.appliedIndex;
  }

  op(o: OpInput, cred: Cred = ROOT): Promise<OpResult> {
    const full = { time: { sec: this.clock++, nsec: 500 }, cred, ...o } as StoreOp;
    return this.store.apply(++this.index, full);
  }

  async create(dir: number, name: string, cred: Cred = ROOT, attrs: SetAttrs = { mode: 0o644 }): Promise<number> {
    const r = await this.op({ kind: 'create', dir, name, mode: 'guarded', attrs }, cred);
    if (r.status !== 0) throw new Error(`create ${name}: status ${r.status}`);
    return r.obj!.fileid;
  }

  async mkdir(dir: number, name: string, cred: Cred = ROOT, mode = 0o755): Promise<number> {
    const r = await this.op({ kind: 'mkdir', dir, name, attrs: { mode } }, cred);
    if (r.status !== 0) throw new Error(`mkdir ${name}: status ${r.status}`);
    return r.obj!.fileid;
  }

  async write(file: number, offset: number, data: Uint8Array | string, stable: 0 | 1 | 2 = 2, cred: Cred = ROOT): Promise<OpResult> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    return this.op({ kind: 'write', file, offset, data: buf, stable }, cred);
  }

  async readAll(file: number): Promise<Buffer> {
    const a = await this.store.getattr(file);
    const r = await this.store.read(file, 0, a!.size);
    return Buffer.from(r.data!);
  }

  async names(dir: number): Promise<string[]> {
    const out: string[] = [];
    let cookie = 0;
    let verf: string | undefined;
    for (;;) {
      const r = await this.store.readdir(dir, cookie, verf, 100);
      if (r.status !== 0) throw new Error(`readdir status ${r.status}`);
      for (const e of r.entries) out.push(e.name);
      if (r.eof) return out;
      cookie = r.entries[r.entries.length - 1].cookie;
      verf = r.cookieverf;
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  async destroy(): Promise<void> {
    await this.store.close().catch(() => undefined);
    rmDir(this.dir);
  }
}

/** the frames of a snapshot stream (after its 20-byte header), END frame last */
export function parseFrames(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 20;
  while (off < b.length) {
    const len = b.readUInt32BE(off + 1);
    out.push(b.subarray(off, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

/** `b` as an async stream of `size`-byte chunks */
export async function* chunked(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < b.length; off += size) yield b.subarray(off, Math.min(b.length, off + size));
}
