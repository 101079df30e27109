/**
 * The state of one RaftCore: its settings, its term, vote, role and membership, the leader's view of
 * its followers, and what the next Ready will carry. RaftCore (core.ts) owns one; the functions in
 * election.ts, leader-replication.ts, follower-replication.ts, snapshot-transfer.ts, read-index.ts,
 * membership.ts and core-status.ts act on it. Internal to the Raft library: callers use RaftCore.
 */
import { Progress } from './progress';
import { RaftLog } from './raft-log';
import { cloneConf } from './memory-storage';
import {
  ConfChange,
  ConfState,
  HardState,
  LogReader,
  Message,
  NONE,
  NodeId,
  RaftConfig,
  ReadState,
  Role,
  SnapshotMeta,
} from './types';

/** Optional settings beyond the shared RaftConfig (all have defaults). */
export interface RaftCoreOptions {
  /** leader lease length in ticks; must satisfy leaseTicks * (1 + rho) <= electionTicks - 1, rho the
   * max relative tick-rate difference between nodes (default floor(0.8 * electionTicks)) */
  leaseTicks?: number;
  /** serve ReadIndex from the lease without a heartbeat round while the lease is valid (default false) */
  leaseReads?: boolean;
  /** refuse proposals while uncommitted entry bytes exceed this (default 1 GiB) */
  maxUncommittedBytes?: number;
  /** max bytes of committed entries per Ready (default 64 MiB, at least one entry) */
  maxApplyBytes?: number;
  /** applied index at restart (default: the storage snapshot's index) */
  applied?: number;
}

/** a read waiting for the heartbeat round `seq` to be acknowledged by a quorum */
interface PendingRead {
  from: NodeId;
  ctx: number;
  index: number;
  seq: number;
}

/** a snapshot being received in chunks */
interface SnapRecv {
  from: NodeId;
  term: number;
  meta: SnapshotMeta;
  chunks: Uint8Array[];
  received: number;
}

export class CoreState {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly leaseTicks: number;
  readonly leaseReads: boolean;
  readonly maxUncommittedBytes: number;
  readonly maxApplyBytes: number;
  readonly log: RaftLog;

  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = Role.Follower;
  conf: ConfState;
  /** membership after each committed ConfChange (for compact()): ascending by index */
  confHistory: { index: number; conf: ConfState }[] = [];
  /** ConfChange entries in the log, not yet committed (ascending) */
  pendingConfs: { index: number; cc: ConfChange }[] = [];

  prs = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();
  now = 0;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** after (re)start a follower ignores vote requests for one election timeout (it may have been in
   * some leader's lease before the restart) */
  bootLease = true;
  leadTransferee: NodeId = NONE;
  /** a TimeoutNow was sent this term: the lease is void (the target may win with a forced vote) */
  leaseVoided = false;
  uncommitted: { index: number; bytes: number }[] = [];
  uncommittedHead = 0;
  uncommittedBytes = 0;

  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** leader: reads waiting for a quorum heartbeat ack */
  pendingReads: PendingRead[] = [];
  pendingReadsHead = 0;
  /** leader: reads arriving before the leader committed an entry of its term */
  readsWaitingCommit: { from: NodeId; ctx: number }[] = [];
  /** heartbeat rounds: seq -> tick sent (hbTicks[seq - hbBase]) */
  hbSeq = 0;
  hbBase = 1;
  hbTicks: number[] = [];
  needHeartbeat = false;
  /** leader: followers whose replication should be re-examined at the next flush */
  dirty = new Set<NodeId>();
  snapRecv: SnapRecv | undefined;

  /** the hard state, role and leader as the last Ready reported them */
  prevHard: HardState;
  prevRole: Role = Role.Follower;
  prevLead: NodeId = NONE;
  readyOutstanding = false;
  hbRespPending = false;

  /** Settings, log, hard state and the membership of the storage's snapshot; RaftCore's constructor
   * then replays the log's membership changes and becomes a follower. */
  constructor(config: RaftConfig, storage: LogReader, hardState: HardState | undefined, opts: RaftCoreOptions) {
    if (config.id === NONE) throw new Error('raft: id must not be 0');
    if (config.electionTicks <= config.heartbeatTicks) throw new Error('raft: electionTicks must exceed heartbeatTicks');
    if (config.maxInflightMsgs < 1) throw new Error('raft: maxInflightMsgs must be >= 1');
    this.id = config.id;
    this.cfg = config;
    this.leaseTicks = opts.leaseTicks ?? Math.max(1, Math.floor(config.electionTicks * 0.8));
    if (this.leaseTicks > config.electionTicks - 1) throw new Error('raft: leaseTicks must be <= electionTicks - 1');
    this.leaseReads = opts.leaseReads ?? false;
    this.maxUncommittedBytes = opts.maxUncommittedBytes ?? 1 << 30;
    this.maxApplyBytes = opts.maxApplyBytes ?? 64 << 20;
    const hs = hardState ?? { term: 0, vote: NONE, commit: 0 };
    const snap = storage.snapshot();
    const snapIndex = snap ? snap.meta.index : 0;
    // a commit index beyond the durable log (hard state written before the entries) is only knowledge
    // lost: clamp it
    this.log = new RaftLog(storage, Math.min(hs.commit, storage.lastIndex()), opts.applied ?? snapIndex);
    this.term = hs.term;
    this.vote = hs.vote;
    this.conf = snap ? cloneConf(snap.meta.conf) : { voters: [], learners: [], votersOutgoing: [] };
    this.confHistory.push({ index: snapIndex, conf: cloneConf(this.conf) });
    // replaying the log's membership changes (a follower's) leaves term, vote and commit as they are
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  send(m: Omit<Message, 'from'> & { from?: NodeId }): void {
    (m as Message).from = this.id;
    this.msgs.push(m as Message);
  }

  committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** the only voter of the membership is this node (no other node can ever be elected) */
  isSoleVoter(): boolean {
    return this.conf.voters.length === 1 && this.conf.voters[0] === this.id && this.conf.votersOutgoing.length === 0;
  }

  /** no membership and no log: a node started empty to join an existing cluster */
  unbootstrapped(): boolean {
    const c = this.conf;
    return c.voters.length === 0 && c.learners.length === 0 && c.votersOutgoing.length === 0 && this.log.lastIndex() === 0;
  }

  hardStateChanged(): boolean {
    return (
      this.term !== this.prevHard.term || this.vote !== this.prevHard.vote || this.log.committed !== this.prevHard.commit
    );
  }
}
