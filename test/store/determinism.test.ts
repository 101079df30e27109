import { strict as assert } from 'node:assert';
import { FileType, type Cred, type OpResult, type StoreOp } from '../../src/store/types';
import { fsck } from '../../src/store/fsck';
import { rng } from '../support/util';
import { ALICE, BOB, Harness, ROOT } from './helpers';

/** A reproducible random op stream over a small name space (so ops collide often). It learns the file
 * ids that exist from the results of the ops it made, so most ops hit live objects. */
export class OpGen {
  private readonly r: () => number;
  private readonly dirs: number[] = [1];
  private readonly files: number[] = [];
  private i = 0;
  private readonly names = ['a', 'b', 'c', 'd', 'e', 'f', 'long-name-' + 'x'.repeat(40)];
  private readonly creds: Cred[] = [ROOT, ROOT, ALICE, BOB];
  constructor(seed: number) {
    this.r = rng(seed);
  }
  private pick<T>(a: T[]): T {
    return a[Math.floor(this.r() * a.length)];
  }
  private dir(): number {
    return this.r() < 0.9 ? this.pick(this.dirs) : 1 + Math.floor(this.r() * 80);
  }
  private file(): number {
    return this.r() < 0.9 && this.files.length ? this.pick(this.files) : 1 + Math.floor(this.r() * 80);
  }
  observe(op: StoreOp, res: OpResult): void {
    if (res.status !== 0 || !res.obj) return;
    const id = res.obj.fileid;
    if (res.obj.type === FileType.DIR) {
      if (!this.dirs.includes(id)) this.dirs.push(id);
    } else if (!this.files.includes(id)) this.files.push(id);
    void op;
  }
  next(): StoreOp {
    const r = this.r;
    const i = this.i++;
    const time = { sec: 1_700_000_000 + i, nsec: Math.floor(r() * 1e9) };
    const cred = this.pick(this.creds);
    const name = () => this.pick(this.names);
    const k = r();
    if (k < 0.18) return { kind: 'create', dir: this.dir(), name: name(), mode: this.pick(['unchecked', 'guarded', 'exclusive'] as const), attrs: r() < 0.5 ? { mode: 0o666 } : { mode: 0o644, size: Math.floor(r() * 5000) }, verifier: this.pick(['00000000000000aa', '00000000000000bb']), time, cred };
    if (k < 0.3) return { kind: 'mkdir', dir: this.dir(), name: name(), attrs: { mode: this.pick([0o755, 0o777, 0o1777, 0o2775]) }, time, cred };
    if (k < 0.34) return { kind: 'symlink', dir: this.dir(), name: name(), attrs: {}, target: 'target-' + i, time, cred };
    if (k < 0.36) return { kind: 'mknod', dir: this.dir(), name: name(), type: this.pick([FileType.FIFO, FileType.CHR]), attrs: {}, rdev: [1, 2], time, cred };
    if (k < 0.46) return { kind: 'remove', dir: this.dir(), name: name(), time, cred };
    if (k < 0.52) return { kind: 'rmdir', dir: this.dir(), name: name(), time, cred };
    if (k < 0.64) return { kind: 'rename', fromDir: this.dir(), fromName: name(), toDir: this.dir(), toName: name(), time, cred };
    if (k < 0.70) return { kind: 'link', file: this.file(), dir: this.dir(), name: name(), time, cred };
    if (k < 0.88) {
      const data = Buffer.alloc(Math.floor(r() * 3000), i & 0xff);
      return { kind: 'write', file: this.file(), offset: Math.floor(r() * 200_000), data, stable: this.pick([0, 1, 2] as const), time, cred };
    }
    const attrs = this.pick([{ size: Math.floor(r() * 100_000) }, { mode: 0o600 }, { mode: 0o777 }, { uid: 1000 }, { gid: 50 }, { mtime: 'server' as const }, { atime: { sec: 5, nsec: 5 } }]);
    return { kind: 'setattr', file: this.r() < 0.3 ? this.pick(this.dirs) : this.file(), attrs, time, cred, ...(r() < 0.1 ? { guardCtime: { sec: 0, nsec: 0 } } : {}) };
  }
}

/** Everything observable: attrs of every id, full listings with cookies, file contents, link targets. */
export async function dump(h: Harness): Promise<unknown[]> {
  const out: unknown[] = [h.store.appliedIndex, h.store.counters];
  for (let id = 1; id < h.store.counters.nextFileId; id++) {
    const a = await h.store.getattr(id);
    if (!a) {
      out.push([id, 'gone']);
      continue;
    }
    out.push(a);
    if (a.type === FileType.DIR) {
      const r = await h.store.readdir(id, 0, undefined, 100000);
      out.push(r.cookieverf, r.entries);
    } else if (a.type === FileType.REG) {
      const r = await h.store.read(id, 0, a.size);
      out.push(Buffer.from(r.data!).toString('base64'));
    } else if (a.type === FileType.LNK) {
      out.push((await h.store.readlink(id)).target);
    }
  }
  return out;
}

async function run(h: Harness, ops: StoreOp[], from = 0, to = ops.length): Promise<OpResult[]> {
  const results: OpResult[] = [];
  // pipelined in groups, as a Raft apply loop would hand them over
  for (let i = from; i < to; i += 25) {
    const ps = [];
    for (let j = i; j < Math.min(to, i + 25); j++) ps.push(h.store.apply(j + 1, ops[j]));
    results.push(...(await Promise.all(ps)));
  }
  return results;
}

describe('store: determinism', function () {
  this.timeout(120000);

  for (const seed of [1, 2, 3]) {
    it(`same random op sequence (seed ${seed}) gives identical stores`, async () => {
      const a = await Harness.open();
      const b = await Harness.open();
      try {
        // store a drives the generator one op at a time; b and c get the recorded ops pipelined
        const gen = new OpGen(seed);
        const ops: StoreOp[] = [];
        const ra: OpResult[] = [];
        for (let i = 0; i < 1200; i++) {
          const op = gen.next();
          ops.push(op);
          const res = await a.store.apply(i + 1, op);
          gen.observe(op, res);
          ra.push(res);
        }
        const rb = await run(b, ops);
        assert.deepEqual(ra, rb, 'identical op results');
        const statuses = new Set(ra.map((r) => r.status));
        assert.ok(statuses.size >= 8, `op mix exercises many statuses: ${[...statuses].join(',')}`);
        assert.ok(ra.filter((r) => r.status === 0).length > 400, 'many ops succeed');
        const da = await dump(a);
        assert.deepEqual(da, await dump(b));
        // the second store restarted midway and replays an overlap: same end state
        const c = await Harness.open();
        await run(c, ops, 0, 600);
        await c.reopen();
        assert.equal(c.store.appliedIndex, 600);
        const replay = await run(c, ops, 500, 600);
        assert.deepEqual(replay.map((r) => r.status), new Array(100).fill(0), 'replays after restart are no-ops');
        await run(c, ops, 600);
        assert.deepEqual(await dump(c), da);
        for (const h of [a, b, c]) {
          await h.close();
          const rep = await fsck(h.dir);
          assert.deepEqual(rep.problems, []);
          assert.ok(rep.inodes > 5);
        }
        await c.destroy();
      } finally {
        await a.destroy();
        await b.destroy();
      }
    });
  }
});
