import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { openStore } from '../../src/store/block-store';
import { fsck } from '../../src/store/fsck';
import { storeChecksum } from '../../src/store/checksum';
import {
  FRAME_DATA,
  FRAME_END,
  FRAME_META,
  MAX_FRAME_BODY,
  SNAPSHOT_MAGIC,
  SNAPSHOT_VERSION,
  SnapshotTooOldError,
  finishInterruptedRestore,
  restoreSnapshot,
  writeSnapshot,
} from '../../src/store/snapshot';
import { KEY_STATE, KEY_VERSION, encodeState, journalKey, writeU64BE } from '../../src/store/codec';
import type { StoreOp } from '../../src/store/types';
import { randomBytesSeeded, rng } from '../support/util';
import { Harness, chunked, parseFrames, rmDir, tmpDir } from './helpers';
import { populate } from './fixture';
import { OpGen, dump } from './determinism.test';

async function snapshotToFile(h: Harness, file: string): Promise<{ index: number; bytes: number; checksum: string }> {
  const out = fs.createWriteStream(file);
  const r = await writeSnapshot(h.store, out);
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.end(resolve);
  });
  return r;
}

/** A sink that takes a while per chunk (a slow network peer) and keeps the bytes in a file. */
class SlowSink extends Writable {
  private readonly fd: number;
  constructor(
    readonly file: string,
    private readonly delayMs: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.fd = fs.openSync(file, 'w');
  }
  /** times a write() call was told to wait for 'drain' */
  waits = 0;
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    const ok = (super.write as (...a: unknown[]) => boolean)(chunk, ...rest);
    if (!ok) this.waits++;
    return ok;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    fs.writeSync(this.fd, chunk);
    setTimeout(cb, this.delayMs);
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

function frame(type: number, body: Buffer): Buffer {
  const h = Buffer.allocUnsafe(5);
  h[0] = type;
  h.writeUInt32BE(body.length, 1);
  return Buffer.concat([h, body]);
}

function header(index: number): Buffer {
  const h = Buffer.alloc(20);
  SNAPSHOT_MAGIC.copy(h, 0);
  h.writeUInt32BE(SNAPSHOT_VERSION, 8);
  writeU64BE(h, 12, index);
  return h;
}

function meta(key: Buffer, value: Buffer): Buffer {
  const k = Buffer.allocUnsafe(4);
  k.writeUInt32BE(key.length);
  return frame(FRAME_META, Buffer.concat([k, key, value]));
}

/** a hand-made stream with a correct END frame */
function sealed(parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([body, frame(FRAME_END, createHash('sha256').update(body).digest())]);
}

describe('store: snapshots', function () {
  this.timeout(120000);
  const dirs: string[] = [];
  const tmp = (tag: string): string => {
    const d = tmpDir(tag);
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach(rmDir));

  it('round trip: every kind of object, restored store opens clean with the same checksum and contents', async () => {
    const h = await Harness.open(tmp('snap-src'));
    try {
      const ids = await populate(h, 7);
      const work = tmp('snap-work');
      const file = path.join(work, 'snap');
      const r = await snapshotToFile(h, file);
      assert.equal(r.index, h.store.appliedIndex);
      assert.equal(r.bytes, fs.statSync(file).size);
      // holes are not sent: the 64 MiB sparse file and the 10 MiB extension cost next to nothing
      assert.ok(r.bytes < 8 * 1024 * 1024, `snapshot of ${r.bytes} bytes`);
      const src = await storeChecksum(h.store);

      const target = path.join(work, 'restored');
      const res = await restoreSnapshot(target, fs.createReadStream(file));
      assert.equal(res.index, r.index);
      assert.ok(!fs.existsSync(target + '.incoming'));
      const rep = await fsck(target);
      assert.deepEqual(rep.problems, []);
      assert.equal(rep.journalRecords, 0);
      assert.equal(rep.pendingUnlinks, 0);
      const written = fs.readdirSync(path.join(target, 'blocks'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
      assert.ok(res.dataFiles > 0);
      assert.equal(res.dataFiles, written.length);

      const g = new Harness(await openStore(target), target);
      try {
        // a completed restore is as good as a clean close: the first open reconciles nothing
        assert.deepEqual(g.store.recovery, { cleanShutdown: true, pendingUnlinksFinished: 0, orphanDataFilesRemoved: 0, dataFilesTruncated: 0, journalReplayed: 0 });
        assert.equal(g.store.appliedIndex, r.index);
        const dst = await storeChecksum(g.store);
        assert.deepEqual(dst, src);
        assert.deepEqual(await dump(g), await dump(h));
        const tail = async (x: Harness) => Buffer.from((await x.store.read(ids.sparse, 64 * 1024 * 1024 - 100, 5100)).data!);
        assert.deepEqual(await tail(g), await tail(h));
        assert.ok(!(await tail(g)).subarray(100).equals(Buffer.alloc(5000)));
        // the restored data files are sparse where the source's were
        const st = fs.statSync(g.store.data.pathOf(ids.sparse));
        assert.ok(st.blocks * 512 < 4 * 1024 * 1024, `sparse file occupies ${st.blocks * 512} bytes`);
        assert.ok(!fs.existsSync(g.store.data.pathOf(ids.small)), 'inline files get no data file');
        // the restored store takes the next ops
        const n = await g.create(ids.dir, 'after-restore');
        assert.equal((await g.write(n, 0, 'x')).status, 0);
      } finally {
        await g.close();
      }
      assert.deepEqual((await fsck(target)).problems, []);
    } finally {
      await h.close();
    }
  });

  it('restoring over an existing store replaces it atomically', async () => {
    const a = await Harness.open(tmp('snap-a'));
    const work = tmp('snap-work');
    const target = path.join(work, 'store');
    const b = await Harness.open(target);
    try {
      await populate(a, 1);
      await populate(b, 2);
      await b.close();
      const file = path.join(work, 'snap');
      await snapshotToFile(a, file);
      await restoreSnapshot(target, fs.createReadStream(file));
      assert.deepEqual(fs.readdirSync(work).sort(), ['snap', 'store']);
      const g = new Harness(await openStore(target), target);
      try {
        assert.deepEqual(await storeChecksum(g.store), await storeChecksum(a.store));
      } finally {
        await g.close();
      }
    } finally {
      await a.close();
    }
  });

  it('a restore interrupted by a crash is finished (ready marker) or rolled back (no marker) at start-up', async () => {
    const a = await Harness.open(tmp('snap-crash-a'));
    const b = await Harness.open(tmp('snap-crash-b'));
    try {
      await populate(a, 1);
      await populate(b, 2);
      const work = tmp('snap-work');
      const [fa, fb] = [path.join(work, 'a'), path.join(work, 'b')];
      await snapshotToFile(a, fa);
      await snapshotToFile(b, fb);
      const [ca, cb] = [await storeChecksum(a.store), await storeChecksum(b.store)];
      const target = path.join(work, 'store');
      const checksumAt = async (dir: string): Promise<string> => {
        const g = await openStore(dir);
        try {
          return (await storeChecksum(g)).checksum;
        } finally {
          await g.close();
        }
      };
      const leftovers = (): string[] => fs.readdirSync(work).filter((n) => n.startsWith('store.'));
      assert.equal(await finishInterruptedRestore(target), 'none');

      // crash between the two renames, after the ready marker: old store aside, new one complete
      await restoreSnapshot(target, fs.createReadStream(fa));
      await restoreSnapshot(path.join(work, 'complete'), fs.createReadStream(fb));
      fs.renameSync(path.join(work, 'complete'), target + '.incoming');
      fs.renameSync(target, target + '.old');
      fs.writeFileSync(target + '.restore-ready', '1\n');
      assert.equal(await finishInterruptedRestore(target), 'completed');
      assert.deepEqual(leftovers(), []);
      assert.equal(await checksumAt(target), cb.checksum);

      // crash while receiving (no marker): the partial store goes, the old one stays
      fs.mkdirSync(path.join(target + '.incoming', 'meta'), { recursive: true });
      fs.writeFileSync(path.join(target + '.incoming', 'meta', 'junk'), 'x');
      assert.equal(await finishInterruptedRestore(target), 'rolled-back');
      assert.deepEqual(leftovers(), []);
      assert.equal(await checksumAt(target), cb.checksum);

      // no marker, the old store set aside and no store in place: it is put back
      fs.renameSync(target, target + '.old');
      assert.equal(await finishInterruptedRestore(target), 'rolled-back');
      assert.deepEqual(leftovers(), []);
      assert.equal(await checksumAt(target), cb.checksum);

      // and a restore after all that works as usual
      await restoreSnapshot(target, fs.createReadStream(fa));
      assert.equal(await checksumAt(target), ca.checksum);
      assert.deepEqual(leftovers(), []);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('fuzzy: a snapshot taken while ops apply, plus a replay of the ops after its index, equals the source', async () => {
    const h = await Harness.open(tmp('snap-fuzzy'));
    try {
      const ids = await populate(h, 3);
      const gen = new OpGen(11);
      const log = new Map<number, StoreOp>();
      const r = rng(5);
      const apply = async (op: StoreOp): Promise<void> => {
        const index = ++h.index;
        log.set(index, op);
        gen.observe(op, await h.store.apply(index, op));
      };
      for (let i = 0; i < 200; i++) await apply(gen.next());
      const startIndex = h.store.appliedIndex;
      const work = tmp('snap-work');
      const sink = new SlowSink(path.join(work, 'snap'), 2);
      let done = false;
      const snap = writeSnapshot(h.store, sink).finally(() => (done = true));
      // a concurrent writer: random ops, plus writes, cuts and extensions of the big files whose
      // bytes the snapshot is reading meanwhile
      let applied = 0;
      const t = { sec: 1_800_000_000, nsec: 0 };
      const cred = { uid: 0, gid: 0, gids: [] };
      while ((!done || applied < 50) && applied < 5000) {
        const k = applied % 5;
        const time = { ...t, sec: t.sec + applied };
        if (k === 0) await apply({ kind: 'write', file: ids.big, offset: Math.floor(r() * 3_000_000), data: randomBytesSeeded(r, 1 + Math.floor(r() * 150_000)), stable: applied % 2 === 0 ? 0 : 2, time, cred });
        else if (k === 1) await apply({ kind: 'setattr', file: ids.sparse, attrs: { size: Math.floor(r() * 70 * 1024 * 1024) }, time, cred });
        else if (k === 2) await apply({ kind: 'write', file: ids.sparse, offset: Math.floor(r() * 70 * 1024 * 1024), data: randomBytesSeeded(r, 1 + Math.floor(r() * 5000)), stable: 1, time, cred });
        else await apply(gen.next());
        applied++;
      }
      const res = await snap;
      await new Promise<void>((resolve) => sink.end(resolve));
      sink.close();
      const endIndex = h.store.appliedIndex;
      assert.ok(res.index >= startIndex, `snapshot index ${res.index} >= ${startIndex}`);
      assert.ok(res.index < endIndex - 10, `ops were applied after the snapshot index (${res.index} .. ${endIndex})`);
      assert.ok(sink.waits > 0, 'the snapshot waited for the slow sink (backpressure)');
      assert.equal(fs.statSync(sink.file).size, res.bytes);

      // restore elsewhere, then replay the log after the snapshot's index (same indexes, same ops)
      const target = path.join(work, 'restored');
      const restored = await restoreSnapshot(target, fs.createReadStream(sink.file));
      assert.equal(restored.index, res.index);
      const g = new Harness(await openStore(target), target);
      try {
        for (let i = res.index + 1; i <= h.store.appliedIndex; i++) await g.store.apply(i, log.get(i)!);
        assert.equal(g.store.appliedIndex, h.store.appliedIndex);
        assert.deepEqual(await storeChecksum(g.store), await storeChecksum(h.store));
        assert.deepEqual(await dump(g), await dump(h));
      } finally {
        await g.close();
      }
      assert.deepEqual((await fsck(target)).problems, []);
    } finally {
      await h.close();
    }
  });

  it('a corrupted or truncated stream is refused and leaves no store', async () => {
    const h = await Harness.open(tmp('snap-bad'));
    try {
      await populate(h, 4);
      const work = tmp('snap-work');
      const file = path.join(work, 'snap');
      await snapshotToFile(h, file);
      const good = fs.readFileSync(file);
      const cases: [string, Buffer, RegExp][] = [];
      for (const at of [30, Math.floor(good.length / 2), good.length - 40]) {
        const bad = Buffer.from(good);
        bad[at] ^= 0x01;
        cases.push([`flipped byte at ${at}`, bad, /checksum mismatch|frame|snapshot/]);
      }
      for (const len of [0, 10, 100, Math.floor(good.length / 3), good.length - 1]) cases.push([`cut to ${len} bytes`, good.subarray(0, len), /truncated|empty/]);
      cases.push(['trailing bytes', Buffer.concat([good, Buffer.from([0])]), /after the snapshot END/]);
      for (const [what, bytes, re] of cases) {
        const target = path.join(work, 'restored');
        await assert.rejects(restoreSnapshot(target, chunked(bytes, 7000)), re, what);
        assert.ok(!fs.existsSync(target), `${what}: no store`);
        assert.ok(!fs.existsSync(target + '.incoming'), `${what}: no leftovers`);
      }
      // over an existing store: the old one stays as it was
      const target = path.join(work, 'existing');
      await restoreSnapshot(target, chunked(good, 65536));
      const bad = Buffer.from(good);
      bad[Math.floor(good.length / 2)] ^= 0x80;
      await assert.rejects(restoreSnapshot(target, chunked(bad, 65536)), /checksum mismatch|frame/);
      const g = await openStore(target);
      try {
        assert.deepEqual(await storeChecksum(g), await storeChecksum(h.store));
      } finally {
        await g.close();
      }
    } finally {
      await h.close();
    }
  });

  it('a snapshot older than minIndex is refused at its header: nothing stored, the stream not read on, the old store kept', async () => {
    const h = await Harness.open(tmp('snap-old'));
    try {
      await populate(h, 4);
      const work = tmp('snap-old-work');
      const file = path.join(work, 'snap');
      const { index } = await snapshotToFile(h, file);
      const good = fs.readFileSync(file);
      const target = path.join(work, 'existing');
      await restoreSnapshot(target, chunked(good, 65536), { minIndex: index }); // (its own index will do)
      const before = await openStore(target);
      const want = await storeChecksum(before);
      await before.close();
      let served = 0;
      async function* counting(): AsyncIterable<Buffer> {
        for (let off = 0; off < good.length; off += 4096) {
          served += Math.min(4096, good.length - off);
          yield good.subarray(off, off + 4096);
        }
      }
      await assert.rejects(restoreSnapshot(target, counting(), { minIndex: index + 1 }), (e: unknown) => {
        assert.ok(e instanceof SnapshotTooOldError);
        assert.equal(e.index, index);
        assert.equal(e.minIndex, index + 1);
        return true;
      });
      assert.ok(served <= 8192, `read ${served} of ${good.length} bytes of a refused stream`);
      assert.ok(!fs.existsSync(target + '.incoming'), 'no leftovers');
      const after = await openStore(target);
      try {
        assert.deepEqual(await storeChecksum(after), want);
      } finally {
        await after.close();
      }
    } finally {
      await h.close();
    }
  });

  it('a frame header claiming 4 GiB is refused without allocating or reading on', async () => {
    const target = path.join(tmp('snap-huge'), 'restored');
    let pulls = 0;
    async function* src(): AsyncGenerator<Buffer> {
      pulls++;
      yield Buffer.concat([header(5), Buffer.from([FRAME_META, 0xff, 0xff, 0xff, 0xff])]);
      for (let i = 0; i < 10_000; i++) {
        pulls++;
        yield Buffer.alloc(1024 * 1024); // would be 10 GiB if it were read
      }
    }
    const rss = process.memoryUsage().rss;
    await assert.rejects(restoreSnapshot(target, src()), /exceeds the cap/);
    assert.ok(pulls <= 2, `read ${pulls} chunks`);
    assert.ok(process.memoryUsage().rss - rss < 256 * 1024 * 1024);
    assert.ok(!fs.existsSync(target) && !fs.existsSync(target + '.incoming'));
    // just above the cap also fails, a DATA frame too
    for (const type of [FRAME_META, FRAME_DATA]) {
      const b = Buffer.concat([header(5), Buffer.from([type]), Buffer.alloc(4)]);
      b.writeUInt32BE(MAX_FRAME_BODY + 1, 21);
      await assert.rejects(restoreSnapshot(target, chunked(b, 3)), /exceeds the cap/);
    }
  });

  it('hostile but well-sealed streams are refused: node-local keys, data out of place or beyond size', async () => {
    const target = path.join(tmp('snap-hostile'), 'restored');
    const st = encodeState({ applied: 5, nextFileId: 2, fileCount: 1, usedBytes: 0, maxTimeS: 0, maxTimeN: 0 });
    const ver = Buffer.alloc(4);
    ver.writeUInt32BE(2);
    const data = (fileid: number, offset: number, n: number): Buffer => {
      const b = Buffer.alloc(16 + n, 1);
      writeU64BE(b, 0, fileid);
      writeU64BE(b, 8, offset);
      return frame(FRAME_DATA, b);
    };
    const cases: [string, Buffer, RegExp][] = [
      ['journal record', sealed([header(5), meta(KEY_STATE, st), meta(KEY_VERSION, ver), meta(journalKey(3, 0), Buffer.alloc(17))]), /node-local key/],
      ['data of no file', sealed([header(5), meta(KEY_STATE, st), meta(KEY_VERSION, ver), data(9, 0, 10)]), /out of place/],
      ['index mismatch', sealed([header(6), meta(KEY_STATE, st), meta(KEY_VERSION, ver)]), /differs from its state record/],
      ['keys out of order', sealed([header(5), meta(KEY_VERSION, ver), meta(KEY_STATE, st)]), /out of order/],
      ['unknown frame', sealed([header(5), frame(7, Buffer.alloc(3))]), /unknown type/],
    ];
    // a real inode record of a 10-byte file, then 20 bytes of data for it
    const h = await Harness.open(tmp('snap-hostile-src'), { inlineMax: 0 });
    try {
      const f = await h.create(1, 'f');
      await h.write(f, 0, 'abcdefghij');
      const good = path.join(tmp('snap-hostile-w'), 'snap');
      await snapshotToFile(h, good);
      const bytes = fs.readFileSync(good);
      // find the DATA frame of f and make it claim 20 bytes at offset 0
      const parts = parseFrames(bytes);
      const di = parts.findIndex((p) => p[0] === FRAME_DATA);
      assert.ok(di > 0, 'the snapshot has a DATA frame');
      parts[di] = data(f, 0, 20);
      cases.push(['data beyond size', sealed([bytes.subarray(0, 20), ...parts.slice(0, -1)]), /beyond the size/]);
    } finally {
      await h.close();
    }
    for (const [what, bytes, re] of cases) {
      await assert.rejects(restoreSnapshot(target, chunked(bytes, 5)), re, what);
      assert.ok(!fs.existsSync(target) && !fs.existsSync(target + '.incoming'), what);
    }
  });
});
