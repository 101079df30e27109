import assert from 'node:assert/strict';
import { TestNetwork, lcg } from './network';
import { MsgType } from '../../../src/raft/types';

function lagging(chunk: number, dropEvery = 0) {
  const net = new TestNetwork([1, 2, 3], { cfg: { snapshotChunkBytes: chunk } });
  const l = net.electLeader();
  net.propose('first');
  const f = [1, 2, 3].find((x) => x !== l)!;
  net.isolate(f);
  for (let i = 0; i < 60; i++) net.propose(`value-${i}`);
  net.run(1);
  for (const id of [1, 2, 3]) if (id !== f) net.compact(id);
  assert.ok(net.core(l).log.firstIndex() > net.core(f).log.lastIndex() + 1, 'leader log compacted past the follower');
  if (dropEvery > 0) {
    let k = 0;
    net.dropIf = (m) => (m.type === MsgType.Snap || m.type === MsgType.SnapResp) && ++k % dropEvery === 0;
  }
  const before = net.sent.length;
  net.heal();
  net.run(60);
  return { net, l, f, msgs: net.sent.slice(before) };
}

describe('snapshot catch-up of a lagging follower', () => {
  it('sends the compacted state in chunks, reassembled and installed by the follower', () => {
    const { net, l, f, msgs } = lagging(64);
    const snaps = msgs.filter((m) => m.type === MsgType.Snap && m.to === f);
    const total = net.core(l).log.snapshot()!.data.byteLength;
    assert.ok(total > 64 * 4);
    assert.equal(snaps.length, Math.ceil(total / 64), 'one message per chunk, no retransmissions');
    for (const m of snaps) assert.ok(m.snapshot!.data.byteLength <= 64);
    assert.deepEqual(snaps.map((m) => m.snapshot!.offset), snaps.map((_, i) => i * 64));
    assert.equal(snaps.filter((m) => m.snapshot!.done).length, 1);
    // acked per chunk
    assert.equal(msgs.filter((m) => m.type === MsgType.SnapResp && m.from === f).length, snaps.length - 1);
    assert.equal(net.node(f).snapshotsInstalled, 1);
    assert.deepEqual(net.node(f).sm, net.node(l).sm);
    net.propose('after');
    assert.deepEqual(net.node(f).sm, net.node(l).sm);
    const st = net.core(l).status().progress.find((p) => p.id === f)!;
    assert.equal(st.state, 'replicate');
  });

  it('recovers from lost chunks and lost chunk acks', () => {
    const { net, l, f } = lagging(50, 3);
    assert.equal(net.node(f).snapshotsInstalled, 1);
    assert.deepEqual(net.node(f).sm, net.node(l).sm);
  });

  it('a follower restarted mid-transfer starts over and still converges', () => {
    const net = new TestNetwork([1, 2, 3], { cfg: { snapshotChunkBytes: 40 } });
    const l = net.electLeader();
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.isolate(f);
    for (let i = 0; i < 40; i++) net.propose(`v${i}`);
    net.run(1);
    net.compact(l);
    net.heal();
    let chunks = 0;
    net.holdIf = (m) => m.type === MsgType.Snap && ++chunks === 4; // interrupt after 3 chunks
    net.run(2);
    net.holdIf = undefined;
    net.held = [];
    net.crash(f);
    net.restart(f);
    net.run(60);
    assert.deepEqual(net.node(f).sm, net.node(l).sm);
  });

  it('survives random message loss while compacting repeatedly (seeded)', () => {
    const rnd = lcg(42);
    const net = new TestNetwork([1, 2, 3, 4, 5], { cfg: { snapshotChunkBytes: 100 } });
    net.electLeader();
    for (let round = 0; round < 30; round++) {
      net.dropIf = (m) => rnd(10) === 0;
      const lid = net.leaders().length ? net.leader() : undefined;
      if (lid !== undefined) net.core(lid).propose(new TextEncoder().encode(`r${round}`));
      net.run(3);
      if (round % 7 === 6) for (const id of [1, 2, 3, 4, 5]) if (net.node(id).appliedIndex > net.core(id).log.firstIndex()) net.compact(id);
    }
    net.dropIf = undefined;
    net.run(60);
    const l = net.leader();
    for (const id of [1, 2, 3, 4, 5]) assert.deepEqual(net.node(id).sm, net.node(l).sm, `node ${id}`);
  });
});
