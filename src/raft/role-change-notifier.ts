/**
 * RaftNode's role changes: after a Ready that changed the role or the leader, it logs the change,
 * counts leader changes, clears the per-peer gauges of a leader that stepped down and calls the
 * owner's onRoleChange.
 */
import type { Logger } from 'pino';
import type { Status } from './core';
import type { RaftMetrics } from './raft-metrics';
import type { RoleChange } from './raft-node-api';
import { NodeId, Role } from './types';

const ROLE_NAMES = ['follower', 'pre-candidate', 'candidate', 'leader'];

export class RoleChangeNotifier {
  private lastLeader: NodeId = 0;
  private lastRole: Role = Role.Follower;

  constructor(
    private readonly log: Logger,
    private readonly metrics: RaftMetrics,
    private readonly onRoleChange?: (c: RoleChange) => void,
  ) {}

  /** The core's status after a Ready whose soft state changed: reported if role or leader differ. */
  check(s: Status): void {
    if (s.role !== this.lastRole || s.leader !== this.lastLeader) {
      this.log.info({ term: s.term, role: ROLE_NAMES[s.role], leader: s.leader, previousRole: ROLE_NAMES[this.lastRole] }, 'raft: role changed');
      if (s.leader !== this.lastLeader) this.metrics.leaderChanges.inc();
      if (this.lastRole === Role.Leader && s.role !== Role.Leader) {
        this.metrics.peerMatchIndex.reset();
        this.metrics.peerLag.reset();
      }
      this.lastRole = s.role;
      this.lastLeader = s.leader;
      this.onRoleChange?.({ role: s.role, term: s.term, leader: s.leader, termStartIndex: s.lastIndex });
    }
  }
}
