/**
 * RaftOpLog: the OpLog (src/nfs/nfs3/op-sequencer.ts) of a cluster. The serving leader proposes each
 * StoreOp as a Raft entry; `submit` resolves once the entry is committed on a majority's disks and
 * applied to this node's store, with the store's result (the same result every replica computed).
 * Every answered op is therefore stable: WRITE answers FILE_SYNC and COMMIT has nothing left to do.
 *
 * A call that cannot be answered here (not the serving leader, leadership lost mid-flight, the node
 * stopping) throws DropCall: nothing is sent and the client retransmits to the next leader, where the
 * replicated duplicate-request record (`requestKey`) answers a call the old leader had executed with
 * the result it had.
 */
import { DropCall, type OpLog } from '../nfs/nfs3/op-sequencer';
import { Nfs3Status, type OpResult, type StoreOp } from '../store/types';
import { encodeEntry, OpCodecError } from './op-codec';

export interface Proposer {
  propose(data: Uint8Array): Promise<{ index: number; term: number; result: unknown }>;
}

export interface ServingGate {
  /** answer from local state now (leader, caught up, lease valid) */
  serving(): boolean;
  /** leader with its first entry of the term applied: may propose (the commit confirms leadership) */
  readonly caughtUp: boolean;
  /** confirm leadership with a quorum round (no valid lease) */
  confirm(): Promise<void>;
}

export class RaftOpLog implements OpLog {
  readonly stableOnApply = true;
  /** proposals not yet answered (a gauge) */
  inflight = 0;

  constructor(
    private readonly raft: Proposer,
    private readonly gate: ServingGate,
  ) {}

  async submit(op: StoreOp, requestKey?: Uint8Array): Promise<OpResult> {
    if (!this.gate.caughtUp) throw new DropCall('not the serving leader');
    let data: Uint8Array;
    try {
      data = encodeEntry({ kind: 'op', op, requestKey });
    } catch (e) {
      // the NFS layer checks names and paths first; anything the codec still refuses is invalid
      if (e instanceof OpCodecError) return { status: Nfs3Status.INVAL };
      throw e;
    }
    this.inflight++;
    try {
      const r = await this.raft.propose(data);
      return r.result as OpResult;
    } catch (e) {
      // not the leader any more, the entry was replaced, the node stopped on a local fault: this node
      // does not know the outcome, so it answers nothing (the retransmit finds the next leader)
      throw new DropCall(`proposal not answered: ${(e as Error).message}`);
    } finally {
      this.inflight--;
    }
  }

  /** Every op answered so far is committed on a majority; COMMIT only checks that we still serve. */
  async commitBarrier(): Promise<void> {
    if (this.gate.serving()) return;
    try {
      await this.gate.confirm();
    } catch (e) {
      throw new DropCall((e as Error).message);
    }
  }
}
