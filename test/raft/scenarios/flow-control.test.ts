import assert from 'node:assert/strict';
import { TestNetwork, enc } from './network';
import { Message, MsgType } from '../../../src/raft/types';

const bytesOf = (m: Message) => (m.entries ?? []).reduce((a, e) => a + e.data.byteLength, 0);
const carries = (m: Message) => m.type === MsgType.App && (m.entries?.length ?? 0) > 0;

describe('flow control and batching', () => {
  const cfg = { maxInflightMsgs: 4, maxInflightBytes: 1000, maxMsgBytes: 300 };

  it('never has more than maxInflightMsgs / maxInflightBytes outstanding to a slow follower', () => {
    const net = new TestNetwork([1, 2, 3], { cfg });
    const l = net.electLeader();
    net.run(1);
    const f = [1, 2, 3].find((x) => x !== l)!;
    net.holdIf = (m) => m.to === f && m.type === MsgType.App;
    let maxMsgs = 0;
    let maxBytes = 0;
    let proposed = 0;
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 5; k++) {
        const r = net.core(l).propose(enc(`${round}-${k}-`.padEnd(100, 'x')));
        assert.ok('index' in r);
        proposed++;
      }
      net.stabilize();
      const out = net.held.filter(carries);
      for (const m of out) assert.ok(bytesOf(m) <= 300, `message of ${bytesOf(m)} bytes`);
      maxMsgs = Math.max(maxMsgs, out.length);
      maxBytes = Math.max(maxBytes, out.reduce((a, m) => a + bytesOf(m), 0));
      const st = net.core(l).status().progress.find((p) => p.id === f)!;
      assert.ok(st.inflightMsgs <= 4 && st.inflightBytes <= 1000);
      if (round % 3 === 2) {
        // the slow follower receives (and acks) the two oldest messages
        const rel = net.held.splice(0, 2);
        for (const m of rel) net.deliver(m);
      }
    }
    assert.ok(maxMsgs <= 4, `max ${maxMsgs} msgs outstanding`);
    assert.ok(maxBytes <= 1000, `max ${maxBytes} bytes outstanding`);
    assert.equal(maxMsgs, 4, 'the window was actually used');
    net.holdIf = undefined;
    for (const m of net.held) net.deliver(m);
    net.held = [];
    net.run(20);
    assert.equal(net.node(f).sm.length, proposed);
  });

  it('an entry larger than maxInflightBytes is still sent, alone', () => {
    const net = new TestNetwork([1, 2, 3], { cfg });
    const l = net.electLeader();
    net.run(1);
    const before = net.sent.length;
    net.core(l).propose(new Uint8Array(5000));
    net.core(l).propose(new Uint8Array(10));
    net.stabilize();
    const apps = net.sent.slice(before).filter(carries);
    for (const m of apps) if (bytesOf(m) > 1000) assert.equal(m.entries!.length, 1);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).sm.length, 2);
  });

  it('batches many proposals of one Ready into few App messages', () => {
    const net = new TestNetwork([1, 2, 3], { cfg: { maxInflightMsgs: 256, maxInflightBytes: 1 << 30, maxMsgBytes: 1 << 20 } });
    const l = net.electLeader();
    net.run(1);
    const before = net.sent.length;
    for (let i = 0; i < 256; i++) net.core(l).propose(enc(`p${i}`));
    net.stabilize();
    const apps = net.sent.slice(before).filter(carries);
    assert.equal(apps.length, 2, 'one App per follower');
    assert.equal(apps[0]!.entries!.length, 256);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).sm.length, 256);
  });
});
