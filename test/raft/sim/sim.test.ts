/**
 * The deterministic simulation of the Raft core, run over a bounded set of seeds (see
 * docs/simulation.md). A failure message carries the command that replays the failing seed.
 * SIM_SEEDS / SIM_TICKS / SIM_SEED override the seed count, run length and first seed.
 */
import * as assert from 'node:assert/strict';
import { BugMode } from './node';
import { Prng } from './prng';
import { runSimulation, SimResult } from './simulator';
import { SimStorage } from './storage';

const SEEDS = Number(process.env.SIM_SEEDS ?? 300);
const TICKS = Number(process.env.SIM_TICKS ?? 200);
const FIRST = Number(process.env.SIM_SEED ?? 1);

function summary(r: SimResult): string {
  return `seed ${r.seed} (${r.nodes} nodes): ${r.violation?.kind}: ${r.violation?.message.split('\n')[0]}\n    replay: ${r.replay}`;
}

describe('raft simulation: harness', () => {
  it('the PRNG is a pure function of the seed and roughly uniform', () => {
    const a = new Prng(12345);
    const b = new Prng(12345);
    const c = new Prng(12346);
    const xs = Array.from({ length: 1000 }, () => a.nextU32());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.nextU32()));
    assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c.nextU32()));
    const buckets = new Array(10).fill(0);
    const r = new Prng(7);
    for (let i = 0; i < 100_000; i++) buckets[r.int(10)]++;
    for (const n of buckets) assert.ok(n > 9_500 && n < 10_500, `bucket ${n}`);
    assert.throws(() => new Prng(-1));
  });

  it('simulated storage: a crash keeps synced writes and at most a prefix of unsynced ones', () => {
    const conf = { voters: [1], learners: [], votersOutgoing: [] };
    const e = (index: number, term: number) => ({ index, term, type: 0 as const, data: new Uint8Array([index]) });
    let keptSome = 0;
    let lostSome = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const s = new SimStorage(1, conf, undefined, false);
      s.write({ k: 'ents', ents: [e(1, 1), e(2, 1)] });
      s.write({ k: 'hs', hs: { term: 1, vote: 1, commit: 2 } });
      s.sync();
      s.write({ k: 'ents', ents: [e(3, 1), e(4, 1), e(5, 1)] });
      s.write({ k: 'hs', hs: { term: 2, vote: 1, commit: 4 } });
      assert.equal(s.lastIndex(), 2, 'the durable view shows only synced entries');
      assert.equal(s.writtenLastIndex(), 5);
      s.crash(new Prng(seed), true);
      const last = s.lastIndex();
      assert.ok(last >= 2 && last <= 5);
      const hs = s.hardState();
      // the hard state is written after the entries: it survives only if all of them did
      if (hs.term === 2) assert.equal(last, 5);
      else assert.deepEqual(hs, { term: 1, vote: 1, commit: 2 });
      if (last > 2) keptSome++;
      if (last < 5) lostSome++;
      for (let i = 1; i <= last; i++) assert.equal(s.term(i), 1);
      assert.deepEqual(s.entries(1, last + 1, 1 << 20).map((x) => x.index), Array.from({ length: last }, (_, i) => i + 1));
    }
    assert.ok(keptSome > 20 && lostSome > 20, `kept ${keptSome} lost ${lostSome}`);
  });

  it('the same seed replays the same run, byte for byte (trace hash)', function () {
    this.timeout(60_000);
    for (const [seed, nodes] of [[7, 3], [8, 5]]) {
      const lines1: string[] = [];
      const lines2: string[] = [];
      const r1 = runSimulation({ seed, nodes, ticks: 120, log: (l) => lines1.push(l) });
      const r2 = runSimulation({ seed, nodes, ticks: 120, log: (l) => lines2.push(l) });
      assert.equal(r1.traceHash, r2.traceHash);
      assert.equal(lines1.length, lines2.length);
      assert.ok(lines1.every((l, i) => l === lines2[i]), 'identical traces');
      assert.deepEqual(r1.stats, r2.stats);
      assert.ok(r1.stats.events > 1000);
      const r3 = runSimulation({ seed: seed + 1000, nodes, ticks: 120 });
      assert.notEqual(r3.traceHash, r1.traceHash, 'another seed gives another run');
    }
  });

  it('a run elects a leader, acknowledges writes and serves reads', function () {
    this.timeout(30_000);
    const r = runSimulation({ seed: 3, nodes: 3, ticks: 200 });
    assert.ok(r.stats.leaders >= 1);
    assert.ok(r.stats.acked > 0, JSON.stringify(r.stats));
    assert.ok(r.stats.ops > r.stats.acked);
    assert.equal(r.stats.linearizability, 'ok');
  });
});

describe('raft simulation: seeds', () => {
  it(`${SEEDS} seeds of ${TICKS} ticks, 3- and 5-node clusters, hold every invariant`, function () {
    this.timeout(600_000);
    const failures: SimResult[] = [];
    let acked = 0;
    for (let s = FIRST; s < FIRST + SEEDS; s++) {
      const r = runSimulation({ seed: s, nodes: s % 2 === 0 ? 3 : 5, ticks: TICKS });
      acked += r.stats.acked;
      if (!r.ok) failures.push(r);
    }
    assert.ok(acked > SEEDS, `only ${acked} acknowledged writes in ${SEEDS} seeds`);
    assert.equal(failures.length, 0, `${failures.length} of ${SEEDS} seeds failed:\n  ${failures.map(summary).join('\n  ')}`);
  });
});

describe('raft simulation: bug injection (the checkers can fail)', () => {
  // promiseChecks off: the end-to-end checkers must catch the bug by its effects, not the
  // durability check at send time (which catches send-before-persist at once, tested below)
  const cases: [BugMode, number, number, number][] = [
    // bug, seed budget, nodes (0: alternate 3/5), fault scale
    ['apply-uncommitted', 40, 0, 3],
    ['ack-before-commit', 40, 0, 3],
    ['send-before-persist', 100, 3, 5],
  ];
  it('the durability check catches messages sent before their promise is on disk', () => {
    const r = runSimulation({ seed: 1, nodes: 3, ticks: 100, bug: 'send-before-persist' });
    assert.equal(r.violation?.kind, 'durability', JSON.stringify(r.violation));
  });
  for (const [bug, budget, nodes, faultScale] of cases) {
    it(`a driver with bug "${bug}" is caught by a safety checker within ${budget} seeds`, function () {
      this.timeout(600_000);
      const seen: string[] = [];
      for (let s = 1; s <= budget; s++) {
        const n = nodes || (s % 2 === 0 ? 3 : 5);
        const r = runSimulation({ seed: s, nodes: n, ticks: 150, bug, faultScale, promiseChecks: false });
        if (!r.ok && r.violation!.kind !== 'liveness' && r.violation!.kind !== 'runaway') {
          assert.match(r.replay, new RegExp(`--seed ${s} .*--bug ${bug}`));
          return;
        }
        if (!r.ok) seen.push(summary(r));
      }
      assert.fail(`bug ${bug} went unnoticed in ${budget} seeds${seen.length ? `; only:\n  ${seen.join('\n  ')}` : ''}`);
    });
  }
});
