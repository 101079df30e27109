import assert from 'node:assert/strict';
import { TestNetwork, enc } from './network';
import { Message, MsgType } from '../../../src/raft/types';

// The transport (transport.ts laneOf) sends App messages carrying entries on the bulk lane and
// heartbeats on the control lane, a separate TCP connection: a heartbeat overtakes the appends queued
// before it (by design: "heartbeats never queue behind them"). The heartbeat response's log position
// must not be read as "the Apps sent before this heartbeat were lost" when they are merely slower.
const carries = (m: Message) => m.type === MsgType.App && (m.entries?.length ?? 0) > 0;

function sentCounts(msgs: Message[], to: number): Map<number, number> {
  const n = new Map<number, number>();
  for (const m of msgs) if (m.to === to && carries(m)) for (const e of m.entries!) n.set(e.index, (n.get(e.index) ?? 0) + 1);
  return n;
}

describe('heartbeats overtaking appends (separate transport lanes)', () => {
  it('a heartbeat answered before the appends sent ahead of it arrive does not resend them', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const f = [1, 2, 3].find((x) => x !== l)!;
    const before = net.sent.length;
    // the bulk lane to f lags: the appends are held, control messages (heartbeats) go through
    net.holdIf = (m) => m.to === f && carries(m);
    for (let i = 0; i < 8; i++) {
      assert.ok('index' in net.core(l).propose(enc(`w${i}`)));
      net.stabilize();
    }
    assert.equal(net.held.length, 8, 'one App per Ready, all on the slow lane');
    // a heartbeat round overtakes them and is answered
    net.run(1);
    // the slow lane delivers, in order, everything it had
    net.holdIf = undefined;
    net.release();
    net.stabilize();
    net.run(3);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).sm.length, 8);
    const dup = [...sentCounts(net.sent.slice(before), f)].filter(([, c]) => c > 1).map(([i]) => i);
    assert.deepEqual(dup, [], `entries sent twice to ${f} without any loss: ${dup.join(',')}`);
  });

  it('a commit-only App overtaking the appends sent ahead of it is not rejected (nothing resent)', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const [f, g] = [1, 2, 3].filter((x) => x !== l) as [number, number];
    const before = net.sent.length;
    // two batches go out to both followers before either is acknowledged; f's copies are on its
    // slow lane, g's acknowledgements are late
    net.holdIf = (m) => (m.to === f && carries(m)) || m.from === g;
    for (let i = 0; i < 4; i++) assert.ok('index' in net.core(l).propose(enc(`a${i}`)));
    net.stabilize();
    for (let i = 0; i < 4; i++) assert.ok('index' in net.core(l).propose(enc(`b${i}`)));
    net.stabilize();
    const toF = net.held.filter((m) => m.to === f);
    assert.equal(toF.length, 2);
    // g's acks commit both batches
    net.release((m) => m.from === g);
    net.stabilize();
    // f receives the first batch and acks it: the leader tells f the commit index up to there with an
    // App without entries (control lane), which arrives before the second batch
    net.held = net.held.filter((m) => m !== toF[0]);
    net.deliver(toF[0]!);
    net.stabilize();
    net.holdIf = undefined;
    net.release();
    net.stabilize();
    net.run(3);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).sm.length, 8);
    const dup = [...sentCounts(net.sent.slice(before), f)].filter(([, c]) => c > 1).map(([i]) => i);
    assert.deepEqual(dup, [], `entries sent twice to ${f} without any loss: ${dup.join(',')}`);
  });

  it('a commit-only App overtaking the appends sent ahead of it is not rejected (nothing resent)', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const [f, g] = [1, 2, 3].filter((x) => x !== l) as [number, number];
    const before = net.sent.length;
    // entries 1..4 (after the leader's noop) go out to both followers; f's copy is on its slow lane
    net.holdIf = (m) => m.to === f && carries(m);
    for (let i = 0; i < 4; i++) assert.ok('index' in net.core(l).propose(enc(`a${i}`)));
    net.stabilize(); // g acks: committed
    // f receives the first batch and acks it; the second batch is still on the slow lane
    for (let i = 0; i < 4; i++) assert.ok('index' in net.core(l).propose(enc(`b${i}`)));
    net.holdIf = (m) => (m.to === f && carries(m)) || m.to === g;
    net.stabilize();
    assert.equal(net.held.filter((m) => m.to === f).length, 2);
    net.deliver(net.held.shift()!);
    // f's ack leads the leader to tell f the commit index with an App without entries (control lane):
    // it arrives before the second batch
    net.holdIf = (m) => (m.to === f && carries(m)) || m.to === g;
    net.stabilize();
    net.holdIf = undefined;
    net.release();
    net.stabilize();
    net.run(3);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).sm.length, 8);
    const dup = [...sentCounts(net.sent.slice(before), f)].filter(([, c]) => c > 1).map(([i]) => i);
    assert.deepEqual(dup, [], `entries sent twice to ${f} without any loss: ${dup.join(',')}`);
  });

  it('still detects appends that were really lost (the tail of the stream)', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.dropIf = (m) => m.to === f && carries(m);
    for (let i = 0; i < 4; i++) {
      assert.ok('index' in net.core(l).propose(enc(`w${i}`)));
      net.stabilize();
    }
    net.dropIf = undefined;
    assert.equal(net.node(f).sm.length, 0);
    // nothing else is proposed: only heartbeat responses can tell the leader
    net.run(5);
    assert.equal(net.node(f).sm.length, 4);
  });
});
