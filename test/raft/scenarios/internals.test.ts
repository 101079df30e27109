/** Tables for the core's internal pieces: quorum arithmetic, the inflight window, the unstable log. */
import assert from 'node:assert/strict';
import { committedIndex, voteResult, VoteResult } from '../../../src/raft/quorum';
import { Inflights } from '../../../src/raft/progress';
import { RaftLog } from '../../../src/raft/raft-log';
import { MemoryStorage } from '../../../src/raft/memory-storage';
import { ConfState, Entry, EntryType } from '../../../src/raft/types';

const conf = (voters: number[], out: number[] = []): ConfState => ({ voters, learners: [], votersOutgoing: out });
const ent = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(10) });

describe('quorum', () => {
  const table: [string, ConfState, Record<number, number>, number][] = [
    ['single voter', conf([1]), { 1: 5 }, 5],
    ['3 voters', conf([1, 2, 3]), { 1: 5, 2: 3, 3: 1 }, 3],
    ['4 voters need 3', conf([1, 2, 3, 4]), { 1: 9, 2: 7, 3: 2, 4: 1 }, 2],
    ['5 voters', conf([1, 2, 3, 4, 5]), { 1: 9, 2: 8, 3: 7, 4: 1, 5: 0 }, 7],
    ['joint: both majorities', conf([1, 2, 3], [3, 4, 5]), { 1: 9, 2: 9, 3: 5, 4: 2, 5: 1 }, 2],
  ];
  for (const [name, c, match, want] of table) {
    it(`committed index: ${name}`, () => assert.equal(committedIndex(c, (id) => match[id] ?? 0), want));
  }
  it('vote results', () => {
    const v = (o: Record<number, boolean>) => new Map(Object.entries(o).map(([k, b]) => [Number(k), b]));
    assert.equal(voteResult(conf([1, 2, 3]), v({ 1: true })), VoteResult.Pending);
    assert.equal(voteResult(conf([1, 2, 3]), v({ 1: true, 2: true })), VoteResult.Won);
    assert.equal(voteResult(conf([1, 2, 3]), v({ 1: true, 2: false, 3: false })), VoteResult.Lost);
    assert.equal(voteResult(conf([1, 2, 3, 4]), v({ 1: true, 2: true })), VoteResult.Pending);
    assert.equal(voteResult(conf([1, 2, 3], [3, 4, 5]), v({ 1: true, 2: true, 3: true })), VoteResult.Pending);
    assert.equal(voteResult(conf([1, 2, 3], [3, 4, 5]), v({ 1: true, 3: true, 4: true })), VoteResult.Won);
  });
});

describe('inflight window', () => {
  it('is bounded in messages and bytes and freed by acknowledgements', () => {
    const w = new Inflights(3, 100);
    w.add(5, 40);
    w.add(9, 40);
    assert.equal(w.full(), false);
    assert.equal(w.budget(), 20);
    w.add(12, 10);
    assert.equal(w.full(), true); // 3 messages
    w.freeLE(8);
    assert.equal(w.count, 2);
    assert.equal(w.totalBytes, 50);
    w.add(20, 50);
    assert.equal(w.full(), true); // 100 bytes
    w.freeLE(100);
    assert.equal(w.count, 0);
    assert.equal(w.totalBytes, 0);
    // wraps around the ring
    for (let i = 0; i < 10; i++) {
      w.add(100 + i, 1);
      w.freeLE(100 + i);
    }
    assert.equal(w.count, 0);
  });
});

describe('unstable log', () => {
  it('hands out entries once, marks them stable, and survives a truncation in between', () => {
    const st = new MemoryStorage(conf([1]));
    const log = new RaftLog(st, 0, 0);
    log.append([ent(1, 1), ent(2, 1), ent(3, 1)]);
    const a = log.takeUnstable();
    assert.deepEqual(a.map((e) => e.index), [1, 2, 3]);
    assert.deepEqual(log.takeUnstable(), []);
    // a new leader replaces 3 before the caller persisted
    log.append([ent(3, 2), ent(4, 2)]);
    st.append(a);
    log.stableTo(3, 1); // stale: entry 3 is now of term 2
    const b = log.takeUnstable();
    assert.deepEqual(b.map((e) => `${e.index}/${e.term}`), ['3/2', '4/2']);
    st.append(b);
    log.stableTo(4, 2);
    assert.equal(log.stableLastIndex(), 4);
    assert.deepEqual([1, 2, 3, 4].map((i) => log.term(i)), [1, 1, 2, 2]);
    assert.equal(log.findConflictByTerm(4, 1), 2);
  });

  it('slices across stable and unstable parts within a byte limit', () => {
    const st = new MemoryStorage(conf([1]));
    st.append([ent(1, 1), ent(2, 1)]);
    const log = new RaftLog(st, 0, 0);
    log.append([ent(3, 1), ent(4, 1)]);
    assert.deepEqual(log.slice(1, 5, 1000)!.map((e) => e.index), [1, 2, 3, 4]);
    assert.deepEqual(log.slice(1, 5, 25)!.map((e) => e.index), [1, 2]);
    assert.deepEqual(log.slice(2, 5, 25)!.map((e) => e.index), [2, 3]);
    assert.deepEqual(log.slice(4, 5, 1)!.map((e) => e.index), [4]); // at least one entry
  });
});
