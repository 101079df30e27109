import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogCorruptionError, LogStorage, StorageFailedError, SyncBatchInfo } from '../../../src/raft/log-storage';
import { crc32c, crc32cTable } from '../../../src/raft/segment-crc32c';
import { SnapshotCorruptError, writeSnapshotFile } from '../../../src/raft/segment-snapshot-file';
import { Entry, EntryType, Snapshot } from '../../../src/raft/types';
import { dataFor } from './crash-writer';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raftlog-'));
}

function mk(from: number, to: number, term: number, size = 40): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    const d = Buffer.alloc(size + (i % 13));
    d.fill(i & 0xff);
    d.writeUInt32LE(i, 0);
    d.writeUInt32LE(term, 4);
    out.push({ index: i, term, type: i % 50 === 0 ? EntryType.Noop : EntryType.Normal, data: d });
  }
  return out;
}

function assertEntries(st: LogStorage, lo: number, hi: number, termOf: (i: number) => number, size = 40): void {
  const got = st.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER);
  assert.equal(got.length, hi - lo + 1);
  for (const e of got) {
    const want = mk(e.index, e.index, termOf(e.index), size)[0];
    assert.equal(e.term, want.term, `term of ${e.index}`);
    assert.equal(e.type, want.type, `type of ${e.index}`);
    assert.deepEqual(Buffer.from(e.data), Buffer.from(want.data), `data of ${e.index}`);
    assert.equal(st.term(e.index), want.term);
  }
}

/** Write entries 1..last of term 1 into a new log in dir, sync and close it. */
async function writeClosedLog(dir: string, last: number, segmentBytes?: number): Promise<void> {
  const st = await LogStorage.open({ dir, segmentBytes });
  st.append(mk(1, last, 1));
  await st.sync();
  await st.close();
}

function segFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

describe('raft log storage (real files)', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const dir = () => {
    const d = tmpDir();
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('crc32c matches the RFC 3720 check values', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    const inc = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) inc[i] = i;
    assert.equal(crc32c(inc), 0x46dd794e);
    const b = Buffer.from('hello, chained world of checksums');
    assert.equal(crc32c(b, crc32c(b, 0, 0, 7), 7), crc32c(b));
    // the native path (>= 256 B), the word-at-a-time and the byte paths against a bitwise
    // reference, at every alignment, chained across the native/JavaScript boundary
    const ref = (buf: Uint8Array) => {
      let c = ~0;
      for (const x of buf) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return ~c >>> 0;
    };
    const big = Buffer.alloc(5000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 131 + 7) & 0xff;
    for (let off = 0; off < 9; off++) {
      for (const len of [0, 1, 63, 64, 65, 255, 256, 257, 511, 1000, 1024, 4991 - off]) {
        const s = big.subarray(off, off + len);
        assert.equal(crc32c(s), ref(s), `offset ${off} length ${len}`);
        assert.equal(crc32cTable(s), ref(s), `table, offset ${off} length ${len}`);
        assert.equal(crc32c(s, crc32c(s, 0, 0, len >> 1), len >> 1), ref(s));
        if (len > 100) assert.equal(crc32c(s, crc32c(s, 0, 0, 100), 100), ref(s), `JS head, native tail, length ${len}`);
      }
    }
  });

  it('appends, syncs and reads back after reopen, across segment rolls', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 8192 });
    assert.equal(st.firstIndex(), 1);
    assert.equal(st.lastIndex(), 0);
    assert.equal(st.term(0), 0);
    for (let i = 1; i <= 1000; i += 100) st.append(mk(i, i + 99, 3));
    st.setHardState({ term: 3, vote: 2, commit: 900 });
    await st.sync();
    assertEntries(st, 1, 1000, () => 3);
    assert.ok(segFiles(d).length > 5, `rolled into ${segFiles(d).length} segments`);
    await st.close();
    assert.throws(() => st.lastIndex(), StorageFailedError);

    st = await LogStorage.open({ dir: d, segmentBytes: 8192, cacheBytes: 4096 });
    assert.equal(st.firstIndex(), 1);
    assert.equal(st.lastIndex(), 1000);
    assert.deepEqual(st.hardState(), { term: 3, vote: 2, commit: 900 });
    assertEntries(st, 1, 1000, () => 3); // read from disk through a small cache
    const capped = st.entries(10, 1000, 500);
    assert.ok(capped.length >= 1 && capped.length < 20, `maxBytes caps the batch (${capped.length})`);
    assert.equal(st.entries(10, 11, 0).length, 1, 'at least one entry');
    assert.ok(st.stats().cacheBytes <= 4096);
    await st.close();
  });

  it('refuses a second open of the same directory; takes over a stale lock', async () => {
    const d = dir();
    const st = await LogStorage.open({ dir: d });
    await assert.rejects(LogStorage.open({ dir: d }), /already open/);
    await st.close();
    // a live process of this boot holds it: refused
    fs.writeFileSync(path.join(d, 'LOCK'), `${process.ppid} ${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`);
    await assert.rejects(LogStorage.open({ dir: d }), /in use by process/);
    // the same pid from a previous boot: stale
    fs.writeFileSync(path.join(d, 'LOCK'), `${process.ppid} 00000000-0000-0000-0000-000000000000\n`);
    const again = await LogStorage.open({ dir: d });
    await again.close();
    assert.ok(!fs.existsSync(path.join(d, 'LOCK')), 'lock removed on close');
  });

  it('overwrites a conflicting suffix, and the overwrite survives reopen', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    st.append(mk(1, 100, 1));
    st.setHardState({ term: 1, vote: 1, commit: 40 });
    await st.sync();
    st.append(mk(61, 70, 2));
    assert.equal(st.lastIndex(), 70);
    st.append(mk(71, 80, 2));
    await st.sync();
    const termOf = (i: number) => (i <= 60 ? 1 : 2);
    assertEntries(st, 1, 80, termOf);
    assert.throws(() => st.append(mk(30, 31, 2)), /committed/);
    assert.throws(() => st.append(mk(90, 91, 2)), /gap/);
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    assert.equal(st.lastIndex(), 80);
    assertEntries(st, 1, 80, termOf);
    // overwrite again right after reopening, then once more across a segment roll
    st.append(mk(75, 200, 3));
    await st.sync();
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    assert.equal(st.lastIndex(), 200);
    assertEntries(st, 1, 200, (i) => (i <= 60 ? 1 : i <= 74 ? 2 : 3));
    await st.close();
  });

  it('skips entries it already has (same index and term) instead of rewriting them', async () => {
    const d = dir();
    const st = await LogStorage.open({ dir: d });
    st.append(mk(1, 20, 1));
    st.setHardState({ term: 1, vote: 1, commit: 20 });
    await st.sync();
    const size = () => segFiles(d).reduce((a, f) => a + fs.statSync(path.join(d, f)).size, 0);
    const before = size();
    st.append(mk(5, 20, 1)); // a retransmission of committed entries: nothing written
    assert.equal(size(), before);
    assert.equal(st.lastIndex(), 20);
    st.append(mk(18, 25, 1)); // partly known: only 21..25 written
    assert.equal(st.lastIndex(), 25);
    await st.sync();
    assertEntries(st, 1, 25, () => 1);
    await st.close();
  });

  it('cuts a torn tail: file truncated in the middle of the last record', async () => {
    const d = dir();
    await writeClosedLog(d, 50);
    const f = path.join(d, segFiles(d).at(-1)!);
    const size = fs.statSync(f).size;
    fs.truncateSync(f, size - 10);
    let st = await LogStorage.open({ dir: d });
    assert.equal(st.lastIndex(), 49);
    assert.ok(st.stats().recoveredTornBytes > 0);
    assertEntries(st, 1, 49, () => 1);
    st.append(mk(50, 60, 2));
    await st.sync();
    await st.close();
    st = await LogStorage.open({ dir: d });
    assert.equal(st.lastIndex(), 60);
    assertEntries(st, 1, 60, (i) => (i < 50 ? 1 : 2));
    await st.close();
  });

  it('cuts a torn tail: bytes flipped in the last record, and a zero-filled tail', async () => {
    const d = dir();
    await writeClosedLog(d, 50);
    const f = path.join(d, segFiles(d).at(-1)!);
    const b = fs.readFileSync(f);
    b[b.length - 5] ^= 0x5a;
    b[b.length - 6] ^= 0x01;
    fs.writeFileSync(f, b);
    let st = await LogStorage.open({ dir: d });
    assert.equal(st.lastIndex(), 49);
    await st.close();
    fs.appendFileSync(f, Buffer.alloc(4096));
    st = await LogStorage.open({ dir: d });
    assert.equal(st.lastIndex(), 49);
    assertEntries(st, 1, 49, () => 1);
    await st.close();
  });

  it('refuses to open when a record in the middle is corrupt (valid records follow)', async () => {
    const d = dir();
    await writeClosedLog(d, 50);
    const f = path.join(d, segFiles(d).at(-1)!);
    const b = fs.readFileSync(f);
    const mid = Math.floor(b.length / 2);
    b[mid] ^= 0xff;
    fs.writeFileSync(f, b);
    await assert.rejects(LogStorage.open({ dir: d }), LogCorruptionError);
    // the damaged file was not truncated: nothing was silently dropped
    assert.equal(fs.statSync(f).size, b.length);
  });

  it('refuses to open when a non-last segment is damaged or missing', async () => {
    const d = dir();
    await writeClosedLog(d, 200, 2048);
    const files = segFiles(d);
    assert.ok(files.length >= 4);
    const f1 = path.join(d, files[1]);
    const saved = fs.readFileSync(f1);
    fs.truncateSync(f1, saved.length - 3); // torn tail in a non-last segment
    await assert.rejects(LogStorage.open({ dir: d, segmentBytes: 2048 }), LogCorruptionError);
    fs.writeFileSync(f1, saved);
    fs.renameSync(f1, f1 + '.moved'); // a missing segment
    await assert.rejects(LogStorage.open({ dir: d, segmentBytes: 2048 }), /missing/);
    fs.renameSync(f1 + '.moved', f1);
    const st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
    assertEntries(st, 1, 200, () => 1);
    await st.close();
  });

  it('keeps the hard state across reopen, rolls and compaction', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
    st.setHardState({ term: 7, vote: 3, commit: 0 });
    await st.sync();
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
    assert.deepEqual(st.hardState(), { term: 7, vote: 3, commit: 0 });
    assert.throws(() => st.setHardState({ term: 6, vote: 0, commit: 0 }), /term goes back/);
    st.append(mk(1, 300, 7));
    st.setHardState({ term: 8, vote: 0, commit: 290 });
    st.compact(250);
    await st.sync();
    await st.sync(); // segment deletion happens after the compaction record is durable
    assert.ok(segFiles(d).length <= 3, `old segments deleted (${segFiles(d).length} left)`);
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
    assert.deepEqual(st.hardState(), { term: 8, vote: 0, commit: 290 });
    assert.equal(st.firstIndex(), 251);
    assert.equal(st.term(250), 7);
    assert.equal(st.term(249), undefined);
    assert.throws(() => st.entries(250, 260, 1e9), /compacted/);
    assertEntries(st, 251, 300, () => 7);
    await st.close();
  });

  it('tolerates compacted segments that reappear after a crash (unlink not yet durable)', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
    st.append(mk(1, 300, 5));
    st.setHardState({ term: 5, vote: 1, commit: 300 });
    await st.sync();
    const saved = new Map(segFiles(d).map((f) => [f, fs.readFileSync(path.join(d, f))]));
    st.compact(200);
    st.append(mk(301, 320, 5));
    await st.sync();
    await st.sync();
    const deleted = [...saved.keys()].filter((f) => !fs.existsSync(path.join(d, f)));
    assert.ok(deleted.length >= 3, `segments deleted (${deleted.length})`);
    await st.close();
    // unlinks reach the disk in order: a crash can leave a suffix of them undone
    for (const k of [1, Math.floor(deleted.length / 2), deleted.length]) {
      for (const f of deleted.slice(deleted.length - k)) fs.writeFileSync(path.join(d, f), saved.get(f)!);
      st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
      assert.equal(st.firstIndex(), 201, `with ${k} resurrected segments`);
      assert.equal(st.lastIndex(), 320);
      assertEntries(st, 201, 320, () => 5);
      await st.sync();
      await st.close();
      for (const f of deleted) fs.rmSync(path.join(d, f), { force: true });
    }
  });

  it('saves a snapshot atomically, compacts to it, and verifies it on load', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    st.append(mk(1, 400, 2));
    st.setHardState({ term: 2, vote: 1, commit: 400 });
    await st.sync();
    const snap: Snapshot = {
      meta: { index: 300, term: 2, conf: { voters: [1, 2, 3], learners: [4], votersOutgoing: [] } },
      data: Buffer.from('state machine at 300'),
    };
    await st.saveSnapshot(snap);
    st.compact(300);
    await st.sync();
    await st.sync();
    const before = segFiles(d).length;
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    assert.equal(st.firstIndex(), 301);
    assert.equal(st.term(300), 2);
    assert.deepEqual(st.snapshot()!.meta, snap.meta);
    assert.equal(Buffer.from(st.snapshot()!.data).toString(), 'state machine at 300');
    assertEntries(st, 301, 400, () => 2);
    assert.equal(segFiles(d).length, before);
    await st.close();
    // damage the snapshot file: opening must refuse, not start from nothing
    const sf = path.join(d, 'snapshot');
    const b = fs.readFileSync(sf);
    b[30] ^= 1;
    fs.writeFileSync(sf, b);
    await assert.rejects(LogStorage.open({ dir: d }), SnapshotCorruptError);
  });

  it('installs a leader snapshot: the log restarts after it, also across reopen', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    st.append(mk(1, 100, 1));
    await st.sync();
    await st.applySnapshot({ meta: { index: 500, term: 4, conf: { voters: [1, 2, 3], learners: [], votersOutgoing: [] } }, data: Buffer.from('s500') });
    st.setHardState({ term: 4, vote: 0, commit: 500 });
    assert.equal(st.firstIndex(), 501);
    assert.equal(st.lastIndex(), 500);
    assert.equal(st.term(500), 4);
    st.append(mk(501, 520, 4));
    await st.sync();
    await st.sync();
    await st.close();
    st = await LogStorage.open({ dir: d, segmentBytes: 4096 });
    assert.equal(st.firstIndex(), 501);
    assert.equal(st.lastIndex(), 520);
    assert.equal(st.term(500), 4);
    assertEntries(st, 501, 520, () => 4);
    assert.equal(st.snapshot()!.meta.index, 500);
    await st.close();
  });

  it('catches the log up to a snapshot file newer than the log (crash between the two)', async () => {
    const d = dir();
    let st = await LogStorage.open({ dir: d });
    st.append(mk(1, 100, 1));
    await st.sync();
    await st.close();
    await writeSnapshotFile(d, { meta: { index: 60, term: 1, conf: { voters: [1], learners: [], votersOutgoing: [] } }, data: Buffer.from('x') });
    st = await LogStorage.open({ dir: d });
    assert.equal(st.firstIndex(), 61, 'matching entry: entries after the snapshot are kept');
    assertEntries(st, 61, 100, () => 1);
    await st.close();
  });

  it('group commit: one fsync covers many concurrent sync() callers', async () => {
    const d = dir();
    const batches: SyncBatchInfo[] = [];
    const st = await LogStorage.open({ dir: d, onSync: (b) => batches.push(b) });
    batches.length = 0;
    const ps: Promise<void>[] = [];
    for (let i = 1; i <= 500; i++) {
      st.append(mk(i, i, 1, 100));
      ps.push(st.sync());
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(ps);
    const callers = batches.reduce((a, b) => a + b.callers, 0);
    const entries = batches.reduce((a, b) => a + b.entries, 0);
    assert.equal(callers, 500);
    assert.equal(entries, 500);
    assert.ok(batches.length < 500 / 5, `${batches.length} fsync batches for 500 syncs`);
    const secs = batches.map((b) => b.seconds).sort((a, b) => a - b);
    console.log(
      `      group commit: ${batches.length} batches for 500 syncs, mean ${(entries / batches.length).toFixed(1)} entries/batch, max ${Math.max(...batches.map((b) => b.entries))}; fsync p50 ${(secs[Math.floor(secs.length / 2)] * 1e3).toFixed(2)} ms, max ${(secs.at(-1)! * 1e3).toFixed(2)} ms`,
    );
    await st.close();
  });

  it('an fsync error fails the storage: pending and later calls reject, nothing is acknowledged', async () => {
    const d = dir();
    let failNext = false;
    const st = await LogStorage.open({
      dir: d,
      io: {
        fdatasync: (fd, cb) => {
          if (failNext) setImmediate(() => cb(Object.assign(new Error('EIO: injected'), { code: 'EIO' })));
          else require('node:fs').fdatasync(fd, cb);
        },
      },
    });
    st.append(mk(1, 10, 1));
    await st.sync();
    failNext = true;
    st.append(mk(11, 20, 1));
    const p1 = st.sync();
    const p2 = st.sync();
    await assert.rejects(p1, StorageFailedError);
    await assert.rejects(p2, StorageFailedError);
    assert.ok(st.failed);
    assert.throws(() => st.append(mk(21, 21, 1)), StorageFailedError);
    assert.throws(() => st.lastIndex(), StorageFailedError);
    await assert.rejects(st.sync(), StorageFailedError);
    await st.close();
    const again = await LogStorage.open({ dir: d });
    assert.ok(again.lastIndex() >= 10);
    await again.close();
  });

  it('short writes (a writev that writes part of its buffers) still lay every record down intact', async () => {
    const d = dir();
    let calls = 0;
    const st = await LogStorage.open({
      dir: d,
      io: {
        // at most 777 bytes per call, cut inside a buffer
        writevSync: (fd, bufs, pos) => {
          calls++;
          const part: Uint8Array[] = [];
          let room = 777;
          for (const b of bufs) {
            if (room === 0) break;
            const take = b.subarray(0, Math.min(b.length, room));
            part.push(take);
            room -= take.length;
          }
          return fs.writevSync(fd, part, pos);
        },
      },
    });
    const big = mk(1, 40, 1, 3000); // entries larger than one short write
    st.append(big);
    st.append(mk(41, 200, 1));
    await st.sync();
    await st.close();
    assert.ok(calls > 40, `${calls} writev calls`);
    const again = await LogStorage.open({ dir: d });
    assert.equal(again.lastIndex(), 200);
    const got = again.entries(1, 201, Infinity);
    assert.equal(got.length, 200);
    for (const e of [...big, ...mk(41, 200, 1)]) assert.deepEqual(Buffer.from(got[e.index - 1].data), Buffer.from(e.data), `entry ${e.index}`);
    await again.close();
  });

  it('a write error fails the storage', async () => {
    const d = dir();
    let failWrites = false;
    const st = await LogStorage.open({
      dir: d,
      io: {
        writevSync: (fd, bufs, pos) => {
          if (failWrites) throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
          return fs.writevSync(fd, bufs, pos);
        },
      },
    });
    st.append(mk(1, 5, 1));
    await st.sync();
    failWrites = true;
    st.append(mk(6, 6, 1)); // buffered: written by the next sync()
    await assert.rejects(st.sync(), StorageFailedError);
    assert.throws(() => st.append(mk(7, 7, 1)), StorageFailedError);
    assert.throws(() => st.setHardState({ term: 1, vote: 0, commit: 0 }), StorageFailedError);
    await assert.rejects(st.sync(), StorageFailedError);
    await st.close();
  });

  /** Wait (bounded) until the storage has a preallocated next segment ready. */
  async function nextReady(st: LogStorage): Promise<void> {
    const t0 = Date.now();
    while (!st.stats().nextSegmentReady && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
    assert.ok(st.stats().nextSegmentReady, 'next segment preallocated');
  }

  /** A crash image: the segment files as they are now (the writer is still open, nothing closed). */
  function copySegments(from: string, to: string): void {
    fs.mkdirSync(to, { recursive: true });
    for (const f of segFiles(from)) fs.copyFileSync(path.join(from, f), path.join(to, f));
  }

  it('preallocates the next segment: a roll renames a zero-filled file; the log reopens to exactly its entries, also from a crash image', async () => {
    const d = dir();
    const seg = 64 * 1024;
    const st = await LogStorage.open({ dir: d, segmentBytes: seg });
    st.append(mk(1, 40, 1, 1000)); // ~40 KiB: past half of the first segment
    st.setHardState({ term: 1, vote: 1, commit: 10 });
    await st.sync();
    await nextReady(st);
    assert.equal(fs.statSync(path.join(d, 'next.tmp')).size, seg);
    assert.ok(fs.readFileSync(path.join(d, 'next.tmp')).equals(Buffer.alloc(seg)), 'zero-filled');
    st.append(mk(41, 80, 1, 1000)); // rolls into the prepared file
    await st.sync();
    assert.equal(st.stats().preallocatedSegments, 1);
    assert.ok(!fs.existsSync(path.join(d, 'next.tmp')), 'renamed into the segment');
    const files = segFiles(d);
    assert.equal(files.length, 2);
    const first = fs.readFileSync(path.join(d, files[0]));
    assert.ok(first.length < seg && first[first.length - 1] !== 0, `the rolled segment was cut at its last record (${first.length} bytes)`);
    const cur = path.join(d, files[1]);
    assert.equal(fs.statSync(cur).size, seg, 'the new segment file is preallocated');
    st.append(mk(81, 85, 2, 1000));
    st.setHardState({ term: 2, vote: 1, commit: 60 });
    await st.sync();
    assert.equal(fs.statSync(cur).size, seg, 'appends overwrite the zeros, the file does not grow');
    const termOf = (i: number) => (i <= 80 ? 1 : 2);

    // crash image: the zero tail follows the last record; it is the end of the log, nothing is cut
    const img = dir();
    copySegments(d, img);
    await st.close();
    let re = await LogStorage.open({ dir: img, segmentBytes: seg });
    assert.equal(re.firstIndex(), 1);
    assert.equal(re.lastIndex(), 85);
    assert.deepEqual(re.hardState(), { term: 2, vote: 1, commit: 60 });
    assertEntries(re, 1, 85, termOf, 1000);
    assert.equal(re.stats().recoveredTornBytes, 0);
    assert.equal(fs.statSync(path.join(img, files[1])).size, seg, 'still preallocated after the reopen');
    re.append(mk(86, 90, 2, 1000)); // appends go on over the zeros
    await re.sync();
    await re.close();
    re = await LogStorage.open({ dir: img, segmentBytes: seg });
    assert.equal(re.lastIndex(), 90);
    assertEntries(re, 1, 90, termOf, 1000);
    await re.close();

    // the last record torn inside the preallocated space (its second half never reached the disk)
    const torn = dir();
    copySegments(img, torn);
    const tf = path.join(torn, files[1]);
    const b = fs.readFileSync(tf);
    const end = b.length - Buffer.from(b).reverse().findIndex((x) => x !== 0); // end of the last record
    b.fill(0, end - 500, end);
    fs.writeFileSync(tf, b);
    re = await LogStorage.open({ dir: torn, segmentBytes: seg });
    assert.equal(re.lastIndex(), 89);
    assertEntries(re, 1, 89, termOf, 1000);
    assert.ok(re.stats().recoveredTornBytes > 0 && re.stats().recoveredTornBytes < 1100, `torn bytes ${re.stats().recoveredTornBytes}`);
    await re.close();
  });

  it('refuses damage followed by valid records in a preallocated segment (garbage or zeros), without cutting', async () => {
    const d = dir();
    const seg = 64 * 1024;
    const st = await LogStorage.open({ dir: d, segmentBytes: seg });
    st.append(mk(1, 40, 1, 1000));
    await st.sync();
    await nextReady(st);
    st.append(mk(41, 80, 1, 1000));
    await st.sync();
    assert.equal(st.stats().preallocatedSegments, 1);
    const img = dir();
    copySegments(d, img);
    await st.close();
    const f = path.join(img, segFiles(img)[1]);
    const good = fs.readFileSync(f);
    assert.equal(good.length, seg);
    const mid = 8000; // inside the records of the new segment, valid records follow
    for (const damage of ['garbage', 'zeros']) {
      const b = Buffer.from(good);
      if (damage === 'garbage') for (let i = mid; i < mid + 64; i++) b[i] ^= 0xa7;
      else b.fill(0, mid, mid + 2000);
      fs.writeFileSync(f, b);
      await assert.rejects(LogStorage.open({ dir: img, segmentBytes: seg }), LogCorruptionError, damage);
      assert.ok(fs.readFileSync(f).equals(b), `${damage}: the file was not touched`);
    }
    // garbage after the last record, followed by the zero tail: a torn tail, cut
    const b = Buffer.from(good);
    const end = b.length - Buffer.from(b).reverse().findIndex((x) => x !== 0);
    for (let i = end; i < end + 300; i++) b[i] = (i * 31 + 7) & 0xff;
    fs.writeFileSync(f, b);
    const re = await LogStorage.open({ dir: img, segmentBytes: seg });
    assert.equal(re.lastIndex(), 80);
    assertEntries(re, 1, 80, () => 1, 1000);
    assert.equal(re.stats().recoveredTornBytes, 300);
    await re.close();
  });

  it('removes a next.tmp left behind (a preallocation cut short by a crash) and rolls normally', async () => {
    const d = dir();
    const seg = 16 * 1024;
    await writeClosedLog(d, 20, seg);
    for (const content of [Buffer.alloc(5000, 0x33), Buffer.alloc(seg)]) {
      fs.writeFileSync(path.join(d, 'next.tmp'), content); // partial garbage, then a complete one
      const st = await LogStorage.open({ dir: d, segmentBytes: seg });
      assert.ok(!fs.existsSync(path.join(d, 'next.tmp')), 'leftover removed at open');
      assert.equal(st.lastIndex(), 20);
      assertEntries(st, 1, 20, () => 1);
      await st.close();
    }
    const st = await LogStorage.open({ dir: d, segmentBytes: seg });
    st.append(mk(21, 400, 1)); // several rolls, the first ones without a prepared file
    await st.sync();
    await nextReady(st);
    st.append(mk(401, 700, 1));
    await st.sync();
    assert.ok(st.stats().preallocatedSegments >= 1);
    await st.close();
    assert.ok(!fs.existsSync(path.join(d, 'next.tmp')), 'an unused preallocation is removed at close');
    const re = await LogStorage.open({ dir: d, segmentBytes: seg });
    assert.equal(re.lastIndex(), 700);
    assertEntries(re, 1, 700, () => 1);
    await re.close();
  });

  it('SIGKILL during appends: every entry whose sync() resolved is there after reopen', async function () {
    this.timeout(90_000);
    const d = dir();
    const writer = path.join(__dirname, 'crash-writer.js');
    let ackedMax = 0;
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, [writer, d, '16384'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.on('data', (c) => (err += c));
      const killAfter = 150 + Math.floor(Math.random() * 400);
      let killed = false;
      const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      const startAcked = ackedMax;
      child.stdout.on('data', (c) => {
        out += c;
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const l of lines) {
          const m = /^acked (\d+)$/.exec(l);
          if (m) ackedMax = Math.max(ackedMax, Number(m[1]));
        }
        if (!killed && ackedMax - startAcked > killAfter) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await done;
      clearTimeout(timer);
      assert.ok(killed, `writer was killed mid-run (stderr: ${err})`);
      const st = await LogStorage.open({ dir: d, segmentBytes: 16384 });
      const last = st.lastIndex();
      assert.ok(last >= ackedMax, `round ${round}: acked ${ackedMax} but log ends at ${last}`);
      const all = st.entries(1, last + 1, Number.MAX_SAFE_INTEGER);
      assert.equal(all.length, last);
      for (const e of all) assert.deepEqual(Buffer.from(e.data), Buffer.from(dataFor(e.index, e.term)), `entry ${e.index}`);
      await st.close();
    }
    assert.ok(ackedMax > 400);
  });
});
