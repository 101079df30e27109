/**
 * Store mode of the deterministic simulation (docs/simulation.md "Store mode"): the real logWal block
 * store, through StoreStateMachine, is every node's state machine. A bounded seed range (about 30 s on
 * the 2-core machine), determinism, and broken variants the checkers must catch. A failure message
 * carries the command that replays the seed. STORE_SIM_SEEDS / STORE_SIM_TICKS / STORE_SIM_SEED
 * override the seed range.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BugMode } from './node';
import { runSimulationStore, SimOptions, SimResult } from './simulator';

const SEEDS = Number(process.env.STORE_SIM_SEEDS ?? 40);
const TICKS = Number(process.env.STORE_SIM_TICKS ?? 150);
const FIRST = Number(process.env.STORE_SIM_SEED ?? 1);

function summary(r: SimResult): string {
  return `seed ${r.seed} (${r.nodes} nodes): ${r.violation?.kind}: ${r.violation?.message.split('\n')[0]}\n    replay: ${r.replay}`;
}


describe('raft simulation: store mode (the real block store as the state machine)', function () {
  this.timeout(120_000);

  it('a run elects a leader, acknowledges writes, serves reads from the store, checkpoints and compares digests', async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), 'hanfs-store-sim-test-'));
    const r = await runSimulationStore({ seed: 4, nodes: 3, ticks: 150, storeDir: parent, set: { crashP: 0, partitionP: 0, loss: 0, membership: false, checkpointEvery: 3 } });
    assert.ok(r.ok, summary(r));
    assert.ok(r.stats.acked > 5, `acked ${r.stats.acked}`);
    assert.ok(r.stats.digests > 3, `digests ${r.stats.digests}`);
    assert.equal(r.stats.linearizability, 'ok');
    assert.match(r.replay, /--store --seed 4 /);
    assert.deepEqual(readdirSync(parent), [], 'the run removed its store directories');
    rmSync(parent, { recursive: true, force: true });
  });

  it(`${SEEDS} seeds of ${TICKS} ticks from ${FIRST} (crashes with redo, partitions, membership, store snapshots) hold every invariant`, async () => {
    const failures: string[] = [];
    let acked = 0, redos = 0, digests = 0, crashes = 0, snaps = 0, lost = 0;
    for (let s = FIRST; s < FIRST + SEEDS; s++) {
      const r = await runSimulationStore({ seed: s, nodes: s % 2 === 0 ? 3 : 5, ticks: TICKS });
      acked += r.stats.acked;
      redos += r.stats.redos;
      digests += r.stats.digests;
      crashes += r.stats.crashes;
      snaps += r.stats.snapshotsInstalled;
      lost += r.stats.lostBatches;
      if (!r.ok) failures.push(summary(r));
    }
    assert.deepEqual(failures, []);
    assert.ok(acked > SEEDS * 5, `acked ${acked}`);
    assert.ok(crashes > 0 && redos > 0, `crashes ${crashes}, redo recoveries ${redos}: the seeds must exercise redo`);
    assert.ok(digests > SEEDS, `digests ${digests}`);
    assert.ok(snaps > 0, 'no store snapshot was installed');
    assert.ok(lost > 0, 'no crash lost unwritten store batches');
  });

  it('the same seed gives the same trace (store I/O timing does not leak into the run)', async () => {
    const o: SimOptions = { seed: 5, nodes: 5, ticks: 120, set: { crashP: 0.05, crashMajorityOk: true, snapshotEvery: 5, partitionP: 0.08, storeFlushP: 0.1 } };
    const a = await runSimulationStore(o);
    const b = await runSimulationStore(o);
    assert.ok(a.ok, summary(a));
    assert.ok(a.stats.crashes > 0 && a.stats.redos > 0 && a.stats.acked > 0 && a.stats.snapshotsInstalled > 0 && a.stats.lostBatches > 0, JSON.stringify(a.stats));
    assert.equal(a.traceHash, b.traceHash);
  });

  const caught = async (bug: BugMode, kinds: string[], o: Partial<SimOptions>, maxSeeds: number): Promise<void> => {
    for (let s = 1; s <= maxSeeds; s++) {
      const r = await runSimulationStore({ seed: s, nodes: 3, ticks: 150, bug, ...o });
      if (!r.ok) {
        assert.ok(kinds.includes(r.violation!.kind), `bug ${bug} caught as ${r.violation!.kind}, expected one of ${kinds}: ${summary(r)}`);
        return;
      }
    }
    assert.fail(`bug ${bug} was not caught within ${maxSeeds} seeds`);
  };

  it('a replica that skips one store op is caught by the store digest comparison', async () => {
    await caught('store-skip-op', ['store-divergence'], {}, 3);
  });

  it('start-up that recovers a store before restoring it from the newer durable snapshot (RaftNode before F4) is caught', async () => {
    await caught('store-recover-first', ['storage'], { set: { snapshotEvery: 5, crashP: 0.05, partitionP: 0.08, checkpointEvery: 40 } }, 6);
  });

  it('applying ops without their request key (a resent request executes twice) is caught', async () => {
    await caught('store-no-dedup', ['exactly-once', 'linearizability'], { faultScale: 3 }, 5);
  });
});
