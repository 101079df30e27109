/**
 * Integrity checker of a (closed) block store: `fsck(dataDir)` reads the whole metadata database and
 * the data directory and reports every inconsistency it finds. Used by tests and by `hanfs fsck`.
 *
 * Checks: format version and state record; every directory entry names a live inode, in a live
 * directory; every cookie index record matches its entry and vice versa, cookies below the directory's
 * counter; nlink of files = entries naming them, of directories = 2 + subdirectories, each directory
 * named exactly once (root: never) and its parent pointer matches; every inode reachable from the root;
 * entry counts; file count, bytes used and next file id against the state record; every data file
 * belongs to a live regular file and holds no bytes beyond its size; unlink markers of dead files only;
 * inline data only for inline regular files, no longer than their size, and no non-empty data file
 * for an inline file; data journal records (a store that was not closed cleanly has some, after
 * the data checkpoint: start-up replays them) are counted, and must decode.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { FileType } from './types';
import {
  FORMAT_VERSION,
  KEY_STATE,
  KEY_VERSION,
  KEY_CLEAN,
  KEY_DATA_CKPT,
  P_COOKIE,
  P_INLINE,
  P_JOURNAL,
  decodeJournal,
  P_ENTRY,
  P_INODE,
  P_UNLINK,
  decodeCookieValue,
  decodeEntry,
  decodeInode,
  decodeState,
  readU64BE,
  type Inode,
  type StoreState,
} from './codec';
import { DataFiles } from './data-files';
import { ROOT_ID, openMetaDb, usedOf } from './block-store';

export interface FsckProblem {
  /** short machine-readable class, e.g. 'nlink', 'dangling-entry', 'unreachable', 'data-beyond-size' */
  kind: string;
  fileid?: number;
  detail: string;
}

export interface FsckReport {
  ok: boolean;
  formatVersion: number;
  state?: StoreState;
  cleanShutdown: boolean;
  inodes: number;
  directories: number;
  regularFiles: number;
  entries: number;
  cookies: number;
  dataFiles: number;
  /** empty data files created ahead for file ids not handed out yet (part of dataFiles) */
  preallocated: number;
  pendingUnlinks: number;
  /** regular files whose data is inline in the metadata database */
  inlineFiles: number;
  /** data journal records after the data checkpoint, not yet in the data files (replayed at start-up) */
  journalRecords: number;
  problems: FsckProblem[];
}

const MAX_PROBLEMS = 1000;

function range(prefix: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.from([prefix]), lt: Buffer.from([prefix + 1]) };
}

export async function fsck(dataDir: string): Promise<FsckReport> {
  const report: FsckReport = {
    ok: false,
    formatVersion: 0,
    cleanShutdown: false,
    inodes: 0,
    directories: 0,
    regularFiles: 0,
    entries: 0,
    cookies: 0,
    dataFiles: 0,
    preallocated: 0,
    pendingUnlinks: 0,
    inlineFiles: 0,
    journalRecords: 0,
    problems: [],
  };
  const problem = (kind: string, detail: string, fileid?: number): void => {
    if (report.problems.length < MAX_PROBLEMS) report.problems.push({ kind, detail, ...(fileid !== undefined ? { fileid } : {}) });
  };
  const db = openMetaDb(dataDir);
  await db.open();
  try {
    const ver = await db.get(KEY_VERSION);
    if (!ver) {
      problem('format', 'no format version record');
      return report;
    }
    report.formatVersion = ver.readUInt32BE(0);
    if (report.formatVersion > FORMAT_VERSION) {
      problem('format', `format ${report.formatVersion} is newer than ${FORMAT_VERSION}`);
      return report;
    }
    const stv = await db.get(KEY_STATE);
    if (!stv) {
      problem('state', 'no state record');
      return report;
    }
    const state = decodeState(stv);
    report.state = state;
    report.cleanShutdown = (await db.get(KEY_CLEAN)) !== undefined;

    // inodes
    const inodes = new Map<number, Inode>();
    let used = 0;
    for await (const [k, v] of db.iterator(range(P_INODE))) {
      const id = readU64BE(k, 1);
      let ino: Inode;
      try {
        ino = decodeInode(v);
      } catch (e) {
        problem('corrupt-inode', String(e), id);
        continue;
      }
      if (ino.fileid !== id) problem('inode-id', `record says fileid ${ino.fileid}`, id);
      if (id >= state.nextFileId) problem('counter', `fileid ${id} not below next file id ${state.nextFileId}`, id);
      if (ino.generation > state.applied) problem('generation', `generation ${ino.generation} above applied ${state.applied}`, id);
      inodes.set(id, ino);
      used += usedOf(ino);
      if (ino.type === FileType.DIR) report.directories++;
      if (ino.type === FileType.REG) report.regularFiles++;
    }
    report.inodes = inodes.size;
    if (inodes.size !== state.fileCount) problem('file-count', `${inodes.size} inodes, state says ${state.fileCount}`);
    if (used !== state.usedBytes) problem('used-bytes', `sum of used ${used}, state says ${state.usedBytes}`);
    const root = inodes.get(ROOT_ID);
    if (!root) problem('root', 'no root inode');
    else if (root.type !== FileType.DIR || root.parent !== ROOT_ID) problem('root', 'root is not a directory whose parent is itself', ROOT_ID);

    // cookie index
    const cookies = new Map<string, { fileid: number; name: string }>();
    for await (const [k, v] of db.iterator(range(P_COOKIE))) {
      cookies.set(`${readU64BE(k, 1)}/${readU64BE(k, 9)}`, decodeCookieValue(v));
    }
    report.cookies = cookies.size;

    // entries
    const refs = new Map<number, number>();
    const subdirs = new Map<number, number>();
    const entryCount = new Map<number, number>();
    const children = new Map<number, number[]>();
    for await (const [k, v] of db.iterator(range(P_ENTRY))) {
      report.entries++;
      const dirId = readU64BE(k, 1);
      const name = k.toString('utf8', 9);
      const { fileid, cookie } = decodeEntry(v);
      const dir = inodes.get(dirId);
      if (!dir) {
        problem('dangling-dir', `entry "${name}" in missing directory ${dirId}`, dirId);
        continue;
      }
      if (dir.type !== FileType.DIR) problem('entry-in-non-dir', `entry "${name}" in a non-directory`, dirId);
      entryCount.set(dirId, (entryCount.get(dirId) ?? 0) + 1);
      const target = inodes.get(fileid);
      if (!target) problem('dangling-entry', `"${name}" in ${dirId} names missing inode ${fileid}`, fileid);
      else {
        refs.set(fileid, (refs.get(fileid) ?? 0) + 1);
        if (target.type === FileType.DIR) {
          subdirs.set(dirId, (subdirs.get(dirId) ?? 0) + 1);
          if (target.parent !== dirId) problem('parent', `directory ${fileid} named in ${dirId} but its parent is ${target.parent}`, fileid);
        }
        let c = children.get(dirId);
        if (!c) children.set(dirId, (c = []));
        c.push(fileid);
      }
      if (cookie < 3 || cookie >= dir.nextCookie) problem('cookie-range', `"${name}" in ${dirId} has cookie ${cookie}, counter ${dir.nextCookie}`, dirId);
      const key = `${dirId}/${cookie}`;
      const cv = cookies.get(key);
      if (!cv) problem('cookie-missing', `"${name}" in ${dirId}: no cookie record ${cookie}`, dirId);
      else {
        if (cv.fileid !== fileid || cv.name !== name) problem('cookie-mismatch', `cookie ${cookie} in ${dirId} says "${cv.name}" -> ${cv.fileid}`, dirId);
        cookies.delete(key);
      }
    }
    for (const [key, cv] of cookies) problem('cookie-orphan', `cookie record ${key} ("${cv.name}" -> ${cv.fileid}) has no entry`);

    // link counts
    for (const [id, ino] of inodes) {
      const r = refs.get(id) ?? 0;
      if (ino.type === FileType.DIR) {
        const want = 2 + (subdirs.get(id) ?? 0);
        if (ino.nlink !== want) problem('nlink', `directory nlink ${ino.nlink}, expected ${want}`, id);
        if (r !== (id === ROOT_ID ? 0 : 1)) problem('dir-refs', `directory named ${r} times`, id);
        const n = entryCount.get(id) ?? 0;
        if (ino.entries !== n) problem('entry-count', `directory says ${ino.entries} entries, has ${n}`, id);
      } else if (ino.nlink !== r) problem('nlink', `nlink ${ino.nlink}, named ${r} times`, id);
    }

    // reachability from the root
    const seen = new Set<number>();
    if (root) {
      const stack = [ROOT_ID];
      seen.add(ROOT_ID);
      while (stack.length) {
        const d = stack.pop()!;
        for (const c of children.get(d) ?? []) {
          if (seen.has(c)) continue;
          seen.add(c);
          if (inodes.get(c)?.type === FileType.DIR) stack.push(c);
        }
      }
    }
    for (const id of inodes.keys()) if (!seen.has(id)) problem('unreachable', 'not reachable from the root', id);

    // inline data
    for await (const [k, v] of db.iterator(range(P_INLINE))) {
      const id = readU64BE(k, 1);
      const ino = inodes.get(id);
      if (!ino || ino.type !== FileType.REG || !ino.inline) {
        problem('inline-orphan', `inline data of ${ino ? 'a file that is not inline' : 'a missing inode'}`, id);
        continue;
      }
      if (v.length > ino.size) problem('inline-beyond-size', `${v.length} inline bytes, size is ${ino.size}`, id);
    }
    for (const ino of inodes.values()) if (ino.inline) report.inlineFiles++;

    // data journal
    const ckv = await db.get(KEY_DATA_CKPT);
    const ckpt = ckv && ckv.length === 8 ? readU64BE(ckv, 0) : 0;
    if (ckpt > state.applied) problem('journal', `data checkpoint ${ckpt} above applied ${state.applied}`);
    for await (const [k, v] of db.iterator(range(P_JOURNAL))) {
      if (readU64BE(k, 1) <= ckpt) continue; // obsolete, dropped with a later write
      try {
        decodeJournal(v);
        report.journalRecords++;
      } catch (e) {
        problem('journal', `record ${k.toString('hex')}: ${String(e)}`);
      }
    }

    // pending unlinks
    for await (const k of db.keys(range(P_UNLINK))) {
      report.pendingUnlinks++;
      const id = readU64BE(k, 1);
      if (inodes.has(id)) problem('unlink-marker-live', 'unlink marker for a live inode', id);
    }

    // data files
    const blocks = path.join(dataDir, 'blocks');
    const shards = await fsp.readdir(blocks).catch(() => [] as string[]);
    for (const shard of shards) {
      const dir = path.join(blocks, shard);
      const names = await fsp.readdir(dir).catch(() => undefined);
      if (!names) {
        problem('data-stray', `${dir} is not a directory`);
        continue;
      }
      for (const name of names) {
        report.dataFiles++;
        const id = /^[0-9a-f]{16}$/.test(name) ? parseInt(name, 16) : NaN;
        if (!Number.isSafeInteger(id) || DataFiles.shardName(id) !== shard) {
          problem('data-stray', `unexpected file ${path.join(shard, name)}`);
          continue;
        }
        const ino = inodes.get(id);
        if (!ino && id >= state.nextFileId) {
          // created ahead of use (data-files.ts preallocate): must be empty
          const st = await fsp.stat(path.join(dir, name));
          if (st.size === 0) {
            report.preallocated++;
            continue;
          }
        }
        if (!ino || ino.type !== FileType.REG) {
          problem('data-orphan', `data file of ${ino ? 'a non-regular' : 'a missing'} inode`, id);
          continue;
        }
        const st = await fsp.stat(path.join(dir, name));
        if (ino.inline) {
          // an empty one was created ahead of use; anything else is left over from a move out of inline
          if (st.size > 0) problem('data-inline', `data file of an inline file holds ${st.size} bytes`, id);
          continue;
        }
        if (st.size > ino.size) problem('data-beyond-size', `data file holds ${st.size} bytes, size is ${ino.size}`, id);
      }
    }
    report.ok = report.problems.length === 0;
    return report;
  } finally {
    await db.close();
  }
}

/** Human-readable summary for `hanfs fsck`. */
export function formatFsckReport(r: FsckReport): string {
  const lines = [
    `format ${r.formatVersion}, applied ${r.state?.applied ?? '?'}, next file id ${r.state?.nextFileId ?? '?'}, ${r.cleanShutdown ? 'clean' : 'not cleanly closed'}`,
    `${r.inodes} inodes (${r.directories} directories, ${r.regularFiles} regular files, ${r.inlineFiles} inline), ${r.entries} entries, ${r.cookies} cookies, ${r.dataFiles} data files (${r.preallocated} pre-created), ${r.pendingUnlinks} pending unlinks, ${r.journalRecords} journal records to replay`,
  ];
  for (const p of r.problems) lines.push(`PROBLEM ${p.kind}${p.fileid !== undefined ? ` [${p.fileid}]` : ''}: ${p.detail}`);
  lines.push(r.ok ? 'clean' : `${r.problems.length} problem(s)`);
  return lines.join('\n');
}
