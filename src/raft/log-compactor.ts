/**
 * RaftNode's snapshots and log compaction: every snapshotEntries applied entries (up to what the
 * state machine can recover from) a snapshot is taken, and the log is compacted behind the latest
 * snapshot, keeping catchUpEntries before it and what lagging followers still need
 * (follower-log-hold.ts).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { RaftCore } from './core';
import type { FollowerLogHold } from './follower-log-hold';
import type { LogStorage } from './log-storage';
import type { RaftMetrics } from './raft-metrics';
import type { StateMachine } from './raft-node-api';

export interface LogCompactorOptions {
  core: RaftCore;
  storage: LogStorage;
  stateMachine: StateMachine;
  metrics: RaftMetrics;
  logger: Logger;
  hold: FollowerLogHold;
  /** take a snapshot after this many applied entries */
  snapshotEntries: number;
  /** entries kept before the snapshot index for slow followers */
  catchUpEntries: number;
  /** the latest snapshot's index at start-up */
  snapIndex: number;
  /** last entry applied (asynchronous applies finished) */
  appliedIndex: () => number;
  stopped: () => boolean;
}

export class LogCompactor {
  private snapIndex: number;
  private snapshotting = false;

  constructor(private readonly o: LogCompactorOptions) {
    this.snapIndex = o.snapIndex;
  }

  /** The state machine was replaced by the leader's snapshot at `index` (stored already). */
  snapshotRestored(index: number): void {
    this.snapIndex = index;
  }

  /** Take a snapshot if enough entries were applied since the last, then compact what may go. */
  async maybeSnapshot(): Promise<void> {
    const o = this.o;
    if (this.snapshotting) return;
    // (a store durable only up to its checkpoint keeps the entries after it)
    const applied = o.appliedIndex();
    const index = Math.min(applied, o.stateMachine.compactableIndex?.() ?? applied);
    if (index - this.snapIndex >= o.snapshotEntries) {
      this.snapshotting = true;
      try {
        const snap = o.core.compact(index, o.stateMachine.snapshot(index));
        await o.storage.saveSnapshot(snap);
        this.snapIndex = index;
        o.metrics.snapshots.inc({ kind: 'local' });
        o.logger.info({ index, term: snap.meta.term, bytes: snap.data.length }, 'raft: snapshot taken');
      } finally {
        this.snapshotting = false;
      }
    }
    // compact behind the latest snapshot as far as lagging followers allow (again later, when a
    // follower that held the log back has caught up or stopped counting)
    if (this.snapIndex === 0 || o.stopped()) return;
    const first = o.storage.firstIndex();
    if (this.snapIndex - o.catchUpEntries <= first - 1) return;
    const floor = o.hold.floor(this.snapIndex, o.core.status(), performance.now());
    const keepFrom = Math.max(first - 1, Math.min(this.snapIndex - o.catchUpEntries, floor));
    if (keepFrom > first - 1) {
      o.storage.compact(keepFrom);
      o.logger.info({ snapshot: this.snapIndex, compactedTo: keepFrom }, 'raft: log compacted');
    }
  }
}
