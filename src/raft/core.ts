/**
 * The pure Raft consensus core. No I/O, no clock, no randomness of its own: the caller feeds
 * tick()/step()/propose()/readIndex()/transferLeadership()/proposeConfChange() and drains ready(),
 * persists what it says, sends its messages, applies its committed entries, then calls advance().
 *
 * Model: etcd-io/raft (raft.go, tracker/, quorum/), re-derived here. See docs/raft.md for the rules the
 * caller must follow (persist before send; one Ready outstanding at a time).
 */
import { committedIndex, quorumActive, voteResult, VoteResult, allNodes } from './quorum';
import { Progress, ProgressState, progressStateName } from './progress';
import { RaftLog, entryBytes } from './raft-log';
import { decodeConfChange, encodeConfChange } from './confchange';
import { cloneConf } from './memory-storage';
import {
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogReader,
  Message,
  MsgType,
  NONE,
  NodeId,
  RaftConfig,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMeta,
} from './types';

/** Vote/PreVote `context` marking a campaign started by TimeoutNow (leadership transfer): it
 * overrides the voters' leader lease. */
export const CAMPAIGN_TRANSFER = 1;

export type ProposeError =
  /** this node is not the leader; `leader` is the known leader (NONE if unknown) */
  | 'not_leader'
  /** a leadership transfer is in progress */
  | 'transferring'
  /** too many uncommitted bytes (config.maxUncommittedBytes) */
  | 'busy'
  /** a membership change is still uncommitted, or the leader has not committed an entry of its term */
  | 'conf_change_pending'
  /** a learner may be promoted only once caught up (match >= leader's commit index) */
  | 'not_caught_up'
  /** the change makes no sense (unknown node, removing the last voter, ...) */
  | 'invalid';

export type ProposeResult = { index: number; term: number } | { error: ProposeError; leader: NodeId };

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

interface PendingRead {
  from: NodeId;
  ctx: number;
  index: number;
  seq: number;
}

interface SnapRecv {
  from: NodeId;
  term: number;
  meta: SnapshotMeta;
  chunks: Uint8Array[];
  received: number;
}

const ROLE_NAMES = ['follower', 'pre-candidate', 'candidate', 'leader'] as const;

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

export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly leaseTicks: number;
  private readonly leaseReads: boolean;
  private readonly maxUncommittedBytes: number;
  private readonly maxApplyBytes: number;
  readonly log: RaftLog;

  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = Role.Follower;
  private conf: ConfState;
  /** membership after each committed ConfChange (for compact()): ascending by index */
  private confHistory: { index: number; conf: ConfState }[] = [];
  /** ConfChange entries in the log, not yet committed (ascending) */
  private pendingConfs: { index: number; cc: ConfChange }[] = [];

  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private now = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** after (re)start a follower ignores vote requests for one election timeout (it may have been in
   * some leader's lease before the restart) */
  private bootLease = true;
  private leadTransferee: NodeId = NONE;
  /** a TimeoutNow was sent this term: the lease is void (the target may win with a forced vote) */
  private leaseVoided = false;
  private uncommitted: { index: number; bytes: number }[] = [];
  private uncommittedHead = 0;
  private uncommittedBytes = 0;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** leader: reads waiting for a quorum heartbeat ack */
  private pendingReads: PendingRead[] = [];
  private pendingReadsHead = 0;
  /** leader: reads arriving before the leader committed an entry of its term */
  private readsWaitingCommit: { from: NodeId; ctx: number }[] = [];
  /** heartbeat rounds: seq -> tick sent (hbTicks[seq - hbBase]) */
  private hbSeq = 0;
  private hbBase = 1;
  private hbTicks: number[] = [];
  private needHeartbeat = false;
  /** leader: followers whose replication should be re-examined at the next flush */
  private dirty = new Set<NodeId>();
  private snapRecv: SnapRecv | undefined;

  private prevHard: HardState;
  private prevRole: Role = Role.Follower;
  private prevLead: NodeId = NONE;
  private readyOutstanding = false;
  private hbRespPending = false;

  constructor(config: RaftConfig, storage: LogReader, hardState?: HardState, opts: RaftCoreOptions = {}) {
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
    // rebuild the membership from the ConfChange entries in the log
    this.scanConfEntries(storage.firstIndex(), storage.lastIndex() + 1);
    this.applyCommittedConfs();
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.becomeFollower(this.term, NONE);
    this.prevRole = this.role;
    this.prevLead = this.lead;
  }

  // ───────────────────────────── caller API ─────────────────────────────

  /** Advance logical time by one tick. */
  tick(): void {
    this.now++;
    if (this.role === Role.Leader) this.tickLeader();
    else this.tickElection();
  }

  /** Feed a message received from a peer. */
  step(m: Message): void {
    if (m.term > this.term) {
      if (m.type === MsgType.Vote || m.type === MsgType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        if (!force && this.inLease()) return; // heard from a leader recently: ignore (lease safety)
      }
      if (m.type === MsgType.PreVote) {
        // never change term on a pre-vote request
      } else if (m.type === MsgType.PreVoteResp && !m.reject) {
        // a granted pre-vote carries the future term; counted below
      } else if (m.type === MsgType.App || m.type === MsgType.Heartbeat || m.type === MsgType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MsgType.App || m.type === MsgType.Heartbeat)) {
        // a stale leader (e.g. after a partition): tell it our term so it steps down
        this.send({ type: MsgType.AppResp, to: m.from, term: this.term });
      } else if (m.type === MsgType.PreVote) {
        this.send({ type: MsgType.PreVoteResp, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MsgType.PreVote:
      case MsgType.Vote:
        this.handleVote(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        break;
      default:
        this.stepFollower(m);
    }
  }

  /** Propose a state machine command. Only the leader accepts. */
  propose(data: Uint8Array): ProposeResult {
    return this.appendProposal(EntryType.Normal, data);
  }

  /**
   * Propose a single-server membership change (see docs/raft.md): addLearner, then promote once the
   * learner caught up, or remove. One change at a time; it takes effect when its entry commits.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    if (this.role !== Role.Leader) return { error: 'not_leader', leader: this.lead };
    // one change at a time, and only after the leader committed an entry of its term (fixes the
    // single-server change hazard of a leader elected with an uncommitted change)
    if (this.pendingConfs.length > 0 || !this.committedInTerm() || this.conf.votersOutgoing.length > 0) {
      return { error: 'conf_change_pending', leader: this.id };
    }
    const isV = this.conf.voters.includes(cc.node);
    const isL = this.conf.learners.includes(cc.node);
    if (cc.node === NONE) return { error: 'invalid', leader: this.id };
    switch (cc.type) {
      case 'addLearner':
        if (isV || isL) return { error: 'invalid', leader: this.id };
        break;
      case 'promote': {
        if (!isL) return { error: 'invalid', leader: this.id };
        const pr = this.prs.get(cc.node);
        if (!pr || pr.match < this.log.committed) return { error: 'not_caught_up', leader: this.id };
        break;
      }
      case 'remove':
        if (!isV && !isL) return { error: 'invalid', leader: this.id };
        if (isV && this.conf.voters.length === 1) return { error: 'invalid', leader: this.id };
        break;
    }
    return this.appendProposal(EntryType.ConfChange, encodeConfChange(cc));
  }

  /**
   * Request a linearizable read. The answer arrives as a ReadState {id, index} in a later Ready: the
   * read may be served once applied >= index. A follower forwards the request to the leader. Requests
   * are dropped (no answer) if leadership changes: the caller retries after a timeout.
   */
  readIndex(id: number): { ok: true } | { error: 'no_leader'; leader: NodeId } {
    if (this.role === Role.Leader) {
      this.handleReadIndex(this.id, id);
      return { ok: true };
    }
    if (this.lead === NONE || this.role !== Role.Follower) return { error: 'no_leader', leader: NONE };
    this.send({ type: MsgType.ReadIndex, to: this.lead, term: this.term, context: id });
    return { ok: true };
  }

  /** Hand leadership to `to` (a voter): once it has the whole log it gets TimeoutNow. Proposals are
   * refused during the transfer; it is aborted after an election timeout. */
  transferLeadership(to: NodeId): { ok: true } | { error: 'not_leader' | 'invalid'; leader: NodeId } {
    if (this.role !== Role.Leader) return { error: 'not_leader', leader: this.lead };
    if (to === this.id) {
      this.leadTransferee = NONE;
      return { ok: true };
    }
    if (!this.conf.voters.includes(to) || !this.prs.has(to)) return { error: 'invalid', leader: this.id };
    if (this.leadTransferee === to) return { ok: true };
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.prs.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.dirty.add(to);
    return { ok: true };
  }

  /**
   * Log compaction: the caller's state machine at applied index `index` is `data`. Returns the snapshot
   * (with term and membership filled in), which the caller stores (e.g. MemoryStorage.compact) and
   * which is later sent to followers too far behind. `conf` overrides the membership at `index`.
   */
  compact(index: number, data: Uint8Array, conf?: ConfState): Snapshot {
    if (index > this.log.applied) throw new Error(`raft: compact(${index}) beyond applied ${this.log.applied}`);
    // the durable storage may still hold `index` while a received snapshot replaces the log
    const t = this.log.term(index) ?? this.log.storage.term(index);
    if (t === undefined) throw new Error(`raft: compact(${index}): index unavailable`);
    let c = conf;
    if (!c) {
      let k = this.confHistory.length - 1;
      while (k > 0 && this.confHistory[k]!.index > index) k--;
      if (this.confHistory[k]!.index > index) throw new Error(`raft: compact(${index}): membership unknown, pass conf`);
      c = this.confHistory[k]!.conf;
      // drop history made obsolete by the snapshot
      if (k > 0) this.confHistory.splice(0, k);
    }
    return { meta: { index, term: t, conf: cloneConf(c) }, data };
  }

  /** the only voter of the membership is this node (no other node can ever be elected) */
  isSoleVoter(): boolean {
    return this.conf.voters.length === 1 && this.conf.voters[0] === this.id && this.conf.votersOutgoing.length === 0;
  }

  /** Leader lease end in ticks of this node's logical time (compare with status().now); 0 if none. */
  leaseValidUntil(): number {
    if (this.role !== Role.Leader || !this.cfg.checkQuorum || this.leaseVoided || this.leadTransferee !== NONE) return 0;
    const seq = this.quorumAckedSeq();
    if (seq < this.hbBase || seq === 0 || seq > this.hbSeq) return 0;
    const sent = this.hbTicks[seq - this.hbBase];
    if (sent === undefined) return 0;
    return sent + this.leaseTicks;
  }

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    this.flush();
    return (
      this.msgs.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasNextCommitted() ||
      this.readStates.length > 0 ||
      this.hardStateChanged() ||
      this.role !== this.prevRole ||
      this.lead !== this.prevLead
    );
  }

  /**
   * Collect what the caller must do. Order: persist hardState/entries/snapshot; then send messages;
   * then apply snapshot and committed entries; then advance(ready). Only one Ready may be outstanding.
   */
  ready(): Ready {
    if (this.readyOutstanding) throw new Error('raft: ready() called before advance() of the previous Ready');
    this.flush();
    const rd: Ready = {
      entries: this.log.takeUnstable(),
      messages: this.msgs,
      committed: this.log.nextCommitted(this.maxApplyBytes),
      readStates: this.readStates,
      softStateChanged: this.role !== this.prevRole || this.lead !== this.prevLead,
    };
    const snap = this.log.takeUnstableSnapshot();
    if (snap) rd.snapshot = snap;
    if (this.hardStateChanged()) {
      rd.hardState = { term: this.term, vote: this.vote, commit: this.log.committed };
      this.prevHard = rd.hardState;
    }
    if (rd.committed.length > 0) this.log.applying = rd.committed[rd.committed.length - 1]!.index;
    if (this.hbRespPending) {
      // the log as this Ready leaves it on disk
      this.hbRespPending = false;
      const li = this.log.lastIndex();
      const lt = this.log.lastTerm();
      for (const m of rd.messages) {
        if (m.type === MsgType.HeartbeatResp) {
          m.index = li;
          m.logTerm = lt;
        }
      }
    }
    this.msgs = [];
    this.readStates = [];
    this.prevRole = this.role;
    this.prevLead = this.lead;
    this.readyOutstanding = true;
    return rd;
  }

  /** The caller persisted, sent and applied everything in `rd`. */
  advance(rd: Ready): void {
    this.readyOutstanding = false;
    if (rd.snapshot) {
      this.log.stableSnapTo(rd.snapshot.meta.index);
      if (this.log.applied < rd.snapshot.meta.index) this.log.applied = rd.snapshot.meta.index;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      this.log.stableTo(last.index, last.term);
    }
    if (rd.committed.length > 0) {
      const a = rd.committed[rd.committed.length - 1]!.index;
      if (a > this.log.applied) this.log.applied = a;
    }
    if (this.log.applying < this.log.applied) this.log.applying = this.log.applied;
    if (this.role === Role.Leader) {
      const self = this.prs.get(this.id);
      if (self && self.maybeUpdate(this.log.stableLastIndex())) this.maybeCommit();
    }
  }

  status(): Status {
    const progress: PeerStatus[] = [];
    if (this.role === Role.Leader) {
      for (const pr of this.prs.values()) {
        progress.push({
          id: pr.id,
          match: pr.match,
          next: pr.next,
          state: progressStateName(pr.state),
          learner: this.conf.learners.includes(pr.id),
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
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      roleName: ROLE_NAMES[this.role],
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: cloneConf(this.conf),
      leadTransferee: this.leadTransferee,
      now: this.now,
      leaseValidUntil: this.leaseValidUntil(),
      progress,
    };
  }

  /** The transport could not deliver to `id` (connection lost): resend from its match index. */
  reportUnreachable(id: NodeId): void {
    const pr = this.prs.get(id);
    if (this.role !== Role.Leader || !pr || id === this.id) return;
    if (pr.state === ProgressState.Replicate) {
      pr.becomeProbe();
      this.dirty.add(id);
    }
  }

  /** Start an election now (tests, or an operator forcing one). */
  campaign(): void {
    if (this.role === Role.Leader) return;
    this.startCampaign(this.cfg.preVote, false);
  }

  // ───────────────────────────── roles ─────────────────────────────

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.random(this.cfg.electionTicks);
  }

  private setTerm(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
  }

  private clearLeaderState(): void {
    this.prs.clear();
    this.dirty.clear();
    this.leadTransferee = NONE;
    this.leaseVoided = false;
    this.pendingReads = [];
    this.pendingReadsHead = 0;
    this.readsWaitingCommit = [];
    this.needHeartbeat = false;
    this.uncommitted = [];
    this.uncommittedHead = 0;
    this.uncommittedBytes = 0;
  }

  private becomeFollower(term: number, lead: NodeId): void {
    this.setTerm(term);
    this.clearLeaderState();
    this.role = Role.Follower;
    this.lead = lead;
    this.resetTimers();
  }

  private becomePreCandidate(): void {
    this.clearLeaderState();
    this.role = Role.PreCandidate;
    this.lead = NONE;
    this.votes.clear();
    this.bootLease = false;
    this.resetTimers();
  }

  private becomeCandidate(): void {
    this.clearLeaderState();
    this.setTerm(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.lead = NONE;
    this.votes.clear();
    this.bootLease = false;
    this.resetTimers();
  }

  private becomeLeader(): void {
    this.clearLeaderState();
    this.role = Role.Leader;
    this.lead = this.id;
    this.bootLease = false;
    this.resetTimers();
    this.hbSeq = 0;
    this.hbBase = 1;
    this.hbTicks = [];
    const last = this.log.lastIndex();
    for (const id of allNodes(this.conf)) this.addProgress(id, last + 1);
    const self = this.prs.get(this.id);
    if (self) {
      self.match = this.log.stableLastIndex();
      self.becomeReplicate();
      self.recentActive = true;
    }
    this.appendEntry(EntryType.Noop, new Uint8Array(0));
  }

  private addProgress(id: NodeId, next: number): void {
    if (this.prs.has(id)) return;
    const pr = new Progress(id, next, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    pr.recentActive = true; // grace period until the next check-quorum round
    this.prs.set(id, pr);
    if (id !== this.id) this.dirty.add(id);
  }

  private promotable(): boolean {
    return this.conf.voters.includes(this.id) && !this.log.unstableSnap;
  }

  private inLease(): boolean {
    return (
      this.cfg.checkQuorum &&
      (this.lead !== NONE || (this.bootLease && this.role === Role.Follower)) &&
      this.electionElapsed < this.cfg.electionTicks
    );
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.bootLease && this.electionElapsed >= this.cfg.electionTicks) this.bootLease = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.startCampaign(this.cfg.preVote, false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        const ok = quorumActive(this.conf, (id) => id === this.id || (this.prs.get(id)?.recentActive ?? false));
        for (const pr of this.prs.values()) if (pr.id !== this.id) pr.recentActive = false;
        if (!ok) {
          this.becomeFollower(this.term, NONE);
          return;
        }
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE; // transfer aborted
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.needHeartbeat = true;
    }
  }

  private startCampaign(pre: boolean, transfer: boolean): void {
    if (!this.promotable()) return;
    let voteTerm: number;
    let type: MsgType;
    if (pre) {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
      type = MsgType.PreVote;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
      type = MsgType.Vote;
    }
    this.votes.set(this.id, true);
    const r = voteResult(this.conf, this.votes);
    if (r === VoteResult.Won) {
      if (pre) this.startCampaign(false, transfer);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    const seen = new Set<NodeId>();
    for (const id of [...this.conf.voters, ...this.conf.votersOutgoing]) {
      if (id === this.id || seen.has(id)) continue;
      seen.add(id);
      const m: Message = { type, to: id, from: this.id, term: voteTerm, index: lastIndex, logTerm: lastTerm };
      if (transfer) m.context = CAMPAIGN_TRANSFER;
      this.msgs.push(m);
    }
  }

  private handleVote(m: Message): void {
    const pre = m.type === MsgType.PreVote;
    const canVote =
      this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (pre && m.term > this.term);
    const respType = pre ? MsgType.PreVoteResp : MsgType.VoteResp;
    if (canVote && this.log.isUpToDate(m.index ?? 0, m.logTerm ?? 0)) {
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MsgType.App:
      case MsgType.Heartbeat:
      case MsgType.Snap:
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MsgType.PreVoteResp:
      case MsgType.VoteResp: {
        const want = this.role === Role.PreCandidate ? MsgType.PreVoteResp : MsgType.VoteResp;
        if (m.type !== want) return;
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        const r = voteResult(this.conf, this.votes);
        if (r === VoteResult.Won) {
          if (this.role === Role.PreCandidate) this.startCampaign(false, false);
          else this.becomeLeader();
        } else if (r === VoteResult.Lost) {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MsgType.App:
        this.electionElapsed = 0;
        this.bootLease = false;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case MsgType.Heartbeat:
        this.electionElapsed = 0;
        this.bootLease = false;
        this.lead = m.from;
        if (m.commit !== undefined) this.commitTo(Math.min(m.commit, this.log.lastIndex()));
        // lastIndex/lastTerm (filled in by ready(): what this Ready makes durable) let the leader
        // detect lost App messages or lost AppResp acks
        this.send({ type: MsgType.HeartbeatResp, to: m.from, term: this.term, context: m.context });
        this.hbRespPending = true;
        return;
      case MsgType.Snap:
        this.electionElapsed = 0;
        this.bootLease = false;
        this.lead = m.from;
        this.handleSnapChunk(m);
        return;
      case MsgType.TimeoutNow:
        // leadership transfer: campaign at once, skipping pre-vote and overriding leases
        this.startCampaign(false, true);
        return;
      case MsgType.ReadIndexResp:
        this.readStates.push({ id: m.context ?? 0, index: m.index ?? 0 });
        return;
      default:
        return;
    }
  }

  // ───────────────────────────── follower replication ─────────────────────────────

  private handleAppend(m: Message): void {
    const prev = m.index ?? 0;
    const prevTerm = m.logTerm ?? 0;
    const ents = m.entries ?? [];
    if (prev < this.log.committed) {
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    if (this.unbootstrapped()) {
      // a joining node with neither membership nor log: it needs the leader's snapshot (which carries
      // the membership) before any entry; rejecting index 0 asks for it
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, reject: true, index: 0, logTerm: 0, context: prev });
      return;
    }
    if (this.log.matchTerm(prev, prevTerm)) {
      const lastNew = prev + ents.length;
      const ci = this.log.findConflict(ents);
      if (ci !== 0) {
        if (ci <= this.log.committed) throw new Error(`raft: entry ${ci} conflicts with committed ${this.log.committed}`);
        const k = ci - ents[0]!.index;
        const tail = k === 0 ? ents : ents.slice(k);
        this.truncatePendingConfs(ci);
        this.log.append(tail);
        for (const e of tail) {
          if (e.type === EntryType.ConfChange) this.pendingConfs.push({ index: e.index, cc: decodeConfChange(e.data) });
        }
      }
      if (m.commit !== undefined) this.commitTo(Math.min(m.commit, lastNew));
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, index: lastNew });
      return;
    }
    // fast backtracking: the largest index <= prev whose term <= the leader's term at prev
    let hint = Math.min(prev, this.log.lastIndex());
    hint = this.log.findConflictByTerm(hint, prevTerm);
    const hintTerm = this.log.term(hint) ?? 0;
    this.send({
      type: MsgType.AppResp,
      to: m.from,
      term: this.term,
      reject: true,
      index: hint,
      logTerm: hintTerm,
      context: prev,
    });
  }

  private handleSnapChunk(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    const meta = s.meta;
    if (meta.index <= this.log.committed && !this.unbootstrapped()) {
      this.snapRecv = undefined;
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, index: this.log.committed });
      return;
    }
    let r = this.snapRecv;
    if (!r || r.meta.index !== meta.index || r.meta.term !== meta.term || r.from !== m.from || r.term !== m.term) {
      if (s.offset !== 0) {
        this.snapRecv = undefined;
        this.send({ type: MsgType.SnapResp, to: m.from, term: this.term, index: meta.index, context: 0 });
        return;
      }
      r = { from: m.from, term: m.term, meta, chunks: [], received: 0 };
      this.snapRecv = r;
    }
    if (s.offset !== r.received) {
      this.send({ type: MsgType.SnapResp, to: m.from, term: this.term, index: meta.index, context: r.received });
      return;
    }
    if (s.data.byteLength > 0) {
      r.chunks.push(s.data);
      r.received += s.data.byteLength;
    }
    if (!s.done) {
      this.send({ type: MsgType.SnapResp, to: m.from, term: this.term, index: meta.index, context: r.received });
      return;
    }
    this.snapRecv = undefined;
    let data: Uint8Array;
    if (r.chunks.length === 1) data = r.chunks[0]!;
    else {
      data = new Uint8Array(r.received);
      let o = 0;
      for (const c of r.chunks) {
        data.set(c, o);
        o += c.byteLength;
      }
    }
    if (this.restore({ meta, data })) {
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, index: this.log.lastIndex() });
    } else {
      this.send({ type: MsgType.AppResp, to: m.from, term: this.term, index: this.log.committed });
    }
  }

  /** install a snapshot; false if the log already covers it */
  private restore(s: Snapshot): boolean {
    const fresh = this.unbootstrapped();
    if (s.meta.index <= this.log.committed && !fresh) return false;
    if (!fresh && this.log.matchTerm(s.meta.index, s.meta.term)) {
      // fast-forward: we already have the snapshot's entries
      this.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    this.conf = cloneConf(s.meta.conf);
    // earlier history stays: the caller may still compact at an index it applied before the snapshot
    this.confHistory.push({ index: s.meta.index, conf: cloneConf(this.conf) });
    this.pendingConfs = [];
    return true;
  }

  /** no membership and no log: a node started empty to join an existing cluster */
  private unbootstrapped(): boolean {
    const c = this.conf;
    return c.voters.length === 0 && c.learners.length === 0 && c.votersOutgoing.length === 0 && this.log.lastIndex() === 0;
  }

  private commitTo(i: number): void {
    if (this.log.commitTo(i)) this.applyCommittedConfs();
  }

  // ───────────────────────────── membership ─────────────────────────────

  private scanConfEntries(lo: number, hi: number): void {
    const st = this.log.storage;
    while (lo < hi) {
      const ents = st.entries(lo, hi, 64 << 20);
      if (ents.length === 0) break;
      for (const e of ents) {
        if (e.type === EntryType.ConfChange) this.pendingConfs.push({ index: e.index, cc: decodeConfChange(e.data) });
      }
      lo = ents[ents.length - 1]!.index + 1;
    }
  }

  private truncatePendingConfs(from: number): void {
    while (this.pendingConfs.length > 0 && this.pendingConfs[this.pendingConfs.length - 1]!.index >= from) {
      this.pendingConfs.pop();
    }
  }

  private applyCommittedConfs(): void {
    while (this.pendingConfs.length > 0 && this.pendingConfs[0]!.index <= this.log.committed) {
      const p = this.pendingConfs.shift()!;
      this.applyConfChange(p.cc, p.index);
    }
  }

  private applyConfChange(cc: ConfChange, index: number): void {
    const c = this.conf;
    const without = (xs: NodeId[], n: NodeId) => xs.filter((x) => x !== n);
    switch (cc.type) {
      case 'addLearner':
        if (!c.voters.includes(cc.node) && !c.learners.includes(cc.node)) c.learners.push(cc.node);
        break;
      case 'promote':
        c.learners = without(c.learners, cc.node);
        if (!c.voters.includes(cc.node)) c.voters.push(cc.node);
        break;
      case 'remove':
        c.learners = without(c.learners, cc.node);
        c.voters = without(c.voters, cc.node);
        break;
    }
    c.voters.sort((a, b) => a - b);
    c.learners.sort((a, b) => a - b);
    this.confHistory.push({ index, conf: cloneConf(c) });
    if (this.role !== Role.Leader) return;
    if (cc.type === 'addLearner') this.addProgress(cc.node, this.log.lastIndex() + 1);
    if (cc.type === 'remove') {
      if (cc.node === this.id) {
        this.stepDownRemoved();
        return;
      }
      this.prs.delete(cc.node);
      this.dirty.delete(cc.node);
      if (this.leadTransferee === cc.node) this.leadTransferee = NONE;
    }
    // the quorum changed: commit and pending reads may move
    this.maybeCommit();
    this.releaseReads();
  }

  /** The leader's own removal committed: tell followers the commit index, hand leadership to the most
   * up-to-date voter (TimeoutNow) and step down. */
  private stepDownRemoved(): void {
    const last = this.log.lastIndex();
    let best: Progress | undefined;
    for (const pr of this.prs.values()) {
      if (pr.id === this.id) continue;
      pr.probeSent = false;
      this.sendAppend(pr, true);
      if (this.conf.voters.includes(pr.id) && (!best || pr.match > best.match)) best = pr;
    }
    if (best && best.match === last) this.msgs.push({ type: MsgType.TimeoutNow, from: this.id, to: best.id, term: this.term });
    this.becomeFollower(this.term, NONE);
  }

  // ───────────────────────────── leader ─────────────────────────────

  private appendProposal(type: EntryType, data: Uint8Array): ProposeResult {
    if (this.role !== Role.Leader) return { error: 'not_leader', leader: this.lead };
    if (this.leadTransferee !== NONE) return { error: 'transferring', leader: this.id };
    const b = data.byteLength;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + b > this.maxUncommittedBytes) {
      return { error: 'busy', leader: this.id };
    }
    const index = this.appendEntry(type, data);
    return { index, term: this.term };
  }

  private appendEntry(type: EntryType, data: Uint8Array): number {
    const index = this.log.lastIndex() + 1;
    const e: Entry = { term: this.term, index, type, data };
    this.log.appendOne(e);
    if (type === EntryType.ConfChange) this.pendingConfs.push({ index, cc: decodeConfChange(data) });
    const b = entryBytes(e);
    if (b > 0) {
      this.uncommitted.push({ index, bytes: b });
      this.uncommittedBytes += b;
    }
    for (const id of this.prs.keys()) if (id !== this.id) this.dirty.add(id);
    return index;
  }

  private send(m: Omit<Message, 'from'> & { from?: NodeId }): void {
    (m as Message).from = this.id;
    this.msgs.push(m as Message);
  }

  private maybeCommit(): boolean {
    const idx = committedIndex(this.conf, (id) => this.prs.get(id)?.match ?? 0);
    // Figure 8: only an entry of the current term is committed by counting replicas
    if (idx <= this.log.committed || this.log.term(idx) !== this.term) return false;
    this.commitTo(idx);
    if (this.role !== Role.Leader) return true; // stepped down (own removal)
    // release uncommitted-bytes accounting
    while (this.uncommittedHead < this.uncommitted.length && this.uncommitted[this.uncommittedHead]!.index <= idx) {
      this.uncommittedBytes -= this.uncommitted[this.uncommittedHead]!.bytes;
      this.uncommittedHead++;
    }
    if (this.uncommittedHead > 1024 && this.uncommittedHead * 2 > this.uncommitted.length) {
      this.uncommitted = this.uncommitted.slice(this.uncommittedHead);
      this.uncommittedHead = 0;
    }
    for (const id of this.prs.keys()) if (id !== this.id) this.dirty.add(id);
    if (this.readsWaitingCommit.length > 0 && this.committedInTerm()) {
      const w = this.readsWaitingCommit;
      this.readsWaitingCommit = [];
      for (const r of w) this.handleReadIndex(r.from, r.ctx);
    }
    return true;
  }

  private committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MsgType.AppResp:
        this.handleAppResp(m);
        return;
      case MsgType.HeartbeatResp:
        this.handleHeartbeatResp(m);
        return;
      case MsgType.SnapResp:
        this.handleSnapResp(m);
        return;
      case MsgType.ReadIndex:
        this.handleReadIndex(m.from, m.context ?? 0);
        return;
      default:
        return;
    }
  }

  private handleAppResp(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.restoring = false;
    if (m.reject) {
      const rejected = m.context ?? m.index ?? 0;
      if (rejected === 0) {
        // index 0 always matches: the follower is asking for a snapshot (joining node)
        if (pr.state !== ProgressState.Snapshot) this.startSnapshot(pr);
        return;
      }
      let next = m.index ?? 0;
      if ((m.logTerm ?? 0) > 0) next = this.log.findConflictByTerm(next, m.logTerm!);
      if (pr.maybeDecrTo(rejected, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.dirty.add(pr.id);
      }
      return;
    }
    const idx = m.index ?? 0;
    const wasProbe = pr.state === ProgressState.Probe;
    const updated = pr.maybeUpdate(idx);
    if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot && idx >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (wasProbe && (updated || pr.match === idx)) {
      pr.becomeReplicate();
    }
    if (updated) {
      this.maybeCommit();
      if (this.role !== Role.Leader) return;
      if (pr.id === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(pr.id);
    }
    if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(Math.max(idx, pr.match));
    this.dirty.add(pr.id);
  }

  private handleHeartbeatResp(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    // alive, restoring the snapshot it was sent: nothing acknowledged, nothing to resend (a resend
    // would find a newer snapshot here and start the follower over)
    if (m.reject) {
      pr.restoring = true;
      return;
    }
    pr.restoring = false;
    pr.probeSent = false;
    if (m.context !== undefined && m.context > pr.ackedSeq && m.context <= this.hbSeq) {
      pr.ackedSeq = m.context;
      this.releaseReads();
    }
    if (pr.state === ProgressState.Snapshot) {
      // no chunk acknowledged during a whole heartbeat interval: the chunk or its ack was lost
      if (pr.snapAcked === pr.snapAckedAtHb) this.sendSnapChunk(pr);
      pr.snapAckedAtHb = pr.snapAcked;
      return;
    }
    if (m.index !== undefined && m.logTerm !== undefined) {
      if (m.index > pr.match && this.log.term(m.index) === m.logTerm) {
        // the follower's durable log ends with an entry we have: by Log Matching it holds our log up
        // to there (its AppResp may have been lost)
        pr.maybeUpdate(m.index);
        if (pr.state === ProgressState.Probe) pr.becomeReplicate();
        this.maybeCommit();
        if (this.role !== Role.Leader) return;
        if (pr.id === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(pr.id);
      } else if (pr.state === ProgressState.Replicate && m.context === pr.hbSeq && pr.match < pr.hbNext - 1) {
        // App messages sent before this heartbeat were not received (lost): resend from match
        pr.becomeProbe();
      }
    }
    if (pr.match < this.log.lastIndex() || pr.sentCommit < this.log.committed) this.dirty.add(pr.id);
  }

  private handleSnapResp(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (pr.state !== ProgressState.Snapshot || m.index !== pr.pendingSnapshot) return;
    const acked = m.context ?? 0;
    const snap = this.log.snapshot();
    if (!snap || snap.meta.index !== pr.pendingSnapshot) {
      // our snapshot changed meanwhile: start over with the current one
      pr.becomeProbe();
      this.dirty.add(pr.id);
      return;
    }
    if (acked === pr.snapAcked && acked !== 0) return; // duplicate ack
    pr.snapAcked = Math.min(acked, snap.data.byteLength);
    this.sendSnapChunk(pr);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseVoided = true;
    this.msgs.push({ type: MsgType.TimeoutNow, from: this.id, to, term: this.term });
  }

  /** Send what follower `pr` needs: entries within the flow-control window, or a snapshot. */
  private sendAppend(pr: Progress, forceCommit: boolean): void {
    if (pr.state === ProgressState.Snapshot) return;
    // whatever the follower acknowledged (by AppResp or heartbeat response) is no longer in flight
    if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(pr.match);
    const last = this.log.lastIndex();
    for (;;) {
      if (pr.paused()) return;
      const prevIndex = pr.next - 1;
      const prevTerm = this.log.term(prevIndex);
      if (prevTerm === undefined) {
        this.startSnapshot(pr);
        return;
      }
      if (pr.next > last) {
        // nothing new: tell the commit index if the follower does not know it yet
        const probe = pr.state === ProgressState.Probe && pr.match < prevIndex;
        if (forceCommit || probe || pr.sentCommit < Math.min(this.log.committed, pr.match)) {
          this.sendApp(pr, prevIndex, prevTerm, []);
        }
        return;
      }
      const budget = Math.min(this.cfg.maxMsgBytes, pr.inflights.budget());
      if (pr.inflights.count > 0 && budget <= 0) return;
      const ents = this.log.slice(pr.next, last + 1, Math.max(0, budget));
      if (ents === undefined) {
        this.startSnapshot(pr);
        return;
      }
      let bytes = 0;
      for (const e of ents) bytes += entryBytes(e);
      if (pr.inflights.count > 0 && bytes > pr.inflights.budget()) return;
      this.sendApp(pr, prevIndex, prevTerm, ents, bytes);
      if (pr.state !== ProgressState.Replicate) return;
      forceCommit = false;
    }
  }

  private sendApp(pr: Progress, prevIndex: number, prevTerm: number, ents: Entry[], bytes = 0): void {
    const commit = this.log.committed;
    this.msgs.push({
      type: MsgType.App,
      from: this.id,
      to: pr.id,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit,
    });
    pr.sentCommit = Math.max(pr.sentCommit, Math.min(commit, prevIndex + ents.length));
    if (pr.state === ProgressState.Replicate) {
      if (ents.length > 0) {
        pr.next = ents[ents.length - 1]!.index + 1;
        pr.inflights.add(pr.next - 1, bytes);
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
  }

  private startSnapshot(pr: Progress): void {
    if (!pr.recentActive) return; // don't ship a snapshot to a node that does not answer
    const snap = this.log.snapshot();
    if (!snap) return;
    pr.becomeSnapshot(snap.meta.index);
    this.sendSnapChunk(pr);
  }

  private sendSnapChunk(pr: Progress): void {
    const snap = this.log.snapshot();
    if (!snap || snap.meta.index !== pr.pendingSnapshot) {
      pr.becomeProbe();
      this.dirty.add(pr.id);
      return;
    }
    const total = snap.data.byteLength;
    const off = pr.snapAcked;
    const end = Math.min(total, off + Math.max(1, this.cfg.snapshotChunkBytes));
    this.msgs.push({
      type: MsgType.Snap,
      from: this.id,
      to: pr.id,
      term: this.term,
      snapshot: { meta: snap.meta, offset: off, data: snap.data.subarray(off, end), done: end >= total },
    });
  }

  private handleReadIndex(from: NodeId, ctx: number): void {
    if (!this.committedInTerm()) {
      this.readsWaitingCommit.push({ from, ctx });
      return;
    }
    const index = this.log.committed;
    const onlySelf = this.isSoleVoter();
    if (onlySelf || (this.leaseReads && this.now < this.leaseValidUntil())) {
      this.answerRead(from, ctx, index);
      return;
    }
    this.pendingReads.push({ from, ctx, index, seq: this.hbSeq + 1 });
    this.needHeartbeat = true;
  }

  private answerRead(from: NodeId, ctx: number, index: number): void {
    if (from === this.id) this.readStates.push({ id: ctx, index });
    else this.msgs.push({ type: MsgType.ReadIndexResp, from: this.id, to: from, term: this.term, context: ctx, index });
  }

  private releaseReads(): void {
    if (this.pendingReadsHead >= this.pendingReads.length) return;
    const q = this.quorumAckedSeq();
    while (this.pendingReadsHead < this.pendingReads.length) {
      const r = this.pendingReads[this.pendingReadsHead]!;
      if (r.seq > q || r.seq > this.hbSeq) break;
      this.answerRead(r.from, r.ctx, r.index);
      this.pendingReadsHead++;
    }
    if (this.pendingReadsHead === this.pendingReads.length) {
      this.pendingReads = [];
      this.pendingReadsHead = 0;
    }
  }

  /** newest heartbeat round echoed by a quorum of voters (the leader counts its own latest round) */
  private quorumAckedSeq(): number {
    return committedIndex(this.conf, (id) => (id === this.id ? this.hbSeq : (this.prs.get(id)?.ackedSeq ?? 0)));
  }

  private bcastHeartbeat(): void {
    const seq = ++this.hbSeq;
    this.hbTicks.push(this.now);
    // keep the seq -> tick table bounded: drop entries below what a quorum acknowledged
    const q = this.quorumAckedSeq();
    let drop = Math.min(q, seq) - this.hbBase;
    if (this.hbTicks.length > 4096) drop = Math.max(drop, this.hbTicks.length - 4096);
    if (drop > 64) {
      this.hbTicks.splice(0, drop);
      this.hbBase += drop;
    }
    for (const pr of this.prs.values()) {
      if (pr.id === this.id) continue;
      pr.hbSeq = seq;
      pr.hbNext = pr.next;
      this.msgs.push({
        type: MsgType.Heartbeat,
        from: this.id,
        to: pr.id,
        term: this.term,
        commit: Math.min(pr.match, this.log.committed),
        context: seq,
      });
    }
    this.releaseReads(); // single-voter configurations
  }

  /** Coalesced sending: runs before a Ready is collected. */
  private flush(): void {
    if (this.role !== Role.Leader) {
      this.dirty.clear();
      return;
    }
    if (this.needHeartbeat) {
      this.needHeartbeat = false;
      this.bcastHeartbeat();
    }
    if (this.dirty.size > 0) {
      const ids = [...this.dirty];
      this.dirty.clear();
      for (const id of ids) {
        const pr = this.prs.get(id);
        if (pr && id !== this.id) this.sendAppend(pr, false);
      }
    }
  }

  private hardStateChanged(): boolean {
    return (
      this.term !== this.prevHard.term || this.vote !== this.prevHard.vote || this.log.committed !== this.prevHard.commit
    );
  }
}

