/**
 * The leader's side of replication: proposals appended to its log, the progress of each follower,
 * entries and heartbeats sent within the flow-control window, the answers to them, and the commit
 * index advanced once a quorum holds an entry of the current term.
 */
import { committedIndex, quorumActive } from './quorum';
import { Progress, ProgressState } from './progress';
import { entryBytes } from './raft-log';
import { decodeConfChange } from './confchange';
import type { CoreState } from './core-state';
import { becomeFollower } from './election';
import { commitTo } from './membership';
import { handleReadIndex, quorumAckedSeq, releaseReads } from './read-index';
import { handleSnapResp, sendSnapChunk, startSnapshot } from './snapshot-transfer';
import { Entry, EntryType, Message, MsgType, NONE, NodeId, Role } from './types';

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

/** start tracking node `id`, its next entry to send being `next` */
export function addProgress(core: CoreState, id: NodeId, next: number): void {
  if (core.prs.has(id)) return;
  const pr = new Progress(id, next, core.cfg.maxInflightMsgs, core.cfg.maxInflightBytes);
  pr.recentActive = true; // grace period until the next check-quorum round
  core.prs.set(id, pr);
  if (id !== core.id) core.dirty.add(id);
}

/** the leader's tick: check-quorum and transfer timeout each election timeout, heartbeats */
export function tickLeader(core: CoreState): void {
  core.heartbeatElapsed++;
  core.electionElapsed++;
  if (core.electionElapsed >= core.cfg.electionTicks) {
    core.electionElapsed = 0;
    if (core.cfg.checkQuorum) {
      const ok = quorumActive(core.conf, (id) => id === core.id || (core.prs.get(id)?.recentActive ?? false));
      for (const pr of core.prs.values()) if (pr.id !== core.id) pr.recentActive = false;
      if (!ok) {
        becomeFollower(core, core.term, NONE);
        return;
      }
    }
    if (core.leadTransferee !== NONE) core.leadTransferee = NONE; // transfer aborted
  }
  if (core.heartbeatElapsed >= core.cfg.heartbeatTicks) {
    core.heartbeatElapsed = 0;
    core.needHeartbeat = true;
  }
}

/** append a proposal to the leader's log, unless refused (not leader, transferring, busy) */
export function appendProposal(core: CoreState, type: EntryType, data: Uint8Array): ProposeResult {
  if (core.role !== Role.Leader) return { error: 'not_leader', leader: core.lead };
  if (core.leadTransferee !== NONE) return { error: 'transferring', leader: core.id };
  const b = data.byteLength;
  if (core.uncommittedBytes > 0 && core.uncommittedBytes + b > core.maxUncommittedBytes) {
    return { error: 'busy', leader: core.id };
  }
  const index = appendEntry(core, type, data);
  return { index, term: core.term };
}

/** append an entry of the current term to the leader's log; every follower gets it at the next flush */
export function appendEntry(core: CoreState, type: EntryType, data: Uint8Array): number {
  const index = core.log.lastIndex() + 1;
  const e: Entry = { term: core.term, index, type, data };
  core.log.appendOne(e);
  if (type === EntryType.ConfChange) core.pendingConfs.push({ index, cc: decodeConfChange(data) });
  const b = entryBytes(e);
  if (b > 0) {
    core.uncommitted.push({ index, bytes: b });
    core.uncommittedBytes += b;
  }
  for (const id of core.prs.keys()) if (id !== core.id) core.dirty.add(id);
  return index;
}

/** commit the newest entry of the current term that a quorum holds; false if nothing moved */
export function maybeCommit(core: CoreState): boolean {
  const idx = committedIndex(core.conf, (id) => core.prs.get(id)?.match ?? 0);
  // Figure 8: only an entry of the current term is committed by counting replicas
  if (idx <= core.log.committed || core.log.term(idx) !== core.term) return false;
  commitTo(core, idx);
  if (core.role !== Role.Leader) return true; // stepped down (own removal)
  // release uncommitted-bytes accounting
  while (core.uncommittedHead < core.uncommitted.length && core.uncommitted[core.uncommittedHead]!.index <= idx) {
    core.uncommittedBytes -= core.uncommitted[core.uncommittedHead]!.bytes;
    core.uncommittedHead++;
  }
  if (core.uncommittedHead > 1024 && core.uncommittedHead * 2 > core.uncommitted.length) {
    core.uncommitted = core.uncommitted.slice(core.uncommittedHead);
    core.uncommittedHead = 0;
  }
  for (const id of core.prs.keys()) if (id !== core.id) core.dirty.add(id);
  if (core.readsWaitingCommit.length > 0 && core.committedInTerm()) {
    const w = core.readsWaitingCommit;
    core.readsWaitingCommit = [];
    for (const r of w) handleReadIndex(core, r.from, r.ctx);
  }
  return true;
}

/** the leader's handling of a message of its term */
export function stepLeader(core: CoreState, m: Message): void {
  switch (m.type) {
    case MsgType.AppResp:
      handleAppResp(core, m);
      return;
    case MsgType.HeartbeatResp:
      handleHeartbeatResp(core, m);
      return;
    case MsgType.SnapResp:
      handleSnapResp(core, m);
      return;
    case MsgType.ReadIndex:
      handleReadIndex(core, m.from, m.context ?? 0);
      return;
    default:
      return;
  }
}

function handleAppResp(core: CoreState, m: Message): void {
  const pr = core.prs.get(m.from);
  if (!pr) return;
  pr.recentActive = true;
  pr.restoring = false;
  if (m.reject) {
    const rejected = m.context ?? m.index ?? 0;
    if (rejected === 0) {
      // index 0 always matches: the follower is asking for a snapshot (joining node)
      if (pr.state !== ProgressState.Snapshot) startSnapshot(core, pr);
      return;
    }
    let next = m.index ?? 0;
    if ((m.logTerm ?? 0) > 0) next = core.log.findConflictByTerm(next, m.logTerm!);
    if (pr.maybeDecrTo(rejected, next)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      core.dirty.add(pr.id);
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
    maybeCommit(core);
    if (core.role !== Role.Leader) return;
    if (pr.id === core.leadTransferee && pr.match === core.log.lastIndex()) sendTimeoutNow(core, pr.id);
  }
  if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(Math.max(idx, pr.match));
  core.dirty.add(pr.id);
}

function handleHeartbeatResp(core: CoreState, m: Message): void {
  const pr = core.prs.get(m.from);
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
  if (m.context !== undefined && m.context > pr.ackedSeq && m.context <= core.hbSeq) {
    pr.ackedSeq = m.context;
    releaseReads(core);
  }
  if (pr.state === ProgressState.Snapshot) {
    // no chunk acknowledged during a whole heartbeat interval: the chunk or its ack was lost
    if (pr.snapAcked === pr.snapAckedAtHb) sendSnapChunk(core, pr);
    pr.snapAckedAtHb = pr.snapAcked;
    return;
  }
  if (m.index !== undefined && m.logTerm !== undefined) {
    if (m.index > pr.match && core.log.term(m.index) === m.logTerm) {
      // the follower's durable log ends with an entry we have: by Log Matching it holds our log up
      // to there (its AppResp may have been lost)
      pr.maybeUpdate(m.index);
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      maybeCommit(core);
      if (core.role !== Role.Leader) return;
      if (pr.id === core.leadTransferee && pr.match === core.log.lastIndex()) sendTimeoutNow(core, pr.id);
    } else if (pr.state === ProgressState.Replicate && m.context === pr.hbSeq && pr.match < pr.prevHbNext - 1) {
      // App messages sent before the previous heartbeat round have still not arrived when this round
      // is answered: lost, resend from match. (Not those sent before this round only: the transport
      // sends entries on their own lane, which heartbeats overtake, so they may still be on the way.)
      pr.becomeProbe();
    }
  }
  if (pr.match < core.log.lastIndex() || pr.sentCommit < core.log.committed) core.dirty.add(pr.id);
}

/** tell `to` to campaign at once (leadership transfer); this leader's lease is void from now on */
export function sendTimeoutNow(core: CoreState, to: NodeId): void {
  core.leaseVoided = true;
  core.msgs.push({ type: MsgType.TimeoutNow, from: core.id, to, term: core.term });
}

/** Send what follower `pr` needs: entries within the flow-control window, or a snapshot. */
export function sendAppend(core: CoreState, pr: Progress, forceCommit: boolean): void {
  if (pr.state === ProgressState.Snapshot) return;
  // whatever the follower acknowledged (by AppResp or heartbeat response) is no longer in flight
  if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(pr.match);
  const last = core.log.lastIndex();
  for (;;) {
    if (pr.paused()) return;
    const prevIndex = pr.next - 1;
    const prevTerm = core.log.term(prevIndex);
    if (prevTerm === undefined) {
      startSnapshot(core, pr);
      return;
    }
    if (pr.next > last) {
      // nothing new: tell the commit index if the follower does not know it yet
      const probe = pr.state === ProgressState.Probe && pr.match < prevIndex;
      if (forceCommit || probe || pr.sentCommit < Math.min(core.log.committed, pr.match)) {
        // in Replicate, a commit-only App names the follower's match as its previous entry, not the
        // last entry sent: it travels on the transport's control lane and may overtake the appends
        // still on their way, which would make the follower reject it (and the leader resend them).
        // (Not a forced one: a leader stepping down wants the commit known as far as it can get.)
        const mt = pr.state === ProgressState.Replicate && !probe && !forceCommit ? core.log.term(pr.match) : undefined;
        if (mt !== undefined) sendApp(core, pr, pr.match, mt, []);
        else sendApp(core, pr, prevIndex, prevTerm, []);
      }
      return;
    }
    const budget = Math.min(core.cfg.maxMsgBytes, pr.inflights.budget());
    if (pr.inflights.count > 0 && budget <= 0) return;
    const ents = core.log.slice(pr.next, last + 1, Math.max(0, budget));
    if (ents === undefined) {
      startSnapshot(core, pr);
      return;
    }
    let bytes = 0;
    for (const e of ents) bytes += entryBytes(e);
    if (pr.inflights.count > 0 && bytes > pr.inflights.budget()) return;
    sendApp(core, pr, prevIndex, prevTerm, ents, bytes);
    if (pr.state !== ProgressState.Replicate) return;
    forceCommit = false;
  }
}

function sendApp(core: CoreState, pr: Progress, prevIndex: number, prevTerm: number, ents: Entry[], bytes = 0): void {
  const commit = core.log.committed;
  core.msgs.push({
    type: MsgType.App,
    from: core.id,
    to: pr.id,
    term: core.term,
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

function bcastHeartbeat(core: CoreState): void {
  const seq = ++core.hbSeq;
  core.hbTicks.push(core.now);
  // keep the seq -> tick table bounded: drop entries below what a quorum acknowledged
  const q = quorumAckedSeq(core);
  let drop = Math.min(q, seq) - core.hbBase;
  if (core.hbTicks.length > 4096) drop = Math.max(drop, core.hbTicks.length - 4096);
  if (drop > 64) {
    core.hbTicks.splice(0, drop);
    core.hbBase += drop;
  }
  for (const pr of core.prs.values()) {
    if (pr.id === core.id) continue;
    pr.hbSeq = seq;
    pr.prevHbNext = pr.hbNext;
    pr.hbNext = pr.next;
    core.msgs.push({
      type: MsgType.Heartbeat,
      from: core.id,
      to: pr.id,
      term: core.term,
      commit: Math.min(pr.match, core.log.committed),
      context: seq,
    });
  }
  releaseReads(core); // single-voter configurations
}

/** Coalesced sending: runs before a Ready is collected. */
export function flush(core: CoreState): void {
  if (core.role !== Role.Leader) {
    core.dirty.clear();
    return;
  }
  if (core.needHeartbeat) {
    core.needHeartbeat = false;
    bcastHeartbeat(core);
  }
  if (core.dirty.size > 0) {
    const ids = [...core.dirty];
    core.dirty.clear();
    for (const id of ids) {
      const pr = core.prs.get(id);
      if (pr && id !== core.id) sendAppend(core, pr, false);
    }
  }
}
