/**
 * Segment format version 2: a random salt per segment seeds its records' checksums, so that a torn
 * last entry whose data (client file data) holds bytes that form a valid record — crafted without the
 * salt, copied from another segment of the log, or from a version 1 segment — is cut as a torn tail
 * instead of being taken for "valid records after the damage". Version 1 segments (no salt) still
 * open, read and recover.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogStorage } from '../../../src/raft/log-storage';
import { NO_SALT_SEED, decodeSegmentHeader, encodeHardStateRecord, parseRecord } from '../../../src/raft/segment-format';
import { Entry, EntryType } from '../../../src/raft/types';

/** test/raft/storage/fixtures/segment-v1 in the source tree: a log written by the version 1 code
 * (commit 34c5c4c): entries 1..40 (terms 1, 2), hard state {2, 3, 38}, compacted through 12,
 * three segments of at most 1024 bytes. */
const V1_FIXTURE = path.join(__dirname, '..', '..', '..', '..', 'test', 'raft', 'storage', 'fixtures', 'segment-v1');
const MAX_RECORD = 64 * 1024 * 1024 + 1024;

function segFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

/** the records of a segment file as laid out (by their lengths, checksums not checked) */
function layout(buf: Buffer): { off: number; type: number; bytes: Buffer }[] {
  const out: { off: number; type: number; bytes: Buffer }[] = [];
  for (let off = 0; off + 9 <= buf.length; ) {
    const end = off + 9 + buf.readUInt32LE(off);
    if (end > buf.length || buf[off + 8] === 0) break;
    out.push({ off, type: buf[off + 8], bytes: Buffer.from(buf.subarray(off, end)) });
    off = end;
  }
  return out;
}

/** the checksum seed of the segment file's records, from its header */
function seedOf(buf: Buffer): number {
  const len = buf.readUInt32LE(0);
  return decodeSegmentHeader(buf, 9, 9 + len).seed;
}

function entry(i: number, size: number): Entry {
  const d = Buffer.alloc(size);
  for (let k = 0; k < size; k++) d[k] = (k * 7 + i * 13) & 0xff;
  d.writeUInt32LE(i, 0);
  return { index: i, term: 1, type: EntryType.Normal, data: d };
}

function v1Data(i: number): Buffer {
  return Buffer.from(`v1 fixture entry ${i} ` + 'x'.repeat(i % 7));
}

describe('raft log segments: per-segment salt (format version 2)', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const dir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-segsalt-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  function copyFixture(): string {
    const d = dir();
    for (const f of segFiles(V1_FIXTURE)) fs.copyFileSync(path.join(V1_FIXTURE, f), path.join(d, f));
    return d;
  }

  /** A record that is valid by some segment's rule, to be planted in a client's data. */
  type Planted = { name: string; make: (d: string) => Buffer; seed: (d: string) => number };
  const planted: Planted[] = [
    {
      // what anyone can build without the salt: the real encoder, no salt (= a version 1 record)
      name: 'a hard state record crafted without the salt',
      make: () => encodeHardStateRecord({ term: 9, vote: 2, commit: 11 }, NO_SALT_SEED),
      seed: () => NO_SALT_SEED,
    },
    {
      name: 'a hard state record copied from another segment of the same log',
      make: (d) => layout(fs.readFileSync(path.join(d, segFiles(d)[0]))).find((r) => r.type === 3)!.bytes,
      seed: (d) => seedOf(fs.readFileSync(path.join(d, segFiles(d)[0]))),
    },
    {
      name: 'an entry record copied from another segment of the same log',
      make: (d) => layout(fs.readFileSync(path.join(d, segFiles(d)[0]))).find((r) => r.type === 2)!.bytes,
      seed: (d) => seedOf(fs.readFileSync(path.join(d, segFiles(d)[0]))),
    },
    {
      name: 'an entry record copied from a version 1 segment',
      make: () => layout(fs.readFileSync(path.join(V1_FIXTURE, segFiles(V1_FIXTURE)[0]))).find((r) => r.type === 2)!.bytes,
      seed: () => NO_SALT_SEED,
    },
  ];

  for (const p of planted) {
    it(`cuts a torn last entry whose data holds ${p.name}; every synced entry stays`, async () => {
      const d = dir();
      // 10 synced entries (with hard states) over a few segments
      let st = await LogStorage.open({ dir: d, segmentBytes: 2048 });
      for (let i = 1; i <= 10; i++) {
        st.append([entry(i, 600)]);
        st.setHardState({ term: 1, vote: 1, commit: i - 1 });
        await st.sync();
      }
      await st.close();
      assert.ok(segFiles(d).length >= 3, 'the log rolled');
      const rec = p.make(d);
      const r = parseRecord(rec, 0, rec.length, MAX_RECORD, p.seed(d));
      assert.ok(r.ok, 'the planted bytes are a valid record by the rule of the segment they come from');

      // entry 11: 64 KiB of client data with the record in its first 8 KiB
      st = await LogStorage.open({ dir: d, segmentBytes: 1 << 20 });
      const last = path.join(d, segFiles(d).at(-1)!);
      const before = layout(fs.readFileSync(last)).at(-1)!;
      const at = before.off + before.bytes.length; // entry 11 starts here (a zero tail may follow)
      const e11 = entry(11, 64 * 1024);
      rec.copy(e11.data as Buffer, 1000);
      st.append([e11]);
      await st.sync();
      await st.close();
      // kill -9 / power cut: only the first 8 KiB of entry 11's record reached the file
      fs.truncateSync(last, at + 8192);

      st = await LogStorage.open({ dir: d, segmentBytes: 1 << 20 });
      assert.equal(st.lastIndex(), 10);
      assert.equal(st.stats().recoveredTornBytes, 8192);
      assert.deepEqual(st.hardState(), { term: 1, vote: 1, commit: 9 });
      for (const e of st.entries(1, 11, Number.MAX_SAFE_INTEGER)) assert.deepEqual(Buffer.from(e.data), entry(e.index, 600).data, `entry ${e.index}`);
      assert.equal(fs.statSync(last).size, at, 'cut where entry 11 began');
      st.append([e11]);
      await st.sync();
      await st.close();
      st = await LogStorage.open({ dir: d, segmentBytes: 1 << 20 });
      assert.equal(st.lastIndex(), 11);
      assert.deepEqual(Buffer.from(st.entries(11, 12, Number.MAX_SAFE_INTEGER)[0].data), e11.data);
      await st.close();
    });
  }

  it('still refuses damage in the middle of a salted segment (valid records of its own follow)', async () => {
    const d = dir();
    const st = await LogStorage.open({ dir: d });
    for (let i = 1; i <= 10; i++) st.append([entry(i, 600)]);
    await st.sync();
    await st.close();
    const f = path.join(d, segFiles(d)[0]);
    const b = fs.readFileSync(f);
    const recs = layout(b);
    b[recs[4].off + 20] ^= 0x40; // entry 4 damaged, entries 5..10 valid after it
    fs.writeFileSync(f, b);
    await assert.rejects(LogStorage.open({ dir: d }), /damaged at offset \d+ \(crc\) with valid records after it/);
    assert.ok(fs.readFileSync(f).equals(b), 'not cut');
  });

  it('gives every segment, a preallocated one too, a salt of its own', async () => {
    const d = dir();
    const st = await LogStorage.open({ dir: d, segmentBytes: 64 * 1024 });
    // 8 KiB at a time; from half full on, the next segment is prepared (a 64 KiB zero-fill: a few ms)
    for (let k = 0; k < 40 && st.stats().preallocatedSegments < 2; k++) {
      st.append(Array.from({ length: 8 }, (_, j) => entry(k * 8 + j + 1, 1000)));
      await st.sync();
      const t0 = Date.now();
      while (!st.stats().nextSegmentReady && Date.now() - t0 < 100) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(st.stats().preallocatedSegments, 2, 'rolls took preallocated files');
    await st.close();
    const files = segFiles(d);
    assert.ok(files.length >= 3);
    const seeds = new Set<number>();
    for (const f of files) {
      const b = fs.readFileSync(path.join(d, f));
      const h = decodeSegmentHeader(b, 9, 9 + b.readUInt32LE(0));
      assert.equal(h.version, 2, f);
      assert.notEqual(h.seed, NO_SALT_SEED, f);
      seeds.add(h.seed);
      // its records are valid with its own seed only
      const e = layout(b).find((r) => r.type === 2)!;
      assert.ok(parseRecord(e.bytes, 0, e.bytes.length, MAX_RECORD, h.seed).ok, f);
      assert.ok(!parseRecord(e.bytes, 0, e.bytes.length, MAX_RECORD, NO_SALT_SEED).ok, `${f}: not valid without the salt`);
    }
    assert.equal(seeds.size, files.length, 'one salt per segment');
  });

  it('opens and reads a version 1 log (no salt); new records go to a new, salted segment', async () => {
    const d = copyFixture();
    const v1 = segFiles(d).map((f) => fs.readFileSync(path.join(d, f)));
    assert.deepEqual(
      v1.map((b) => b.readUInt32LE(13)),
      [1, 1, 1],
      'the fixture is of version 1',
    );
    let st = await LogStorage.open({ dir: d });
    assert.equal(st.firstIndex(), 13);
    assert.equal(st.lastIndex(), 40);
    assert.deepEqual(st.hardState(), { term: 2, vote: 3, commit: 38 });
    assert.equal(st.stats().recoveredTornBytes, 0);
    const check = (lo: number, hi: number) => {
      const got = st.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER); // read from the files (checksums verified)
      assert.equal(got.length, hi - lo + 1);
      for (const e of got) {
        assert.equal(e.term, e.index <= 20 ? 1 : e.index <= 40 ? 2 : 3, `term of ${e.index}`);
        assert.deepEqual(Buffer.from(e.data), v1Data(e.index), `data of ${e.index}`);
      }
    };
    check(13, 40);
    const files = segFiles(d);
    assert.equal(files.length, 4, 'a new segment after the version 1 ones');
    const nb = fs.readFileSync(path.join(d, files[3]));
    assert.equal(nb.readUInt32LE(13), 2, 'the new segment is of version 2');
    st.append(Array.from({ length: 5 }, (_, k) => ({ index: 41 + k, term: 3, type: EntryType.Normal, data: v1Data(41 + k) })));
    st.setHardState({ term: 3, vote: 1, commit: 45 });
    await st.sync();
    await st.close();
    for (let k = 0; k < 2; k++) assert.ok(fs.readFileSync(path.join(d, files[k])).equals(v1[k]), `version 1 segment ${k + 1} unchanged`);
    // the newest version 1 segment was preallocated (zero tail): the roll cut it after its records
    const s3 = fs.readFileSync(path.join(d, files[2]));
    assert.ok(s3.length < v1[2].length && s3.equals(v1[2].subarray(0, s3.length)), 'version 1 segment 3: its records unchanged');
    assert.ok(v1[2].subarray(s3.length).equals(Buffer.alloc(v1[2].length - s3.length)), 'only its zero tail cut');
    st = await LogStorage.open({ dir: d });
    assert.equal(segFiles(d).length, 4, 'no further segment: the newest one is salted');
    assert.equal(st.lastIndex(), 45);
    assert.deepEqual(st.hardState(), { term: 3, vote: 1, commit: 45 });
    check(13, 45);
    await st.close();
  });

  it('recovers a torn tail of a version 1 segment as before', async () => {
    const d = copyFixture();
    const f = path.join(d, segFiles(d).at(-1)!);
    const b = fs.readFileSync(f);
    const recs = layout(b);
    const lastEntry = recs.filter((r) => r.type === 2).at(-1)!;
    // the last entry record torn: the records after it (hard state, base) never reached the file
    fs.truncateSync(f, lastEntry.off + lastEntry.bytes.length - 3);
    const st = await LogStorage.open({ dir: d });
    assert.equal(st.lastIndex(), 39);
    assert.equal(st.firstIndex(), 1, 'the compaction record was cut with the tail');
    assert.equal(st.stats().recoveredTornBytes, lastEntry.bytes.length - 3);
    assert.deepEqual(st.hardState(), { term: 1, vote: 1, commit: 20 });
    for (const e of st.entries(1, 40, Number.MAX_SAFE_INTEGER)) assert.deepEqual(Buffer.from(e.data), v1Data(e.index));
    await st.close();
  });
});
