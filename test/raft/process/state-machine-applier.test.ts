/**
 * StateMachineApplier's cap on applies not finished, against a state machine whose applies finish
 * only when the test says so and a log held in an array: entries over the cap are not handed over
 * but read back from the log in order once applies finish; an entry counts as applied only when it
 * and all before it finished; proposals are answered at apply; a snapshot drops what it covers.
 */
import * as assert from 'node:assert/strict';
import { PendingProposals } from '../../../src/raft/pending-requests';
import { RaftMetrics } from '../../../src/raft/raft-metrics';
import { StateMachineApplier } from '../../../src/raft/state-machine-applier';
import { Entry, EntryType } from '../../../src/raft/types';

const SIZE = 100;

function entry(index: number, type = EntryType.Normal): Entry {
  return { term: 1, index, type, data: new Uint8Array(SIZE).fill(index & 0xff) };
}

/** a host with an array log and a state machine whose applies finish when finish() is called */
function harness(cap: number) {
  const log = new Map<number, Entry>();
  const running: { index: number; done: () => void }[] = [];
  const handed: number[] = [];
  const applied: number[] = [];
  const reads: [number, number, number][] = [];
  const proposals = new PendingProposals(60_000);
  let wakes = 0;
  let conf = 0;
  const a = new StateMachineApplier(
    {
      stateMachine: {
        apply: (e: Entry) => {
          handed.push(e.index);
          return new Promise<number>((r) => running.push({ index: e.index, done: () => r(e.index * 10) }));
        },
        snapshot: () => new Uint8Array(),
        restore: () => undefined,
      },
      proposals,
      metrics: new RaftMetrics(),
      readEntries: (lo, hi, maxBytes) => {
        reads.push([lo, hi, maxBytes]);
        const out: Entry[] = [];
        let size = 0;
        for (let i = lo; i < hi; i++) {
          const e = log.get(i);
          if (!e) throw new RangeError(`entry ${i} not in the log`);
          size += e.data.byteLength;
          if (out.length > 0 && size > maxBytes) break;
          out.push(e);
        }
        return out;
      },
      wake: () => wakes++,
      applyConfChange: () => conf++,
      applied: (i) => applied.push(i),
      failed: (e) => assert.fail(e),
    },
    0,
    cap,
  );
  /** commit entries lo..hi into the log and offer them */
  const commit = (lo: number, hi: number, type = EntryType.Normal) => {
    for (let i = lo; i <= hi; i++) {
      log.set(i, entry(i, type));
      a.offer(log.get(i)!);
    }
  };
  /** finish the oldest `n` running applies, and let their continuations run */
  const finish = async (n = running.length) => {
    for (const r of running.splice(0, n)) r.done();
    await new Promise((r) => setImmediate(r));
  };
  return { a, log, running, handed, applied, reads, proposals, commit, finish, wakes: () => wakes, conf: () => conf };
}

describe('StateMachineApplier: backpressure on applies not finished', () => {
  it('stops handing over at the cap, reads the rest back from the log in order once applies finish', async () => {
    const h = harness(5 * SIZE);
    h.commit(1, 20);
    assert.deepEqual(h.handed, [1, 2, 3, 4, 5], 'handed over up to the cap');
    assert.equal(h.a.applyingBytes, 5 * SIZE);
    assert.equal(h.a.deferredEntries, 15);
    assert.equal(h.a.canResume, false);
    h.a.resume();
    assert.deepEqual(h.handed, [1, 2, 3, 4, 5], 'nothing more while at the cap');
    assert.equal(h.reads.length, 0, 'nothing read back while at the cap');

    await h.finish(2);
    assert.deepEqual(h.applied, [1, 2]);
    assert.ok(h.wakes() > 0, 'the node is woken to resume');
    assert.equal(h.a.canResume, true);
    h.a.resume();
    assert.deepEqual(h.handed, [1, 2, 3, 4, 5, 6, 7], 'two more, read back from the log');
    assert.deepEqual(h.reads[0], [6, 21, 2 * SIZE], 'read from the entry after the last handed, as many bytes as there is room for');
    assert.equal(h.a.applyingBytes, 5 * SIZE);

    // out of order completion: 5 finishes before 3 and 4: applied stays at 2
    const r5 = h.running.findIndex((r) => r.index === 5);
    h.running.splice(r5, 1)[0]!.done();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.a.appliedIndex, 2, 'an entry counts as applied only once all before it finished');

    for (let k = 0; k < 20 && h.a.appliedIndex < 20; k++) {
      h.a.resume();
      await h.finish();
    }
    assert.equal(h.a.appliedIndex, 20);
    assert.deepEqual(h.handed, Array.from({ length: 20 }, (_, k) => k + 1), 'each entry handed over once, in order');
    assert.equal(h.a.applyingBytes, 0);
    assert.equal(h.a.deferredEntries, 0);
  });

  it('answers a proposal when its entry read back from the log is applied', async () => {
    const h = harness(2 * SIZE);
    const p = h.proposals.track(4, 1);
    h.commit(1, 4);
    assert.deepEqual(h.handed, [1, 2]);
    await h.finish();
    h.a.resume();
    await h.finish();
    assert.equal(h.a.appliedIndex, 4);
    assert.deepEqual(await p, { index: 4, term: 1, result: 40 });
  });

  it('entries after deferred ones wait their turn; ConfChange entries too', async () => {
    const h = harness(SIZE);
    h.commit(1, 2);
    h.commit(3, 3, EntryType.ConfChange);
    assert.deepEqual(h.handed, [1]);
    assert.equal(h.conf(), 0, 'the ConfChange waits behind the deferred entry');
    await h.finish();
    h.a.resume();
    assert.deepEqual(h.handed, [1, 2]);
    await h.finish();
    h.a.resume();
    assert.equal(h.conf(), 1, 'the ConfChange is applied in its turn');
    assert.equal(h.a.appliedIndex, 3);
  });

  it('a snapshot drops the deferred entries it covers', async () => {
    const h = harness(2 * SIZE);
    h.commit(1, 10);
    assert.deepEqual(h.handed, [1, 2]);
    await h.finish();
    // (the node awaits the running applies, then restores) a snapshot through 12
    h.a.replacedBySnapshot(12);
    assert.equal(h.a.deferredEntries, 0);
    assert.equal(h.a.canResume, false);
    h.a.resume();
    assert.equal(h.reads.length, 0, 'nothing the snapshot covers is read back');
    h.commit(13, 13);
    assert.deepEqual(h.handed, [1, 2, 13]);
    await h.finish();
    assert.equal(h.a.appliedIndex, 13);
  });

  it('a synchronous entry after an asynchronous apply that finished but has not counted yet waits for it', async () => {
    const h = harness(10 * SIZE);
    h.commit(1, 1);
    // entry 1's apply finishes; its continuation (which counts it applied) has not run yet
    h.running.splice(0, 1)[0]!.done();
    await Promise.resolve();
    h.commit(2, 2, EntryType.ConfChange); // no asynchronous apply
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.applied, [1, 2], 'entry 2 counted only after entry 1');
    assert.equal(h.a.appliedIndex, 2);
  });

  it('refuses a gap in the committed entries offered', () => {
    const h = harness(SIZE);
    h.commit(1, 1);
    assert.throws(() => h.a.offer(entry(3)), /offered after 1/);
  });
});
