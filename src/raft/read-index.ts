/**
 * Linearizable reads on the leader (ReadIndex) and the leader lease: a read is answered with the commit
 * index once a quorum acknowledged a heartbeat round sent after it arrived, or at once from a valid
 * lease (leaseReads) or when this node is the only voter. Heartbeat rounds are numbered (hbSeq) and
 * their send ticks kept (hbTicks) for the lease.
 */
import { committedIndex } from './quorum';
import type { CoreState } from './core-state';
import { MsgType, NONE, NodeId, Role } from './types';

/** Leader lease end in ticks of this node's logical time (compare with status().now); 0 if none. */
export function leaseValidUntil(core: CoreState): number {
  if (core.role !== Role.Leader || !core.cfg.checkQuorum || core.leaseVoided || core.leadTransferee !== NONE) return 0;
  const seq = quorumAckedSeq(core);
  if (seq < core.hbBase || seq === 0 || seq > core.hbSeq) return 0;
  const sent = core.hbTicks[seq - core.hbBase];
  if (sent === undefined) return 0;
  return sent + core.leaseTicks;
}

/** a read request on the leader, from itself or forwarded by a follower */
export function handleReadIndex(core: CoreState, from: NodeId, ctx: number): void {
  if (!core.committedInTerm()) {
    core.readsWaitingCommit.push({ from, ctx });
    return;
  }
  const index = core.log.committed;
  const onlySelf = core.isSoleVoter();
  if (onlySelf || (core.leaseReads && core.now < leaseValidUntil(core))) {
    answerRead(core, from, ctx, index);
    return;
  }
  core.pendingReads.push({ from, ctx, index, seq: core.hbSeq + 1 });
  core.needHeartbeat = true;
}

function answerRead(core: CoreState, from: NodeId, ctx: number, index: number): void {
  if (from === core.id) core.readStates.push({ id: ctx, index });
  else core.msgs.push({ type: MsgType.ReadIndexResp, from: core.id, to: from, term: core.term, context: ctx, index });
}

/** answer the pending reads whose heartbeat round a quorum acknowledged */
export function releaseReads(core: CoreState): void {
  if (core.pendingReadsHead >= core.pendingReads.length) return;
  const q = quorumAckedSeq(core);
  while (core.pendingReadsHead < core.pendingReads.length) {
    const r = core.pendingReads[core.pendingReadsHead]!;
    if (r.seq > q || r.seq > core.hbSeq) break;
    answerRead(core, r.from, r.ctx, r.index);
    core.pendingReadsHead++;
  }
  if (core.pendingReadsHead === core.pendingReads.length) {
    core.pendingReads = [];
    core.pendingReadsHead = 0;
  }
}

/** newest heartbeat round echoed by a quorum of voters (the leader counts its own latest round) */
export function quorumAckedSeq(core: CoreState): number {
  return committedIndex(core.conf, (id) => (id === core.id ? core.hbSeq : (core.prs.get(id)?.ackedSeq ?? 0)));
}
