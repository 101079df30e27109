/**
 * The leader's hold on its log for lagging followers: how far behind its latest snapshot a leader
 * may compact the log (RaftNode's log compaction, log-compactor.ts) without cutting off a live
 * follower that still needs the entries. Pure bookkeeping: the caller passes the core's status and
 * the time (performance.now() milliseconds).
 */
import type { PeerStatus } from './core-status';
import { NodeId, Role } from './types';

/** default: a follower not heard from for this long no longer holds the log back */
export const FOLLOWER_HOLD_MS = 120_000;

export interface FollowerLogHoldOptions {
  /** this node (not a follower of itself) */
  selfId: NodeId;
  /** a follower not heard from for this long no longer holds the log back; 0: no hold beyond
   * catchUpEntries */
  followerHoldMs: number;
  /** entries kept before the snapshot index anyway */
  catchUpEntries: number;
  /** the snapshot interval in entries (the bound is 10 intervals behind the snapshot) */
  snapshotEntries: number;
}

/** What the hold reads of RaftCore.status(). */
export interface FollowerLogHoldStatus {
  role: Role;
  progress: PeerStatus[];
}

export class FollowerLogHold {
  /** when each follower was last seen active */
  private readonly followerSeenMs = new Map<NodeId, number>();
  /** followers that were sent (or restored) a snapshot and are replaying the log after it, with
   * their match and when it last advanced */
  private readonly afterSnapshot = new Map<NodeId, { match: number; progressMs: number }>();

  constructor(private readonly o: FollowerLogHoldOptions) {}

  /** A leader's followers answered recently (recentActive) as of `now`. */
  noteActive(p: PeerStatus, now: number): void {
    if (p.id !== this.o.selfId && p.recentActive) this.followerSeenMs.set(p.id, now);
  }

  /**
   * The lowest index the log must keep for the followers of a leader compacting behind a snapshot
   * at `index` (`index` itself when no follower holds it back, or this node does not lead).
   *
   * A leader keeps the entries its live followers still need (up to a bound): a follower catching
   * up from a snapshot that took a while must find the log after that snapshot's index, or it would
   * need another snapshot — and under steady writes might never catch up; so must a follower whose
   * restore just ended, replaying the log after the snapshot. A follower that stopped answering
   * for followerHoldMs, or lags more than 10 snapshot intervals while neither restoring a snapshot
   * nor replaying the log after one (its match advancing within followerHoldMs), does not hold
   * the log back.
   */
  floor(index: number, s: FollowerLogHoldStatus, now: number): number {
    const holdMs = this.o.followerHoldMs;
    if (holdMs <= 0) return index;
    if (s.role !== Role.Leader) return index;
    const bound = index - this.o.catchUpEntries - 10 * this.o.snapshotEntries;
    let floor = index;
    for (const p of s.progress) {
      if (p.id === this.o.selfId) continue;
      this.noteActive(p, now);
      // (a follower restoring a store snapshot answers nothing for a while: it still counts as live
      // for followerHoldMs after it was last heard from)
      const seen = this.followerSeenMs.get(p.id);
      if (seen === undefined || now - seen > holdMs) continue;
      // a follower sent a snapshot, or restoring one (it acknowledged the snapshot before its state
      // machine was replaced), needs the log from the snapshot's index on, however many entries were
      // written meanwhile (held while it is heard from: it answers heartbeats while it restores);
      // any other follower only within `bound`
      if (p.state === 'snapshot' || p.restoring) {
        floor = Math.min(floor, Math.max(p.match, p.pendingSnapshot));
        this.afterSnapshot.set(p.id, { match: p.match, progressMs: now });
        continue;
      }
      // a follower whose restore just ended is as far behind as the writes during the restore: it
      // replays the log from its snapshot's index and keeps holding it while its match advances
      // (until it is back within `bound`, or stalls for followerHoldMs). Dropping the hold the
      // moment the restore ended made the next compaction send a second snapshot.
      const a = this.afterSnapshot.get(p.id);
      if (a) {
        if (p.match > a.match) {
          a.match = p.match;
          a.progressMs = now;
        }
        if (p.match < bound && now - a.progressMs <= holdMs) {
          floor = Math.min(floor, p.match);
          continue;
        }
        this.afterSnapshot.delete(p.id);
      }
      floor = Math.min(floor, Math.max(p.match, bound));
    }
    return floor;
  }
}
