/**
 * Roles and elections: the transitions between follower, pre-candidate, candidate and leader; the
 * election timer; campaigns (pre-vote, then vote) and the answers to vote requests.
 */
import { voteResult, VoteResult, allNodes } from './quorum';
import type { CoreState } from './core-state';
import { stepFollower } from './follower-replication';
import { addProgress, appendEntry } from './leader-replication';
import { EntryType, Message, MsgType, NONE, NodeId, Role } from './types';

/** Vote/PreVote `context` marking a campaign started by TimeoutNow (leadership transfer): it
 * overrides the voters' leader lease. */
export const CAMPAIGN_TRANSFER = 1;

// ───────────────────────────── roles ─────────────────────────────

function resetTimers(core: CoreState): void {
  core.electionElapsed = 0;
  core.heartbeatElapsed = 0;
  core.randomizedElectionTimeout = core.cfg.electionTicks + core.cfg.random(Math.max(1, core.cfg.electionJitterTicks ?? core.cfg.electionTicks));
}

function setTerm(core: CoreState, term: number): void {
  if (term !== core.term) {
    if (term > core.term && core.msgs.length > 0) {
      // messages of an older term not handed out in a Ready yet are dropped (any message may be
      // lost): an acknowledgement queued for the old term's leader could name entries that this
      // term's leader replaces in the same Ready, before they ever reach the disk (the Ready then
      // persists the replacement and would send an ack of entries the node no longer has)
      core.msgs = core.msgs.filter((m) => !(m.term > 0 && m.term < term));
    }
    core.term = term;
    core.vote = NONE;
  }
}

function clearLeaderState(core: CoreState): void {
  core.prs.clear();
  core.dirty.clear();
  core.leadTransferee = NONE;
  core.leaseVoided = false;
  core.pendingReads = [];
  core.pendingReadsHead = 0;
  core.readsWaitingCommit = [];
  core.needHeartbeat = false;
  core.uncommitted = [];
  core.uncommittedHead = 0;
  core.uncommittedBytes = 0;
}

/** become a follower at `term` of `lead` (NONE if unknown) */
export function becomeFollower(core: CoreState, term: number, lead: NodeId): void {
  setTerm(core, term);
  clearLeaderState(core);
  core.role = Role.Follower;
  core.lead = lead;
  resetTimers(core);
}

function becomePreCandidate(core: CoreState): void {
  clearLeaderState(core);
  core.role = Role.PreCandidate;
  core.lead = NONE;
  core.votes.clear();
  core.bootLease = false;
  resetTimers(core);
}

function becomeCandidate(core: CoreState): void {
  clearLeaderState(core);
  setTerm(core, core.term + 1);
  core.vote = core.id;
  core.role = Role.Candidate;
  core.lead = NONE;
  core.votes.clear();
  core.bootLease = false;
  resetTimers(core);
}

function becomeLeader(core: CoreState): void {
  clearLeaderState(core);
  core.role = Role.Leader;
  core.lead = core.id;
  core.bootLease = false;
  resetTimers(core);
  core.hbSeq = 0;
  core.hbBase = 1;
  core.hbTicks = [];
  const last = core.log.lastIndex();
  for (const id of allNodes(core.conf)) addProgress(core, id, last + 1);
  const self = core.prs.get(core.id);
  if (self) {
    self.match = core.log.stableLastIndex();
    self.becomeReplicate();
    self.recentActive = true;
  }
  appendEntry(core, EntryType.Noop, new Uint8Array(0));
}

// ───────────────────────────── elections ─────────────────────────────

function promotable(core: CoreState): boolean {
  return core.conf.voters.includes(core.id) && !core.log.unstableSnap;
}

/** this node heard from a leader within an election timeout (or has just restarted): it refuses votes */
export function inLease(core: CoreState): boolean {
  return (
    core.cfg.checkQuorum &&
    (core.lead !== NONE || (core.bootLease && core.role === Role.Follower)) &&
    core.electionElapsed < core.cfg.electionTicks
  );
}

/** a follower's or candidate's tick: campaign once the randomized election timeout passed */
export function tickElection(core: CoreState): void {
  core.electionElapsed++;
  if (core.bootLease && core.electionElapsed >= core.cfg.electionTicks) core.bootLease = false;
  if (promotable(core) && core.electionElapsed >= core.randomizedElectionTimeout) {
    startCampaign(core, core.cfg.preVote, false);
  }
}

/** campaign: a pre-vote round first if `pre`; `transfer` overrides the voters' lease (TimeoutNow) */
export function startCampaign(core: CoreState, pre: boolean, transfer: boolean): void {
  if (!promotable(core)) return;
  let voteTerm: number;
  let type: MsgType;
  if (pre) {
    becomePreCandidate(core);
    voteTerm = core.term + 1;
    type = MsgType.PreVote;
  } else {
    becomeCandidate(core);
    voteTerm = core.term;
    type = MsgType.Vote;
  }
  core.votes.set(core.id, true);
  const r = voteResult(core.conf, core.votes);
  if (r === VoteResult.Won) {
    if (pre) startCampaign(core, false, transfer);
    else becomeLeader(core);
    return;
  }
  const lastIndex = core.log.lastIndex();
  const lastTerm = core.log.lastTerm();
  const seen = new Set<NodeId>();
  for (const id of [...core.conf.voters, ...core.conf.votersOutgoing]) {
    if (id === core.id || seen.has(id)) continue;
    seen.add(id);
    const m: Message = { type, to: id, from: core.id, term: voteTerm, index: lastIndex, logTerm: lastTerm };
    if (transfer) m.context = CAMPAIGN_TRANSFER;
    core.msgs.push(m);
  }
}

/** answer a Vote or PreVote request of this term or a newer one */
export function handleVote(core: CoreState, m: Message): void {
  const pre = m.type === MsgType.PreVote;
  const canVote =
    core.vote === m.from || (core.vote === NONE && core.lead === NONE) || (pre && m.term > core.term);
  const respType = pre ? MsgType.PreVoteResp : MsgType.VoteResp;
  if (canVote && core.log.isUpToDate(m.index ?? 0, m.logTerm ?? 0)) {
    core.send({ type: respType, to: m.from, term: m.term, reject: false });
    if (!pre) {
      core.electionElapsed = 0;
      core.vote = m.from;
    }
  } else {
    core.send({ type: respType, to: m.from, term: core.term, reject: true });
  }
}

/** a (pre-)candidate's handling of a message of its term: count votes, or follow a leader */
export function stepCandidate(core: CoreState, m: Message): void {
  switch (m.type) {
    case MsgType.App:
    case MsgType.Heartbeat:
    case MsgType.Snap:
      becomeFollower(core, m.term, m.from);
      stepFollower(core, m);
      return;
    case MsgType.PreVoteResp:
    case MsgType.VoteResp: {
      const want = core.role === Role.PreCandidate ? MsgType.PreVoteResp : MsgType.VoteResp;
      if (m.type !== want) return;
      if (!core.votes.has(m.from)) core.votes.set(m.from, !m.reject);
      const r = voteResult(core.conf, core.votes);
      if (r === VoteResult.Won) {
        if (core.role === Role.PreCandidate) startCampaign(core, false, false);
        else becomeLeader(core);
      } else if (r === VoteResult.Lost) {
        becomeFollower(core, core.term, NONE);
      }
      return;
    }
    default:
      return;
  }
}
