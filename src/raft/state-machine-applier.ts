/**
 * RaftNode's applies of committed entries to its state machine, which may apply asynchronously
 * (StateMachine.apply returning a Promise): entries are handed over in order without waiting, and
 * one counts as applied (reads, compaction, onApplied) only once it and every entry before it
 * finished. Answers the proposal waiting at each entry's index (pending-requests.ts).
 *
 * Backpressure: the entry bytes handed over whose asynchronous apply has not finished are capped
 * (maxApplyingBytes). Above the cap the node's committed entries are not handed over (nor kept):
 * the applier only remembers the last committed entry it was offered, and once applies finish it
 * reads the entries after the last handed over back from the node's durable log (resume(), run by
 * the node's Ready loop). The Raft loop itself never waits for the state machine: a store paused
 * for minutes (a `verify` digest) holds at most the cap, while its node goes on answering.
 */
import { PendingProposals, settleProposal } from './pending-requests';
import type { RaftMetrics } from './raft-metrics';
import type { StateMachine } from './raft-node-api';
import { entryBytes } from './raft-log';
import { Entry, EntryType } from './types';

/**
 * Default cap on the entry bytes handed to the state machine whose asynchronous apply has not
 * finished (RaftNodeOptions.maxApplyingBytes): one Ready's committed entries (maxApplyBytes, 64 MiB).
 * A node then holds at most about twice that in committed entries (one Ready more in its loop).
 */
export const MAX_APPLYING_BYTES = 64 << 20;

/** What the applier needs of its node. */
export interface StateMachineApplierHost {
  readonly stateMachine: StateMachine;
  readonly proposals: PendingProposals;
  readonly metrics: RaftMetrics;
  /** committed entries [lo, hi) from the durable log, at most maxBytes (at least one entry) */
  readEntries(lo: number, hi: number, maxBytes: number): Entry[];
  /** applies finished with entries left to hand over: the node's loop should call resume() */
  wake(): void;
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
  /** last committed entry offered by the node (handed over, or to be read back from the log) */
  private offered: number;
  /** last entry whose (possibly asynchronous) apply finished */
  private finished: number;
  /** entry bytes of the asynchronous applies not finished, and the last apply (in order) */
  private bytes = 0;
  private applyTail: Promise<void> = Promise.resolve();
  /** an apply failed: nothing after it counts as applied */
  private broken = false;

  constructor(
    private readonly host: StateMachineApplierHost,
    applied: number,
    private readonly maxApplyingBytes: number = MAX_APPLYING_BYTES,
  ) {
    this.handed = this.offered = this.finished = applied;
  }

  /** last entry handed to the state machine (its apply may still be running) */
  get handedIndex(): number {
    return this.handed;
  }

  /** last entry applied (an asynchronous apply counts once it finished) */
  get appliedIndex(): number {
    return this.finished;
  }

  /** entry bytes handed to the state machine whose apply has not finished */
  get applyingBytes(): number {
    return this.bytes;
  }

  /** committed entries offered but not yet handed over (left in the log) */
  get deferredEntries(): number {
    return this.offered - this.handed;
  }

  /** entries are waiting in the log and the state machine has room for them */
  get canResume(): boolean {
    return this.handed < this.offered && this.bytes < this.maxApplyingBytes;
  }

  /** settles once the applies handed over so far have finished (or one failed) */
  get tail(): Promise<void> {
    return this.applyTail;
  }

  /** The state machine was replaced by a snapshot through `index` (its applies were awaited first):
   * entries offered through `index` are not handed over. */
  replacedBySnapshot(index: number): void {
    this.handed = this.finished = index;
    if (this.offered < index) this.offered = index;
  }

  /**
   * The committed entry `e` (the one after the last offered) may be applied: it is handed to the
   * state machine now, or, with the state machine at its cap or entries before it still waiting,
   * read back from the log later (resume()). Only entries already durable in the log are offered.
   */
  offer(e: Entry): void {
    if (e.index <= this.offered) return;
    if (e.index !== this.offered + 1) throw new Error(`raft: committed entry ${e.index} offered after ${this.offered}`);
    this.offered = e.index;
    if (this.handed === e.index - 1 && this.bytes < this.maxApplyingBytes) this.handOver(e);
  }

  /** Hand over the entries waiting in the log, in order, while the state machine is under its cap. */
  resume(): void {
    while (this.canResume) {
      const ents = this.host.readEntries(this.handed + 1, this.offered + 1, this.maxApplyingBytes - this.bytes);
      for (const e of ents) {
        if (e.index !== this.handed + 1) throw new Error(`raft: log read back entry ${e.index} after ${this.handed}`);
        this.handOver(e);
        if (this.bytes >= this.maxApplyingBytes) break;
      }
    }
  }

  /** Hand the committed entry `e` (the one after the last handed over) to the state machine. */
  private handOver(e: Entry): void {
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
      const size = entryBytes(e);
      this.bytes += size;
      this.gauge();
      // (applied once the applies before it finished too, should the state machine finish them
      // out of order; the tail never rejects)
      const before = this.applyTail;
      const done = result.then(
        async (r) => {
          this.release(size);
          if (this.canResume) h.wake();
          await before;
          this.markApplied(e.index);
          settleProposal(p, e, r);
        },
        (err: unknown) => {
          this.release(size);
          this.broken = true;
          const error = err instanceof Error ? err : new Error(String(err));
          p?.reject(error);
          h.failed(new Error(`apply of entry ${e.index} failed: ${error.message}`));
        },
      );
      this.applyTail = done;
      return;
    }
    // applied now if every entry before it is; else after them (an asynchronous apply may have
    // finished and still wait for the ones before it to count)
    if (this.finished === e.index - 1) this.markApplied(e.index);
    else {
      const idx = e.index;
      this.applyTail = this.applyTail.then(() => this.markApplied(idx));
    }
    settleProposal(p, e, result);
  }

  private release(size: number): void {
    this.bytes -= size;
    this.gauge();
  }

  private gauge(): void {
    this.host.metrics.applyingBytes.set(this.bytes);
  }

  /** Entries through `index` are applied: waiting reads may go, the owner hears of it. */
  private markApplied(index: number): void {
    if (index <= this.finished || this.broken) return;
    this.finished = index;
    this.host.applied(index);
  }
}
