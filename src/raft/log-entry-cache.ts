/**
 * The bounded read cache of the Raft log storage: entries by index, least recently used evicted
 * first, sized by their data (+64 bytes each); an entry larger than a quarter of the limit is not kept.
 */
import { Entry } from './types';

export class LogEntryCache {
  private cache = new Map<number, Entry>();
  private size = 0;

  constructor(private readonly limit: number) {}

  /** bytes accounted for the cached entries */
  get bytes(): number {
    return this.size;
  }

  get entries(): number {
    return this.cache.size;
  }

  has(i: number): boolean {
    return this.cache.has(i);
  }

  /** entry `i` if cached, marked as the most recently used */
  get(i: number): Entry | undefined {
    const c = this.cache.get(i);
    if (c) {
      this.cache.delete(i);
      this.cache.set(i, c);
    }
    return c;
  }

  put(i: number, e: Entry): void {
    if (e.data.length > this.limit / 4) return;
    this.delete(i);
    this.cache.set(i, e);
    this.size += e.data.length + 64;
    while (this.size > this.limit) {
      const k = this.cache.keys().next().value as number;
      this.delete(k);
    }
  }

  delete(i: number): void {
    const e = this.cache.get(i);
    if (e) {
      this.cache.delete(i);
      this.size -= e.data.length + 64;
    }
  }

  clear(): void {
    this.cache.clear();
    this.size = 0;
  }
}
