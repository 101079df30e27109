import assert from 'node:assert/strict';
import { RecordDecoder, RecordTooLargeError, TooManyFragmentsError, encodeRecord, joinRecord } from '../../src/nfs/record-marking';
import { u32be } from './helpers';

function frag(body: Uint8Array, last: boolean): Buffer {
  return Buffer.concat([u32be((last ? 0x80000000 : 0) | body.length), Buffer.from(body)]);
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('record marking', () => {
  it('decodes a single-fragment record', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    const out = d.push(frag(bytes(100), true));
    assert.equal(out.length, 1);
    assert.deepEqual(Buffer.from(out[0]), bytes(100));
    assert.equal(d.hasPartialRecord, false);
  });

  it('joins a multi-fragment record, fed one byte at a time', () => {
    const body = bytes(300);
    const stream = Buffer.concat([frag(body.subarray(0, 7), false), frag(body.subarray(7, 200), false), frag(body.subarray(200), true)]);
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) {
      got.push(...d.push(stream.subarray(i, i + 1)));
      if (i < stream.length - 1) assert.equal(d.hasPartialRecord, true, `partial after byte ${i}`);
    }
    assert.equal(got.length, 1);
    assert.deepEqual(Buffer.from(got[0]), body);
    assert.equal(d.hasPartialRecord, false);
  });

  it('decodes several records from one chunk and split at every position', () => {
    const r1 = bytes(10, 1);
    const r2 = bytes(33, 2);
    const r3 = bytes(4, 3);
    const stream = Buffer.concat([frag(r1, true), frag(r2.subarray(0, 5), false), frag(r2.subarray(5), true), frag(r3, true)]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new RecordDecoder({ maxRecordBytes: 1024 });
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      assert.deepEqual(got.map((g) => Buffer.from(g)), [r1, r2, r3], `cut at ${cut}`);
    }
  });

  it('accepts zero-length fragments, and a zero-length record', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    const body = bytes(9);
    const out = d.push(Buffer.concat([frag(Buffer.alloc(0), false), frag(body, false), frag(Buffer.alloc(0), false), frag(Buffer.alloc(0), true)]));
    assert.equal(out.length, 1);
    assert.deepEqual(Buffer.from(out[0]), body);
    const empty = d.push(frag(Buffer.alloc(0), true));
    assert.equal(empty.length, 1);
    assert.equal(empty[0].length, 0);
  });

  it('a partial header or a zero-length non-last fragment counts as a partial record', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    d.push(Buffer.from([0x80]));
    assert.equal(d.hasPartialRecord, true);
    const d2 = new RecordDecoder({ maxRecordBytes: 1024 });
    d2.push(frag(Buffer.alloc(0), false));
    assert.equal(d2.hasPartialRecord, true);
  });

  for (const header of [0x7fffffff, 0xffffffff, (0x80000000 | 1025) >>> 0]) {
    it(`rejects a fragment header of 0x${header.toString(16)} before buffering anything`, () => {
      const d = new RecordDecoder({ maxRecordBytes: 1024 });
      const before = process.memoryUsage().arrayBuffers;
      assert.throws(() => d.push(u32be(header)), RecordTooLargeError);
      assert.equal(d.bufferedBytes, 0);
      // nothing close to 2 GiB was allocated
      assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024);
      // and the decoder stays failed: framing is lost
      assert.throws(() => d.push(frag(bytes(1), true)), RecordTooLargeError);
    });
  }

  it('checks the running total across fragments against the cap', () => {
    const d = new RecordDecoder({ maxRecordBytes: 100 });
    d.push(frag(bytes(60), false));
    assert.throws(() => d.push(u32be(0x80000000 | 41)), RecordTooLargeError);
    const ok = new RecordDecoder({ maxRecordBytes: 100 });
    assert.equal(ok.push(Buffer.concat([frag(bytes(60), false), frag(bytes(40), true)]))[0].length, 100);
  });

  it('caps the number of fragments in one record', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1 << 20, maxFragments: 10 });
    const many = Buffer.concat(Array.from({ length: 11 }, () => frag(bytes(1), false)));
    assert.throws(() => d.push(many), TooManyFragmentsError);
  });

  it('joins a large multi-fragment record with one copy', () => {
    const body = bytes(4 * 1024 * 1024 + 3);
    const chunks = encodeRecord([body], 65536);
    assert.equal(chunks.length, 2 * Math.ceil(body.length / 65536));
    const d = new RecordDecoder({ maxRecordBytes: 8 * 1024 * 1024 });
    const got: Uint8Array[] = [];
    for (const c of chunks) got.push(...d.push(c));
    assert.equal(got.length, 1);
    assert.ok(Buffer.from(got[0]).equals(body));
  });

  it('encodes a single fragment without copying the body, and splits across parts', () => {
    const a = bytes(5);
    const b = bytes(7, 9);
    const one = encodeRecord([a, b]);
    assert.equal(one.length, 3);
    assert.equal(Buffer.from(one[0]).readUInt32BE(0), (0x80000000 | 12) >>> 0);
    assert.equal(one[1], a);
    const split = Buffer.concat(encodeRecord([a, b], 4));
    // fragments of 4, 4, 4 bytes; only the last has the top bit
    assert.equal(split.readUInt32BE(0), 4);
    assert.equal(split.readUInt32BE(8), 4);
    assert.equal(split.readUInt32BE(16), (0x80000000 | 4) >>> 0);
    const d = new RecordDecoder({ maxRecordBytes: 100 });
    assert.deepEqual(Buffer.from(d.push(split)[0]), Buffer.concat([a, b]));
  });

  it('joins a small record into one buffer: header and parts, byte for byte', () => {
    const a = bytes(5);
    const b = bytes(7, 9);
    const joined = joinRecord([a, new Uint8Array(0), b], 12);
    assert.deepEqual(joined, Buffer.concat(encodeRecord([a, b])));
    const d = new RecordDecoder({ maxRecordBytes: 100 });
    assert.deepEqual(Buffer.from(d.push(joined)[0]), Buffer.concat([a, b]));
    assert.throws(() => joinRecord([a, b], 13), RangeError);
  });
});
