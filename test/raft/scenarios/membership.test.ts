import assert from 'node:assert/strict';
import { TestNetwork } from './network';
import { MsgType, Role } from '../../../src/raft/types';


describe('membership changes (single-server, learners promoted when caught up)', () => {
  it('adds a node while another is down: learner, catch-up, promotion', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    for (let i = 0; i < 5; i++) net.propose(`v${i}`);
    const down = [1, 2, 3].find((x) => x !== l)!;
    net.crash(down);
    net.addNode(4); // empty membership: joins when the leader adds it
    let r = net.core(l).proposeConfChange({ type: 'addLearner', node: 4 });
    assert.ok('index' in r, JSON.stringify(r));
    // one change at a time
    assert.deepEqual(net.core(l).proposeConfChange({ type: 'addLearner', node: 5 }), { error: 'conf_change_pending', leader: l });
    net.stabilize();
    net.run(3);
    assert.deepEqual(net.core(l).status().conf.learners, [4]);
    assert.deepEqual(net.node(4).sm, ['v0', 'v1', 'v2', 'v3', 'v4']);
    assert.equal(net.core(4).role, Role.Follower);
    r = net.core(l).proposeConfChange({ type: 'promote', node: 4 });
    assert.ok('index' in r, JSON.stringify(r));
    net.stabilize();
    net.run(2);
    assert.deepEqual(net.core(l).status().conf.voters, [1, 2, 3, 4]);
    assert.deepEqual(net.core(4).status().conf.voters, [1, 2, 3, 4]);
    // 3 of 4 voters are up: commits continue
    net.propose('after');
    for (const id of [1, 2, 3, 4].filter((x) => x !== down)) assert.deepEqual(net.node(id).sm.at(-1), 'after');
  });

  it('refuses to promote a learner that has not caught up', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    for (let i = 0; i < 5; i++) net.propose(`v${i}`);
    net.addNode(4);
    net.crash(4);
    net.core(l).proposeConfChange({ type: 'addLearner', node: 4 });
    net.stabilize();
    net.run(2);
    assert.deepEqual(net.core(l).proposeConfChange({ type: 'promote', node: 4 }), { error: 'not_caught_up', leader: l });
  });

  it('removes the leader: it hands over, steps down, and the rest carry on', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.propose('a');
    const r = net.core(l).proposeConfChange({ type: 'remove', node: l });
    assert.ok('index' in r);
    net.stabilize();
    net.run(30);
    const rest = [1, 2, 3].filter((x) => x !== l);
    const nl = net.leader();
    assert.ok(rest.includes(nl));
    assert.deepEqual(net.core(nl).status().conf.voters, rest);
    assert.notEqual(net.core(l).role, Role.Leader);
    net.propose('b');
    for (const id of rest) assert.deepEqual(net.node(id).sm, ['a', 'b']);
    // the removed node never campaigns again
    net.run(50);
    assert.equal(net.leader(), nl);
  });

  it('removes a follower that is down; the two remaining voters commit', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    const gone = [1, 2, 3].find((x) => x !== l)!;
    net.crash(gone);
    assert.ok('index' in net.core(l).proposeConfChange({ type: 'remove', node: gone }));
    net.stabilize();
    net.run(2);
    const rest = [1, 2, 3].filter((x) => x !== gone);
    assert.deepEqual(net.core(l).status().conf.voters, rest);
    const other = rest.find((x) => x !== l)!;
    net.crash(other);
    // with 2 voters, one alone cannot commit
    const p = net.core(l).propose(new TextEncoder().encode('x'));
    assert.ok('index' in p);
    net.run(3, [l]);
    assert.ok(net.core(l).status().commit < p.index);
  });

  it('a leader elected with an uncommitted change commits an entry of its term before the next change', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(1);
    // the first change is not committed yet: the second is refused
    const r = net.core(l).proposeConfChange({ type: 'addLearner', node: 9 });
    assert.ok('index' in r);
    assert.deepEqual(net.core(l).proposeConfChange({ type: 'remove', node: 9 }), { error: 'conf_change_pending', leader: l });
  });

  it('a new leader refuses a change until it committed an entry of its term', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(1);
    const f = [1, 2, 3].find((x) => x !== l)!;
    // hold the new leader's App messages: it wins, but its noop cannot commit
    net.holdIf = (m) => m.from === f && m.type === MsgType.App;
    assert.deepEqual(net.core(l).transferLeadership(f), { ok: true });
    net.stabilize();
    assert.equal(net.core(f).role, Role.Leader);
    assert.deepEqual(net.core(f).proposeConfChange({ type: 'addLearner', node: 9 }), { error: 'conf_change_pending', leader: f });
    net.holdIf = undefined;
    net.release();
    net.stabilize();
    assert.equal(net.core(f).status().commit, net.core(f).status().lastIndex);
    const r = net.core(f).proposeConfChange({ type: 'addLearner', node: 9 });
    assert.ok('index' in r, JSON.stringify(r));
  });
});

describe('membership survives restarts', () => {
  it('a restarted node rebuilds its membership from the snapshot and the ConfChange entries of its log', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.addNode(4);
    assert.ok('index' in net.core(l).proposeConfChange({ type: 'addLearner', node: 4 }));
    net.run(3);
    assert.ok('index' in net.core(l).proposeConfChange({ type: 'promote', node: 4 }));
    net.run(3);
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.crash(f);
    net.restart(f);
    assert.deepEqual(net.core(f).status().conf.voters, [1, 2, 3, 4]);
    // the joining node got the bootstrap snapshot (index 0, carrying the founders) durably
    net.crash(4);
    net.restart(4);
    assert.deepEqual(net.core(4).status().conf.voters, [1, 2, 3, 4]);
    net.run(5);
    net.propose('x');
    for (const id of [1, 2, 3, 4]) assert.deepEqual(net.node(id).sm, ['x']);
  });

  it('after compaction the snapshot carries the membership', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    assert.ok('index' in net.core(l).proposeConfChange({ type: 'remove', node: 3 }));
    net.run(3);
    net.propose('a');
    for (const id of [1, 2]) net.compact(id);
    assert.deepEqual(net.node(l).storage.snapshot().meta.conf.voters, [1, 2]);
    const f = l === 1 ? 2 : 1;
    net.crash(f);
    net.restart(f);
    assert.deepEqual(net.core(f).status().conf.voters, [1, 2]);
  });
});
