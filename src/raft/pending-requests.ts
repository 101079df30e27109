/**
 * What RaftNode's callers wait for, each with a timeout and failed all at once when the node stops:
 *  - proposals (propose(), membership changes), by log index, with the term they were proposed in:
 *    settled by the apply of the entry at their index (state-machine-applier.ts), replaced by a later
 *    proposal at the same index, or superseded by a leader snapshot;
 *  - linearizable reads (readIndex()) in two stages: waiting for the core's answer (a ReadState with
 *    the read's id), then for this node to have applied through the index it gave.
 */
import { ProposalFailedError } from './raft-node-api';
import type { Entry, ReadState } from './types';

/** what propose() resolves with */
export interface ProposalResult {
  index: number;
  term: number;
  result: unknown;
}

/** a caller waiting for an outcome, until its timer runs out */
interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface PendingProposal extends Waiter<ProposalResult> {
  term: number;
}

export class PendingProposals {
  private readonly byIndex = new Map<number, PendingProposal>();

  constructor(private readonly timeoutMs: number) {}

  /** Wait for the entry proposed at `index` in `term` to be applied (or the wait to time out). */
  track(index: number, term: number): Promise<ProposalResult> {
    return new Promise((resolve, reject) => {
      const old = this.byIndex.get(index);
      if (old) {
        // an earlier proposal at this index (from an older term of ours) was overwritten
        clearTimeout(old.timer);
        old.reject(new ProposalFailedError(`proposal at index ${index} was replaced (term ${old.term} -> ${term})`));
      }
      const p: PendingProposal = { term, resolve, reject, timer: undefined as unknown as NodeJS.Timeout };
      p.timer = setTimeout(() => {
        if (this.byIndex.get(index) === p) this.byIndex.delete(index);
        reject(new ProposalFailedError(`proposal at index ${index} not applied within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.byIndex.set(index, p);
    });
  }

  /** The proposal waiting for the entry at `index`, no longer waiting (its timer stopped). */
  take(index: number): PendingProposal | undefined {
    const p = this.byIndex.get(index);
    if (p) {
      clearTimeout(p.timer);
      this.byIndex.delete(index);
    }
    return p;
  }

  /** A leader snapshot through `index` replaced the state machine: the outcome of the proposals
   * up to it is unknown. */
  supersede(index: number): void {
    for (const [idx, p] of this.byIndex) {
      if (idx <= index) {
        clearTimeout(p.timer);
        this.byIndex.delete(idx);
        p.reject(new ProposalFailedError(`outcome of proposal ${idx} unknown: superseded by a snapshot`));
      }
    }
  }

  failAll(e: Error): void {
    for (const p of this.byIndex.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.byIndex.clear();
  }
}

/** Answer proposal `p` (if any) with the outcome of the entry `e` applied at its index. */
export function settleProposal(p: PendingProposal | undefined, e: Entry, result: unknown): void {
  if (!p) return;
  if (p.term === e.term) p.resolve({ index: e.index, term: e.term, result });
  else p.reject(new ProposalFailedError(`proposal at index ${e.index} was replaced by an entry of term ${e.term}`));
}


interface PendingRead extends Waiter<number> {
  /** the read index, once the core answered */
  index: number;
}

export class PendingReads {
  /** waiting for the core's answer, by request id */
  private readonly byId = new Map<number, PendingRead>();
  /** answered: waiting for the apply through their index */
  private waiting: PendingRead[] = [];
  /** read request ids: start from the wall clock so that a late answer to a request of an earlier
   * incarnation of this node cannot match a new request */
  private seq = Date.now() * 1000;

  constructor(private readonly timeoutMs: number) {}

  /** the id of the next read request (for RaftCore.readIndex) */
  nextId(): number {
    return ++this.seq;
  }

  /** Wait for request `id`: resolves with its read index once applied through it. */
  track(id: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.byId.delete(id);
        const k = this.waiting.indexOf(p);
        if (k >= 0) this.waiting.splice(k, 1);
        reject(new ProposalFailedError('read index timed out (leadership changed?)'));
      }, this.timeoutMs);
      const p: PendingRead = { index: 0, resolve, reject, timer };
      this.byId.set(id, p);
    });
  }

  /** The core answered these requests (a Ready's readStates): they wait for the apply now. */
  answered(readStates: ReadState[]): void {
    for (const rs of readStates) {
      const p = this.byId.get(rs.id);
      if (!p) continue;
      this.byId.delete(rs.id);
      p.index = rs.index;
      this.waiting.push(p);
    }
  }

  /** Entries through `applied` are applied: the reads at or below it resolve. */
  release(applied: number): void {
    if (this.waiting.length === 0) return;
    const rest: PendingRead[] = [];
    for (const r of this.waiting) {
      if (r.index <= applied) {
        clearTimeout(r.timer);
        r.resolve(r.index);
      } else rest.push(r);
    }
    this.waiting = rest;
  }

  failAll(e: Error): void {
    for (const r of [...this.byId.values(), ...this.waiting]) {
      clearTimeout(r.timer);
      r.reject(e);
    }
    this.byId.clear();
    this.waiting = [];
  }
}
