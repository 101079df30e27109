/**
 * Bounded cache with LRU-like eviction in two generations: hits in the old generation move to the
 * young one; when the young one is full it becomes the old one and the old one is dropped. O(1) per
 * operation with no Map iteration (evicting from the front of one big Map by delete + keys().next()
 * degrades with the deleted slots V8 leaves at the front).
 */
export class LruCache<V> {
  private young = new Map<number, V>();
  private old = new Map<number, V>();
  private readonly half: number;
  constructor(max: number) {
    this.half = Math.max(1, Math.floor(max / 2));
  }
  get(k: number): V | undefined {
    const v = this.young.get(k);
    if (v !== undefined) return v;
    const o = this.old.get(k);
    if (o !== undefined) {
      this.old.delete(k);
      this.put(k, o);
    }
    return o;
  }
  /** get without refreshing: a scan (READDIRPLUS of a big directory) does not reorder the cache */
  peek(k: number): V | undefined {
    return this.young.get(k) ?? this.old.get(k);
  }
  set(k: number, v: V): void {
    this.old.delete(k);
    this.put(k, v);
  }
  private put(k: number, v: V): void {
    this.young.set(k, v);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }
  delete(k: number): void {
    this.young.delete(k);
    this.old.delete(k);
  }
  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
