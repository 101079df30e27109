/**
 * The leader's hold on its log for lagging followers (FollowerLogHold, the compaction policy of
 * RaftNode): which index the log must be kept from, given the followers' progress and the time.
 * Pure: the progress and the clock are the test's.
 */
import * as assert from 'node:assert/strict';
import type { PeerStatus } from '../../../src/raft/core-status';
import { FollowerLogHold } from '../../../src/raft/follower-log-hold';
import { Role } from '../../../src/raft/types';

const SELF = 1;
const HOLD_MS = 1000;
const CATCH_UP = 10;
const SNAPSHOT_ENTRIES = 100;
/** compacting behind a snapshot at INDEX: a follower that holds nothing special counts only down to BOUND */
const INDEX = 5000;
const BOUND = INDEX - CATCH_UP - 10 * SNAPSHOT_ENTRIES;

function peer(id: number, p: Partial<PeerStatus> = {}): PeerStatus {
  return { id, match: 0, next: 1, state: 'replicate', learner: false, inflightMsgs: 0, inflightBytes: 0, recentActive: true, pendingSnapshot: 0, restoring: false, ...p };
}

function leader(...progress: PeerStatus[]): { role: Role; progress: PeerStatus[] } {
  return { role: Role.Leader, progress: [peer(SELF, { match: INDEX + 50 }), ...progress] };
}

function hold(followerHoldMs = HOLD_MS): FollowerLogHold {
  return new FollowerLogHold({ selfId: SELF, followerHoldMs, catchUpEntries: CATCH_UP, snapshotEntries: SNAPSHOT_ENTRIES });
}

describe('FollowerLogHold (which log prefix a leader may compact)', () => {
  it('holds nothing on a follower, or with followerHoldMs 0', () => {
    assert.equal(hold().floor(INDEX, { role: Role.Follower, progress: [] }, 0), INDEX);
    assert.equal(hold(0).floor(INDEX, leader(peer(2, { match: 100, state: 'snapshot', pendingSnapshot: 4000 })), 0), INDEX);
  });

  it('keeps a live follower within 10 snapshot intervals, not further', () => {
    const h = hold();
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 4500 })), 0), 4500);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 4500 }), peer(3, { match: 4200 })), 0), 4200);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 100 })), 0), BOUND);
  });

  it('a follower never heard from, or silent for longer than followerHoldMs, holds nothing', () => {
    const h = hold();
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 4500, recentActive: false })), 0), INDEX);
    // heard from at 0 (noted by the Ready loop), silent since
    h.noteActive(peer(2, { match: 4500 }), 0);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 4500, recentActive: false })), HOLD_MS), 4500);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 4500, recentActive: false })), HOLD_MS + 1), INDEX);
  });

  it('keeps the log from the snapshot index for a follower sent a snapshot or restoring one, beyond the bound', () => {
    const h = hold();
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 100, state: 'snapshot', pendingSnapshot: 2000 })), 0), 2000);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 1500, restoring: true })), 0), 1500);
    // restoring and silent: still held for followerHoldMs after it was last heard from
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 1500, restoring: true, recentActive: false })), HOLD_MS), 1500);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 1500, restoring: true, recentActive: false })), HOLD_MS + 1), INDEX);
  });

  it('after its restore, keeps holding for a follower replaying the log while its match advances', () => {
    const h = hold();
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2000, restoring: true })), 0), 2000);
    // the restore ended: an ordinary follower at the snapshot's index, far behind the bound
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2000 })), 500), 2000);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2600 })), 1200), 2600);
    // no progress for followerHoldMs (since 1200): the hold ends, back to the bound
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2600 })), 2200), 2600);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2600 })), 2201), BOUND);
    // and does not come back for it
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 2700 })), 2300), BOUND);
  });

  it('after its restore, the hold ends once the follower is back within the bound', () => {
    const h = hold();
    h.floor(INDEX, leader(peer(2, { match: 1000, state: 'snapshot', pendingSnapshot: 3000 })), 0);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: 3000 })), 100), 3000);
    assert.equal(h.floor(INDEX, leader(peer(2, { match: BOUND })), 200), BOUND);
  });
});
