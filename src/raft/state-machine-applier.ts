/**
 * RaftNode's applies of committed entries to its state machine, which may apply asynchronously
 * (StateMachine.apply returning a Promise): entries are handed over in order without waiting, and
 * one counts as applied (reads, compaction, onApplied) only once it and every entry before it
 * finished. Answers the proposal waiting at each entry's index (pending-requests.ts).
 */
import { PendingProposals, settleProposal } from './pending-requests';
import type { RaftMetrics } from './raft-metrics';
import type { StateMachine } from './raft-node-api';
import { Entry, EntryType } from './types';

/** What the applier needs of its node. */
export interface StateMachineApplierHost {
  readonly stateMachine: StateMachine;
  readonly proposals: PendingProposals;
  readonly metrics: RaftMetrics;
  /** a ConfChange entry is applied (membership) */
  applyConfChange(e: Entry): void;
  /** entries through `index` are applied, asynchronous applies finished */
  applied(index: number): void;
  /** an apply failed: the node must stop */
  failed(e: Error): void;
}

export class StateMachineApplier {
  /** last entry handed to the state machine */
  private handed: number;
  /** last entry whose (possibly asynchronous) apply finished */
  private finished: number;
  /** asynchronous applies not finished, and the last of them (in order) */
  private applying = 0;
  private applyTail: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: StateMachineApplierHost,
    applied: number,
  ) {
    this.handed = this.finished = applied;
  }

  /** last entry handed to the state machine (its apply may still be running) */
  get handedIndex(): number {
    return this.handed;
  }

  /** last entry applied (an asynchronous apply counts once it finished) */
  get appliedIndex(): number {
    return this.finished;
  }

  /** settles once the applies handed over so far have finished (or one failed) */
  get tail(): Promise<void> {
    return this.applyTail;
  }

  /** The state machine was replaced by a snapshot through `index` (its applies were awaited first). */
  replacedBySnapshot(index: number): void {
    this.handed = this.finished = index;
  }

  /** Hand the committed entry `e` (the one after the last handed over) to the state machine. */
  apply(e: Entry): void {
    const h = this.host;
    let result: unknown;
    if (e.type === EntryType.Normal) {
      result = h.stateMachine.apply(e);
    } else if (e.type === EntryType.ConfChange) {
      h.applyConfChange(e);
    }
    this.handed = e.index;
    h.metrics.commits.inc();
    const p = h.proposals.take(e.index);
    if (result instanceof Promise) {
      this.applying++;
      const done = result.then(
        (r) => {
          this.applying--;
          this.markApplied(e.index);
          settleProposal(p, e, r);
        },
        (err: unknown) => {
          this.applying--;
          const error = err instanceof Error ? err : new Error(String(err));
          p?.reject(error);
          h.failed(new Error(`apply of entry ${e.index} failed: ${error.message}`));
        },
      );
      this.applyTail = done;
      return;
    }
    if (this.applying === 0) this.markApplied(e.index);
    else {
      // after the asynchronous applies before it
      const idx = e.index;
      this.applyTail = this.applyTail.then(() => this.markApplied(idx));
    }
    settleProposal(p, e, result);
  }

  /** Entries through `index` are applied: waiting reads may go, the owner hears of it. */
  private markApplied(index: number): void {
    if (index <= this.finished) return;
    this.finished = index;
    this.host.applied(index);
  }
}
