import assert from 'node:assert/strict';
import { TestNetwork, enc } from './network';
import { MsgType, Role } from '../../../src/raft/types';

describe('leadership transfer', () => {
  it('hands leadership to a caught-up follower via TimeoutNow', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.propose('a');
    const target = [1, 2, 3].find((x) => x !== l)!;
    const term = net.core(l).term;
    assert.deepEqual(net.core(l).transferLeadership(target), { ok: true });
    net.stabilize();
    assert.ok(net.sent.some((m) => m.type === MsgType.TimeoutNow && m.to === target));
    assert.equal(net.leader(), target);
    assert.equal(net.core(target).term, term + 1);
    assert.equal(net.core(l).role, Role.Follower);
    net.propose('b');
    for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).sm, ['a', 'b']);
  });

  it('waits for a lagging target to catch up, refusing proposals meanwhile', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    const [target, other] = [1, 2, 3].filter((x) => x !== l) as [number, number];
    net.isolate(target);
    net.propose('a');
    net.propose('b');
    assert.deepEqual(net.core(l).transferLeadership(target), { ok: true });
    const r = net.core(l).propose(enc('refused'));
    assert.deepEqual(r, { error: 'transferring', leader: l });
    net.stabilize();
    assert.ok(!net.sent.some((m) => m.type === MsgType.TimeoutNow), 'no TimeoutNow to a lagging target');
    net.heal();
    net.run(3);
    assert.equal(net.leader(), target);
    assert.deepEqual(net.node(target).sm, ['a', 'b']);
    assert.equal(net.core(other).lead, target);
  });

  it('is aborted after an election timeout if the target does not catch up', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    const target = [1, 2, 3].find((x) => x !== l)!;
    net.isolate(target);
    net.propose('a');
    net.core(l).transferLeadership(target);
    assert.equal(net.core(l).status().leadTransferee, target);
    net.run(11, [1, 2, 3].filter((x) => x !== target));
    assert.equal(net.core(l).status().leadTransferee, 0);
    assert.equal(net.leader(), l);
    assert.ok('index' in net.core(l).propose(enc('ok again')));
  });
});
