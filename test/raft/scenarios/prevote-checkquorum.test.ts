import assert from 'node:assert/strict';
import { TestNetwork } from './network';
import { MsgType, Role } from '../../../src/raft/types';

describe('pre-vote and check-quorum', () => {
  it('a partitioned node rejoining does not disrupt the leader (its term does not rise)', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    const term = net.core(l).term;
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.isolate(f);
    net.run(100); // 10 election timeouts
    assert.equal(net.core(f).term, term, 'pre-vote keeps the isolated node at its term');
    assert.notEqual(net.core(f).role, Role.Leader);
    net.heal();
    net.run(30);
    assert.equal(net.leader(), l);
    assert.equal(net.core(l).term, term);
    assert.equal(net.core(f).term, term);
    assert.equal(net.core(f).lead, l);
    net.propose('after');
    assert.deepEqual(net.node(f).sm, ['after']);
  });

  it('without pre-vote the same rejoin bumps the term (control: the test can fail)', () => {
    const net = new TestNetwork([1, 2, 3], { cfg: { preVote: false, checkQuorum: false } });
    const l = net.electLeader();
    const term = net.core(l).term;
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.isolate(f);
    net.run(100);
    assert.ok(net.core(f).term > term);
  });

  it('a leader in the minority steps down within an election timeout (check-quorum)', () => {
    const net = new TestNetwork([1, 2, 3, 4, 5]);
    const l = net.electLeader();
    const others = [1, 2, 3, 4, 5].filter((x) => x !== l);
    net.partition([l, others[0]!], others.slice(1));
    let stepped = -1;
    for (let t = 1; t <= 25; t++) {
      net.run(1);
      if (net.core(l).role !== Role.Leader) {
        stepped = t;
        break;
      }
    }
    assert.ok(stepped > 0 && stepped <= 20, `stepped down after ${stepped} ticks`);
    net.run(40);
    const nl = net.leader();
    assert.ok(others.slice(1).includes(nl));
    // the old leader, in the minority, refuses proposals
    const r = net.core(l).propose(new Uint8Array([1]));
    assert.ok('error' in r && r.error === 'not_leader');
  });

  it('followers that recently heard from the leader ignore vote requests (lease)', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const [a, b] = [1, 2, 3].filter((x) => x !== l) as [number, number];
    const t = net.core(a).term;
    // a forged vote request of a higher term reaching b while b hears from the leader
    net.deliver({ type: MsgType.Vote, from: a, to: b, term: t + 1, index: 100, logTerm: t });
    net.processReady(b);
    assert.equal(net.core(b).term, t);
    assert.ok(!net.inflight.some((m) => m.type === MsgType.VoteResp));
  });
});
