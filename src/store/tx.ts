/** One op's transaction: what it read (each inode once), what it changes, and the LevelDB batch ops
 * recording it; the store commits it in memory and queues the batch (group-commit.ts). */
import { FileType } from './types';
import {
  cookieKey,
  cutKey,
  decodeEntry,
  encodeCookieValue,
  encodeEntry,
  encodeJournalTruncate,
  entryKey,
  journalKey,
  unlinkKey,
  type Inode,
  type StoreState,
} from './codec';
import { usedOf } from './attrs';

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export const EMPTY = Buffer.alloc(0);

export const entryOverlayKey = (dir: number, name: string): string => `${dir}/${name}`;

/** What a transaction reads from the store (the store as it is, pending batches included). */
export interface TxStore {
  readonly logWal: boolean;
  inodeSync(id: number): Inode | undefined;
  getInlineSync(id: number): Buffer | undefined;
  getEntrySync(dir: number, name: string): Buffer | undefined;
}

/** One op's view and changes: read-your-writes, each inode read at most once. */
export class Tx {
  readonly ops: BatchOp[] = [];
  private readonly seen = new Map<number, Inode | null>();
  readonly changed = new Map<number, Inode | null>();
  /** data files to unlink once the batch is written */
  readonly unlinks: number[] = [];
  /** data files to cut [fileid, size] once the batch is written */
  readonly truncates: [number, number][] = [];
  /** directory entry changes, for the overlay */
  readonly entryChanges: [string, Buffer | null][] = [];
  /** cookie index changes, for the overlay READDIR merges */
  readonly cookieChanges: [number, number, CookieEntry | null][] = [];
  /** inline data changes (null: deleted), for the overlay */
  readonly inlineChanges = new Map<number, Buffer | null>();
  /** journal records this op put in its batch, and the files they change */
  readonly journalKeys: Buffer[] = [];
  readonly journalFiles = new Set<number>();
  journalBytes = 0;
  /** ops that go into the batch whether or not the op succeeded (duplicate-request records) */
  readonly alwaysOps: BatchOp[] = [];
  /** logWal: cut record keys this op put in its batch */
  readonly cutKeys: Buffer[] = [];
  readonly st: StoreState;
  constructor(
    private readonly store: TxStore,
    st: StoreState,
  ) {
    this.st = { ...st };
  }
  async inode(id: number): Promise<Inode | undefined> {
    const c = this.changed.get(id);
    if (c !== undefined) return c ?? undefined;
    const s = this.seen.get(id);
    if (s !== undefined) return s ?? undefined;
    const i = this.store.inodeSync(id);
    this.seen.set(id, i ?? null);
    return i;
  }
  /** a mutable copy of an inode already read, the same copy for every call in this op */
  edit(i: Inode): Inode {
    const c = this.changed.get(i.fileid);
    if (c) return c;
    const copy = { ...i };
    this.changed.set(i.fileid, copy);
    return copy;
  }
  create(i: Inode): void {
    this.changed.set(i.fileid, i);
  }
  /** inline data of an inline file as this op sees it (empty: none yet) */
  inlineData(id: number): Buffer {
    const c = this.inlineChanges.get(id);
    if (c !== undefined) return c ?? EMPTY;
    return this.store.getInlineSync(id) ?? EMPTY;
  }
  setInline(id: number, data: Buffer | null): void {
    this.inlineChanges.set(id, data);
  }
  /** a data journal record of this op (key: its index and position in the op) */
  journal(fileid: number, value: Buffer): void {
    const key = journalKey(this.st.applied, this.journalKeys.length);
    this.journalKeys.push(key);
    this.journalFiles.add(fileid);
    this.journalBytes += value.length;
    this.ops.push({ type: 'put', key, value });
  }
  /** cut `fileid`'s data file to `size` once the batch is written; journaled to keep replay order */
  truncate(fileid: number, size: number): void {
    this.truncates.push([fileid, size]);
    if (this.store.logWal) {
      // no journal: a cut record for redo(), which replays writes from the log and cuts from these
      this.cutRecord(fileid, size);
      return;
    }
    this.journal(fileid, encodeJournalTruncate(fileid, size));
  }
  /** logWal: a cut record for redo() only (no data file to cut now: an inline file) */
  cutRecord(fileid: number, size: number): void {
    const key = cutKey(this.st.applied, this.cutKeys.length);
    this.cutKeys.push(key);
    this.ops.push({ type: 'put', key, value: encodeJournalTruncate(fileid, size) });
  }
  delete(i: Inode): void {
    this.changed.set(i.fileid, null);
    this.st.fileCount--;
    this.st.usedBytes -= usedOf(i);
    if (i.type === FileType.REG) {
      if (i.inline) this.inlineChanges.set(i.fileid, null);
      // (an inline file may still have an empty data file, created ahead of use)
      this.ops.push({ type: 'put', key: unlinkKey(i.fileid), value: Buffer.alloc(0) });
      this.unlinks.push(i.fileid);
    }
  }
  async entry(dir: number, name: string): Promise<{ fileid: number; cookie: number } | undefined> {
    const v = this.store.getEntrySync(dir, name);
    return v ? decodeEntry(v) : undefined;
  }
  addEntry(dir: Inode, name: string, fileid: number): void {
    const cookie = dir.nextCookie++;
    dir.entries++;
    const value = encodeEntry(fileid, cookie);
    this.entryChanges.push([entryOverlayKey(dir.fileid, name), value]);
    this.cookieChanges.push([dir.fileid, cookie, { fileid, name }]);
    this.ops.push({ type: 'put', key: entryKey(dir.fileid, name), value });
    this.ops.push({ type: 'put', key: cookieKey(dir.fileid, cookie), value: encodeCookieValue(fileid, name) });
  }
  removeEntry(dir: Inode, name: string, cookie: number): void {
    dir.entries--;
    this.entryChanges.push([entryOverlayKey(dir.fileid, name), null]);
    this.cookieChanges.push([dir.fileid, cookie, null]);
    this.ops.push({ type: 'del', key: entryKey(dir.fileid, name) });
    this.ops.push({ type: 'del', key: cookieKey(dir.fileid, cookie) });
  }
}


export interface CookieEntry {
  fileid: number;
  name: string;
}
