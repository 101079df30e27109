/**
 * What RaftNode does on its storage before it starts: a new member's empty Raft directory gets its
 * initial membership (so does `hanfs cluster init`, bootstrapRaftDir), and the state machine is
 * brought up to the local snapshot, or recovers from the log, before the log is replayed into it.
 */
import type { Logger } from 'pino';
import { LogStorage } from './log-storage';
import type { StateMachine } from './raft-node-api';
import { NodeId } from './types';

export function isEmptyStorage(st: LogStorage): boolean {
  return !st.snapshot() && st.lastIndex() === 0 && st.hardState().term === 0;
}

export async function bootstrapStorage(st: LogStorage, voters: NodeId[]): Promise<void> {
  await st.saveSnapshot({ meta: { index: 0, term: 0, conf: { voters, learners: [], votersOutgoing: [] } }, data: new Uint8Array(0) });
}

/**
 * `hanfs cluster init`: write the initial membership into an empty Raft directory (the node then
 * starts as a voter of `voters`). Refuses a directory that already holds a log or a membership.
 */
export async function bootstrapRaftDir(dir: string, voters: NodeId[]): Promise<void> {
  const st = await LogStorage.open({ dir });
  try {
    if (!isEmptyStorage(st)) throw new Error(`${dir} already holds a Raft log or membership`);
    await bootstrapStorage(st, [...voters].sort((a, b) => a - b));
  } finally {
    await st.close();
  }
}

/**
 * Bring the state machine up to the local snapshot (restore) or let it recover from the log; returns
 * the snapshot's index and the last entry the state machine has applied, after which the log is
 * replayed into it.
 */
export async function recoverStateMachine(st: LogStorage, sm: StateMachine, log: Logger): Promise<{ snapIndex: number; applied: number }> {
  const snap = st.snapshot();
  // (a persistent state machine restores only if it is behind the snapshot: a restore from the
  // leader that a crash interrupted; the restore replaces it, so it does not recover first — the
  // log entries its recovery would need were discarded with the snapshot)
  const behind = snap !== undefined && snap.meta.index > 0 && (!sm.appliedIndex || sm.appliedIndex() < snap.meta.index);
  if (sm.recover && !behind) await sm.recover((lo, hi) => st.entries(lo, hi, 64 << 20));
  if (snap && behind) {
    await sm.restore(snap.data, snap.meta);
    log.info({ index: snap.meta.index, term: snap.meta.term }, 'raft: state machine restored from the local snapshot');
  }
  const snapIndex = snap?.meta.index ?? 0;
  // a persistent state machine replays from what it applied itself (never past the log's end:
  // a store restored from a fuzzy snapshot may be ahead; entries up to its index are replays)
  const own = sm.appliedIndex?.() ?? 0;
  return { snapIndex, applied: Math.max(snapIndex, Math.min(own, st.lastIndex())) };
}
