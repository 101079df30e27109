/**
 * The snapshot file of the Raft log storage: one file `snapshot`, replaced atomically (write a temp
 * file, fsync it, rename over, fsync the directory), checksummed with CRC-32C and verified on load.
 *
 *   u32 magic 'HRSN' | u32 version | u64 index | u64 term | u32 n, u64 voters[n] | u32 n, u64 learners[n]
 *   | u32 n, u64 votersOutgoing[n] | u64 dataLength | data | u32 crc32c(all preceding bytes)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from './segment-crc32c';
import { getU64, putU64 } from './segment-format';
import { Snapshot } from './types';

const MAGIC = 0x4e535248; // 'HRSN'
const VERSION = 1;
export const SNAPSHOT_FILE = 'snapshot';
const TMP = 'snapshot.tmp';

export class SnapshotCorruptError extends Error {
  override name = 'SnapshotCorruptError';
}

export function encodeSnapshotFile(s: Snapshot): Buffer {
  const c = s.meta.conf;
  const head = 8 + 16 + 12 + 8 * (c.voters.length + c.learners.length + c.votersOutgoing.length) + 8;
  const b = Buffer.allocUnsafe(head + s.data.length + 4);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(VERSION, 4);
  putU64(b, 8, s.meta.index);
  putU64(b, 16, s.meta.term);
  let o = 24;
  for (const list of [c.voters, c.learners, c.votersOutgoing]) {
    b.writeUInt32LE(list.length, o);
    o += 4;
    for (const id of list) {
      putU64(b, o, id);
      o += 8;
    }
  }
  putU64(b, o, s.data.length);
  o += 8;
  b.set(s.data, o);
  o += s.data.length;
  b.writeUInt32LE(crc32c(b, 0, 0, o), o);
  return b;
}

export function decodeSnapshotFile(b: Buffer): Snapshot {
  try {
    if (b.length < 8 + 16 + 12 + 8 + 4) throw new Error('short');
    const end = b.length - 4;
    if (crc32c(b, 0, 0, end) !== b.readUInt32LE(end)) throw new Error('checksum mismatch');
    if (b.readUInt32LE(0) !== MAGIC) throw new Error('bad magic');
    if (b.readUInt32LE(4) !== VERSION) throw new Error('unsupported version');
    const index = getU64(b, 8);
    const term = getU64(b, 16);
    let o = 24;
    const lists: number[][] = [];
    for (let k = 0; k < 3; k++) {
      const n = b.readUInt32LE(o);
      o += 4;
      if (o + n * 8 > end) throw new Error('bad list length');
      const l: number[] = [];
      for (let i = 0; i < n; i++, o += 8) l.push(getU64(b, o));
      lists.push(l);
    }
    const len = getU64(b, o);
    o += 8;
    if (o + len !== end) throw new Error('bad data length');
    const data = new Uint8Array(b.buffer, b.byteOffset + o, len);
    return { meta: { index, term, conf: { voters: lists[0], learners: lists[1], votersOutgoing: lists[2] } }, data };
  } catch (e) {
    throw new SnapshotCorruptError(`snapshot file corrupt: ${(e as Error).message}`);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Write the snapshot durably and atomically into dir. */
export async function writeSnapshotFile(dir: string, s: Snapshot): Promise<void> {
  const buf = encodeSnapshotFile(s);
  const tmp = path.join(dir, TMP);
  const h = await fs.promises.open(tmp, 'w', 0o600);
  try {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await h.write(buf, off, buf.length - off, off);
      off += bytesWritten;
    }
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.promises.rename(tmp, path.join(dir, SNAPSHOT_FILE));
  await fsyncDir(dir);
}

/** Load and verify the snapshot in dir; undefined if there is none. Throws SnapshotCorruptError. */
export function readSnapshotFile(dir: string): Snapshot | undefined {
  try {
    fs.unlinkSync(path.join(dir, TMP));
  } catch {
    /* no leftover temp file */
  }
  let b: Buffer;
  try {
    b = fs.readFileSync(path.join(dir, SNAPSHOT_FILE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return decodeSnapshotFile(b);
}
