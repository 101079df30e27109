/**
 * Randomized model test of the log storage: random appends, conflicting overwrites, compactions,
 * snapshot installs, hard-state changes, small segments (many rolls and deletions) and reopens,
 * checked against a plain in-memory model after every reopen.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogStorage } from '../../../src/raft/log-storage';
import { Entry, EntryType, HardState } from '../../../src/raft/types';
import { rng } from '../../support/util';

/** seeded integers in [0, n) */
function prng(seed: number): (n: number) => number {
  const r = rng(seed);
  return (n) => Math.floor(r() * n);
}

function data(index: number, term: number, rnd: (n: number) => number): Buffer {
  const b = Buffer.alloc(8 + rnd(300));
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(term, 4);
  for (let i = 8; i < b.length; i++) b[i] = (index + term + i) & 0xff;
  return b;
}

describe('raft log storage: randomized model test', function () {
  this.timeout(120_000);
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 600 random operations with reopens match the model`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raftlog-model-'));
      const rnd = prng(seed * 7919);
      let st = await LogStorage.open({ dir, segmentBytes: 1500 + rnd(3000), cacheBytes: 2048 });
      let base = { index: 0, term: 0 };
      let ents: Entry[] = []; // ents[k].index = base.index + 1 + k
      let hs: HardState = { term: 0, vote: 0, commit: 0 };
      let curTerm = 1;
      let snapIndex = -1;
      const last = () => base.index + ents.length;
      const check = () => {
        assert.equal(st.firstIndex(), base.index + 1, 'firstIndex');
        assert.equal(st.lastIndex(), last(), 'lastIndex');
        assert.equal(st.term(base.index), base.term, 'base term');
        assert.deepEqual(st.hardState(), hs);
        if (ents.length > 0) {
          const got = st.entries(base.index + 1, last() + 1, Number.MAX_SAFE_INTEGER);
          assert.equal(got.length, ents.length);
          for (let k = 0; k < ents.length; k++) {
            assert.equal(got[k].index, ents[k].index);
            assert.equal(got[k].term, ents[k].term, `term of ${ents[k].index}`);
            assert.deepEqual(Buffer.from(got[k].data), Buffer.from(ents[k].data), `data of ${ents[k].index}`);
          }
        }
        if (snapIndex >= 0) assert.equal(st.snapshot()?.meta.index, snapIndex);
      };
      try {
        for (let op = 0; op < 600; op++) {
          const r = rnd(100);
          if (r < 45) {
            const n = 1 + rnd(8);
            const batch: Entry[] = [];
            for (let k = 0; k < n; k++) {
              const i = last() + 1 + k;
              batch.push({ index: i, term: curTerm, type: EntryType.Normal, data: data(i, curTerm, rnd) });
            }
            st.append(batch);
            ents.push(...batch);
          } else if (r < 60) {
            const lo = Math.max(base.index, hs.commit) + 1;
            if (lo <= last()) {
              const from = lo + rnd(last() - lo + 1);
              curTerm++;
              const n = 1 + rnd(6);
              const batch: Entry[] = [];
              for (let k = 0; k < n; k++) batch.push({ index: from + k, term: curTerm, type: EntryType.Normal, data: data(from + k, curTerm, rnd) });
              st.append(batch);
              ents = ents.slice(0, from - base.index - 1).concat(batch);
            }
          } else if (r < 72) {
            if (last() > 0) {
              const commit = Math.max(hs.commit, Math.min(last(), hs.commit + rnd(20)));
              hs = { term: Math.max(hs.term, curTerm), vote: rnd(4), commit };
              st.setHardState(hs);
            }
          } else if (r < 80) {
            if (last() > base.index) {
              const i = base.index + 1 + rnd(last() - base.index);
              const t = ents[i - base.index - 1].term;
              st.compact(i);
              ents = ents.slice(i - base.index);
              base = { index: i, term: t };
            }
          } else if (r < 83) {
            const S = last() + rnd(5);
            curTerm++;
            await st.applySnapshot({ meta: { index: S, term: curTerm, conf: { voters: [1, 2, 3], learners: [], votersOutgoing: [] } }, data: Buffer.from(`snap${S}`) });
            base = { index: S, term: curTerm };
            ents = [];
            snapIndex = S;
            if (hs.commit < S) {
              hs = { term: Math.max(hs.term, curTerm), vote: hs.vote, commit: S };
              st.setHardState(hs);
            }
          } else if (r < 95) {
            await st.sync();
          } else {
            await st.sync();
            await st.close();
            st = await LogStorage.open({ dir, segmentBytes: 1500 + rnd(3000), cacheBytes: 2048 });
            check();
          }
          if (op % 50 === 0) check();
        }
        await st.sync();
        await st.close();
        st = await LogStorage.open({ dir, segmentBytes: 2000 });
        check();
        assert.ok(st.stats().segments < 60, `old segments are deleted (${st.stats().segments} left)`);
        await st.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
