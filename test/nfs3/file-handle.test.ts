/** File handle format and the write verifier. */
import assert from 'node:assert/strict';
import { decodeHandle, encodeHandle, handleFor, rootHandle, sameGeneration, FH_SIZE } from '../../src/nfs/file-handle';
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
