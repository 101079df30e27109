/**
 * Preallocation of the next Raft log segment: a file zero-filled and fdatasync'ed in the background
 * while the current segment fills up, renamed into place when the log rolls.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StorageLogger, StorageStats } from './log-storage-types';
import { NEXT_TMP } from './segment-files';

/** The next segment, being zero-filled in the background (see start). */
interface Prepared {
  file: string;
  fd: number;
  ready: boolean;
  cancelled: boolean;
  done: Promise<void>;
}

export class SegmentPreallocator {
  /** the next segment's preallocated file (at most one) and the segment it was started for */
  private prep: Prepared | undefined;
  private prepStartedFor = -1;

  /** `stopped` says the storage is closed or failed: nothing new is started then */
  constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    private readonly log: StorageLogger,
    private readonly st: StorageStats,
    private readonly stopped: () => boolean,
  ) {}

  /** the segment the last start() was for (-1 before any) */
  get startedFor(): number {
    return this.prepStartedFor;
  }

  /** a preallocation is under way or ready (close() has something to stop) */
  get running(): boolean {
    return this.prep !== undefined;
  }

  /** a preallocated file for the next segment is ready */
  get ready(): boolean {
    return this.prep?.ready === true;
  }

  /** Start zero-filling the next segment's file in the background (once per current segment `seq`, when
   * it is half full): written in 1 MiB chunks by the thread pool, fdatasync'ed every 8 MiB and at the
   * end, so that its size and block allocation are on disk before it becomes a segment. Appends to
   * it then overwrite allocated blocks, and their fdatasync has only data to flush, no journal
   * commit of a new file size. Best effort: on any error the roll creates an empty file as before. */
  start(seq: number): void {
    this.prepStartedFor = seq;
    if (this.prep || this.stopped()) return;
    const p: Prepared = { file: path.join(this.dir, NEXT_TMP), fd: -1, ready: false, cancelled: false, done: Promise.resolve() };
    this.prep = p;
    const total = this.segmentBytes;
    p.done = (async () => {
      try {
        fs.rmSync(p.file, { force: true });
        p.fd = fs.openSync(p.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
        const zeros = Buffer.alloc(Math.min(1 << 20, total));
        let off = 0;
        let unsynced = 0;
        while (off < total && !p.cancelled) {
          const n = await writeAsync(p.fd, zeros, 0, Math.min(zeros.length, total - off), off);
          off += n;
          unsynced += n;
          if (unsynced >= 8 << 20 || off >= total) {
            await fdatasyncAsync(p.fd);
            unsynced = 0;
          }
        }
        if (!p.cancelled) p.ready = true;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'raft log: could not preallocate the next segment; it will be created empty');
        p.cancelled = true;
      }
      if (p.cancelled) {
        if (this.prep === p) this.prep = undefined;
        this.discard(p);
      }
    })();
  }

  /** The prepared file renamed to `file` (the caller fsyncs the directory), or undefined if none is ready. */
  take(file: string): number | undefined {
    const p = this.prep;
    if (!p || !p.ready) return undefined;
    this.prep = undefined;
    try {
      if (fs.existsSync(file)) throw new Error(`${file} exists`);
      fs.renameSync(p.file, file);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'raft log: preallocated segment not used');
      this.discard(p);
      return undefined;
    }
    this.st.preallocatedSegments++;
    return p.fd;
  }

  /** The storage failed: a preallocation under way stops and removes its file. */
  cancel(): void {
    if (this.prep) this.prep.cancelled = true;
  }

  /** Stop a preallocation under way, wait for it, and remove its file. */
  async close(): Promise<void> {
    const p = this.prep;
    if (p) {
      this.prep = undefined;
      p.cancelled = true;
      await p.done;
      this.discard(p);
    }
  }

  private discard(p: Prepared): void {
    if (p.fd < 0) return;
    try {
      fs.closeSync(p.fd);
      fs.unlinkSync(p.file);
    } catch {
      /* gone; a leftover is removed at the next open */
    }
    p.fd = -1;
  }
}

function writeAsync(fd: number, b: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => fs.write(fd, b, off, len, pos, (e, n) => (e ? rej(e) : res(n))));
}

function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
}
