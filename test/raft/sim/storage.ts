/**
 * Simulated durable storage of one node: the Raft log, the hard state and the latest snapshot, with a
 * fsync watermark. Writes go to `written` at once (what the process wrote) and to `durable` only when
 * `sync()` runs (the fsync completed). A crash keeps `durable` plus, possibly, a prefix of the
 * unsynced writes, the last of them torn (a prefix of its entries), as a disk without fsync may.
 *
 * The core reads the durable view through LogReader: entries in it are durable.
 */
import { ConfState, Entry, HardState, LogReader, Snapshot } from '../../../src/raft/types';
import { entryBytes } from '../../../src/raft/raft-log';
import { hashBytes, hashString } from './hash';
import { Prng } from './prng';

export type WriteOp =
  | { k: 'ents'; ents: Entry[] }
  | { k: 'hs'; hs: HardState }
  | { k: 'snap'; snap: Snapshot };

/** Told about every entry written to any log, with the hash of the whole log prefix ending in it. */
export interface StorageListener {
  entryWritten(node: number, index: number, term: number, prefixHash: number): void;
  /** the hash of the log prefix ending at (index, term), if the listener has seen it */
  prefixOf(index: number, term: number): number | undefined;
}

export class StorageError extends Error {}

class LogState {
  /** index of entries[0] */
  offset = 1;
  /** term and prefix hash of entry offset-1 (the snapshot point or compaction point) */
  prevTerm = 0;
  prevPrefix = 0;
  entries: Entry[] = [];
  prefixes: number[] = [];
  snap: Snapshot | undefined;
  hs: HardState = { term: 0, vote: 0, commit: 0 };

  clone(): LogState {
    const c = new LogState();
    c.offset = this.offset;
    c.prevTerm = this.prevTerm;
    c.prevPrefix = this.prevPrefix;
    c.entries = this.entries.slice();
    c.prefixes = this.prefixes.slice();
    c.snap = this.snap;
    c.hs = { ...this.hs };
    return c;
  }

  lastIndex(): number {
    return this.offset + this.entries.length - 1;
  }

  term(i: number): number | undefined {
    if (i === this.offset - 1) return this.prevTerm;
    if (i < this.offset || i > this.lastIndex()) return undefined;
    return this.entries[i - this.offset].term;
  }

  prefix(i: number): number | undefined {
    if (i === this.offset - 1) return this.prevPrefix;
    if (i < this.offset || i > this.lastIndex()) return undefined;
    return this.prefixes[i - this.offset];
  }
}

export class SimStorage implements LogReader {
  private durable = new LogState();
  private written = new LogState();
  private pending: WriteOp[] = [];
  /** number of sync() calls, for stats */
  syncs = 0;

  constructor(
    readonly node: number,
    /** membership a fresh member boots with: a snapshot at index 0 carrying it (empty for a joining node) */
    bootConf: ConfState,
    private readonly listener: StorageListener | undefined,
    /** on a received snapshot, keep the log suffix after it if the log has the snapshot's last entry */
    private readonly snapshotRetainsSuffix: boolean,
  ) {
    const snap: Snapshot = { meta: { index: 0, term: 0, conf: bootConf }, data: new Uint8Array(0) };
    this.durable.snap = snap;
    this.written.snap = snap;
  }

  // ---- LogReader (durable view) ----
  firstIndex(): number {
    return this.durable.offset;
  }
  lastIndex(): number {
    return this.durable.lastIndex();
  }
  term(i: number): number | undefined {
    return this.durable.term(i);
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const d = this.durable;
    if (lo < d.offset || hi > d.lastIndex() + 1 || lo > hi) {
      throw new StorageError(`node ${this.node}: entries(${lo}, ${hi}) outside [${d.offset}, ${d.lastIndex() + 1})`);
    }
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = d.entries[i - d.offset];
      const b = entryBytes(e);
      if (out.length > 0 && bytes + b > maxBytes) break;
      out.push(e);
      bytes += b;
    }
    return out;
  }
  snapshot(): Snapshot | undefined {
    return this.durable.snap;
  }

  // ---- durable state for a restart ----
  hardState(): HardState {
    return { ...this.durable.hs };
  }

  // ---- writes (not durable until sync) ----
  write(op: WriteOp): void {
    this.applyOp(this.written, op, true);
    this.pending.push(op);
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** fsync completed: every write so far is durable */
  sync(): void {
    for (const op of this.pending) this.applyOp(this.durable, op, false);
    this.pending = [];
    this.syncs++;
  }

  /**
   * The process died: keep what is durable, plus (with `tear`) a random prefix of the unsynced writes
   * whose last one may be cut short. Returns a description for the trace.
   */
  crash(rng: Prng, tear: boolean): string {
    let kept = 0;
    let torn = '';
    if (tear && this.pending.length > 0) {
      kept = rng.int(this.pending.length + 1);
      for (let i = 0; i < kept; i++) this.applyOp(this.durable, this.pending[i], false);
      if (kept < this.pending.length) {
        const op = this.pending[kept];
        if (op.k === 'ents' && op.ents.length > 1 && rng.chance(0.5)) {
          const n = 1 + rng.int(op.ents.length - 1);
          this.applyOp(this.durable, { k: 'ents', ents: op.ents.slice(0, n) }, false);
          torn = ` torn ${n}/${op.ents.length}`;
        }
      }
    }
    const lost = this.pending.length - kept;
    this.pending = [];
    this.written = this.durable.clone();
    return `kept ${kept} lost ${lost}${torn}`;
  }

  /**
   * The node made a snapshot of its own applied state: it replaces the log up to its index. Only
   * called with no unsynced writes; durable at once (write to a temporary file, fsync, rename).
   */
  createSnapshot(snap: Snapshot): void {
    if (this.pending.length > 0) throw new StorageError('createSnapshot with unsynced writes');
    const meta = snap.meta;
    for (const st of [this.durable, this.written]) {
      const t = st.term(meta.index);
      if (t !== meta.term) throw new StorageError(`node ${this.node}: snapshot at ${meta.index} term ${meta.term} but log has ${t}`);
      st.snap = snap;
      const to = meta.index + 1;
      if (to > st.offset) {
        const drop = to - st.offset;
        st.prevTerm = st.term(to - 1)!;
        st.prevPrefix = st.prefix(to - 1)!;
        st.entries = st.entries.slice(drop);
        st.prefixes = st.prefixes.slice(drop);
        st.offset = to;
      }
    }
  }

  snapshotIndex(): number {
    return this.durable.snap?.meta.index ?? 0;
  }

  /** what the process has written (durable or not), for checkers */
  writtenLastIndex(): number {
    return this.written.lastIndex();
  }
  writtenTerm(i: number): number | undefined {
    return this.written.term(i);
  }
  writtenFirstIndex(): number {
    return this.written.offset;
  }
  /** terms of the written log as [offset, terms...] */
  writtenTerms(): { offset: number; terms: number[]; snapIndex: number } {
    return {
      offset: this.written.offset,
      terms: this.written.entries.map((e) => e.term),
      snapIndex: this.written.offset - 1,
    };
  }
  durableSummary(): string {
    const d = this.durable;
    return `log [${d.offset}..${d.lastIndex()}] hs ${d.hs.term}/${d.hs.vote}/${d.hs.commit} snap ${d.snap ? d.snap.meta.index : 0}`;
  }

  private applyOp(st: LogState, op: WriteOp, notify: boolean): void {
    switch (op.k) {
      case 'hs':
        st.hs = { ...op.hs };
        return;
      case 'snap': {
        const m = op.snap.meta;
        const keep = this.snapshotRetainsSuffix && st.term(m.index) === m.term && m.index <= st.lastIndex();
        // NaN: prefix unknown, so entries after it are not compared (should not happen: every entry is seen)
        const prefix = m.index === 0 ? 0 : (this.listener?.prefixOf(m.index, m.term) ?? NaN);
        if (keep && m.index >= st.offset) {
          const drop = m.index + 1 - st.offset;
          st.entries = st.entries.slice(drop);
          st.prefixes = st.prefixes.slice(drop);
        } else if (!keep) {
          st.entries = [];
          st.prefixes = [];
        }
        if (!keep || m.index >= st.offset) {
          st.offset = m.index + 1;
          st.prevTerm = m.term;
          st.prevPrefix = prefix;
        }
        st.snap = op.snap;
        return;
      }
      case 'ents': {
        if (op.ents.length === 0) return;
        const first = op.ents[0].index;
        if (first < st.offset) {
          throw new StorageError(`node ${this.node}: append at ${first} below log start ${st.offset}`);
        }
        if (first > st.lastIndex() + 1) {
          throw new StorageError(`node ${this.node}: append at ${first} leaves a gap after ${st.lastIndex()}`);
        }
        const cut = first - st.offset;
        if (cut < st.entries.length) {
          st.entries.length = cut;
          st.prefixes.length = cut;
        }
        let prev = st.prefix(first - 1)!;
        let expect = first;
        for (const e of op.ents) {
          if (e.index !== expect) throw new StorageError(`node ${this.node}: non-contiguous append ${e.index} after ${expect - 1}`);
          expect++;
          const h = Number.isNaN(prev) ? NaN : hashString(`${prev}|${e.index}|${e.term}|${e.type}|${hashBytes(e.data)}`);
          st.entries.push(e);
          st.prefixes.push(h);
          prev = h;
          if (notify && !Number.isNaN(h)) this.listener?.entryWritten(this.node, e.index, e.term, h);
        }
        return;
      }
    }
  }
}
