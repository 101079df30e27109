/** The status report of a RaftCore (RaftCore.status()). */
import { progressStateName } from './progress';
import { cloneConf } from './memory-storage';
import type { CoreState } from './core-state';
import { leaseValidUntil } from './read-index';
import { ConfState, NodeId, Role } from './types';

export interface PeerStatus {
  id: NodeId;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  learner: boolean;
  inflightMsgs: number;
  inflightBytes: number;
  recentActive: boolean;
  pendingSnapshot: number;
  /** restoring a snapshot (said so in a busy heartbeat answer) */
  restoring: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  roleName: 'follower' | 'pre-candidate' | 'candidate' | 'leader';
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  leadTransferee: NodeId;
  /** logical time: ticks since construction */
  now: number;
  leaseValidUntil: number;
  /** leader only */
  progress: PeerStatus[];
}

const ROLE_NAMES = ['follower', 'pre-candidate', 'candidate', 'leader'] as const;

/** what RaftCore.status() reports: progress of the followers only on the leader */
export function statusOf(core: CoreState): Status {
  const progress: PeerStatus[] = [];
  if (core.role === Role.Leader) {
    for (const pr of core.prs.values()) {
      progress.push({
        id: pr.id,
        match: pr.match,
        next: pr.next,
        state: progressStateName(pr.state),
        learner: core.conf.learners.includes(pr.id),
        inflightMsgs: pr.inflights.count,
        inflightBytes: pr.inflights.totalBytes,
        recentActive: pr.recentActive,
        pendingSnapshot: pr.pendingSnapshot,
        restoring: pr.restoring,
      });
    }
    progress.sort((a, b) => a.id - b.id);
  }
  return {
    id: core.id,
    term: core.term,
    vote: core.vote,
    role: core.role,
    roleName: ROLE_NAMES[core.role],
    leader: core.lead,
    commit: core.log.committed,
    applied: core.log.applied,
    lastIndex: core.log.lastIndex(),
    firstIndex: core.log.firstIndex(),
    conf: cloneConf(core.conf),
    leadTransferee: core.leadTransferee,
    now: core.now,
    leaseValidUntil: leaseValidUntil(core),
    progress,
  };
}
