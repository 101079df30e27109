import assert from 'node:assert/strict';
import { TestNetwork, enc } from './network';
import { Role, MsgType } from '../../../src/raft/types';
import { RaftCore } from '../../../src/raft/core';
import { MemoryStorage } from '../../../src/raft/memory-storage';
import { defaultConfig } from './network';

describe('raft core: elections, replication, commit', () => {
  it('elects exactly one leader and replicates + applies proposals on every node', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    assert.deepEqual(net.leaders(), [l]);
    const term = net.core(l).term;
    for (let i = 0; i < 20; i++) net.propose(`v${i}`);
    net.run(2);
    for (const id of [1, 2, 3]) {
      const n = net.node(id);
      assert.deepEqual(n.sm, Array.from({ length: 20 }, (_, i) => `v${i}`), `node ${id}`);
      assert.equal(n.core.term, term);
      assert.equal(n.core.status().commit, n.core.log.lastIndex());
    }
  });

  it('single-node cluster commits only after its own storage acknowledged the entry', () => {
    const st = new MemoryStorage({ voters: [1], learners: [], votersOutgoing: [] });
    const c = new RaftCore(defaultConfig(1, 1, { checkQuorum: false }), st);
    c.campaign();
    assert.equal(c.role, Role.Leader);
    let rd = c.ready();
    assert.equal(rd.entries.length, 1); // the noop
    assert.equal(rd.committed.length, 0);
    const r = c.propose(enc('x'));
    assert.ok('index' in r);
    // not yet persisted: nothing committed even though the node is alone
    assert.equal(c.status().commit, 0);
    st.append(rd.entries);
    c.advance(rd);
    assert.equal(c.status().commit, 1); // noop persisted
    rd = c.ready();
    assert.deepEqual(rd.entries.map((e) => e.index), [2]);
    assert.deepEqual(rd.committed.map((e) => e.index), [1]);
    st.append(rd.entries);
    c.advance(rd);
    assert.equal(c.status().commit, 2);
    rd = c.ready();
    assert.deepEqual(rd.committed.map((e) => e.index), [2]);
    c.advance(rd);
    assert.equal(c.status().applied, 2);
  });

  it('a proposal on a follower is refused with the leader id', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(1);
    const f = [1, 2, 3].find((x) => x !== l)!;
    const r = net.core(f).propose(enc('x'));
    assert.deepEqual(r, { error: 'not_leader', leader: l });
  });

  it('messages of a Ready carrying a vote come with the hard state recording that vote', () => {
    const net = new TestNetwork([1, 2, 3], { cfg: { preVote: false, checkQuorum: false } });
    net.core(1).campaign();
    net.processReady(1);
    const votes = net.inflight.filter((m) => m.type === MsgType.Vote);
    assert.equal(votes.length, 2);
    net.inflight = [];
    net.deliver(votes[0]!);
    const rd = net.core(votes[0]!.to).ready();
    assert.equal(rd.hardState?.vote, 1);
    assert.ok(rd.messages.some((m) => m.type === MsgType.VoteResp && !m.reject));
  });
});

describe('raft core: the caller may step the core while a Ready is being persisted', () => {
  it('entries, acks and proposals arriving between ready() and advance() end up in the next Ready', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(1);
    const c = net.core(l);
    const st = net.node(l).storage;
    c.propose(enc('a'));
    c.propose(enc('b'));
    const rd1 = c.ready(); // entries a, b; Apps to both followers
    assert.deepEqual(rd1.entries.map((e) => new TextDecoder().decode(e.data)), ['a', 'b']);
    assert.throws(() => c.ready(), /advance/);
    // while the leader is "fsyncing": followers get the Apps and ack; new proposals arrive
    for (const m of rd1.messages) net.deliver(m);
    for (const id of [1, 2, 3]) if (id !== l) net.processReady(id);
    const acks = net.inflight.splice(0);
    for (const m of acks) c.step(m);
    // followers acked: a and b are committed by the two followers even before the leader's own fsync
    assert.equal(c.status().commit, rd1.entries[1]!.index);
    c.propose(enc('c'));
    st.setHardState(rd1.hardState ?? st.hardState);
    st.append(rd1.entries);
    c.advance(rd1);
    const rd2 = c.ready();
    assert.deepEqual(rd2.entries.map((e) => new TextDecoder().decode(e.data)), ['c']);
    assert.deepEqual(rd2.committed.map((e) => new TextDecoder().decode(e.data)), ['a', 'b']);
    st.append(rd2.entries);
    c.advance(rd2);
  });
});
