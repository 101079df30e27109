/**
 * Simulated power loss. The storage's durability calls are observed (fdatasync of a segment: its size
 * at the call is durable once it returns; fsync of the directory: the names present at the call are
 * durable). At random moments, also while fsyncs are in flight, a crash image is built from the real
 * files as a power cut would leave them: every file cut back to its durable length plus a random
 * prefix of its unsynced tail (the last record possibly torn, sometimes followed by a zero-filled
 * extension), and segments created after the last directory fsync possibly gone (a suffix of them).
 * The image must open without error and hold every entry and the hard state whose sync() resolved.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogStorage, StorageIo } from '../../../src/raft/log-storage';
import { fsyncDir } from '../../../src/raft/segment-snapshot-file';
import { Entry, EntryType, HardState } from '../../../src/raft/types';
import { rng } from '../../support/util';

/** seeded integers in [0, n) */
function prng(seed: number): (n: number) => number {
  const r = rng(seed);
  return (n) => Math.floor(r() * n);
}

const payload = (index: number, term: number) => {
  const b = Buffer.alloc(20 + ((index * 37) % 400));
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(term, 4);
  for (let i = 8; i < b.length; i++) b[i] = (index * 7 + i) & 0xff;
  return b;
};

class DurabilityObserver {
  /** per segment: its content at the latest-issued fdatasync that has returned (the disk holds at least that) */
  durable = new Map<string, { seq: number; content: Buffer }>();
  dirNames = new Set<string>();
  private issued = 0;

  constructor(readonly dir: string) {}

  baseline(): void {
    this.durable.clear();
    this.dirNames = new Set(fs.readdirSync(this.dir));
    for (const f of this.dirNames) if (f.endsWith('.seg')) this.durable.set(f, { seq: 0, content: fs.readFileSync(path.join(this.dir, f)) });
  }

  private nameOf(fd: number): string {
    return path.basename(fs.readlinkSync(`/proc/self/fd/${fd}`));
  }

  /** the file's content at the call, durable once the fdatasync returns (a later-issued one supersedes
   * it, also when it finished first: it covers a newer state, e.g. a preallocated tail cut at a roll) */
  private snapshot(fd: number): { name: string; seq: number; content: Buffer } {
    const name = this.nameOf(fd);
    const size = fs.fstatSync(fd).size;
    const content = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, content, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return { name, seq: ++this.issued, content: content.subarray(0, got) };
  }

  private settle(s: { name: string; seq: number; content: Buffer }): void {
    const cur = this.durable.get(s.name);
    if (!cur || cur.seq < s.seq) this.durable.set(s.name, { seq: s.seq, content: s.content });
  }

  io(): Partial<StorageIo> {
    return {
      fdatasync: (fd, cb) => {
        const s = this.snapshot(fd);
        fs.fdatasync(fd, (err) => {
          if (!err) this.settle(s);
          cb(err);
        });
      },
      fdatasyncSync: (fd) => {
        const s = this.snapshot(fd);
        fs.fdatasyncSync(fd);
        this.settle(s);
      },
      fsyncDir: async (dir) => {
        const names = new Set(fs.readdirSync(dir));
        await fsyncDir(dir);
        this.dirNames = names;
      },
    };
  }

  /** Write a power-cut image of the directory into `to`. */
  crashImage(to: string, rnd: (n: number) => number): void {
    fs.mkdirSync(to, { recursive: true });
    const segs = fs
      .readdirSync(this.dir)
      .filter((f) => f.endsWith('.seg'))
      .sort();
    const unsyncedNames = segs.filter((f) => !this.dirNames.has(f));
    const keepUnsynced = rnd(unsyncedNames.length + 1); // a prefix of the new names survives
    for (const f of segs) {
      if (!this.dirNames.has(f) && unsyncedNames.indexOf(f) >= keepUnsynced) continue;
      const buf = fs.readFileSync(path.join(this.dir, f));
      const dur = this.durable.get(f)?.content ?? Buffer.alloc(0);
      // the disk holds the durable content; what was written since reaches it in order, up to a random
      // point: the current bytes up to the first difference are on disk, then a random prefix of the
      // rest; after that point the old durable bytes remain (a preallocated file: zeros)
      let d = 0;
      const common = Math.min(dur.length, buf.length);
      while (d < common && dur[d] === buf[d]) d++;
      const extra = rnd(buf.length - d + 1);
      let img = Buffer.concat([buf.subarray(0, d + extra), dur.subarray(Math.min(dur.length, d + extra))]);
      // size extended over unsynced data whose pages never reached the disk: zeros
      if (d < buf.length && rnd(4) === 0) img = Buffer.concat([img, Buffer.alloc(1 + rnd(buf.length - d))]);
      fs.writeFileSync(path.join(to, f), img);
    }
    const snap = path.join(this.dir, 'snapshot');
    if (fs.existsSync(snap)) fs.copyFileSync(snap, path.join(to, 'snapshot'));
  }
}

describe('raft log storage: simulated power loss', function () {
  this.timeout(120_000);
  const roots: string[] = [];
  after(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  for (const seed of [11, 12, 13, 14]) {
    it(`seed ${seed}: 12 power cuts; every synced entry and hard state survives`, async () => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-powerloss-'));
      roots.push(root);
      const rnd = prng(seed);
      let dir = path.join(root, 'gen0');
      fs.mkdirSync(dir);
      const want = new Map<number, { term: number; data: Buffer }>(); // acknowledged entries
      let ackedHs: HardState = { term: 0, vote: 0, commit: 0 };
      const stats = { cuts: 0, tornBytes: 0, entriesChecked: 0, preallocated: 0 };
      for (let gen = 1; gen <= 12; gen++) {
        const obs = new DurabilityObserver(dir);
        const st = await LogStorage.open({ dir, segmentBytes: 2048 + rnd(6000), cacheBytes: 4096, io: obs.io() });
        stats.tornBytes += st.stats().recoveredTornBytes;
        obs.baseline();
        // the recovered log must hold everything acknowledged so far
        const first = st.firstIndex();
        for (const [i, w] of want) {
          if (i < first) continue;
          assert.ok(i <= st.lastIndex(), `gen ${gen}: acknowledged entry ${i} lost (last ${st.lastIndex()})`);
          const [e] = st.entries(i, i + 1, 1e9);
          assert.equal(e.term, w.term);
          assert.deepEqual(Buffer.from(e.data), w.data, `gen ${gen}: entry ${i} differs`);
          stats.entriesChecked++;
        }
        const hs = st.hardState();
        assert.ok(hs.term >= ackedHs.term && hs.commit >= ackedHs.commit, `gen ${gen}: hard state went back: ${JSON.stringify(hs)} < ${JSON.stringify(ackedHs)}`);
        // forget what was never acknowledged: the recovered log is the truth from here on
        for (const i of [...want.keys()]) if (i > st.lastIndex() || i < first) want.delete(i);

        const term = hs.term + 1;
        st.setHardState({ term, vote: 1, commit: hs.commit });
        const steps = 20 + rnd(80);
        const cutAt = rnd(steps);
        const next = path.join(root, `gen${gen}`);
        const inflight: Promise<void>[] = [];
        let cut = false;
        for (let k = 0; k < steps; k++) {
          const r = rnd(10);
          if (r < 6) {
            const from = st.lastIndex() + 1;
            const batch: Entry[] = [];
            for (let j = 0; j < 1 + rnd(6); j++) batch.push({ index: from + j, term, type: EntryType.Normal, data: payload(from + j, term) });
            st.append(batch);
            const ackHs = st.hardState();
            inflight.push(
              st.sync().then(() => {
                if (cut) return; // resolved after the power cut: not acknowledged at the cut
                for (const e of batch) want.set(e.index, { term: e.term, data: Buffer.from(e.data) });
                if (ackHs.term > ackedHs.term || (ackHs.term === ackedHs.term && ackHs.commit > ackedHs.commit)) ackedHs = ackHs;
              }),
            );
          } else if (r < 8) {
            const commit = Math.min(st.lastIndex(), st.hardState().commit + rnd(10));
            st.setHardState({ term, vote: 1, commit });
          } else if (r < 9) {
            if (st.lastIndex() > st.firstIndex() + 20) st.compact(st.firstIndex() + rnd(st.lastIndex() - st.firstIndex() - 10));
          }
          if (rnd(3) === 0) await new Promise((res) => setImmediate(res)); // let fsyncs run and finish
          if ((rnd(5) === 0 || k === cutAt) && inflight.length > 0) await inflight.shift();
          if (k === cutAt) {
            // the power cut: an image of what the disk holds right now (fsyncs may be in flight)
            obs.crashImage(next, rnd);
            cut = true;
            stats.cuts++;
            break;
          }
        }
        await Promise.allSettled(inflight);
        stats.preallocated += st.stats().preallocatedSegments;
        await st.close();
        dir = next;
      }
      console.log(`      ${stats.cuts} cuts, ${stats.entriesChecked} acknowledged entries re-checked, ${stats.tornBytes} torn bytes cut at recovery, ${stats.preallocated} segments rolled into a preallocated file`);
    });
  }
});
