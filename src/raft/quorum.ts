/**
 * Quorum arithmetic for the Raft core: the commit index a configuration agrees on, and the result of a
 * vote. A configuration is either a single majority (`voters`) or, during joint consensus, two
 * majorities (`voters` and `votersOutgoing`) that must both agree.
 */
import type { ConfState, NodeId } from './types';

export const enum VoteResult {
  Pending = 0,
  Won = 1,
  Lost = 2,
}

/** Largest index that a majority of `ids` has (by `get`). An empty set agrees on everything. */
export function majorityIndex(ids: readonly NodeId[], get: (id: NodeId) => number): number {
  const n = ids.length;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  if (n === 1) return get(ids[0]!);
  const vals = new Array<number>(n);
  for (let i = 0; i < n; i++) vals[i] = get(ids[i]!);
  vals.sort((a, b) => b - a);
  // the (n/2+1)-th largest value is held by a majority
  return vals[(n >> 1)]!;
}

/** Index agreed by the whole (possibly joint) configuration. */
export function committedIndex(conf: ConfState, get: (id: NodeId) => number): number {
  const a = majorityIndex(conf.voters, get);
  if (conf.votersOutgoing.length === 0) return a === Number.MAX_SAFE_INTEGER ? 0 : a;
  const b = majorityIndex(conf.votersOutgoing, get);
  const r = Math.min(a, b);
  return r === Number.MAX_SAFE_INTEGER ? 0 : r;
}

function majorityVote(ids: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (ids.length === 0) return VoteResult.Won;
  let yes = 0;
  let missing = 0;
  for (const id of ids) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = (ids.length >> 1) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

export function voteResult(conf: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVote(conf.voters, votes);
  if (conf.votersOutgoing.length === 0) return a;
  const b = majorityVote(conf.votersOutgoing, votes);
  if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
  if (a === VoteResult.Won && b === VoteResult.Won) return VoteResult.Won;
  return VoteResult.Pending;
}

/** True if `active` holds for a quorum of the configuration. */
export function quorumActive(conf: ConfState, active: (id: NodeId) => boolean): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const id of conf.voters) votes.set(id, active(id));
  for (const id of conf.votersOutgoing) votes.set(id, active(id));
  return voteResult(conf, votes) === VoteResult.Won;
}

export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.votersOutgoing.includes(id);
}

/** Every node of the configuration (voters, outgoing voters, learners), each once. */
export function allNodes(conf: ConfState): NodeId[] {
  const s = new Set<NodeId>([...conf.voters, ...conf.votersOutgoing, ...conf.learners]);
  return [...s].sort((a, b) => a - b);
}
