/**
 * The log as the core sees it: the caller's stable storage (LogReader, durable entries) followed by an
 * in-memory unstable part (entries and possibly a snapshot not yet persisted), like etcd's
 * raftLog/unstable. Entries are handed to the caller in a Ready, persisted, then marked stable on
 * advance(). The unstable buffer avoids O(n) copies per entry: appends push, stabilisation advances
 * a start pointer and compacts the array only occasionally.
 */
import type { Entry, LogReader, Snapshot } from './types';

export function entryBytes(e: Entry): number {
  return e.data.byteLength;
}

export class RaftLog {
  /** unstable entries live in ents[start..]; ents[start] has log index `offset` */
  private ents: Entry[] = [];
  private start = 0;
  /** log index of the first unstable entry */
  offset: number;
  /** snapshot received from a leader, not yet persisted */
  unstableSnap: Snapshot | undefined;
  /** unstable entries with index < inProgress were handed out in a Ready (being persisted) */
  private inProgress: number;
  private snapInProgress = false;

  committed: number;
  /** highest index the caller has applied (acknowledged via advance) */
  applied: number;
  /** highest index handed out for application in a Ready */
  applying: number;

  constructor(readonly storage: LogReader, committed: number, applied: number) {
    this.offset = storage.lastIndex() + 1;
    this.inProgress = this.offset;
    const first = storage.firstIndex();
    this.committed = Math.max(committed, first - 1);
    this.applied = Math.max(applied, first - 1);
    this.applying = this.applied;
  }

  private unstableLen(): number {
    return this.ents.length - this.start;
  }

  firstIndex(): number {
    if (this.unstableSnap) return this.unstableSnap.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    const n = this.unstableLen();
    if (n > 0) return this.offset + n - 1;
    if (this.unstableSnap) return this.unstableSnap.meta.index;
    return this.storage.lastIndex();
  }

  /** last index that is durable in storage (and still part of the log) */
  stableLastIndex(): number {
    if (this.unstableSnap) return 0;
    return Math.min(this.offset - 1, this.lastIndex());
  }

  term(i: number): number | undefined {
    if (i === 0) return 0;
    const n = this.unstableLen();
    if (n > 0 && i >= this.offset) {
      if (i >= this.offset + n) return undefined;
      return this.ents[this.start + i - this.offset]!.term;
    }
    if (this.unstableSnap) {
      return i === this.unstableSnap.meta.index ? this.unstableSnap.meta.term : undefined;
    }
    if (i >= this.offset) return undefined;
    return this.storage.term(i);
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  matchTerm(i: number, t: number): boolean {
    const x = this.term(i);
    return x !== undefined && x === t;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const lt = this.lastTerm();
    return lastTerm > lt || (lastTerm === lt && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry of `ents` that conflicts with the log (or is new); 0 if all present. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Largest index <= `index` whose term is <= `term` (or the first unavailable index below the log's
   * start): the fast-backtracking hint (etcd's findConflictByTerm).
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === undefined) return i;
      if (t <= term) return i;
    }
    return 0;
  }

  /** Append entries (they may replace a conflicting unstable/stable suffix). Returns last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index;
    if (after <= this.committed) throw new Error(`raft: append at ${after} would overwrite committed ${this.committed}`);
    const n = this.unstableLen();
    if (after === this.offset + n) {
      for (const e of ents) this.ents.push(e);
    } else if (after <= this.offset) {
      // replaces the whole unstable part and possibly a stable suffix
      this.ents = ents.slice();
      this.start = 0;
      this.offset = after;
      this.inProgress = after;
    } else {
      this.ents.length = this.start + (after - this.offset);
      for (const e of ents) this.ents.push(e);
      if (this.inProgress > after) this.inProgress = after;
    }
    return this.lastIndex();
  }

  /** leader fast path: append one entry at lastIndex + 1 */
  appendOne(e: Entry): void {
    if (e.index !== this.offset + this.unstableLen()) {
      this.append([e]);
      return;
    }
    this.ents.push(e);
  }

  /** unstable entries not yet handed out (marks them in progress) */
  takeUnstable(): Entry[] {
    const n = this.unstableLen();
    const from = Math.max(this.inProgress, this.offset);
    const end = this.offset + n;
    if (from >= end) return [];
    const out = this.ents.slice(this.start + (from - this.offset), this.start + n);
    this.inProgress = end;
    return out;
  }

  hasUnstable(): boolean {
    return Math.max(this.inProgress, this.offset) < this.offset + this.unstableLen() ||
      (this.unstableSnap !== undefined && !this.snapInProgress);
  }

  takeUnstableSnapshot(): Snapshot | undefined {
    if (this.unstableSnap && !this.snapInProgress) {
      this.snapInProgress = true;
      return this.unstableSnap;
    }
    return undefined;
  }

  /** the caller persisted entries up to (i, t) */
  stableTo(i: number, t: number): void {
    if (this.unstableSnap) return; // entries after an unpersisted snapshot cannot be stable yet
    const n = this.unstableLen();
    if (n === 0 || i < this.offset || i >= this.offset + n) return;
    if (this.ents[this.start + i - this.offset]!.term !== t) return; // replaced meanwhile
    const drop = i - this.offset + 1;
    this.start += drop;
    this.offset = i + 1;
    if (this.inProgress < this.offset) this.inProgress = this.offset;
    if (this.start > 1024 && this.start * 2 > this.ents.length) {
      this.ents = this.ents.slice(this.start);
      this.start = 0;
    } else if (this.start === this.ents.length) {
      this.ents = [];
      this.start = 0;
    }
  }

  stableSnapTo(i: number): void {
    if (this.unstableSnap && this.unstableSnap.meta.index === i) {
      this.unstableSnap = undefined;
      this.snapInProgress = false;
    }
  }

  /** replace the whole log by a snapshot */
  restore(s: Snapshot): void {
    this.unstableSnap = s;
    this.snapInProgress = false;
    this.ents = [];
    this.start = 0;
    this.offset = s.meta.index + 1;
    this.inProgress = this.offset;
    this.committed = s.meta.index;
    if (this.applying < s.meta.index) this.applying = s.meta.index;
  }

  commitTo(i: number): boolean {
    if (i <= this.committed) return false;
    const last = this.lastIndex();
    if (i > last) throw new Error(`raft: commit ${i} beyond last index ${last}`);
    this.committed = i;
    return true;
  }

  /** current snapshot (unstable one first) */
  snapshot(): Snapshot | undefined {
    return this.unstableSnap ?? this.storage.snapshot();
  }

  /**
   * Entries [lo, hi) limited to maxBytes (at least one entry). Returns undefined if lo was compacted.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return undefined;
    const last = this.lastIndex();
    if (hi > last + 1) hi = last + 1;
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < this.offset) {
      const shi = Math.min(hi, this.offset);
      out = this.storage.entries(lo, shi, maxBytes);
      for (const e of out) bytes += entryBytes(e);
      if (out.length === 0 && shi > lo) return undefined;
      if (out.length < shi - lo) return out; // size-limited
      lo = shi;
    }
    if (lo < hi) {
      let i = this.start + (lo - this.offset);
      const end = this.start + (hi - this.offset);
      for (; i < end; i++) {
        const e = this.ents[i]!;
        const b = entryBytes(e);
        if (out.length > 0 && bytes + b > maxBytes) break;
        out.push(e);
        bytes += b;
      }
    }
    return out;
  }

  /** committed entries not yet handed out for application, up to maxBytes */
  nextCommitted(maxBytes: number): Entry[] {
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, maxBytes) ?? [];
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applying;
  }
}
