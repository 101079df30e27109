/**
 * The snapshot stream on a store of many files: the sender reads the data of the next files ahead
 * and the receiver keeps many files in flight, yet the stream stays byte-identical to the serial
 * one and a failure mid-restore still leaves nothing behind.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { openStore } from '../../src/store/block-store';
import { fsck } from '../../src/store/fsck';
import { storeChecksum } from '../../src/store/checksum';
import { FRAME_DATA, FRAME_END, FRAME_META, restoreSnapshot, writeSnapshot, type SnapshotWriteOptions } from '../../src/store/snapshot';
import { P_INODE, readU64BE } from '../../src/store/codec';
import { randomBytesSeeded, rng } from '../support/util';
import { Harness, chunked, parseFrames, rmDir, tmpDir } from './helpers';

/**
 * SHA-256 of the stream (as writeSnapshot returns it) of the store `build()` makes, recorded with the
 * serial writer (one file at a time, before the read-ahead). Deterministic: fixed seeds, the harness'
 * clock. A change of the store's record encoding changes these too; a change of the snapshot writer
 * must not.
 */
const SERIAL_CHECKSUM = {
  default: '7690ca601d7c5a5f70faefe59534d9ef1607abb08d3a921cc5e805eaeab49842',
  chunk12k: '07be6518389e0cef817248db7c635b92d9e859afb51545387808dd1b09b6c6d2',
};

interface Built {
  h: Harness;
  /** regular files with a data file, in creation (file id) order */
  files: number[];
  big: number;
  sparse: number;
}

/** ~700 small files (some inline, some with holes, some extended past their data, some empty),
 * a 3 MiB, a 12 MiB and a 40 MiB file, a 64 MiB sparse file and a removed file */
async function build(dir: string): Promise<Built> {
  const h = await Harness.open(dir, { inlineMax: 4096 });
  const r = rng(42);
  const ok = (s: number, what: string): void => {
    if (s !== 0) throw new Error(`${what}: status ${s}`);
  };
  const dirs: number[] = [];
  for (let d = 0; d < 8; d++) dirs.push(await h.mkdir(1, `d${d}`));
  const files: number[] = [];
  for (let i = 0; i < 700; i++) {
    const f = await h.create(dirs[i % dirs.length], `f${i}`);
    if (i % 97 === 0) continue; // empty
    const n = 1 + Math.floor(r() * 40 * 1024);
    ok((await h.write(f, 0, randomBytesSeeded(r, n), (i % 3) as 0 | 1 | 2)).status, `write f${i}`);
    if (i % 23 === 0) ok((await h.write(f, 300 * 1024 + i, randomBytesSeeded(r, 5000))).status, `write far f${i}`); // a hole
    if (i % 31 === 0) ok((await h.op({ kind: 'setattr', file: f, attrs: { size: 200 * 1024 + i } })).status, `extend f${i}`);
    if (i % 41 === 0) ok((await h.write(f, 8192, Buffer.alloc(8192))).status, `zeros f${i}`); // written zeros
    if (n > 4096 || i % 23 === 0 || i % 41 === 0) files.push(f); // (an inline file extended stays inline)
  }
  const chunk = randomBytesSeeded(r, 1024 * 1024);
  const sized = async (name: string, mib: number): Promise<number> => {
    const f = await h.create(1, name);
    for (let m = 0; m < mib; m++) {
      chunk[0] = m;
      ok((await h.write(f, m * 1024 * 1024, chunk, 0)).status, `write ${name}`);
    }
    return f;
  };
  await sized('three', 3);
  await sized('twelve', 12);
  const big = await sized('forty', 40);
  const sparse = await h.create(1, 'sparse');
  ok((await h.write(sparse, 64 * 1024 * 1024, randomBytesSeeded(r, 5000))).status, 'sparse far');
  ok((await h.write(sparse, 1000, randomBytesSeeded(r, 70000))).status, 'sparse near');
  const gone = await h.create(1, 'gone');
  ok((await h.write(gone, 0, randomBytesSeeded(r, 100_000))).status, 'write gone');
  ok((await h.op({ kind: 'remove', dir: 1, name: 'gone' })).status, 'remove');
  for (let i = 700; i < 760; i++) {
    const f = await h.create(dirs[i % dirs.length], `f${i}`);
    ok((await h.write(f, 0, randomBytesSeeded(r, 5000 + i))).status, `write f${i}`);
    files.push(f);
  }
  await h.store.sync();
  return { h, files, big, sparse };
}

async function toFile(h: Harness, file: string, opts?: SnapshotWriteOptions): Promise<{ index: number; bytes: number; checksum: string }> {
  const out = fs.createWriteStream(file);
  const r = await writeSnapshot(h.store, out, opts);
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.end(resolve);
  });
  return r;
}

/** header + frames (without an END frame) sealed with a correct END frame */
function seal(headerBytes: Buffer, frames: Buffer[]): Buffer {
  const body = Buffer.concat([headerBytes, ...frames]);
  const end = Buffer.alloc(5 + 32);
  end[0] = FRAME_END;
  end.writeUInt32BE(32, 1);
  createHash('sha256').update(body).digest().copy(end, 5);
  return Buffer.concat([body, end]);
}

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type AnyFn = (...a: unknown[]) => Promise<unknown>;

/**
 * Run `fn` with a slow disk under the incoming stores' data files: each write takes `writeMs` more,
 * each close `closeMs` more (so that work a failed restore left running is still running when it
 * rejects); with `failOpen`, the first write to the failOpen-th data file opened fails with EIO.
 */
async function slowDisk<T>(o: { writeMs: number; closeMs: number; failOpen?: number }, fn: () => Promise<T>): Promise<T> {
  const realOpen = fs.promises.open;
  let opened = 0;
  const patched = async (...args: Parameters<typeof realOpen>): Promise<fs.promises.FileHandle> => {
    const fh = await realOpen(...args);
    const p = String(args[0]);
    if (!p.includes('.incoming') || !p.includes(`${path.sep}blocks${path.sep}`)) return fh;
    const n = ++opened;
    const slot = fh as unknown as { write: AnyFn; close: AnyFn };
    const realWrite = fh.write.bind(fh) as AnyFn;
    const realClose = fh.close.bind(fh) as AnyFn;
    let writes = 0;
    slot.write = async (...a: unknown[]) => {
      await sleep(o.writeMs);
      if (n === o.failOpen && ++writes === 1) throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
      return realWrite(...a);
    };
    slot.close = async () => {
      await sleep(o.closeMs);
      return realClose();
    };
    return fh;
  };
  (fs.promises as { open: unknown }).open = patched;
  try {
    return await fn();
  } finally {
    (fs.promises as { open: unknown }).open = realOpen;
  }
}

describe('store: snapshots of many files (read-ahead, files in flight)', function () {
  this.timeout(300000);
  let b: Built;
  let work: string;
  let snap: string;
  let good: Buffer;
  const dirs: string[] = [];
  const tmp = (tag: string): string => {
    const d = tmpDir(tag);
    dirs.push(d);
    return d;
  };

  before(async () => {
    b = await build(tmp('snap-many-src'));
    work = tmp('snap-many-work');
    snap = path.join(work, 'snap');
    await toFile(b.h, snap);
    good = fs.readFileSync(snap);
  });
  after(async () => {
    await b?.h.close();
    dirs.forEach(rmDir);
  });

  it('the stream is byte-identical to the serial writer, whatever the read-ahead window', async () => {
    const variants: [string, SnapshotWriteOptions, string][] = [
      ['default', {}, SERIAL_CHECKSUM.default],
      ['one file ahead', { readAheadFiles: 1 }, SERIAL_CHECKSUM.default],
      ['nothing read ahead', { readAheadBytes: 0 }, SERIAL_CHECKSUM.default],
      ['64 KiB ahead', { readAheadBytes: 64 * 1024 }, SERIAL_CHECKSUM.default],
      ['12 KiB chunks', { chunkBytes: 12288 }, SERIAL_CHECKSUM.chunk12k],
      ['12 KiB chunks, 3 files / 100 KiB ahead', { chunkBytes: 12288, readAheadFiles: 3, readAheadBytes: 100 * 1024 }, SERIAL_CHECKSUM.chunk12k],
    ];
    for (const [what, opts, want] of variants) {
      const file = path.join(work, 'v');
      const r = await toFile(b.h, file, opts);
      assert.equal(r.checksum, want, what);
      assert.equal(r.bytes, fs.statSync(file).size, what);
      if (want === SERIAL_CHECKSUM.default) assert.ok(fs.readFileSync(file).equals(good), what);
    }
    // every data file of a small file is in the stream, in file id order, right after its inode
    const frames = parseFrames(good);
    let last: number | undefined;
    const withData: number[] = [];
    for (const f of frames) {
      if (f[0] === FRAME_META && f[9] === P_INODE) last = readU64BE(f, 10);
      else if (f[0] === FRAME_DATA) {
        const id = readU64BE(f, 5);
        assert.equal(id, last, 'DATA right after its inode record');
        if (withData[withData.length - 1] !== id) withData.push(id);
      }
    }
    const got = withData.filter((id) => b.files.includes(id));
    assert.deepEqual(got, b.files);
    assert.ok(withData.includes(b.big) && withData.includes(b.sparse));
  });

  it('restored (from a file and piped from the writer), the store equals the source', async () => {
    const src = await storeChecksum(b.h.store);
    for (const [what, small] of [
      ['default', false],
      ['2 files / 64 KiB in flight', true],
    ] as const) {
      const target = path.join(work, 'restored');
      const opts = small ? { parallelFiles: 2, bufferBytes: 64 * 1024 } : {};
      await restoreSnapshot(target, chunked(good, 65536), opts);
      const g = await openStore(target);
      try {
        assert.deepEqual(await storeChecksum(g), src, what);
        const st = fs.statSync(g.data.pathOf(b.sparse));
        assert.ok(st.blocks * 512 < 4 * 1024 * 1024, `${what}: sparse file occupies ${st.blocks * 512} bytes`);
      } finally {
        await g.close();
      }
      assert.deepEqual((await fsck(target)).problems, [], what);
      rmDir(target);
    }
    // the catch-up shape: the writer piped straight into a restore
    const target = path.join(work, 'piped');
    const pipe = new PassThrough({ highWaterMark: 256 * 1024 });
    const restoring = restoreSnapshot(target, pipe);
    const sent = await writeSnapshot(b.h.store, pipe).finally(() => pipe.end());
    await restoring;
    assert.equal(sent.checksum, SERIAL_CHECKSUM.default);
    const g = await openStore(target);
    try {
      assert.deepEqual(await storeChecksum(g), src);
    } finally {
      await g.close();
    }
    rmDir(target);
  });

  it('a data file removed before it is read is skipped (its remove is replayed later)', async () => {
    const victim = b.files[100];
    const file = b.h.store.data.pathOf(victim);
    const keep = fs.readFileSync(file);
    fs.unlinkSync(file);
    try {
      const out = path.join(work, 'removed');
      await toFile(b.h, out);
      const ids = parseFrames(fs.readFileSync(out))
        .filter((f) => f[0] === FRAME_DATA)
        .map((f) => readU64BE(f, 5));
      assert.ok(!ids.includes(victim), 'no DATA of the removed file');
      assert.ok(ids.includes(b.files[99]) && ids.includes(b.files[101]), 'its neighbours are sent');
    } finally {
      fs.writeFileSync(file, keep);
    }
  });

  /** a restore that must fail: rejects matching `re`, no incoming directory, no descriptor left open,
   * and (after a pause) nothing still running recreated anything */
  async function refused(what: string, input: AsyncIterable<Buffer>, re: RegExp, opts = {}): Promise<void> {
    const target = path.join(work, 'refused');
    const fds = openFds();
    await assert.rejects(restoreSnapshot(target, input, opts), re, what);
    assert.ok(!fs.existsSync(target + '.incoming'), `${what}: incoming directory removed`);
    assert.ok(!fs.existsSync(target), `${what}: no store`);
    assert.equal(openFds(), fds, `${what}: descriptors left open`);
    await sleep(100);
    assert.ok(!fs.existsSync(target + '.incoming'), `${what}: nothing recreated the incoming directory`);
    assert.equal(openFds(), fds, `${what}: descriptors opened after the failure`);
  }

  it('a stream cut in the middle of a file, or a DATA frame out of place, fails the restore cleanly', async () => {
    const frames = parseFrames(good);
    const header = good.subarray(0, 20);
    // the DATA frames of small files, 300 files in
    const dataAt = frames.map((f, i) => (f[0] === FRAME_DATA && readU64BE(f, 5) === b.files[300] ? i : -1)).filter((i) => i >= 0);
    assert.ok(dataAt.length > 0);
    const offsetOf = (i: number): number => 20 + frames.slice(0, i).reduce((s, f) => s + f.length, 0);
    const mid = offsetOf(dataAt[0]) + 5 + 16 + 100; // 100 bytes into the file's data
    await refused('cut mid-file', chunked(good.subarray(0, mid), 4000), /truncated/);
    await refused('cut mid-file, small window', chunked(good.subarray(0, mid), 4000), /truncated/, { parallelFiles: 2, bufferBytes: 16 * 1024 });
    await slowDisk({ writeMs: 5, closeMs: 50 }, () => refused('cut mid-file, slow disk', chunked(good.subarray(0, mid), 4000), /truncated/));
    // the 40 MiB file: cut 20 MiB into it
    const bigAt = frames.findIndex((f) => f[0] === FRAME_DATA && readU64BE(f, 5) === b.big);
    await refused('cut mid big file', chunked(good.subarray(0, offsetOf(bigAt) + 20 * 1024 * 1024 + 7), 65536), /truncated/);
    // a DATA frame of file 300 moved after file 301's inode record (well sealed)
    const moved = [...frames.slice(0, -1)];
    const [d] = moved.splice(dataAt[0], 1);
    const next = moved.findIndex((f, i) => i >= dataAt[0] && f[0] === FRAME_DATA);
    moved.splice(next, 0, d);
    await refused('DATA out of place', chunked(seal(header, moved), 65536), /out of place/);
    await slowDisk({ writeMs: 5, closeMs: 50 }, () => refused('DATA out of place, slow disk', chunked(seal(header, moved), 65536), /out of place/));
  });

  it('a write failing in the middle of the files fails the restore with that error, all descriptors closed', async () => {
    await slowDisk({ writeMs: 0, closeMs: 0, failOpen: 250 }, () => refused('EIO on a write', chunked(good, 65536), /injected EIO/));
    await slowDisk({ writeMs: 2, closeMs: 50, failOpen: 250 }, () => refused('EIO on a write, slow disk', chunked(good, 65536), /injected EIO/));
    await slowDisk({ writeMs: 2, closeMs: 20, failOpen: 250 }, () =>
      refused('EIO on a write, small window', chunked(good, 65536), /injected EIO/, { parallelFiles: 3, bufferBytes: 32 * 1024 }),
    );
  });
});
