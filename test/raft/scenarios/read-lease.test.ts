import assert from 'node:assert/strict';
import { TestNetwork } from './network';
import { MsgType, Role } from '../../../src/raft/types';

describe('ReadIndex', () => {
  it('a leader answers only after a quorum acknowledged a heartbeat sent after the request', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.propose('a');
    net.holdIf = (m) => m.type === MsgType.HeartbeatResp;
    assert.deepEqual(net.core(l).readIndex(7), { ok: true });
    net.stabilize();
    assert.equal(net.node(l).readStates.length, 0);
    assert.ok(net.held.length >= 1);
    net.holdIf = undefined;
    net.release();
    net.stabilize();
    assert.deepEqual(net.node(l).readStates, [{ id: 7, index: net.core(l).status().commit }]);
  });

  it('a follower forwards the request and gets the leader commit index', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    const idx = net.propose('a');
    const f = [1, 2, 3].find((x) => x !== l)!;
    assert.deepEqual(net.core(f).readIndex(42), { ok: true });
    net.stabilize();
    assert.deepEqual(net.node(f).readStates, [{ id: 42, index: idx }]);
  });

  it('a stale leader cannot serve reads (no quorum acknowledges it)', () => {
    // without check-quorum the old leader keeps believing it leads
    const net = new TestNetwork([1, 2, 3, 4, 5], { cfg: { checkQuorum: false } });
    const old = net.electLeader();
    net.propose('a');
    const others = [1, 2, 3, 4, 5].filter((x) => x !== old);
    net.partition([old, others[0]!], others.slice(1));
    net.run(40, others.slice(1));
    const nl = net.leader();
    assert.notEqual(nl, old);
    assert.equal(net.core(old).role, Role.Leader, 'old leader still thinks it leads');
    const w = net.propose('b', nl);
    net.core(old).readIndex(1);
    net.run(20, [old, others[0]!]);
    assert.equal(net.node(old).readStates.length, 0, 'stale leader served a read');
    net.core(nl).readIndex(2);
    net.stabilize();
    assert.deepEqual(net.node(nl).readStates, [{ id: 2, index: w }]);
  });

  it('a new leader answers only after committing an entry of its term', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.propose('a');
    const n = [1, 2, 3].find((x) => x !== l)!;
    // n becomes leader; its App messages (carrying its noop) are held back
    net.holdIf = (m) => m.from === n && m.type === MsgType.App;
    net.core(l).transferLeadership(n);
    net.stabilize();
    assert.equal(net.core(n).role, Role.Leader);
    net.core(n).readIndex(5);
    net.run(3);
    assert.equal(net.node(n).readStates.length, 0);
    net.holdIf = undefined;
    net.release();
    net.run(2);
    const commit = net.core(n).status().commit;
    assert.equal(net.core(n).log.term(commit), net.core(n).term);
    assert.deepEqual(net.node(n).readStates, [{ id: 5, index: commit }]);
  });
});

describe('leader lease', () => {
  it('expires before any other node can be elected', () => {
    const net = new TestNetwork([1, 2, 3], { cfg: { electionTicks: 10, heartbeatTicks: 2 } });
    const l = net.electLeader();
    net.run(6);
    const st = net.core(l).status();
    assert.ok(st.leaseValidUntil > st.now, `lease ${st.leaseValidUntil} now ${st.now}`);
    const leaseEnd = st.leaseValidUntil;
    net.isolate(l);
    const others = [1, 2, 3].filter((x) => x !== l);
    let electedAt = -1;
    for (let t = 0; t < 100 && electedAt < 0; t++) {
      net.run(1);
      const [a, b] = others as [number, number];
      if (net.core(a).status().now < leaseEnd) {
        // while the old lease holds, a vote request (even from an up-to-date candidate) is ignored
        const term = net.core(b).term;
        net.deliver({ type: MsgType.Vote, from: a, to: b, term: term + 1, index: 1000, logTerm: term });
        assert.equal(net.core(b).term, term, `vote accepted at ${net.core(a).status().now} < ${leaseEnd}`);
      }
      if (others.some((x) => net.core(x).role === Role.Leader)) electedAt = net.core(others[0]!).status().now;
    }
    assert.ok(electedAt > 0, 'a new leader was elected');
    console.log(`      (new leader at tick ${electedAt}, old lease until ${leaseEnd})`);
    assert.ok(electedAt >= leaseEnd, `new leader at ${electedAt}, old lease until ${leaseEnd}`);
    // the isolated leader's lease is not renewed
    assert.ok(net.core(l).leaseValidUntil() <= leaseEnd);
    assert.ok(net.core(l).status().now >= net.core(l).leaseValidUntil());
  });

  it('lease-based reads are answered at once while the lease holds, and not once it expired', () => {
    const net = new TestNetwork([1, 2, 3], { core: { leaseReads: true, leaseTicks: 4 } });
    const l = net.electLeader();
    net.propose('a');
    net.run(2);
    net.isolate(l);
    net.core(l).readIndex(1);
    net.processReady(l);
    assert.equal(net.node(l).readStates.length, 1, 'served from the lease without a round trip');
    // let the lease run out (no heartbeat acks while isolated)
    net.run(5, [l]);
    assert.equal(net.core(l).role, Role.Leader);
    const st = net.core(l).status();
    assert.ok(st.now >= st.leaseValidUntil);
    net.core(l).readIndex(2);
    net.run(1, [l]);
    assert.equal(net.node(l).readStates.length, 1, 'expired lease must not serve');
  });

  it('is void once the leader sent TimeoutNow', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(3);
    assert.ok(net.core(l).leaseValidUntil() > 0);
    const t = [1, 2, 3].find((x) => x !== l)!;
    net.holdIf = (m) => m.type === MsgType.TimeoutNow;
    net.core(l).transferLeadership(t);
    net.stabilize();
    assert.equal(net.core(l).leaseValidUntil(), 0);
    net.run(12, [l]); // transfer aborted, still leader, lease stays void this term
    assert.equal(net.core(l).role, Role.Leader);
    assert.equal(net.core(l).leaseValidUntil(), 0);
  });
});
