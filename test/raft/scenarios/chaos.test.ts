/**
 * Seeded random faults (partitions, message loss, crashes with restart from durable state, compaction,
 * leadership transfer) against the safety properties: one leader per term, every node applies the
 * same entry at each index, and every write that the leader reported committed survives.
 */
import assert from 'node:assert/strict';
import { TestNetwork, lcg, enc } from './network';
import { Role } from '../../../src/raft/types';

function chaos(seed: number, steps: number, membership = false): void {
  const rnd = lcg(seed);
  const ids = [1, 2, 3, 4, 5];
  const net = new TestNetwork(ids, { seed, cfg: { snapshotChunkBytes: 64, maxInflightMsgs: 4, maxMsgBytes: 200 } });
  if (membership) {
    net.addNode(6); // spare, joins with an empty membership
    ids.push(6);
  }
  let changes = 0;
  const committed = new Map<number, string>(); // index -> payload acknowledged by a leader
  const proposed = new Map<string, { id: number; index: number; term: number }>();
  let k = 0;
  for (let step = 0; step < steps; step++) {
    const r = rnd(100);
    if (r < 8) {
      net.heal();
      const a = ids.filter(() => rnd(2) === 0);
      net.partition(a, ids.filter((x) => !a.includes(x)));
    } else if (r < 14) {
      net.heal();
    } else if (r < 17) {
      const id = ids[rnd(5)]!;
      if (!net.node(id).down && ids.filter((x) => net.node(x).down).length < 2) net.crash(id);
    } else if (r < 22) {
      const down = ids.filter((x) => net.node(x).down);
      if (down.length) net.restart(down[rnd(down.length)]!);
    } else if (r < 25) {
      const id = ids[rnd(5)]!;
      const n = net.node(id);
      if (!n.down && n.appliedIndex > n.core.log.firstIndex()) net.compact(id);
    } else if (r < 27) {
      const ls = net.leaders();
      if (ls.length) net.core(ls[0]!).transferLeadership(ids[rnd(ids.length)]!);
    } else if (membership && r < 32) {
      for (const l of net.leaders()) {
        const c = net.core(l);
        const conf = c.status().conf;
        const n = ids[rnd(ids.length)]!;
        let res;
        if (conf.learners.includes(n)) res = c.proposeConfChange({ type: 'promote', node: n });
        else if (!conf.voters.includes(n)) res = c.proposeConfChange({ type: 'addLearner', node: n });
        else if (conf.voters.length > 3 && n !== l) res = c.proposeConfChange({ type: 'remove', node: n });
        if (res && 'index' in res) changes++;
      }
    } else if (r < 60) {
      for (const l of net.leaders()) {
        const data = `s${seed}-${k++}`;
        const p = net.core(l).propose(enc(data));
        if ('index' in p) proposed.set(data, { id: l, ...p });
      }
    }
    net.dropIf = rnd(4) === 0 ? () => rnd(10) < 2 : undefined;
    net.tick();
    net.stabilize();
    // what a leader reports committed is acknowledged to clients
    for (const l of net.leaders()) {
      const c = net.core(l);
      for (const [data, p] of proposed) {
        if (p.index <= c.status().commit && c.log.term(p.index) === p.term) committed.set(p.index, data);
      }
    }
  }
  net.heal();
  net.dropIf = undefined;
  for (const id of ids) if (net.node(id).down) net.restart(id);
  net.run(100);
  const l = net.leader();
  net.propose('final');
  net.run(20);
  const conf = net.core(l).status().conf;
  const members = [...conf.voters, ...conf.learners];
  for (const id of members) assert.deepEqual(net.node(id).sm, net.node(l).sm, `node ${id} state machine`);
  for (const id of members) assert.deepEqual(net.core(id).status().conf, conf, `node ${id} membership`);
  const sm = new Set(net.node(l).sm);
  for (const [index, data] of committed) assert.ok(sm.has(data), `acknowledged write ${data}@${index} lost`);
  assert.ok(committed.size > 10, `only ${committed.size} writes committed`);
  assert.equal(net.core(l).role, Role.Leader);
  if (process.env.RAFT_STATS) {
    const snaps = ids.reduce((a, id) => a + net.node(id).snapshotsInstalled, 0);
    console.log(`      seed ${seed}: changes ${changes}, voters ${conf.voters}, learners ${conf.learners}, terms ${net.leaderOfTerm.size}, committed ${committed.size}, snapshots ${snaps}, msgs ${net.sent.length}`);
  }
}

describe('seeded random faults keep Raft safe', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`seed ${seed}`, () => chaos(seed, 400));
  }
  for (const seed of [11, 12, 13, 15]) {
    it(`seed ${seed} with membership changes`, () => chaos(seed, 400, true));
  }
});
