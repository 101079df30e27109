/**
 * In-memory LogReader for tests and the simulation: holds the snapshot, the entries after it and the
 * hard state. The caller appends a Ready's entries / snapshot / hard state here before advance().
 */
import type { ConfState, Entry, HardState, LogReader, Snapshot } from './types';
import { entryBytes } from './raft-log';

export class MemoryStorage implements LogReader {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  /** ents[k] has index snap.meta.index + 1 + k */
  private ents: Entry[] = [];

  /** `conf` bootstraps a fresh cluster member (snapshot at index 0 carrying the initial membership) */
  constructor(conf: ConfState = { voters: [], learners: [], votersOutgoing: [] }) {
    this.snap = { meta: { index: 0, term: 0, conf: cloneConf(conf) }, data: new Uint8Array(0) };
  }

  firstIndex(): number {
    return this.snap.meta.index + 1;
  }

  lastIndex(): number {
    return this.snap.meta.index + this.ents.length;
  }

  term(i: number): number | undefined {
    const si = this.snap.meta.index;
    if (i === si) return this.snap.meta.term;
    if (i < si || i > si + this.ents.length) return undefined;
    return this.ents[i - si - 1]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const si = this.snap.meta.index;
    if (lo <= si) throw new Error(`MemoryStorage: entries(${lo}) compacted (first ${si + 1})`);
    if (hi > this.lastIndex() + 1) throw new Error(`MemoryStorage: entries(.., ${hi}) beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - si - 1]!;
      const b = entryBytes(e);
      if (out.length > 0 && bytes + b > maxBytes) break;
      out.push(e);
      bytes += b;
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** append entries, replacing any conflicting suffix */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const si = this.snap.meta.index;
    let first = ents[0]!.index;
    let k = 0;
    // entries at or below the snapshot are already covered by it
    while (k < ents.length && first + k <= si) k++;
    if (k === ents.length) return;
    first += k;
    if (first > this.lastIndex() + 1) throw new Error(`MemoryStorage: gap appending ${first} after ${this.lastIndex()}`);
    this.ents.length = first - si - 1;
    for (; k < ents.length; k++) this.ents.push(ents[k]!);
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** install a snapshot received from a leader: the log restarts after it */
  applySnapshot(s: Snapshot): void {
    const si = this.snap.meta.index;
    // a snapshot replaces everything; the bootstrap snapshot of a joining node may have index 0
    if (s.meta.index < si || (s.meta.index === si && this.ents.length > 0)) return;
    this.snap = s;
    this.ents = [];
  }

  /** log compaction: `s` (from RaftCore.compact) replaces entries up to s.meta.index */
  compact(s: Snapshot): void {
    const si = this.snap.meta.index;
    if (s.meta.index <= si) return;
    if (s.meta.index > this.lastIndex()) throw new Error('MemoryStorage: compact beyond last index');
    this.ents = this.ents.slice(s.meta.index - si);
    this.snap = s;
  }
}

export function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners], votersOutgoing: [...c.votersOutgoing] };
}
