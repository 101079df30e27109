/**
 * The public API types of RaftNode (raft-node.ts): its options, the state machine it drives, its
 * status, the role-change notice and the errors its calls reject with.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Status } from './core';
import type { LogStorageOptions, StorageStats } from './log-storage';
import type { PeerAddress, TransportStats } from './transport';
import type { Entry, NodeId, Role, SnapshotMeta } from './types';

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
  constructor(
    readonly leaderId: NodeId,
    readonly reason: string = 'not_leader',
  ) {
    super(`not the leader (${reason}); leader is ${leaderId || 'unknown'}`);
  }
}

/** The proposal's outcome is not known to be a success: its index was taken by another entry, the
 * node stopped, or the wait timed out. The entry may or may not be in the log. */
export class ProposalFailedError extends Error {
  override name = 'ProposalFailedError';
}

export interface StateMachine {
  /**
   * Apply one committed Normal entry; the return value is handed to the proposer. It may be a
   * Promise (an asynchronous store): later entries are then handed over without waiting for it (the
   * state machine applies them in the order given), the proposer gets what it resolves to, the entry
   * counts as applied (reads, compaction) only once it has resolved, and a rejection stops the node
   * (a local fault: it must not go on applying or answering).
   */
  apply(e: Entry): unknown;
  /** The state at `index` (the last applied one, or `compactableIndex()`), for log compaction and
   * for followers too far behind. May be a small descriptor that `restore` resolves elsewhere. */
  snapshot(index: number): Uint8Array;
  /** replace the state with a snapshot (from the leader, or the local one at start-up); may be async */
  restore(data: Uint8Array, meta: SnapshotMeta): void | Promise<void>;
  /** Optional: the index the state machine has applied on its own (a persistent store at start-up):
   * the log is replayed from the entry after it instead of from the snapshot index. */
  appliedIndex?(): number;
  /** Optional: called once at start-up, after the log is open and before anything is applied, with a
   * reader of the durable log (entries lo..hi-1): a store that checkpoints behind the log re-places
   * what a crash may have lost of the entries after its checkpoint. */
  recover?(entries: (lo: number, hi: number) => Entry[]): Promise<void>;
  /** Optional: the highest index the log may be compacted to (a store that is durable only up to a
   * checkpoint needs the entries after it to recover); default the applied index. */
  compactableIndex?(): number;
}

/** Role, term and leader as the node sees them after a change; `termStartIndex` is, for a leader, an
 * index at or after its own first (noop) entry: once that is applied, everything committed before
 * its term is applied too. */
export interface RoleChange {
  role: Role;
  term: number;
  leader: NodeId;
  termStartIndex: number;
}

export interface RaftNodeOptions {
  id: NodeId;
  /** every member's peer address, this node's included (it listens there) */
  peers: Map<NodeId, PeerAddress> | Record<number, PeerAddress>;
  dir: string;
  clusterId: string;
  secret?: string | Buffer;
  stateMachine: StateMachine;
  /** tick period (default 100 ms) */
  tickMs?: number;
  electionTicks?: number;
  /** the random part of the election timeout, in ticks (default half of electionTicks: a timeout in
   * [et, 1.5 et). Candidates stay apart by up to half an election timeout, far more than a vote's
   * round trip, and a dead leader is replaced sooner than with etcd's [et, 2 et)) */
  electionJitterTicks?: number;
  heartbeatTicks?: number;
  /** leader lease in ticks (default: core default, 0.8 x electionTicks) */
  leaseTicks?: number;
  /** subtracted from the lease end when converting ticks to milliseconds (default: one tick) */
  leaseSafetyMs?: number;
  /** take a snapshot and compact after this many applied entries (default 10000) */
  snapshotEntries?: number;
  /** a leader keeps the log entries a follower heard from within this long still needs, beyond
   * snapshotCatchUpEntries (a follower restoring a big snapshot is silent meanwhile); default 120 s,
   * 0: only snapshotCatchUpEntries */
  followerHoldMs?: number;
  /** entries kept before the snapshot index for slow followers (default 1000) */
  snapshotCatchUpEntries?: number;
  proposalTimeoutMs?: number;
  readTimeoutMs?: number;
  maxMsgBytes?: number;
  maxInflightMsgs?: number;
  /** entry bytes sent to a follower and not acknowledged (default MAX_INFLIGHT_BYTES, raft-node.ts) */
  maxInflightBytes?: number;
  snapshotChunkBytes?: number;
  /** entry bytes handed to the state machine whose asynchronous apply has not finished; above it
   * committed entries wait in the log (default MAX_APPLYING_BYTES, state-machine-applier.ts) */
  maxApplyingBytes?: number;
  /** membership of a brand-new cluster (default: every id in peers); [] for a node that will join */
  bootstrapVoters?: NodeId[];
  logger?: Logger;
  registry?: Registry;
  /** uniform in [0, 1) (election jitter, reconnect jitter); default Math.random */
  random?: () => number;
  storage?: Partial<LogStorageOptions>;
  /** the node stopped on an unrecoverable error (storage failure, a failed apply) */
  onFatal?: (e: Error) => void;
  /** role or leader changed (after the Ready that changed it was persisted) */
  onRoleChange?: (c: RoleChange) => void;
  /** entries up to `index` are applied (asynchronous applies resolved) */
  onApplied?: (index: number) => void;
}

export interface RaftNodeStatus extends Status {
  leaseValidUntilMs: number;
  storage: StorageStats;
  transport: TransportStats;
}
