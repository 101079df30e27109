/** File handle format and the write verifier. */
import assert from 'node:assert/strict';
import {
  decodeHandle, encodeHandle, handleFor, rootHandle, sameGeneration, checksumCacheSize, CHECKSUM_CACHE_MAX, FH_SIZE,
} from '../../src/nfs/file-handle';
import { WriteVerifier } from '../../src/nfs/write-verifier';

describe('nfs3 file handles', () => {
  it('are the same bytes on every machine (golden vectors)', () => {
    // a change here breaks every handle clients hold: bump FH_VERSION instead
    assert.equal(encodeHandle(7, 123456789012, 42).toString('hex'), '01000000000000070000001cbe991a140000002a23ead4fdcf9444643a4a0445');
    assert.equal(rootHandle(1).toString('hex'), '0100000000000001000000000000000000000000919f9a8efea98406fb8804c4');
  });

  it('round-trip export id, file id (up to 2^53) and generation', () => {
    for (const [e, f, g] of [[0, 1, 0], [1, 2 ** 53 - 1, 0xffffffff], [0xffffffff, 2 ** 32, 1]]) {
      const fh = encodeHandle(e, f, g);
      assert.equal(fh.length, FH_SIZE);
      assert.deepEqual(decodeHandle(fh), { exportId: e, fileId: f, generation: g });
    }
  });

  it('reject every single-bit change, other lengths and file ids beyond 2^53', () => {
    const fh = encodeHandle(3, 99, 5);
    for (let bit = 0; bit < FH_SIZE * 8; bit++) {
      const b = Buffer.from(fh);
      b[bit >> 3] ^= 1 << (bit & 7);
      assert.equal(decodeHandle(b), undefined, `bit ${bit}`);
    }
    assert.equal(decodeHandle(fh.subarray(0, 31)), undefined);
    assert.equal(decodeHandle(Buffer.concat([fh, Buffer.alloc(1)])), undefined);
    assert.throws(() => encodeHandle(1, 2 ** 53, 0));
  });

  it('checked from the checksum cache still refuse a damaged checksum, and the cache stays bounded', () => {
    const fh = encodeHandle(4, 77, 9);
    assert.deepEqual(decodeHandle(fh), { exportId: 4, fileId: 77, generation: 9 }); // now cached
    const other = encodeHandle(4, 78, 9);
    // the head of a known handle with another handle's checksum, or with a checksum bit flipped
    const mixed = Buffer.concat([fh.subarray(0, 20), other.subarray(20)]);
    assert.equal(decodeHandle(mixed), undefined);
    for (let bit = 160; bit < FH_SIZE * 8; bit++) {
      const b = Buffer.from(fh);
      b[bit >> 3] ^= 1 << (bit & 7);
      assert.equal(decodeHandle(b), undefined, `bit ${bit}`);
    }
    // forged handles are not remembered; many good ones push the oldest out, which still decode
    const before = checksumCacheSize();
    for (let i = 0; i < 100; i++) decodeHandle(Buffer.concat([fh.subarray(0, 8), Buffer.from([0, 0, 0, 1, i, 0, 0, 0, 0, 0, 0, 9]), other.subarray(20)]));
    assert.equal(checksumCacheSize(), before);
    const first = encodeHandle(5, 1, 0);
    for (let i = 2; i < CHECKSUM_CACHE_MAX + 100; i++) encodeHandle(5, i, 0);
    assert.equal(checksumCacheSize(), CHECKSUM_CACHE_MAX);
    assert.deepEqual(decodeHandle(first), { exportId: 5, fileId: 1, generation: 0 });
    assert.equal(encodeHandle(5, 1, 0).toString('hex'), first.toString('hex'));
    const bad = Buffer.from(first);
    bad[31] ^= 0x80;
    assert.equal(decodeHandle(bad), undefined);
  });

  it('keep the low 32 bits of a generation and map the store root to the root handle', () => {
    const fh = encodeHandle(1, 5, 2 ** 32 + 7);
    assert.equal(decodeHandle(fh)!.generation, 7);
    assert.ok(sameGeneration(7, 2 ** 32 + 7));
    assert.ok(!sameGeneration(7, 8));
    assert.deepEqual(handleFor(1, 1, 99, 1), rootHandle(1));
    assert.deepEqual(handleFor(1, 2, 99, 1), encodeHandle(1, 2, 99));
  });
});

describe('write verifier', () => {
  it('is 8 bytes, differs between instances and changes in place on rotate', () => {
    const a = new WriteVerifier();
    const b = new WriteVerifier();
    assert.equal(a.bytes.length, 8);
    assert.notDeepEqual(Buffer.from(a.bytes), Buffer.from(b.bytes));
    const view = a.bytes;
    const before = Buffer.from(view);
    a.rotate();
    assert.equal(a.bytes, view);
    assert.notDeepEqual(Buffer.from(view), before);
  });
});
