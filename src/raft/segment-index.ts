/**
 * In-memory index of the retained log: for each entry (firstIndex..lastIndex) its term, the segment
 * sequence number and byte offset of its record, and the record's payload length. Columnar typed
 * arrays, 20 bytes per entry; entry data stays on disk (or in the bounded read cache). Memory is
 * bounded by the retained log, which compaction bounds.
 */
export class SegmentIndex {
  private terms: Float64Array;
  private segs: Uint32Array;
  private offs: Uint32Array;
  private lens: Uint32Array;
  private head = 0; // array slot of the first entry
  private n = 0;
  /** log index of the entry at slot `head` */
  private first = 1;

  constructor(initialCapacity = 1024) {
    this.terms = new Float64Array(initialCapacity);
    this.segs = new Uint32Array(initialCapacity);
    this.offs = new Uint32Array(initialCapacity);
    this.lens = new Uint32Array(initialCapacity);
  }

  get length(): number {
    return this.n;
  }
  /** log index of the first entry (meaningful when length > 0; otherwise the next index to push) */
  get firstIndex(): number {
    return this.first;
  }
  get lastIndex(): number {
    return this.first + this.n - 1;
  }

  /** Drop everything; the next pushed entry must have index `nextIndex`. */
  reset(nextIndex: number): void {
    this.head = 0;
    this.n = 0;
    this.first = nextIndex;
  }

  push(index: number, term: number, seg: number, off: number, len: number): void {
    if (index !== this.first + this.n) throw new Error(`index gap: push ${index}, expected ${this.first + this.n}`);
    if (this.head + this.n === this.terms.length) this.grow();
    const s = this.head + this.n;
    this.terms[s] = term;
    this.segs[s] = seg;
    this.offs[s] = off;
    this.lens[s] = len;
    this.n++;
  }

  has(index: number): boolean {
    return index >= this.first && index < this.first + this.n;
  }
  term(index: number): number {
    return this.terms[this.head + index - this.first];
  }
  seg(index: number): number {
    return this.segs[this.head + index - this.first];
  }
  off(index: number): number {
    return this.offs[this.head + index - this.first];
  }
  len(index: number): number {
    return this.lens[this.head + index - this.first];
  }

  /** Keep entries < index. */
  truncateFrom(index: number): void {
    if (index <= this.first) {
      this.n = 0;
      this.head = 0;
      this.first = index;
      return;
    }
    this.n = Math.min(this.n, index - this.first);
  }

  /** Drop entries <= index. */
  dropThrough(index: number): void {
    if (index < this.first) return;
    const drop = index - this.first + 1;
    if (drop >= this.n) {
      this.reset(index + 1);
      return;
    }
    this.head += drop;
    this.n -= drop;
    this.first = index + 1;
    // shrink the dead prefix once it dominates the arrays
    if (this.head > 1024 && this.head > this.n) this.compactArrays(this.terms.length);
  }

  private grow(): void {
    const cap = this.n * 2 > this.terms.length ? this.terms.length * 2 : this.terms.length;
    this.compactArrays(Math.max(cap, 16));
  }

  private compactArrays(cap: number): void {
    const h = this.head;
    const e = h + this.n;
    const t = new Float64Array(cap);
    t.set(this.terms.subarray(h, e));
    const s = new Uint32Array(cap);
    s.set(this.segs.subarray(h, e));
    const o = new Uint32Array(cap);
    o.set(this.offs.subarray(h, e));
    const l = new Uint32Array(cap);
    l.set(this.lens.subarray(h, e));
    this.terms = t;
    this.segs = s;
    this.offs = o;
    this.lens = l;
    this.head = 0;
  }

  /** bytes held by the index arrays */
  memoryBytes(): number {
    return this.terms.length * 20;
  }
}
