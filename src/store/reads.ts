/** Reads: attributes (one and many), LOOKUP, READDIR over LevelDB and the pending overlay, READ, READLINK, FSSTAT. */
import { promises as fsp } from 'node:fs';
import { FileType, Nfs3Status as S, type Attr, type DirEntry, type FileId, type FsStat, type ReaddirResult } from './types';
import { cookieKey, decodeCookieValue, decodeEntry, decodeInode, inodeKey, readU64BE, type Inode } from './codec';
import { EMPTY } from './tx';
import { toAttr, cookieVerf } from './attrs';
import { checkName } from './op-validation';
import { StoreApply } from './apply';

/** getattrMany reads cache misses with one range scan when there are at least SCAN_MIN of them and
 * their file ids span at most SCAN_SPAN times as many ids */
const SCAN_MIN = 8;
const SCAN_SPAN = 2;

export abstract class StoreReads extends StoreApply {
  async getattr(file: FileId): Promise<Attr | undefined> {
    this.check();
    const i = this.inodeSync(file);
    return i ? toAttr(i) : undefined;
  }

  /**
   * Attributes of many files (READDIRPLUS). Scan-resistant: it neither fills nor reorders the inode
   * cache, so listing a directory bigger than the cache does not flush it. Cache misses are read with
   * one LevelDB range scan when their file ids are dense (files created together; a scan costs about
   * a quarter of point reads), else with point reads. The scan is asynchronous: if an op was applied
   * meanwhile, what it read may be older than that op, and the misses are read again synchronously.
   */
  async getattrMany(files: readonly FileId[]): Promise<(Attr | undefined)[]> {
    this.check();
    const out: (Attr | undefined)[] = new Array(files.length).fill(undefined);
    const misses: number[] = []; // indexes into files
    for (let k = 0; k < files.length; k++) {
      const id = files[k];
      if (!Number.isSafeInteger(id) || id <= 0) continue;
      const c = this.cache.peek(id);
      if (c) {
        out[k] = toAttr(c);
        continue;
      }
      const o = this.inodeOverlay.get(id);
      if (o) {
        if (o.v) out[k] = toAttr(decodeInode(o.v));
        continue;
      }
      misses.push(k);
    }
    if (misses.length === 0) return out;
    let lo = Infinity;
    let hi = -Infinity;
    for (const k of misses) {
      lo = Math.min(lo, files[k]);
      hi = Math.max(hi, files[k]);
    }
    const span = hi - lo + 1;
    if (misses.length >= SCAN_MIN && span <= misses.length * SCAN_SPAN) {
      const applied = this.appliedIndex;
      // values only (an inode record holds its file id): the keys would double the buffers made
      const found = new Map<number, Inode>();
      const it = this.db.values({ gte: inodeKey(lo), lt: inodeKey(hi + 1), limit: span });
      try {
        for (;;) {
          const batch = await it.nextv(1024);
          if (batch.length === 0) break;
          this.stats.dbReads += batch.length;
          for (const v of batch) {
            const ino = decodeInode(v);
            found.set(ino.fileid, ino);
          }
        }
      } finally {
        await it.close();
      }
      this.check();
      if (this.appliedIndex === applied) {
        for (const k of misses) {
          const ino = found.get(files[k]);
          if (ino) out[k] = toAttr(ino);
        }
        return out;
      }
    }
    for (const k of misses) {
      // the overlay first: an op may have been applied while the scan ran
      const v = this.getInodeSync(files[k]);
      if (v) out[k] = toAttr(decodeInode(v));
    }
    return out;
  }

  async lookup(dir: FileId, name: string): Promise<{ status: S; obj?: Attr; dirAttr?: Attr }> {
    this.check();
    const d = this.inodeSync(dir);
    if (!d) return { status: S.STALE };
    const dirAttr = toAttr(d);
    if (d.type !== FileType.DIR) return { status: S.NOTDIR, dirAttr };
    if (name === '.') return { status: S.OK, obj: dirAttr, dirAttr };
    if (name === '..') {
      const p = d.parent === d.fileid ? d : this.inodeSync(d.parent);
      return p ? { status: S.OK, obj: toAttr(p), dirAttr } : { status: S.STALE, dirAttr };
    }
    const s = checkName(name);
    if (s === S.NAMETOOLONG) return { status: s, dirAttr };
    if (s !== S.OK) return { status: S.NOENT, dirAttr };
    const v = this.getEntrySync(dir, name);
    if (!v) return { status: S.NOENT, dirAttr };
    const obj = this.inodeSync(decodeEntry(v).fileid);
    if (!obj) return { status: S.NOENT, dirAttr };
    return { status: S.OK, obj: toAttr(obj), dirAttr };
  }

  async readdir(dir: FileId, cookie: number, cookieverf: string | undefined, maxEntries: number): Promise<ReaddirResult> {
    this.check();
    const d = this.inodeSync(dir);
    if (!d) return { status: S.STALE, entries: [], eof: false, cookieverf: '0000000000000000' };
    const verf = cookieVerf(d);
    const dirAttr = toAttr(d);
    if (d.type !== FileType.DIR) return { status: S.NOTDIR, dirAttr, entries: [], eof: false, cookieverf: verf };
    if (!Number.isSafeInteger(cookie) || cookie < 0) return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    if (cookie !== 0 && cookieverf !== undefined && cookieverf.toLowerCase() !== verf) {
      return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    }
    if (cookie >= d.nextCookie) return { status: S.BAD_COOKIE, dirAttr, entries: [], eof: false, cookieverf: verf };
    const max = Math.max(1, Math.min(Math.floor(maxEntries) || 1, 1_000_000));
    const entries: DirEntry[] = [];
    if (cookie < 1) entries.push({ name: '.', fileid: d.fileid, cookie: 1 });
    if (cookie < 2 && entries.length < max) entries.push({ name: '..', fileid: d.parent, cookie: 2 });
    const room = max - entries.length;
    const from = Math.max(cookie, 2);
    // Pending (not yet written) cookie records override LevelDB's; new ones carry the newest cookies.
    // The overlay is copied in the same tick the iterator takes its LevelDB snapshot, so a batch the
    // writer completes meanwhile is seen once either way.
    const ov = this.cookieOverlay.get(dir);
    const snap = ov ? [...ov] : [];
    const shadowed = new Set(snap.map(([c]) => c));
    const dbSnapshot = this.db.snapshot(); // synchronous: same instant as the overlay copy
    const found: DirEntry[] = [];
    // one extra entry tells whether this page ends the directory
    const want = room + 1;
    const it = this.db.iterator({ gt: cookieKey(dir, from), lt: cookieKey(dir + 1, 0), limit: want + snap.length, snapshot: dbSnapshot });
    try {
      let taken = 0;
      for (;;) {
        const batch = await it.nextv(Math.min(want + snap.length - taken, 1024));
        if (batch.length === 0) break;
        taken += batch.length;
        this.stats.dbReads += batch.length;
        for (const [k, v] of batch) {
          const c = readU64BE(k, 9);
          if (shadowed.has(c)) continue;
          const { fileid, name } = decodeCookieValue(v);
          found.push({ name, fileid, cookie: c });
        }
        if (found.length >= want) break;
      }
    } finally {
      await it.close();
      await dbSnapshot.close();
    }
    if (snap.length) {
      for (const [c, { e }] of snap) if (e && c > from) found.push({ name: e.name, fileid: e.fileid, cookie: c });
      found.sort((a, b) => a.cookie - b.cookie);
    }
    const got = found.length;
    for (let i = 0; i < Math.min(room, got); i++) entries.push(found[i]);
    // (a page that ends before ".." does not end the directory)
    const dotsDone = cookie >= 2 || (entries.length > 0 && entries[entries.length - 1].cookie >= 2);
    return { status: S.OK, dirAttr, entries, eof: dotsDone && got <= room, cookieverf: verf };
  }

  async read(file: FileId, offset: number, count: number): Promise<{ status: S; attr?: Attr; data?: Uint8Array; eof?: boolean }> {
    this.check();
    const i = this.inodeSync(file);
    if (!i) return { status: S.STALE };
    const attr = toAttr(i);
    if (i.type === FileType.DIR) return { status: S.ISDIR, attr };
    if (i.type !== FileType.REG) return { status: S.INVAL, attr };
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(count) || count < 0) return { status: S.INVAL, attr };
    const n = Math.max(0, Math.min(count, this.opts.maxReadBytes, i.size - offset));
    let data: Buffer;
    if (i.inline) {
      // bytes past the inline data (up to the size) are zeros
      const cur = this.getInlineSync(i.fileid) ?? EMPTY; // (small: a synchronous read, like inode misses)
      data = Buffer.alloc(n);
      if (offset < cur.length) cur.copy(data, 0, offset, Math.min(cur.length, offset + n));
    } else {
      data = await this.data.read(i.fileid, offset, n);
    }
    return { status: S.OK, attr, data, eof: offset + n >= i.size };
  }

  releaseRead(data: Uint8Array): void {
    this.data.recycleRead(data);
  }

  async readlink(file: FileId): Promise<{ status: S; attr?: Attr; target?: string }> {
    this.check();
    const i = this.inodeSync(file);
    if (!i) return { status: S.STALE };
    if (i.type !== FileType.LNK) return { status: S.INVAL, attr: toAttr(i) };
    return { status: S.OK, attr: toAttr(i), target: i.target };
  }

  async fsstat(): Promise<FsStat> {
    this.check();
    const sf = await fsp.statfs(this.dataDir);
    const tbytes0 = sf.blocks * sf.bsize;
    const fbytes0 = sf.bfree * sf.bsize;
    const abytes0 = sf.bavail * sf.bsize;
    const cap = this.opts.capacityBytes;
    const used = this.state.usedBytes;
    const tbytes = Math.min(tbytes0, cap);
    const fbytes = Math.max(0, Math.min(fbytes0, cap - used));
    const abytes = Math.max(0, Math.min(abytes0, cap - used));
    const files = this.state.fileCount;
    const tfiles = Number.isFinite(this.opts.maxFiles) ? this.opts.maxFiles : files + sf.ffree;
    const ffiles = Math.max(0, Math.min(tfiles - files, sf.ffree));
    return { tbytes, fbytes, abytes, tfiles, ffiles, afiles: ffiles };
  }
}
