/**
 * The log states of the Raft paper's Figure 7 and the commit hazard of Figure 8.
 */
import assert from 'node:assert/strict';
import { TestNetwork, storageWithLog } from './network';
import { RaftCore } from '../../../src/raft/core';
import { defaultConfig } from './network';
import { ConfState, MsgType, Role, Message } from '../../../src/raft/types';

const conf3: ConfState = { voters: [1, 2, 3], learners: [], votersOutgoing: [] };

// Figure 7: the leader's log (terms of indices 1..10) and the follower logs (a)-(f)
const LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const FIG7: [string, number[]][] = [
  ['(a) missing one entry', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
  ['(b) missing many entries', [1, 1, 1, 4]],
  ['(c) one extra uncommitted entry of the leader term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
  ['(d) extra entries of a later term', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
  ['(e) missing entries and extra entries of term 4', [1, 1, 1, 4, 4, 4, 4]],
  ['(f) extra entries of terms 2 and 3', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
];

describe('Figure 7: a new leader brings every follower log into agreement', () => {
  for (const [name, follower] of FIG7) {
    it(name, () => {
      const net = new TestNetwork([], { cfg: { preVote: false, checkQuorum: false } });
      net.addNode(1, conf3, storageWithLog(conf3, LEADER, 7));
      net.addNode(2, conf3, storageWithLog(conf3, follower, Math.max(...follower)));
      net.addNode(3, conf3, storageWithLog(conf3, LEADER, 7)); // votes for the leader
      net.core(1).campaign();
      net.stabilize();
      assert.equal(net.core(1).role, Role.Leader);
      assert.equal(net.core(1).term, 8);
      const rejects = net.sent.filter((m) => m.type === MsgType.AppResp && m.reject && m.from === 2).length;
      const expected = [...LEADER, 8];
      for (const id of [1, 2, 3]) assert.deepEqual(net.logTerms(id), expected, `node ${id}`);
      for (const id of [1, 2, 3]) assert.equal(net.core(id).status().commit, 11, `commit on ${id}`);
      // fast backtracking: conflict term + first index hints, not one probe per entry
      assert.ok(rejects <= 3, `${rejects} rejections`);
    });
  }
});

describe('Figure 8: an entry of an older term is not committed by counting replicas', () => {
  const conf5: ConfState = { voters: [1, 2, 3, 4, 5], learners: [], votersOutgoing: [] };
  function leaderAtTerm4(): RaftCore {
    // S1 holds [1:t1, 2:t2] and was leader of term 2; it is elected again in term 4
    const st = storageWithLog(conf5, [1, 2], 3);
    const c = new RaftCore(defaultConfig(1, 1, { preVote: false, checkQuorum: false }), st, st.hardState);
    c.campaign();
    for (const from of [2, 3]) c.step({ type: MsgType.VoteResp, from, to: 1, term: 4, reject: false });
    assert.equal(c.role, Role.Leader);
    const rd = c.ready();
    st.append(rd.entries); // the term-4 noop at index 3
    c.advance(rd);
    return c;
  }
  const ack = (from: number, index: number): Message => ({ type: MsgType.AppResp, from, to: 1, term: 4, index });

  // [acks (from, index)...] -> expected commit
  const table: [string, [number, number][], number][] = [
    ['index 2 (term 2) on S1,S2,S3: a majority, but not committed', [[2, 2], [3, 2]], 0],
    ['index 2 on all five: still not committed', [[2, 2], [3, 2], [4, 2], [5, 2]], 0],
    ['index 3 (term 4) on S1,S2 only: no majority', [[2, 3]], 0],
    ['index 3 (term 4) on S1,S2,S3: commits 3 and with it 2', [[2, 3], [3, 3]], 3],
  ];
  for (const [name, acks, commit] of table) {
    it(name, () => {
      const c = leaderAtTerm4();
      for (const [from, index] of acks) c.step(ack(from, index));
      assert.equal(c.status().commit, commit);
    });
  }

  it('the full Figure 8 sequence: S5 may overwrite the uncommitted term-2 entry', () => {
    // (a)-(c): S1 [1,2] S2 [1,2] S3 [1,2] S4 [1] S5 [1,3]; the term-2 entry reached S3 in term 4 but
    // was not committed. (d): S1 crashes before replicating its term-4 entry; S5 (last term 3) wins
    // with S2,S3,S4 and overwrites index 2 everywhere.
    const net = new TestNetwork([], { cfg: { preVote: false, checkQuorum: false } });
    net.addNode(1, conf5, storageWithLog(conf5, [1, 2], 4));
    net.addNode(2, conf5, storageWithLog(conf5, [1, 2], 4));
    net.addNode(3, conf5, storageWithLog(conf5, [1, 2], 4));
    net.addNode(4, conf5, storageWithLog(conf5, [1], 4));
    net.addNode(5, conf5, storageWithLog(conf5, [1, 3], 4));
    for (const id of [1, 2, 3, 4, 5]) assert.equal(net.core(id).status().commit, 0);
    net.crash(1);
    net.core(5).campaign();
    net.stabilize();
    assert.equal(net.core(5).role, Role.Leader);
    for (const id of [2, 3, 4, 5]) assert.deepEqual(net.logTerms(id), [1, 3, 5], `node ${id}`);
    net.restart(1);
    net.run(3);
    assert.deepEqual(net.logTerms(1), [1, 3, 5]);
    assert.equal(net.core(1).status().commit, 3);
  });
});

describe('fast log backtracking on long divergent logs', () => {
  // [name, leader terms, follower terms, max rejections]
  const rep = (t: number, n: number) => Array<number>(n).fill(t);
  const table: [string, number[], number[], number][] = [
    ['follower 1000 entries behind', [1, ...rep(2, 1000)], [1], 1],
    ['follower with 1000 entries of a stale term', [1, ...rep(3, 500)], [1, ...rep(2, 1000)], 2],
    ['many short stale terms', [1, ...rep(9, 50)], [1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8], 2],
  ];
  for (const [name, leader, follower, maxRejects] of table) {
    it(name, () => {
      const net = new TestNetwork([], { cfg: { preVote: false, checkQuorum: false } });
      const lt = Math.max(...leader);
      const ft = Math.max(...follower);
      const hard = Math.max(lt, ft);
      net.addNode(1, conf3, storageWithLog(conf3, leader, hard));
      net.addNode(2, conf3, storageWithLog(conf3, follower, hard));
      net.addNode(3, conf3, storageWithLog(conf3, leader, hard));
      net.core(1).campaign();
      net.stabilize();
      assert.equal(net.core(1).role, Role.Leader);
      const rejects = net.sent.filter((m) => m.type === MsgType.AppResp && m.reject && m.from === 2).length;
      assert.deepEqual(net.logTerms(2), net.logTerms(1));
      assert.ok(rejects <= maxRejects, `${rejects} rejections`);
    });
  }
});
