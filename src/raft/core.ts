/**
 * The pure Raft consensus core. No I/O, no clock, no randomness of its own: the caller feeds
 * tick()/step()/propose()/readIndex()/transferLeadership()/proposeConfChange() and drains ready(),
 * persists what it says, sends its messages, applies its committed entries, then calls advance().
 *
 * Model: etcd-io/raft (raft.go, tracker/, quorum/), re-derived here. See docs/raft.md for the rules the
 * caller must follow (persist before send; one Ready outstanding at a time).
 *
 * RaftCore is the caller's API; its state is a CoreState (core-state.ts) and the rules live by concern:
 * election.ts (roles, campaigns, votes), leader-replication.ts (proposals, progress, sending, commit),
 * follower-replication.ts, snapshot-transfer.ts, read-index.ts (ReadIndex, lease), membership.ts
 * (conf changes) and core-status.ts (status()).
 */
import { ProgressState } from './progress';
import { RaftLog } from './raft-log';
import { cloneConf } from './memory-storage';
import { CoreState, RaftCoreOptions } from './core-state';
import { statusOf, Status } from './core-status';
import { becomeFollower, CAMPAIGN_TRANSFER, handleVote, inLease, startCampaign, stepCandidate, tickElection } from './election';
import { stepFollower } from './follower-replication';
import { appendProposal, flush, maybeCommit, ProposeResult, sendTimeoutNow, stepLeader, tickLeader } from './leader-replication';
import { applyCommittedConfs, proposeConfChange, scanConfEntries } from './membership';
import { handleReadIndex, leaseValidUntil } from './read-index';
import { ConfChange, ConfState, EntryType, HardState, LogReader, Message, MsgType, NONE, NodeId, RaftConfig, Ready, Role, Snapshot } from './types';

export { CAMPAIGN_TRANSFER } from './election';
export type { ProposeError, ProposeResult } from './leader-replication';
export type { PeerStatus, Status } from './core-status';
export type { RaftCoreOptions } from './core-state';

export class RaftCore {
  readonly id: NodeId;
  readonly log: RaftLog;
  private readonly core: CoreState;

  constructor(config: RaftConfig, storage: LogReader, hardState?: HardState, opts: RaftCoreOptions = {}) {
    const core = new CoreState(config, storage, hardState, opts);
    this.core = core;
    this.id = core.id;
    this.log = core.log;
    // rebuild the membership from the ConfChange entries in the log
    scanConfEntries(core, storage.firstIndex(), storage.lastIndex() + 1);
    applyCommittedConfs(core);
    becomeFollower(core, core.term, NONE);
    core.prevRole = core.role;
    core.prevLead = core.lead;
  }

  // term, vote, leader and role: the state's (only the rules change them)
  get term(): number {
    return this.core.term;
  }
  get vote(): NodeId {
    return this.core.vote;
  }
  get lead(): NodeId {
    return this.core.lead;
  }
  get role(): Role {
    return this.core.role;
  }

  // ───────────────────────────── caller API ─────────────────────────────

  /** Advance logical time by one tick. */
  tick(): void {
    const core = this.core;
    core.now++;
    if (core.role === Role.Leader) tickLeader(core);
    else tickElection(core);
  }

  /** Feed a message received from a peer. */
  step(m: Message): void {
    const core = this.core;
    if (m.term > core.term) {
      if (m.type === MsgType.Vote || m.type === MsgType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        if (!force && inLease(core)) return; // heard from a leader recently: ignore (lease safety)
      }
      if (m.type === MsgType.PreVote) {
        // never change term on a pre-vote request
      } else if (m.type === MsgType.PreVoteResp && !m.reject) {
        // a granted pre-vote carries the future term; counted below
      } else if (m.type === MsgType.App || m.type === MsgType.Heartbeat || m.type === MsgType.Snap) {
        becomeFollower(core, m.term, m.from);
      } else {
        becomeFollower(core, m.term, NONE);
      }
    } else if (m.term < core.term) {
      if ((core.cfg.checkQuorum || core.cfg.preVote) && (m.type === MsgType.App || m.type === MsgType.Heartbeat)) {
        // a stale leader (e.g. after a partition): tell it our term so it steps down
        core.send({ type: MsgType.AppResp, to: m.from, term: core.term });
      } else if (m.type === MsgType.PreVote) {
        core.send({ type: MsgType.PreVoteResp, to: m.from, term: core.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MsgType.PreVote:
      case MsgType.Vote:
        handleVote(core, m);
        return;
      default:
        break;
    }
    switch (core.role) {
      case Role.Leader:
        stepLeader(core, m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        stepCandidate(core, m);
        break;
      default:
        stepFollower(core, m);
    }
  }

  /** Propose a state machine command. Only the leader accepts. */
  propose(data: Uint8Array): ProposeResult {
    return appendProposal(this.core, EntryType.Normal, data);
  }

  /**
   * Propose a single-server membership change (see docs/raft.md): addLearner, then promote once the
   * learner caught up, or remove. One change at a time; it takes effect when its entry commits.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    return proposeConfChange(this.core, cc);
  }

  /**
   * Request a linearizable read. The answer arrives as a ReadState {id, index} in a later Ready: the
   * read may be served once applied >= index. A follower forwards the request to the leader. Requests
   * are dropped (no answer) if leadership changes: the caller retries after a timeout.
   */
  readIndex(id: number): { ok: true } | { error: 'no_leader'; leader: NodeId } {
    const core = this.core;
    if (core.role === Role.Leader) {
      handleReadIndex(core, core.id, id);
      return { ok: true };
    }
    if (core.lead === NONE || core.role !== Role.Follower) return { error: 'no_leader', leader: NONE };
    core.send({ type: MsgType.ReadIndex, to: core.lead, term: core.term, context: id });
    return { ok: true };
  }

  /** Hand leadership to `to` (a voter): once it has the whole log it gets TimeoutNow. Proposals are
   * refused during the transfer; it is aborted after an election timeout. */
  transferLeadership(to: NodeId): { ok: true } | { error: 'not_leader' | 'invalid'; leader: NodeId } {
    const core = this.core;
    if (core.role !== Role.Leader) return { error: 'not_leader', leader: core.lead };
    if (to === core.id) {
      core.leadTransferee = NONE;
      return { ok: true };
    }
    if (!core.conf.voters.includes(to) || !core.prs.has(to)) return { error: 'invalid', leader: core.id };
    if (core.leadTransferee === to) return { ok: true };
    core.leadTransferee = to;
    core.electionElapsed = 0;
    const pr = core.prs.get(to)!;
    if (pr.match === core.log.lastIndex()) sendTimeoutNow(core, to);
    else core.dirty.add(to);
    return { ok: true };
  }

  /**
   * Log compaction: the caller's state machine at applied index `index` is `data`. Returns the snapshot
   * (with term and membership filled in), which the caller stores (e.g. MemoryStorage.compact) and
   * which is later sent to followers too far behind. `conf` overrides the membership at `index`.
   */
  compact(index: number, data: Uint8Array, conf?: ConfState): Snapshot {
    const core = this.core;
    if (index > core.log.applied) throw new Error(`raft: compact(${index}) beyond applied ${core.log.applied}`);
    // the durable storage may still hold `index` while a received snapshot replaces the log
    const t = core.log.term(index) ?? core.log.storage.term(index);
    if (t === undefined) throw new Error(`raft: compact(${index}): index unavailable`);
    let c = conf;
    if (!c) {
      let k = core.confHistory.length - 1;
      while (k > 0 && core.confHistory[k]!.index > index) k--;
      if (core.confHistory[k]!.index > index) throw new Error(`raft: compact(${index}): membership unknown, pass conf`);
      c = core.confHistory[k]!.conf;
      // drop history made obsolete by the snapshot
      if (k > 0) core.confHistory.splice(0, k);
    }
    return { meta: { index, term: t, conf: cloneConf(c) }, data };
  }

  /** the only voter of the membership is this node (no other node can ever be elected) */
  isSoleVoter(): boolean {
    return this.core.isSoleVoter();
  }

  /** Leader lease end in ticks of this node's logical time (compare with status().now); 0 if none. */
  leaseValidUntil(): number {
    return leaseValidUntil(this.core);
  }

  hasReady(): boolean {
    const core = this.core;
    if (core.readyOutstanding) return false;
    flush(core);
    return (
      core.msgs.length > 0 ||
      core.log.hasUnstable() ||
      core.log.hasNextCommitted() ||
      core.readStates.length > 0 ||
      core.hardStateChanged() ||
      core.role !== core.prevRole ||
      core.lead !== core.prevLead
    );
  }

  /**
   * Collect what the caller must do. Order: persist hardState/entries/snapshot; then send messages;
   * then apply snapshot and committed entries; then advance(ready). Only one Ready may be outstanding.
   */
  ready(): Ready {
    const core = this.core;
    if (core.readyOutstanding) throw new Error('raft: ready() called before advance() of the previous Ready');
    flush(core);
    const rd: Ready = {
      entries: core.log.takeUnstable(),
      messages: core.msgs,
      committed: core.log.nextCommitted(core.maxApplyBytes),
      readStates: core.readStates,
      softStateChanged: core.role !== core.prevRole || core.lead !== core.prevLead,
    };
    const snap = core.log.takeUnstableSnapshot();
    if (snap) rd.snapshot = snap;
    if (core.hardStateChanged()) {
      rd.hardState = { term: core.term, vote: core.vote, commit: core.log.committed };
      core.prevHard = rd.hardState;
    }
    if (rd.committed.length > 0) core.log.applying = rd.committed[rd.committed.length - 1]!.index;
    if (core.hbRespPending) {
      // the log as this Ready leaves it on disk
      core.hbRespPending = false;
      const li = core.log.lastIndex();
      const lt = core.log.lastTerm();
      for (const m of rd.messages) {
        if (m.type === MsgType.HeartbeatResp) {
          m.index = li;
          m.logTerm = lt;
        }
      }
    }
    core.msgs = [];
    core.readStates = [];
    core.prevRole = core.role;
    core.prevLead = core.lead;
    core.readyOutstanding = true;
    return rd;
  }

  /** The caller persisted, sent and applied everything in `rd`. */
  advance(rd: Ready): void {
    const core = this.core;
    core.readyOutstanding = false;
    if (rd.snapshot) {
      core.log.stableSnapTo(rd.snapshot.meta.index);
      if (core.log.applied < rd.snapshot.meta.index) core.log.applied = rd.snapshot.meta.index;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      core.log.stableTo(last.index, last.term);
    }
    if (rd.committed.length > 0) {
      const a = rd.committed[rd.committed.length - 1]!.index;
      if (a > core.log.applied) core.log.applied = a;
    }
    if (core.log.applying < core.log.applied) core.log.applying = core.log.applied;
    if (core.role === Role.Leader) {
      const self = core.prs.get(core.id);
      if (self && self.maybeUpdate(core.log.stableLastIndex())) maybeCommit(core);
    }
  }

  status(): Status {
    return statusOf(this.core);
  }

  /** The transport could not deliver to `id` (connection lost): resend from its match index. */
  reportUnreachable(id: NodeId): void {
    const core = this.core;
    const pr = core.prs.get(id);
    if (core.role !== Role.Leader || !pr || id === core.id) return;
    if (pr.state === ProgressState.Replicate) {
      pr.becomeProbe();
      core.dirty.add(id);
    }
  }

  /** Start an election now (tests, or an operator forcing one). */
  campaign(): void {
    const core = this.core;
    if (core.role === Role.Leader) return;
    startCampaign(core, core.cfg.preVote, false);
  }
}
