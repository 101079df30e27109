/**
 * Store checksums for `hanfs verify`: compare the logical state of replicas.
 *
 * What is hashed is what decides what clients see, at one op index:
 *   - the state record (applied index, next file id, file count, bytes used);
 *   - per inode (file id order): its record hash, SHA-256 of the inode key and record with the
 *     `inline` flag cleared (inline or not is an on-disk layout choice, `inlineMax` may differ between
 *     replicas), and its content hash:
 *       directories: SHA-256 of its entry records (name -> fileid, cookie) and cookie records
 *                    (cookie -> fileid, name), in key order, length-prefixed;
 *       regular files: SHA-256 of the logical bytes up to the recorded size, whether they live inline
 *                    or in a data file (holes and bytes past the stored ones read as zeros): the size,
 *                    then every 1 MiB chunk that is not all zeros with its offset. All-zero chunks add
 *                    nothing, so a hole and written zeros hash alike and a sparse tail costs nothing;
 *       others:      none (symlink targets, device numbers are in the record).
 * Not hashed (node-local, see snapshot.ts): the format version, the clean-shutdown marker, the data
 * checkpoint and journal, pending unlinks, pre-created empty data files and bytes beyond a file's size.
 *
 * PRECONDITION: the caller pauses applies while the checksum runs (or calls it on a quiesced store).
 * The functions call `store.sync()` first so that LevelDB holds every applied op, then read one
 * explicit LevelDB snapshot; data files are read live, so an apply meanwhile would mix states. This is
 * detected rather than prevented: if `store.appliedIndex` moved during the walk, or differs from
 * `opts.atIndex`, the call rejects.
 *
 * Memory: `storeChecksum` keeps nothing per object; `storeDigest` keeps ~200 bytes per inode.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { FileType } from './types';
import { KEY_STATE, P_INODE, P_REQUEST, P_REQUEST_ORDER, cookieKey, decodeInode, decodeState, entryRange, inlineKey, writeU64BE } from './codec';
import type { LevelBlockStore } from './block-store';
import { nextStoredByte } from './sparse';

export interface ChecksumOptions {
  /** refuse (reject) unless the store's applied index is exactly this */
  atIndex?: number;
}

export interface ObjectDigest {
  fileid: number;
  /** SHA-256 (hex) of the inode key and record (inline flag cleared) */
  record: string;
  /** SHA-256 (hex) of the content (directory listing, file bytes); '' for other types */
  content: string;
}

export interface StoreDigest {
  index: number;
  /** SHA-256 (hex) of the state record */
  state: string;
  /** every inode, in file id order */
  objects: ObjectDigest[];
}

export interface StoreDifference {
  /** the first differing file id (absent: index or state) */
  fileid?: number;
  part: 'index' | 'state' | 'record' | 'content' | 'missing';
  detail: string;
}

const CHUNK = 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK);
const F_INLINE = 4;
const CHECKSUM_TAG = Buffer.from('hanfs-store-checksum-1\n');

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64BE(b, 0, n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

const isZero = (b: Buffer): boolean => b.equals(ZEROS.subarray(0, b.length));

/** Hash of logical file content: size, then (offset, bytes) of every non-zero CHUNK-aligned chunk,
 * each chunk min(CHUNK, size - offset) long. `fill(off, buf)` fills buf with the bytes at off (zeros
 * where there are none) and returns false once nothing at or after `off` is stored. */
async function contentHash(
  size: number,
  stored: number,
  fill: (off: number, buf: Buffer, n: number) => Promise<void>,
  /** the first stored byte at or after an offset (undefined: none): holes are skipped, not read */
  nextStored: (off: number) => number | undefined = (off) => off,
): Promise<string> {
  const h = createHash('sha256');
  h.update(u64(size));
  const end = Math.min(size, stored);
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size))); // (a small file: a small buffer)
  for (let off = 0; off < end; off += CHUNK) {
    // a hole hashes like zeros, which are skipped anyway: go to the chunk of the next stored byte
    const next = nextStored(off);
    if (next === undefined || next >= end) break;
    if (next >= off + CHUNK) off = Math.floor(next / CHUNK) * CHUNK;
    const len = Math.min(CHUNK, size - off);
    const have = Math.min(len, end - off);
    await fill(off, buf, have);
    buf.fill(0, have, len);
    const chunk = buf.subarray(0, len);
    if (isZero(chunk)) continue;
    h.update(u64(off));
    h.update(chunk);
  }
  return h.digest('hex');
}

async function dataFileHash(file: string, size: number): Promise<string> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return contentHash(size, 0, async () => undefined);
    throw err;
  }
  try {
    const st = await fh.stat();
    const stored = st.blocks === 0 ? 0 : st.size; // no block allocated: all hole
    return await contentHash(size, stored, async (off, buf, n) => {
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, off + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      buf.fill(0, got, n);
    }, (off) => nextStoredByte(fh.fd, off));
  } finally {
    await fh.close();
  }
}

function hex(h: Buffer): string {
  return h.toString('hex');
}

/** objects hashed at once by walk() (file contents read in parallel, emitted in order) */
const WALK_CONCURRENCY = 32;

/** The content hash of one object: a directory's entries and cookies, a file's logical bytes. */
async function objectContent(store: LevelBlockStore, db: LevelBlockStore['metaDb'], snapshot: ReturnType<LevelBlockStore['metaDb']['snapshot']>, ino: ReturnType<typeof decodeInode>): Promise<string> {
  if (ino.type === FileType.DIR) {
    const h = createHash('sha256');
    for (const range of [entryRange(ino.fileid), { gte: cookieKey(ino.fileid, 0), lt: cookieKey(ino.fileid + 1, 0) }]) {
      for await (const [k, v] of db.iterator({ ...range, snapshot })) {
        h.update(u32(k.length)).update(k).update(u32(v.length)).update(v);
      }
      h.update(u32(0xffff_ffff)); // separates the two lists
    }
    return hex(h.digest());
  }
  if (ino.type !== FileType.REG) return '';
  if (ino.inline) {
    const v = (await db.get(inlineKey(ino.fileid), { snapshot })) ?? Buffer.alloc(0);
    return contentHash(ino.size, v.length, async (off, buf, n) => {
      v.copy(buf, 0, off, off + n);
    });
  }
  return dataFileHash(store.data.pathOf(ino.fileid), ino.size);
}

/** Walk the store's logical state at one index (see the top of this file), object by object. */
async function walk(store: LevelBlockStore, opts: ChecksumOptions, onObject: (o: ObjectDigest) => void): Promise<{ index: number; state: string }> {
  if (opts.atIndex !== undefined && store.appliedIndex !== opts.atIndex) {
    throw new Error(`store is at index ${store.appliedIndex}, not ${opts.atIndex}`);
  }
  await store.sync();
  const index = store.appliedIndex;
  if (opts.atIndex !== undefined && index !== opts.atIndex) throw new Error(`store moved to index ${index} (applies must be paused)`);
  const db = store.metaDb;
  const snapshot = db.snapshot();
  try {
    const stv = await db.get(KEY_STATE, { snapshot });
    if (!stv) throw new Error('store has no state record');
    if (decodeState(stv).applied !== index) throw new Error(`store moved from index ${index} (applies must be paused)`);
    // the state record and the replicated duplicate-request records (they decide answers too)
    const sh = createHash('sha256').update(stv);
    for await (const [k, v] of db.iterator({ gte: Buffer.from([P_REQUEST]), lt: Buffer.from([P_REQUEST_ORDER + 1]), snapshot })) {
      sh.update(u32(k.length)).update(k).update(u32(v.length)).update(v);
    }
    const state = hex(sh.digest());
    const it = db.iterator({ gte: Buffer.from([P_INODE]), lt: Buffer.from([P_INODE + 1]), snapshot });
    // Objects are hashed WALK_CONCURRENCY at a time (a file costs open, stat, reads, SEEK_DATA and
    // close, each a thread-pool round trip: one after the other, 100 000 files took minutes) and
    // handed to onObject in file id order, as they come from the index.
    const pending: { fileid: number; record: string; content: Promise<string> }[] = [];
    const emit = async (): Promise<void> => {
      const o = pending.shift()!;
      onObject({ fileid: o.fileid, record: o.record, content: await o.content });
    };
    try {
      for await (const [key, value] of it) {
        const ino = decodeInode(value);
        const rec = Buffer.from(value);
        rec[2] &= ~F_INLINE;
        const record = hex(createHash('sha256').update(key).update(rec).digest());
        const content = objectContent(store, db, snapshot, ino);
        content.catch(() => undefined); // (awaited in order by emit; a failure must not go unhandled first)
        pending.push({ fileid: ino.fileid, record, content });
        if (pending.length >= WALK_CONCURRENCY) await emit();
      }
      while (pending.length > 0) await emit();
    } finally {
      // on a failure no object is still being read once the snapshot closes
      await Promise.allSettled(pending.map((o) => o.content));
      await it.close();
    }
    if (store.appliedIndex !== index) throw new Error(`store moved from index ${index} to ${store.appliedIndex} during the walk (applies must be paused)`);
    return { index, state };
  } finally {
    await snapshot.close();
  }
}

/**
 * SHA-256 (hex) over the logical state of a quiesced store (see the top of this file): the state
 * digest, then each inode's file id, record hash and content hash in file id order. Equal on two
 * replicas at the same index iff (up to SHA-256) clients would see the same thing. `files` is the
 * number of inodes hashed.
 */
export async function storeChecksum(store: LevelBlockStore, opts: ChecksumOptions = {}): Promise<{ index: number; checksum: string; files: number }> {
  const h = createHash('sha256');
  h.update(CHECKSUM_TAG);
  const objects = createHash('sha256');
  let files = 0;
  const { index, state } = await walk(store, opts, (o) => {
    files++;
    objects.update(objectBytes(o));
  });
  h.update(u64(index)).update(Buffer.from(state, 'hex')).update(objects.digest());
  return { index, checksum: h.digest('hex'), files };
}

function objectBytes(o: ObjectDigest): Buffer {
  return Buffer.concat([u64(o.fileid), Buffer.from(o.record, 'hex'), Buffer.from(o.content || '', 'hex'), Buffer.from([o.content ? 1 : 0])]);
}

/** Per-object digests of a quiesced store, for `firstDifference`. Same preconditions as storeChecksum. */
export async function storeDigest(store: LevelBlockStore, opts: ChecksumOptions = {}): Promise<StoreDigest> {
  const objects: ObjectDigest[] = [];
  const { index, state } = await walk(store, opts, (o) => objects.push(o));
  return { index, state, objects };
}

/** The checksum a digest stands for: equal to storeChecksum() of the same store at the same index. */
export function digestChecksum(d: StoreDigest): string {
  const objects = createHash('sha256');
  for (const o of d.objects) objects.update(objectBytes(o));
  return createHash('sha256').update(CHECKSUM_TAG).update(u64(d.index)).update(Buffer.from(d.state, 'hex')).update(objects.digest()).digest('hex');
}

/**
 * The first difference between two digests, or undefined if they are equal: a different index first
 * (then nothing else is comparable), then objects in file id order (a file id only one side has, or
 * its record, or its content), then the state record (counters).
 */
export function firstDifference(a: StoreDigest, b: StoreDigest): StoreDifference | undefined {
  if (a.index !== b.index) return { part: 'index', detail: `index ${a.index} vs ${b.index}` };
  let i = 0;
  let j = 0;
  while (i < a.objects.length || j < b.objects.length) {
    const x = a.objects[i];
    const y = b.objects[j];
    if (!y || (x && x.fileid < y.fileid)) return { fileid: x.fileid, part: 'missing', detail: `file id ${x.fileid} exists only in the first` };
    if (!x || y.fileid < x.fileid) return { fileid: y.fileid, part: 'missing', detail: `file id ${y.fileid} exists only in the second` };
    if (x.record !== y.record) return { fileid: x.fileid, part: 'record', detail: `file id ${x.fileid}: inode record differs` };
    if (x.content !== y.content) return { fileid: x.fileid, part: 'content', detail: `file id ${x.fileid}: content differs` };
    i++;
    j++;
  }
  if (a.state !== b.state) return { part: 'state', detail: 'state record (counters) differs' };
  return undefined;
}

/** "first at file id 1234 (content)", "first in the state record", ... for `hanfs verify` */
export function describeDifference(d: StoreDifference): string {
  if (d.fileid !== undefined) return `first at file id ${d.fileid} (${d.part})`;
  return d.part === 'index' ? `at a different index (${d.detail})` : 'first in the state record (counters)';
}
