/**
 * Membership: single-server changes (add a learner, promote it, remove a node) proposed by the leader
 * one at a time, taking effect when their entry commits; the history of memberships kept for
 * compact(); the leader stepping down when its own removal commits.
 */
import { Progress } from './progress';
import { decodeConfChange, encodeConfChange } from './confchange';
import { cloneConf } from './memory-storage';
import type { CoreState } from './core-state';
import { becomeFollower } from './election';
import { addProgress, appendProposal, maybeCommit, sendAppend, type ProposeResult } from './leader-replication';
import { releaseReads } from './read-index';
import { ConfChange, EntryType, MsgType, NONE, NodeId, Role } from './types';

/**
 * Propose a single-server membership change (see docs/raft.md): addLearner, then promote once the
 * learner caught up, or remove. One change at a time; it takes effect when its entry commits.
 */
export function proposeConfChange(core: CoreState, cc: ConfChange): ProposeResult {
  if (core.role !== Role.Leader) return { error: 'not_leader', leader: core.lead };
  // one change at a time, and only after the leader committed an entry of its term (fixes the
  // single-server change hazard of a leader elected with an uncommitted change)
  if (core.pendingConfs.length > 0 || !core.committedInTerm() || core.conf.votersOutgoing.length > 0) {
    return { error: 'conf_change_pending', leader: core.id };
  }
  const isV = core.conf.voters.includes(cc.node);
  const isL = core.conf.learners.includes(cc.node);
  if (cc.node === NONE) return { error: 'invalid', leader: core.id };
  switch (cc.type) {
    case 'addLearner':
      if (isV || isL) return { error: 'invalid', leader: core.id };
      break;
    case 'promote': {
      if (!isL) return { error: 'invalid', leader: core.id };
      const pr = core.prs.get(cc.node);
      if (!pr || pr.match < core.log.committed) return { error: 'not_caught_up', leader: core.id };
      break;
    }
    case 'remove':
      if (!isV && !isL) return { error: 'invalid', leader: core.id };
      if (isV && core.conf.voters.length === 1) return { error: 'invalid', leader: core.id };
      break;
  }
  return appendProposal(core, EntryType.ConfChange, encodeConfChange(cc));
}

/** advance the commit index; membership changes take effect as their entries commit */
export function commitTo(core: CoreState, i: number): void {
  if (core.log.commitTo(i)) applyCommittedConfs(core);
}

/** collect the ConfChange entries of the stored log in [lo, hi) (at construction) */
export function scanConfEntries(core: CoreState, lo: number, hi: number): void {
  const st = core.log.storage;
  while (lo < hi) {
    const ents = st.entries(lo, hi, 64 << 20);
    if (ents.length === 0) break;
    for (const e of ents) {
      if (e.type === EntryType.ConfChange) core.pendingConfs.push({ index: e.index, cc: decodeConfChange(e.data) });
    }
    lo = ents[ents.length - 1]!.index + 1;
  }
}

export function truncatePendingConfs(core: CoreState, from: number): void {
  while (core.pendingConfs.length > 0 && core.pendingConfs[core.pendingConfs.length - 1]!.index >= from) {
    core.pendingConfs.pop();
  }
}

export function applyCommittedConfs(core: CoreState): void {
  while (core.pendingConfs.length > 0 && core.pendingConfs[0]!.index <= core.log.committed) {
    const p = core.pendingConfs.shift()!;
    applyConfChange(core, p.cc, p.index);
  }
}

function applyConfChange(core: CoreState, cc: ConfChange, index: number): void {
  const c = core.conf;
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
  core.confHistory.push({ index, conf: cloneConf(c) });
  if (core.role !== Role.Leader) return;
  if (cc.type === 'addLearner') addProgress(core, cc.node, core.log.lastIndex() + 1);
  if (cc.type === 'remove') {
    if (cc.node === core.id) {
      stepDownRemoved(core);
      return;
    }
    core.prs.delete(cc.node);
    core.dirty.delete(cc.node);
    if (core.leadTransferee === cc.node) core.leadTransferee = NONE;
  }
  // the quorum changed: commit and pending reads may move
  maybeCommit(core);
  releaseReads(core);
}

/** The leader's own removal committed: tell followers the commit index, hand leadership to the most
 * up-to-date voter (TimeoutNow) and step down. */
function stepDownRemoved(core: CoreState): void {
  const last = core.log.lastIndex();
  let best: Progress | undefined;
  for (const pr of core.prs.values()) {
    if (pr.id === core.id) continue;
    pr.probeSent = false;
    sendAppend(core, pr, true);
    if (core.conf.voters.includes(pr.id) && (!best || pr.match > best.match)) best = pr;
  }
  if (best && best.match === last) core.msgs.push({ type: MsgType.TimeoutNow, from: core.id, to: best.id, term: core.term });
  becomeFollower(core, core.term, NONE);
}
