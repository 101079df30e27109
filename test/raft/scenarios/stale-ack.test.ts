import assert from 'node:assert/strict';
import { TestNetwork, enc } from './network';
import { EntryType, MsgType } from '../../../src/raft/types';

// A follower steps two Apps before its next Ready: the first, from the leader of term T, appends an
// entry and queues its acknowledgement; the second, from a leader of term T+1, replaces that entry.
// The Ready persists only the replacement, so an acknowledgement of the replaced entry (to the old
// leader, who may still count it toward a commit) would claim an entry the node never had on disk.
// Found by the simulator (seed 100545: "n5 sent AppResp t13 i229 but its durable log ends at 221").
describe('acknowledgements of entries replaced in the same Ready', () => {
  it('an AppResp queued in an older term is not sent once a newer leader replaced its entries', () => {
    const net = new TestNetwork([1, 2, 3]);
    const l = net.electLeader();
    net.run(2);
    const [f, m] = [1, 2, 3].filter((x) => x !== l) as [number, number];
    const fc = net.core(f);
    const st = fc.status();
    const t = st.term;
    const n = st.lastIndex;
    const lt = t; // the leader's noop (and anything after it) is of its term
    fc.step({ type: MsgType.App, from: l, to: f, term: t, index: n, logTerm: lt, entries: [{ index: n + 1, term: t, type: EntryType.Normal, data: enc('old') }], commit: st.commit });
    fc.step({ type: MsgType.App, from: m, to: f, term: t + 1, index: n, logTerm: lt, entries: [{ index: n + 1, term: t + 1, type: EntryType.Normal, data: enc('new') }], commit: st.commit });
    const rd = fc.ready();
    assert.deepEqual(rd.entries.map((e) => [e.index, e.term]), [[n + 1, t + 1]], 'the Ready persists the replacement only');
    const acks = rd.messages.filter((x) => x.type === MsgType.AppResp && !x.reject).map((x) => ({ to: x.to, term: x.term, index: x.index }));
    assert.deepEqual(acks, [{ to: m, term: t + 1, index: n + 1 }], 'only the new leader is told, of the entry persisted');
  });
});
