/**
 * File data: one sparse data file per regular file, dataDir/blocks/<shard>/<fileid hex>, where
 * shard = fileid >> 12 in hex (4096 consecutive ids share a directory, so the files created by a burst
 * of concurrent creates share one directory fsync). Byte N of the file is byte N of the data file, so
 * block B (64 KiB) lives at offset B * BLOCK and sequential writes are plain pwrite()s with no extra
 * copying or indirection. Holes read as zeros (sparse files).
 *
 * Open descriptors are cached in a bounded LRU with reference counts (a descriptor in use by a read or
 * an fdatasync is never closed under it). Writes mark the file dirty; `syncDirty()` is the sync
 * barrier: it fdatasyncs every dirty file (in parallel, so the kernel can merge journal commits) and
 * fsyncs every directory that gained or lost a data file, before the caller writes a LevelDB batch with
 * sync:true.
 *
 * Two classes of change: a *journaled* write (small; the store also puts its bytes in the LevelDB
 * batch that records it, see block-store.ts) needs no barrier before its batch, only eventually, at a
 * checkpoint; every other change (big writes, cuts, new or removed data files) is a *gate* change that
 * the barrier must cover before the batch that relies on it. `gateSeq` / `syncedGateSeq` track the
 * gate changes, `writeSeq` / `syncedSeq` all changes; `syncDirty()` syncs gate changes, `syncDirty(true)`
 * everything (a checkpoint).
 */
import { promises as fsp, constants as C, closeSync, openSync, readSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';

export const BLOCK = 64 * 1024;
/** data files created ahead per run (see preallocate) */
export const PREALLOC = 64;
/** fdatasync / fsync calls of one barrier in flight at once */
const SYNC_CONCURRENCY = 6;

/** Run the tasks, at most SYNC_CONCURRENCY at a time; rejects with the first failure (after all ran). */
async function inParallel(tasks: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const t = tasks[next++];
      try {
        await t();
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SYNC_CONCURRENCY, tasks.length) }, worker));
  if (failure) throw failure.e;
}
/** reads up to this many bytes are done synchronously while the page cache serves them (see read()) */
export const SYNC_READ_MAX = 64 * 1024;
/** a synchronous read (open included) slower than this probably waited for the disk (or the thread
 * was preempted: on a busy machine one read in a few hundred is, so one slow read proves nothing) ... */
export const SLOW_SYNC_READ_MS = 1;
/** ... and when SLOW_SYNC_READS_OFF of the last 16 synchronous reads were slow, reads go through the
 * thread pool for SYNC_READ_BACKOFF_MS */
export const SLOW_SYNC_READS_OFF = 4;
export const SYNC_READ_BACKOFF_MS = 1000;
/** writes up to this many bytes into a file with an open descriptor are done synchronously, under the
 * same back-off as reads */
export const SYNC_WRITE_MAX = 64 * 1024;
/** READs of POOLED_READ_MIN..POOLED_READ_BYTES bytes read into a reused buffer (recycleRead): a fresh
 * 1 MiB buffer per READ made garbage collection the largest cost of sequential reads */
export const POOLED_READ_MIN = 128 * 1024;
export const POOLED_READ_BYTES = 1024 * 1024;
/** idle pooled buffers kept (the rest are left to the garbage collector) */
const POOLED_READ_KEEP = 32;

interface FdEntry {
  fh: fsp.FileHandle;
  refs: number;
  /** removed from the cache; close when refs drop to 0 */
  detached: boolean;
}

export interface DataStats {
  fsyncs: number;
  dirFsyncs: number;
}

export interface ReadStats {
  /** reads done synchronously on the event loop */
  sync: number;
  /** reads done through the thread pool */
  async: number;
  /** synchronous reads that took longer than SLOW_SYNC_READ_MS */
  slow: number;
  /** times synchronous reads were turned off for SYNC_READ_BACKOFF_MS */
  backoffs: number;
}

function bitCount16(x: number): number {
  let n = 0;
  for (; x !== 0; x &= x - 1) n++;
  return n;
}

export class DataFiles {
  readonly blocksDir: string;
  private readonly fds = new Map<number, FdEntry>(); // insertion order = LRU order
  private readonly opening = new Map<number, Promise<FdEntry | undefined>>();
  private dirtyFiles = new Set<number>();
  private dirtyDirs = new Set<string>();
  /** files / directories changed only by journaled writes: synced at checkpoints */
  private journalFiles = new Set<number>();
  private journalDirs = new Set<string>();
  private readonly knownShards = new Set<string>();
  private syncChain: Promise<unknown> = Promise.resolve();
  /** data files exist (created empty, ahead of use) for file ids up to here; see preallocate() */
  private preallocUpTo = 0;
  /** bumped after every data change (write, truncate, new data file) has reached the page cache */
  writeSeq = 0;
  /** every change up to this writeSeq is durable */
  syncedSeq = 0;
  /** writeSeq of the last gate change (anything but a journaled write) */
  gateSeq = 0;
  /** every gate change up to this writeSeq is durable */
  syncedGateSeq = 0;
  readonly stats: DataStats = { fsyncs: 0, dirFsyncs: 0 };
  /** (`slow` and `backoffs` count synchronous writes too: one back-off for both) */
  readonly readStats: ReadStats = { sync: 0, async: 0, slow: 0, backoffs: 0 };
  readonly writeStats = { sync: 0, async: 0 };
  /** pooled READ buffers: handed out, newly allocated, given back */
  readonly poolStats = { lent: 0, allocated: 0, recycled: 0 };
  private readonly idleReadBuffers: ArrayBuffer[] = [];
  /** pooled buffers handed out and not given back (weak: one never given back is simply collected) */
  private readonly lentReadBuffers = new WeakSet<ArrayBuffer>();
  /** read-only descriptors of the synchronous read path, fileid -> fd (insertion order = LRU order) */
  private readonly readFds = new Map<number, number>();
  /** synchronous reads are off until this performance.now() time (see read()) */
  private syncReadsOffUntil = 0;
  /** the last 16 synchronous reads, one bit each (1: slow), newest in bit 0 */
  private recentSlow = 0;
  /** @internal threshold of a slow synchronous read, ms (tests lower it) */
  slowSyncReadMs = SLOW_SYNC_READ_MS;

  constructor(dataDir: string, private readonly maxFds: number) {
    this.blocksDir = path.join(dataDir, 'blocks');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.blocksDir, { recursive: true });
  }

  static shardName(fileid: number): string {
    return Math.floor(fileid / 4096).toString(16).padStart(4, '0');
  }

  static fileName(fileid: number): string {
    return fileid.toString(16).padStart(16, '0');
  }

  pathOf(fileid: number): string {
    return path.join(this.blocksDir, DataFiles.shardName(fileid), DataFiles.fileName(fileid));
  }

  get dirtyCount(): number {
    return this.dirtyFiles.size + this.dirtyDirs.size;
  }

  /** files (and directories) changed by journaled writes since the last checkpoint */
  get journalDirtyCount(): number {
    return this.journalFiles.size + this.journalDirs.size;
  }

  /** Acquire a descriptor; `create` makes the data file if missing. undefined: no data file. */
  private async acquire(fileid: number, create: boolean, aheadFrom = 0, journaled = false): Promise<FdEntry | undefined> {
    let e = this.fds.get(fileid);
    if (e) {
      // move to the LRU tail
      this.fds.delete(fileid);
      this.fds.set(fileid, e);
      e.refs++;
      return e;
    }
    const pending = this.opening.get(fileid);
    if (pending) {
      const r = await pending;
      if (r) return this.acquire(fileid, create);
      if (!create) return undefined;
    }
    const p = this.open(fileid, create, aheadFrom, journaled);
    this.opening.set(fileid, p);
    try {
      e = await p;
    } finally {
      this.opening.delete(fileid);
    }
    if (!e) return undefined;
    this.fds.set(fileid, e);
    e.refs++;
    this.trim();
    return e;
  }

  private async open(fileid: number, create: boolean, aheadFrom: number, journaled: boolean): Promise<FdEntry | undefined> {
    const file = this.pathOf(fileid);
    if (create && journaled) {
      // a journaled write recreates the file at replay, so its directory entry can wait for a
      // checkpoint: open or create in one call, no pre-created run needed
      const shard = path.dirname(file);
      await this.ensureShard(shard);
      const fh = await fsp.open(file, C.O_RDWR | C.O_CREAT, 0o600);
      this.journalDirs.add(shard);
      this.writeSeq++;
      return { fh, refs: 0, detached: false };
    }
    try {
      const fh = await fsp.open(file, C.O_RDWR);
      return { fh, refs: 0, detached: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    }
    const shard = path.dirname(file);
    await this.ensureShard(shard);
    const fh = await fsp.open(file, C.O_RDWR | C.O_CREAT, 0o600);
    this.dirtyDirs.add(shard);
    this.gateSeq = ++this.writeSeq;
    if (aheadFrom > 0) {
      try {
        await this.preallocate(aheadFrom);
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
    }
    return { fh, refs: 0, detached: false };
  }

  private release(e: FdEntry): void {
    e.refs--;
    if (e.refs === 0 && e.detached) void e.fh.close().catch(() => undefined);
  }

  /** Close least recently used descriptors that are idle and clean, down to the bound. */
  private trim(): void {
    if (this.fds.size <= this.maxFds) return;
    for (const [id, e] of this.fds) {
      if (this.fds.size <= this.maxFds) break;
      // (a file dirty only from journaled writes may close: the checkpoint reopens it)
      if (e.refs > 0 || this.dirtyFiles.has(id)) continue;
      this.fds.delete(id);
      e.detached = true;
      void e.fh.close().catch(() => undefined);
    }
  }

  /** Write at `offset`. `aheadFrom`: the next file id to be handed out, to pre-create data files
   * from (0: none) when this write has to create the file's data file. `journaled`: the caller
   * records the bytes durably elsewhere (the store's journal), so no barrier is needed before it. */
  async write(fileid: number, offset: number, data: Uint8Array, aheadFrom = 0, journaled = false): Promise<void> {
    if (data.length <= SYNC_WRITE_MAX) {
      // a small write into a file whose descriptor is open is a copy into the page cache: done on
      // the event loop it costs a few microseconds, through the thread pool a round trip (same
      // back-off as synchronous reads when the page cache stops keeping up)
      const cached = this.fds.get(fileid);
      const t0 = performance.now();
      if (cached && t0 >= this.syncReadsOffUntil) {
        this.writeStats.sync++;
        let done = 0;
        try {
          while (done < data.length) done += writeSync(cached.fh.fd, data, done, data.length - done, offset + done);
        } finally {
          this.wrote(fileid, done, journaled);
        }
        this.noteSyncIo(t0);
        return;
      }
    }
    this.writeStats.async++;
    const e = (await this.acquire(fileid, true, aheadFrom, journaled))!;
    try {
      let done = 0;
      try {
        while (done < data.length) {
          const { bytesWritten } = await e.fh.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        }
      } finally {
        this.wrote(fileid, done, journaled);
      }
    } finally {
      this.release(e);
    }
  }

  /** Account `done` bytes written to `fileid` (a failed write may still have changed part of it). */
  private wrote(fileid: number, done: number, journaled: boolean): void {
    if (done === 0) return;
    if (journaled) {
      this.journalFiles.add(fileid);
      this.writeSeq++;
    } else {
      this.dirtyFiles.add(fileid);
      this.gateSeq = ++this.writeSeq;
    }
  }

  /**
   * Create empty data files for the PREALLOC ids from `from` on (ids not handed out yet) that do not
   * exist yet. A new data file needs a directory fsync before metadata that relies on it may be
   * recorded; creating them ahead, in runs, makes that one directory fsync per run instead of one per
   * file. Called when a write has to create a data file, so workloads that never write create none.
   * Empty data files of ids not handed out yet are expected (start-up and fsck know them); an id that
   * becomes a directory, symlink or device gets its empty file removed (`discardPreallocated`).
   */
  private async preallocate(from: number): Promise<void> {
    const first = Math.max(from, this.preallocUpTo + 1);
    const last = from + PREALLOC - 1;
    for (let id = first; id <= last; id++) {
      const file = this.pathOf(id);
      const shard = path.dirname(file);
      await this.ensureShard(shard);
      const fh = await fsp.open(file, C.O_RDWR | C.O_CREAT, 0o600);
      await fh.close();
      this.dirtyDirs.add(shard);
    }
    if (last > this.preallocUpTo) this.preallocUpTo = last;
  }

  /** An id that became something other than a regular file: drop its empty pre-created data file. */
  async discardPreallocated(fileid: number): Promise<void> {
    // unconditionally: after a restart the run created before it is not known (missing is fine)
    await this.unlink(fileid);
  }

  private async ensureShard(shard: string): Promise<void> {
    if (this.knownShards.has(shard)) return;
    try {
      await fsp.mkdir(shard);
      this.dirtyDirs.add(this.blocksDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.knownShards.add(shard);
  }

  /**
   * Read `count` bytes; bytes past the data file's end read as zero. The buffer is not zero-filled
   * up front (a 1 MiB memset per READ is measurable): whatever pread did not fill is zeroed after.
   *
   * Reads up to SYNC_READ_MAX bytes are synchronous `pread`s on the event loop: served by the page
   * cache, open + pread cost a few microseconds, where a thread-pool round trip (plus an async open
   * and close when the descriptor is not cached) costs 50-150 microseconds of event-loop time on a
   * small machine. A synchronous read that takes longer than `slowSyncReadMs` has probably waited for
   * the disk, and would stall every other call meanwhile: when SLOW_SYNC_READS_OFF of the last 16
   * were slow, reads go through the thread pool for SYNC_READ_BACKOFF_MS, after which small reads try
   * again (so data the page cache does not hold costs at most a few stalls per back-off period).
   */
  async read(fileid: number, offset: number, count: number): Promise<Buffer> {
    if (count > 0 && count <= SYNC_READ_MAX) {
      const t0 = performance.now();
      if (t0 >= this.syncReadsOffUntil) return this.readSync(fileid, offset, count, t0);
    }
    this.readStats.async++;
    const out = count >= POOLED_READ_MIN && count <= POOLED_READ_BYTES ? this.lendReadBuffer(count) : Buffer.allocUnsafe(count);
    let done = 0;
    const e = count === 0 ? undefined : await this.acquire(fileid, false);
    if (e) {
      try {
        while (done < count) {
          const { bytesRead } = await e.fh.read(out, done, count - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } finally {
        this.release(e);
      }
    }
    if (done < count) out.fill(0, done);
    return out;
  }

  private lendReadBuffer(count: number): Buffer {
    let ab = this.idleReadBuffers.pop();
    if (!ab) {
      ab = Buffer.allocUnsafeSlow(POOLED_READ_BYTES).buffer as ArrayBuffer;
      this.poolStats.allocated++;
    }
    this.lentReadBuffers.add(ab);
    this.poolStats.lent++;
    return Buffer.from(ab, 0, count);
  }

  /**
   * Give back the buffer of a READ once nothing uses it any more (its reply is written to the socket).
   * Buffers that are not from the pool, or already given back, are ignored.
   */
  recycleRead(data: Uint8Array): void {
    const ab = data.buffer as ArrayBuffer;
    if (!this.lentReadBuffers.delete(ab)) return;
    this.poolStats.recycled++;
    if (this.idleReadBuffers.length < POOLED_READ_KEEP) this.idleReadBuffers.push(ab);
  }

  private readSync(fileid: number, offset: number, count: number, t0: number): Buffer {
    this.readStats.sync++;
    const out = Buffer.allocUnsafe(count);
    let done = 0;
    // the writers' descriptor when it is cached (nothing can close it during this synchronous call),
    // else a read-only one of our own
    const e = this.fds.get(fileid);
    const fd = e ? e.fh.fd : this.readFd(fileid);
    if (fd !== undefined) {
      while (done < count) {
        const n = readSync(fd, out, done, count - done, offset + done);
        if (n === 0) break;
        done += n;
      }
    }
    if (done < count) out.fill(0, done);
    this.noteSyncIo(t0);
    return out;
  }

  /** After a synchronous read or write that started at `t0`: count it slow or not, and turn
   * synchronous I/O off for a while when too many recent ones were slow. */
  private noteSyncIo(t0: number): void {
    const t1 = performance.now();
    const slow = t1 - t0 > this.slowSyncReadMs;
    this.recentSlow = ((this.recentSlow << 1) | (slow ? 1 : 0)) & 0xffff;
    if (slow) {
      this.readStats.slow++;
      if (bitCount16(this.recentSlow) >= SLOW_SYNC_READS_OFF) {
        this.readStats.backoffs++;
        this.syncReadsOffUntil = t1 + SYNC_READ_BACKOFF_MS;
        this.recentSlow = 0;
      }
    }
  }

  /** A cached read-only descriptor of the data file, opened if needed; undefined: no data file (not
   * cached: the file may get one later). */
  private readFd(fileid: number): number | undefined {
    let fd = this.readFds.get(fileid);
    if (fd !== undefined) {
      this.readFds.delete(fileid);
      this.readFds.set(fileid, fd);
      return fd;
    }
    try {
      fd = openSync(this.pathOf(fileid), C.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    this.readFds.set(fileid, fd);
    if (this.readFds.size > this.maxFds) {
      for (const [id, old] of this.readFds) {
        this.readFds.delete(id);
        closeSync(old);
        break;
      }
    }
    return fd;
  }

  /** Close the read-only descriptor of a data file about to be removed. */
  private dropReadFd(fileid: number): void {
    const fd = this.readFds.get(fileid);
    if (fd === undefined) return;
    this.readFds.delete(fileid);
    closeSync(fd);
  }

  /** Cut the data file to `size` if it is longer (no data beyond the recorded size). */
  async truncate(fileid: number, size: number): Promise<void> {
    const e = await this.acquire(fileid, false);
    if (!e) return;
    try {
      const st = await e.fh.stat();
      if (st.size > size) {
        await e.fh.truncate(size);
        this.dirtyFiles.add(fileid);
        this.gateSeq = ++this.writeSeq;
      }
    } finally {
      this.release(e);
    }
  }

  /** Delete the data file of a removed file (missing is fine). */
  async unlink(fileid: number): Promise<void> {
    this.dropReadFd(fileid);
    this.dirtyFiles.delete(fileid);
    this.journalFiles.delete(fileid);
    const e = this.fds.get(fileid);
    if (e) {
      this.fds.delete(fileid);
      e.detached = true;
      if (e.refs === 0) await e.fh.close().catch(() => undefined);
    }
    const file = this.pathOf(fileid);
    try {
      await fsp.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    // the removal is durable only once the directory is synced (next barrier)
    this.dirtyDirs.add(path.dirname(file));
  }

  /**
   * The sync barrier: make every gate change made so far durable (afterwards `syncedGateSeq` >= the
   * `gateSeq` of this call); with `all` (a checkpoint) every change, journaled writes included
   * (afterwards `syncedSeq` >= the `writeSeq` of this call). Calls run one after another; a call
   * that finds nothing dirty returns at once.
   */
  syncDirty(all = false): Promise<void> {
    const p = this.syncChain.then(() => this.syncNow(all));
    this.syncChain = p.catch(() => undefined);
    return p;
  }

  private setSynced(gateSeq: number, seq: number | undefined): void {
    if (gateSeq > this.syncedGateSeq) this.syncedGateSeq = gateSeq;
    if (seq !== undefined && seq > this.syncedSeq) this.syncedSeq = seq;
  }

  private async syncNow(all: boolean): Promise<void> {
    const seq = this.writeSeq;
    const gateSeq = this.gateSeq;
    // no journaled change is unsynced: syncing the gate changes syncs everything
    const full = all || (this.journalFiles.size === 0 && this.journalDirs.size === 0) ? seq : undefined;
    const files = this.dirtyFiles;
    const dirs = this.dirtyDirs;
    if (all) {
      for (const f of this.journalFiles) files.add(f);
      for (const d of this.journalDirs) dirs.add(d);
      this.journalFiles = new Set();
      this.journalDirs = new Set();
    }
    if (files.size === 0 && dirs.size === 0) {
      this.setSynced(gateSeq, full);
      return;
    }
    this.dirtyFiles = new Set();
    this.dirtyDirs = new Set();
    try {
      // in parallel, SYNC_CONCURRENCY at a time: the kernel merges journal commits, and the thread
      // pool keeps threads for the LevelDB writes that replies wait on. Order among them does not
      // matter: all complete before the caller writes metadata that depends on them
      await inParallel([
        ...[...files].map((id) => async () => void (await this.datasyncFile(id))),
        ...[...dirs].map((d) => () => this.fsyncDir(d)),
      ]);
    } catch (err) {
      for (const f of files) this.dirtyFiles.add(f);
      for (const d of dirs) this.dirtyDirs.add(d);
      throw err;
    }
    this.setSynced(gateSeq, full);
    this.trim();
  }

  /** fdatasync one data file now, and fsync its directories (it may be new); the rest stays dirty. */
  async syncFile(fileid: number): Promise<void> {
    if (!(await this.datasyncFile(fileid))) return;
    const shard = path.dirname(this.pathOf(fileid));
    for (const d of this.dirtyDirs.has(this.blocksDir) ? [this.blocksDir, shard] : [shard]) await this.fsyncDir(d);
  }

  /** fdatasync a data file; false if it no longer exists (unlinked meanwhile) */
  private async datasyncFile(fileid: number): Promise<boolean> {
    const e = await this.acquire(fileid, false);
    if (!e) return false;
    try {
      await e.fh.datasync();
      this.stats.fsyncs++;
    } finally {
      this.release(e);
    }
    return true;
  }

  private async fsyncDir(d: string): Promise<void> {
    const fh = await fsp.open(d, C.O_RDONLY | C.O_DIRECTORY);
    try {
      await fh.sync();
      this.stats.dirFsyncs++;
    } finally {
      await fh.close();
    }
  }

  async closeAll(): Promise<void> {
    for (const fd of this.readFds.values()) closeSync(fd);
    this.readFds.clear();
    const all = [...this.fds.values()];
    this.fds.clear();
    await Promise.all(all.map((e) => e.fh.close().catch(() => undefined)));
  }
}
