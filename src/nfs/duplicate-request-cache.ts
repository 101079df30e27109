/**
 * The duplicate request cache (DRC) of the RPC server, after knfsd's and NFS-Ganesha's: a client that
 * gets no reply (lost reply, broken connection, failover of the VIP) resends its call with the same
 * xid, and a non-idempotent procedure (REMOVE, RENAME, CREATE GUARDED, WRITE, ...) must not run twice.
 *
 * - A call is identified by transport, client address (not port: a TCP client that reconnects comes
 *   from a new port), xid, program, version, procedure, credential flavor, the length of its
 *   arguments and a checksum (FNV-1a, 32 bits) over the first `checksumBytes` bytes of the arguments
 *   and over the credential (AUTH_SYS without its stamp), so a reused xid with other arguments or from
 *   another user is not taken for a duplicate.
 * - `begin(call, origin)` answers `execute` (first time: run it, then `finish` with the reply bytes),
 *   `cached` (answer with these bytes, do not run it) or `inprogress` (the original is still running:
 *   the caller drops the duplicate or waits for the original's reply with `wait()`).
 * - O(1) per call and little garbage (every WRITE goes through here): entries sit in a Map keyed by
 *   the xid as a small integer (same-xid entries chained), completed ones on an intrusive doubly
 *   linked LRU list. No key strings are built, and a Map's insertion order is not used for eviction
 *   (V8 leaves deleted slots at its head until it rehashes; iterating from there costs O(holes)).
 * - Reply bytes are copied into 64 KiB slabs, not kept as one buffer each: thousands of small
 *   long-lived ArrayBuffers that die in turn cost the garbage collector far more than the cache itself
 *   (measured: a 4 KiB WRITE stream ran ~20% slower with per-reply buffers). Slab memory never goes
 *   to a socket: the original reply is sent from its own buffers, a hit gets a fresh copy. A hit moves
 *   its bytes to the current slab, so live bytes stay in LRU order and old slabs empty and are freed:
 *   slab memory stays within the bytes charged plus two slabs.
 * - Bounded by entry count and bytes (replies + per-entry overhead); least recently used completed
 *   entries go first, and completed entries expire after `ttlMs`. Calls in progress are never evicted
 *   (they are bounded by the RPC server's in-flight limits), so the bounds hold for completed entries
 *   plus calls in progress whenever there is a completed entry to evict. Replies larger than
 *   `maxReplyBytes` are not kept.
 */
export interface DrcLimits {
  /** completed + in-progress entries (default 4096) */
  maxEntries: number;
  /** bytes of cached replies plus `ENTRY_OVERHEAD` per entry (default 8 MiB) */
  maxBytes: number;
  /** a completed entry not hit for this long is dropped (default 120 s, knfsd's RC_EXPIRE) */
  ttlMs: number;
  /** larger replies are not cached (default 4 KiB; non-idempotent NFSv3 replies are ~100-300 bytes) */
  maxReplyBytes: number;
  /** argument bytes covered by the checksum (default 256) */
  checksumBytes: number;
}

export const DEFAULT_DRC_LIMITS: Readonly<DrcLimits> = {
  maxEntries: 4096,
  maxBytes: 8 * 1024 * 1024,
  ttlMs: 120_000,
  maxReplyBytes: 4096,
  checksumBytes: 256,
};

/** bytes charged per entry besides its reply (entry and key objects, map slot) */
export const ENTRY_OVERHEAD = 192;

export interface DrcCall {
  transport: 'tcp' | 'udp';
  /** normalized client address (no port) */
  address: string;
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  /** the call's argument bytes (after the verifier) */
  args: Uint8Array;
  credFlavor: number;
  /** credential body */
  cred: Uint8Array;
}

/** FNV-1a, 32 bits, over b[from, to), continuing from h */
function fnv1a(b: Uint8Array, from: number, to: number, h: number): number {
  for (let i = from; i < to; i++) {
    h ^= b[i];
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** What identifies a call. */
export interface DrcKey {
  readonly transport: 'tcp' | 'udp';
  readonly address: string;
  readonly xid: number;
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly credFlavor: number;
  /** argument length */
  readonly len: number;
  /** checksum of the first argument bytes and the credential */
  readonly sum: number;
}

/** The key of a call. */
export function drcKey(c: DrcCall, checksumBytes = DEFAULT_DRC_LIMITS.checksumBytes): DrcKey {
  let h = fnv1a(c.args, 0, Math.min(c.args.length, checksumBytes), 0x811c9dc5);
  // AUTH_SYS: leave out the 4-byte stamp, which a client may renew when it re-encodes a retransmit
  h = fnv1a(c.cred, c.credFlavor === 1 && c.cred.length >= 4 ? 4 : 0, c.cred.length, h);
  return {
    transport: c.transport,
    address: c.address,
    xid: c.xid >>> 0,
    prog: c.prog,
    vers: c.vers,
    proc: c.proc,
    credFlavor: c.credFlavor,
    len: c.args.length,
    sum: h >>> 0,
  };
}

export function sameKey(a: DrcKey, b: DrcKey): boolean {
  return (
    a.xid === b.xid &&
    a.sum === b.sum &&
    a.len === b.len &&
    a.proc === b.proc &&
    a.prog === b.prog &&
    a.vers === b.vers &&
    a.credFlavor === b.credFlavor &&
    a.transport === b.transport &&
    a.address === b.address
  );
}

/** An execution in progress; `finish` it exactly once. */
export interface DrcToken {
  readonly key: DrcKey;
  readonly finished: boolean;
}

/** SLAB_BYTES of reply storage; freed (by the GC) once no entry uses it and it is not current */
interface Slab {
  readonly buf: Buffer;
  /** entries whose bytes are here */
  live: number;
}

const SLAB_BYTES = 64 * 1024;

interface Entry extends DrcToken {
  key: DrcKey;
  finished: boolean;
  /** false while the call runs */
  done: boolean;
  /** where the original came from (in progress) */
  origin: unknown;
  /** duplicates waiting for the reply (in progress) */
  waiters: ((reply: Uint8Array | undefined) => void)[] | undefined;
  /** where the reply bytes are (completed entries) */
  slab: Slab | undefined;
  off: number;
  len: number;
  /** last use (ms), completed entries */
  at: number;
  /** bytes charged */
  size: number;
  /** LRU list of completed entries (prev = older) */
  prev: Entry | undefined;
  next: Entry | undefined;
  /** next entry with the same xid bucket */
  chain: Entry | undefined;
}

export type DrcBegin =
  | { kind: 'execute'; token: DrcToken }
  | { kind: 'cached'; reply: Uint8Array }
  | {
      kind: 'inprogress';
      /** what `begin` was given as origin for the original call (e.g. its connection) */
      origin: unknown;
      /** resolves with the original's reply once it finishes (undefined: it sent none) */
      wait(): Promise<Uint8Array | undefined>;
    };

export interface DrcStats {
  entries: number;
  inProgress: number;
  bytes: number;
  hits: number;
  inProgressHits: number;
  evictions: number;
}

export class DuplicateRequestCache {
  readonly limits: DrcLimits;
  /** every entry, by xid (as a small integer), same-xid entries chained */
  private readonly byXid = new Map<number, Entry>();
  /** least recently used completed entry, and the most recently used */
  private oldest: Entry | undefined;
  private newest: Entry | undefined;
  private doneCount = 0;
  private doneBytes = 0;
  private running = 0;
  private hits = 0;
  private inProgressHits = 0;
  private evictions = 0;
  /** the slab new replies go to, and how much of it is used */
  private slab: Slab | undefined;
  private slabUsed = 0;

  constructor(limits: Partial<DrcLimits> = {}, private readonly now: () => number = () => performance.now()) {
    this.limits = { ...DEFAULT_DRC_LIMITS, ...limits };
    for (const k of Object.keys(DEFAULT_DRC_LIMITS) as (keyof DrcLimits)[]) {
      const v = this.limits[k];
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`DRC limit ${k}: ${v}`);
    }
  }

  /** Look a call up; `origin` identifies where it came from (kept for in-progress duplicates). */
  begin(call: DrcCall, origin: unknown): DrcBegin {
    const now = this.now();
    this.expire(now);
    const key = drcKey(call, this.limits.checksumBytes);
    const e = this.find(key);
    if (e?.done) {
      // most recently used: to the tail; its time restarts (as knfsd does on a hit)
      this.unlink(e);
      e.at = now;
      this.append(e);
      this.hits++;
      const old = e.slab as Slab;
      // a copy of its own: the socket may hold it after the slab bytes are reused
      const reply = Buffer.from(old.buf.subarray(e.off, e.off + e.len));
      if (old !== this.slab) {
        // keep bytes in LRU order: move them to the current slab
        this.release(old);
        this.store(e, [reply], e.len);
      }
      return { kind: 'cached', reply };
    }
    if (e) {
      this.inProgressHits++;
      return {
        kind: 'inprogress',
        origin: e.origin,
        wait: () => new Promise<Uint8Array | undefined>((resolve) => (e.waiters ??= []).push(resolve)),
      };
    }
    const n: Entry = {
      key,
      finished: false,
      done: false,
      origin,
      waiters: undefined,
      slab: undefined,
      off: 0,
      len: 0,
      at: now,
      size: ENTRY_OVERHEAD,
      prev: undefined,
      next: undefined,
      chain: undefined,
    };
    this.insert(n);
    this.running++;
    this.evict();
    return { kind: 'execute', token: n };
  }

  /**
   * The call ran: `reply` is the complete RPC reply message that was sent, in parts (undefined: none
   * was, so the entry is forgotten and a retransmit runs the call). The bytes are copied; the parts
   * are not kept. Waiting duplicates get the reply either way.
   */
  finish(token: DrcToken, reply: readonly Uint8Array[] | undefined): void {
    const e = token as Entry;
    if (e.finished) return;
    e.finished = true;
    this.running--;
    const waiters = e.waiters;
    e.waiters = undefined;
    e.origin = undefined;
    let len = 0;
    if (reply) for (const p of reply) len += p.length;
    if (waiters) {
      const whole = reply ? Buffer.concat(reply as Uint8Array[], len) : undefined;
      for (const w of waiters) w(whole);
    }
    const size = len + ENTRY_OVERHEAD;
    if (reply === undefined || len > this.limits.maxReplyBytes || size > this.limits.maxBytes || this.limits.maxEntries === 0) {
      this.detach(e);
      return;
    }
    e.done = true;
    this.store(e, reply, len);
    e.size = size;
    e.at = this.now();
    this.append(e);
    this.doneCount++;
    this.doneBytes += size;
    this.evict();
  }

  /** bytes of the slabs in use (tests, metrics) */
  get slabBytes(): number {
    let n = 0;
    const seen = new Set<Slab>();
    for (let e = this.oldest; e; e = e.next) if (e.slab && !seen.has(e.slab)) seen.add(e.slab);
    if (this.slab) seen.add(this.slab);
    for (const sl of seen) n += sl.buf.length;
    return n;
  }

  /** copy `len` bytes of `parts` into the current slab (a new one when it is full) */
  private store(e: Entry, parts: readonly Uint8Array[], len: number): void {
    if (!this.slab || this.slabUsed + len > this.slab.buf.length) {
      if (this.slab && this.slab.live === 0) {
        // nobody uses the old one: reuse it
        this.slabUsed = 0;
      } else {
        this.slab = { buf: Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, len)), live: 0 };
        this.slabUsed = 0;
      }
    }
    const sl = this.slab;
    let off = this.slabUsed;
    e.slab = sl;
    e.off = off;
    e.len = len;
    for (const p of parts) {
      sl.buf.set(p, off);
      off += p.length;
    }
    this.slabUsed = off;
    sl.live++;
  }

  private release(sl: Slab): void {
    sl.live--;
  }

  get stats(): DrcStats {
    return {
      entries: this.size,
      inProgress: this.running,
      bytes: this.bytes,
      hits: this.hits,
      inProgressHits: this.inProgressHits,
      evictions: this.evictions,
    };
  }

  /** bytes charged: completed entries' replies and overhead, plus overhead of calls in progress */
  get bytes(): number {
    return this.doneBytes + this.running * ENTRY_OVERHEAD;
  }

  get size(): number {
    return this.doneCount + this.running;
  }

  /** forget every completed entry (calls in progress finish normally) */
  clear(): void {
    while (this.dropOldest(false));
  }

  private find(key: DrcKey): Entry | undefined {
    for (let e = this.byXid.get(key.xid | 0); e; e = e.chain) if (sameKey(e.key, key)) return e;
    return undefined;
  }

  private insert(e: Entry): void {
    const k = e.key.xid | 0;
    e.chain = this.byXid.get(k);
    this.byXid.set(k, e);
  }

  /** take an entry out of the xid map */
  private detach(e: Entry): void {
    const k = e.key.xid | 0;
    const head = this.byXid.get(k);
    if (head === e) {
      if (e.chain) this.byXid.set(k, e.chain);
      else this.byXid.delete(k);
    } else {
      for (let p = head; p; p = p.chain) {
        if (p.chain === e) {
          p.chain = e.chain;
          break;
        }
      }
    }
    e.chain = undefined;
  }

  private append(e: Entry): void {
    e.prev = this.newest;
    e.next = undefined;
    if (this.newest) this.newest.next = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.oldest = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.newest = e.prev;
    e.prev = e.next = undefined;
  }

  private dropOldest(count = true): boolean {
    const e = this.oldest;
    if (!e) return false;
    this.unlink(e);
    this.detach(e);
    this.doneCount--;
    this.doneBytes -= e.size;
    if (e.slab) this.release(e.slab);
    e.slab = undefined;
    if (count) this.evictions++;
    return true;
  }

  private expire(now: number): void {
    const ttl = this.limits.ttlMs;
    while (this.oldest && now - this.oldest.at >= ttl) this.dropOldest();
  }

  private evict(): void {
    const { maxEntries, maxBytes } = this.limits;
    while ((this.size > maxEntries || this.bytes > maxBytes) && this.dropOldest());
  }
}
