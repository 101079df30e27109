/**
 * The leader's view of one follower (etcd's tracker.Progress): match/next indices, the replication
 * state machine Probe -> Replicate -> Snapshot, and the flow-control window (Inflights) limiting the
 * App messages and entry bytes in flight to the follower.
 */
import type { NodeId } from './types';

export const enum ProgressState {
  /** one App at a time, until the follower's log position is known */
  Probe = 0,
  /** optimistic pipelining of App messages within the inflight window */
  Replicate = 1,
  /** sending a snapshot in chunks; App messages paused */
  Snapshot = 2,
}

export function progressStateName(s: ProgressState): 'probe' | 'replicate' | 'snapshot' {
  return s === ProgressState.Probe ? 'probe' : s === ProgressState.Replicate ? 'replicate' : 'snapshot';
}

/**
 * Ring buffer of in-flight App messages: (last index of the message, bytes of entries). Freed when the
 * follower acknowledges an index >= the message's last index. Bounded both in count and in bytes.
 */
export class Inflights {
  private idx: number[] = [];
  private bytes: number[] = [];
  private start = 0;
  count = 0;
  totalBytes = 0;

  constructor(readonly maxMsgs: number, readonly maxBytes: number) {}

  /** true if no further message may be sent */
  full(): boolean {
    return this.count >= this.maxMsgs || (this.maxBytes > 0 && this.totalBytes >= this.maxBytes);
  }

  /** bytes that may still be sent without exceeding maxBytes */
  budget(): number {
    return this.maxBytes > 0 ? this.maxBytes - this.totalBytes : Number.MAX_SAFE_INTEGER;
  }

  add(index: number, bytes: number): void {
    const cap = Math.max(1, this.maxMsgs);
    if (this.idx.length < cap) {
      this.idx.length = cap;
      this.bytes.length = cap;
    }
    const pos = (this.start + this.count) % cap;
    this.idx[pos] = index;
    this.bytes[pos] = bytes;
    this.count++;
    this.totalBytes += bytes;
  }

  /** free every message whose last index <= to */
  freeLE(to: number): void {
    const cap = Math.max(1, this.maxMsgs);
    while (this.count > 0 && this.idx[this.start]! <= to) {
      this.totalBytes -= this.bytes[this.start]!;
      this.start = (this.start + 1) % cap;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.totalBytes = 0;
    }
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.totalBytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** Probe: an App was sent and is unanswered; no further App until a response or heartbeat response */
  probeSent = false;
  /** Snapshot: index of the snapshot being sent */
  pendingSnapshot = 0;
  /** Snapshot: bytes of the snapshot the follower acknowledged */
  snapAcked = 0;
  /** Snapshot: snapAcked at the previous heartbeat response (-1: none yet) */
  snapAckedAtHb = -1;
  /** heard from since the last check-quorum round */
  recentActive = false;
  /** the follower says it is restoring the snapshot it was sent (busy HeartbeatResp): it needs the
   * log after its match when it is done (until its next ordinary answer) */
  restoring = false;
  /** highest heartbeat sequence number the follower echoed this term (ReadIndex / lease) */
  ackedSeq = 0;
  /** last heartbeat round sent to the follower and `next` at that time, and `next` when the round
   * before it was sent (lost-App detection; 0: no round since the last state change) */
  hbSeq = 0;
  hbNext = 0;
  prevHbNext = 0;
  /** commit index last sent in an App, so a commit advance is told without duplicates */
  sentCommit = 0;
  readonly inflights: Inflights;

  constructor(readonly id: NodeId, next: number, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  becomeProbe(): void {
    this.hbNext = this.prevHbNext = 0;
    if (this.state === ProgressState.Snapshot) {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapAcked = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.hbNext = this.prevHbNext = 0;
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapAcked = 0;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.hbNext = this.prevHbNext = 0;
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = index;
    this.snapAcked = 0;
    this.snapAckedAtHb = -1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** the follower acknowledged index n; returns true if match advanced */
  maybeUpdate(n: number): boolean {
    this.probeSent = false;
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /**
   * The follower rejected an App whose previous index was `rejected`; `matchHint` is the highest index
   * that may match. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** whether an App carrying entries may be sent now */
  paused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}
