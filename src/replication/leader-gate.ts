/**
 * LeaderGate: may this node serve NFS and MOUNT right now?
 *
 * Only the Raft leader serves, only once its first entry of the term is applied (everything committed
 * by earlier leaders is then in its store: reads see every write acknowledged before them), and only
 * while its lease is valid (no other node can have been elected meanwhile: followers refuse votes
 * for an election timeout after hearing from a leader, and the lease is shorter than that, less a
 * safety margin for clock-rate drift). Reads on a leader whose gate is open are therefore
 * linearizable without a round trip (lease reads); a call that finds the gate shut is dropped, and
 * the client retransmits to whoever holds the service address next.
 */
import { performance } from 'node:perf_hooks';
import { Role } from '../raft/types';
import type { RoleChange } from '../raft/raft-node';

export interface LeaseSource {
  /** end of the lease in performance.now() ms, safety margin already taken off; 0 = none */
  leaseValidUntilMs(): number;
  /** last entry applied to the state machine */
  readonly appliedIndex: number;
  /** ReadIndex: resolves once a quorum confirmed this leader and the read index is applied */
  readIndex(): Promise<number>;
}

export class LeaderGate {
  private role: Role = Role.Follower;
  private term = 0;
  private termStart = Number.POSITIVE_INFINITY;

  constructor(
    private readonly raft: LeaseSource,
    /** the node stopped for good (a local fault): never serve again */
    private readonly failed: () => boolean = () => false,
  ) {}

  /** Feed every role change of the Raft node. */
  roleChanged(c: RoleChange): void {
    this.role = c.role;
    this.term = c.term;
    this.termStart = c.role === Role.Leader ? c.termStartIndex : Number.POSITIVE_INFINITY;
  }

  get currentTerm(): number {
    return this.term;
  }

  get isLeader(): boolean {
    return this.role === Role.Leader;
  }

  /** leader and its own first entry applied (it knows every earlier commit), lease or not */
  get caughtUp(): boolean {
    return this.role === Role.Leader && this.raft.appliedIndex >= this.termStart && !this.failed();
  }

  /** ms of lease left (0 if none) */
  leaseRemainingMs(now = performance.now()): number {
    if (this.role !== Role.Leader) return 0;
    return Math.max(0, this.raft.leaseValidUntilMs() - now);
  }

  /** may a call be answered now? */
  serving(now = performance.now()): boolean {
    return this.caughtUp && this.raft.leaseValidUntilMs() > now;
  }

  /**
   * For a leader whose lease is not valid now (ReadIndex where the lease is not valid): a quorum
   * round confirms it still leads, and everything committed before the call is applied. Rejects on a
   * node that is not the caught-up leader, or when the round fails (leadership lost).
   */
  async confirm(): Promise<void> {
    if (!this.caughtUp) throw new Error('not the serving leader');
    const term = this.term;
    await this.raft.readIndex();
    if (!this.caughtUp || this.term !== term) throw new Error('leadership changed');
  }
}
