/**
 * The follower's side of replication: App messages appended to its log (with fast backtracking hints
 * when they do not match), heartbeats, and the messages a follower acts on.
 */
import { decodeConfChange } from './confchange';
import type { CoreState } from './core-state';
import { startCampaign } from './election';
import { commitTo, truncatePendingConfs } from './membership';
import { handleSnapChunk } from './snapshot-transfer';
import { EntryType, Message, MsgType, NodeId } from './types';

/** a message from the leader of this term: the election timer restarts, the leader is known */
function heardFromLeader(core: CoreState, leader: NodeId): void {
  core.electionElapsed = 0;
  core.bootLease = false;
  core.lead = leader;
}

/** a follower's handling of a message of its term */
export function stepFollower(core: CoreState, m: Message): void {
  switch (m.type) {
    case MsgType.App:
      heardFromLeader(core, m.from);
      handleAppend(core, m);
      return;
    case MsgType.Heartbeat:
      heardFromLeader(core, m.from);
      if (m.commit !== undefined) commitTo(core, Math.min(m.commit, core.log.lastIndex()));
      // lastIndex/lastTerm (filled in by ready(): what this Ready makes durable) let the leader
      // detect lost App messages or lost AppResp acks
      core.send({ type: MsgType.HeartbeatResp, to: m.from, term: core.term, context: m.context });
      core.hbRespPending = true;
      return;
    case MsgType.Snap:
      heardFromLeader(core, m.from);
      handleSnapChunk(core, m);
      return;
    case MsgType.TimeoutNow:
      // leadership transfer: campaign at once, skipping pre-vote and overriding leases
      startCampaign(core, false, true);
      return;
    case MsgType.ReadIndexResp:
      core.readStates.push({ id: m.context ?? 0, index: m.index ?? 0 });
      return;
    default:
      return;
  }
}

function handleAppend(core: CoreState, m: Message): void {
  const prev = m.index ?? 0;
  const prevTerm = m.logTerm ?? 0;
  const ents = m.entries ?? [];
  if (prev < core.log.committed) {
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, index: core.log.committed });
    return;
  }
  if (core.unbootstrapped()) {
    // a joining node with neither membership nor log: it needs the leader's snapshot (which carries
    // the membership) before any entry; rejecting index 0 asks for it
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, reject: true, index: 0, logTerm: 0, context: prev });
    return;
  }
  if (core.log.matchTerm(prev, prevTerm)) {
    const lastNew = prev + ents.length;
    const ci = core.log.findConflict(ents);
    if (ci !== 0) {
      if (ci <= core.log.committed) throw new Error(`raft: entry ${ci} conflicts with committed ${core.log.committed}`);
      const k = ci - ents[0]!.index;
      const tail = k === 0 ? ents : ents.slice(k);
      truncatePendingConfs(core, ci);
      core.log.append(tail);
      for (const e of tail) {
        if (e.type === EntryType.ConfChange) core.pendingConfs.push({ index: e.index, cc: decodeConfChange(e.data) });
      }
    }
    if (m.commit !== undefined) commitTo(core, Math.min(m.commit, lastNew));
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, index: lastNew });
    return;
  }
  // fast backtracking: the largest index <= prev whose term <= the leader's term at prev
  let hint = Math.min(prev, core.log.lastIndex());
  hint = core.log.findConflictByTerm(hint, prevTerm);
  const hintTerm = core.log.term(hint) ?? 0;
  core.send({
    type: MsgType.AppResp,
    to: m.from,
    term: core.term,
    reject: true,
    index: hint,
    logTerm: hintTerm,
    context: prev,
  });
}
