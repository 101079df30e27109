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
import { promises as fsp, constants as C } from 'node:fs';
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

  /** the file has journaled changes not synced yet */
  hasJournaled(fileid: number): boolean {
    return this.journalFiles.has(fileid);
  }

  /** files changed by journaled writes since the last checkpoint */
  get journalDirtyCount(): number {
    return this.journalFiles.size;
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
    const e = (await this.acquire(fileid, true, aheadFrom, journaled))!;
    try {
      let done = 0;
      try {
        while (done < data.length) {
          const { bytesWritten } = await e.fh.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        }
      } finally {
        // a failed write may still have changed part of the file
        if (done > 0) {
          if (journaled) {
            this.journalFiles.add(fileid);
            this.writeSeq++;
          } else {
            this.dirtyFiles.add(fileid);
            this.gateSeq = ++this.writeSeq;
          }
        }
      }
    } finally {
      this.release(e);
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

  /** Read `count` bytes; bytes past the data file's end read as zero. The buffer is not zero-filled
   * up front (a 1 MiB memset per READ is measurable): whatever pread did not fill is zeroed after. */
  async read(fileid: number, offset: number, count: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(count);
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
        ...[...files].map((id) => async () => {
          const e = await this.acquire(id, false);
          if (!e) return; // unlinked meanwhile
          try {
            await e.fh.datasync();
            this.stats.fsyncs++;
          } finally {
            this.release(e);
          }
        }),
        ...[...dirs].map((d) => async () => {
          const fh = await fsp.open(d, C.O_RDONLY | C.O_DIRECTORY);
          try {
            await fh.sync();
            this.stats.dirFsyncs++;
          } finally {
            await fh.close();
          }
        }),
      ]);
    } catch (err) {
      for (const f of files) this.dirtyFiles.add(f);
      for (const d of dirs) this.dirtyDirs.add(d);
      throw err;
    }
    this.setSynced(gateSeq, full);
    this.trim();
  }

  async closeAll(): Promise<void> {
    const all = [...this.fds.values()];
    this.fds.clear();
    await Promise.all(all.map((e) => e.fh.close().catch(() => undefined)));
  }
}
