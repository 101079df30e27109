/**
 * Group commit of the Raft log storage: sync() callers wait for one fdatasync of every segment
 * written to (and an fsync of the directory when a segment was created) that covers everything
 * written before they called; callers arriving meanwhile share the next round.
 */
import { SegmentWriter } from './segment-writer';
import { StorageFailedError, StorageIo, StorageStats, SyncBatchInfo, noteFsync } from './log-storage-types';

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** What the group commit needs of the storage it belongs to. */
export interface GroupCommitHost {
  /** the storage's failure, if it has failed */
  failure(): StorageFailedError | undefined;
  /** fail the storage (which rejects every waiter, see rejectAll) */
  fail(e: unknown, op: string): StorageFailedError;
  /** seq of the oldest segment still needed: older ones are deleted once a round is durable */
  firstLiveSegment(): number;
}

export class GroupCommit {
  /** entries appended since open (counted by the storage) */
  entriesWritten = 0;

  private synced = 0;
  private entriesSynced = 0;
  private running = false;
  private waiters: Waiter[] = [];

  constructor(
    private readonly writer: SegmentWriter,
    private readonly io: StorageIo,
    private readonly dir: string,
    private readonly st: StorageStats,
    private readonly onSync: ((b: SyncBatchInfo) => void) | undefined,
    private readonly host: GroupCommitHost,
  ) {}

  /** a round of fsyncs is under way */
  get syncing(): boolean {
    return this.running;
  }

  /** Resolves when everything the writer has written to the OS so far is on stable storage. */
  wait(): Promise<void> {
    const target = this.writer.written;
    if (target <= this.synced && !this.writer.hasUnsyncedFiles) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ target, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /** The storage failed: every waiter is rejected with `err`. */
  rejectAll(err: StorageFailedError): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private fdatasync(fd: number): Promise<void> {
    return new Promise((res, rej) => this.io.fdatasync(fd, (err) => (err ? rej(err) : res())));
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.length > 0 && !this.host.failure()) {
        try {
          this.writer.flush();
        } catch (e) {
          this.host.fail(e, 'write');
          return;
        }
        const upto = this.writer.written;
        const entriesUpto = this.entriesWritten;
        const { fds, dir } = this.writer.takeUnsynced();
        const firstLive = this.host.firstLiveSegment();
        const t0 = process.hrtime.bigint();
        try {
          for (const fd of fds) await this.fdatasync(fd);
          if (dir) await this.io.fsyncDir(this.dir);
        } catch (e) {
          this.host.fail(e, 'fsync');
          return;
        }
        if (this.host.failure()) return;
        const sec = Number(process.hrtime.bigint() - t0) / 1e9;
        noteFsync(this.st, sec);
        const bytes = upto - this.synced;
        const entries = entriesUpto - this.entriesSynced;
        this.synced = upto;
        this.entriesSynced = entriesUpto;
        let callers = 0;
        const rest: Waiter[] = [];
        for (const w of this.waiters) {
          if (w.target <= upto) {
            callers++;
            w.resolve();
          } else rest.push(w);
        }
        this.waiters = rest;
        this.st.syncBatches++;
        this.st.syncedEntries += entries;
        this.st.syncCallers += callers;
        if (entries > this.st.maxBatchEntries) this.st.maxBatchEntries = entries;
        this.onSync?.({ seconds: sec, bytes, entries, callers, files: fds.length + (dir ? 1 : 0) });
        this.writer.deleteSegmentsBefore(firstLive);
      }
    } finally {
      this.running = false;
    }
  }
}
