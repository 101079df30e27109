/**
 * Sparse data files: a file written at 1 TiB stores a few KiB. The checksum (hanfs verify) and the
 * snapshot stream (catch-up) skip its holes (lseek SEEK_DATA) instead of reading a TiB of zeros, and
 * still see every stored byte.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { storeChecksum } from '../../src/store/checksum';
import { restoreSnapshot, writeSnapshot } from '../../src/store/snapshot';
import { holesDetectable, nextStoredByte } from '../../src/store/sparse';
import { openStore } from '../../src/store';
import { Harness, rmDir, tmpDir } from './helpers';

const TIB = 2 ** 40;

describe('store: sparse data files', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(rmDir));

  it('nextStoredByte finds the data after a hole and reports none past the last byte', function () {
    if (!holesDetectable) this.skip();
    const dir = tmpDir('sparse');
    dirs.push(dir);
    const file = path.join(dir, 'f');
    const fd = fs.openSync(file, 'w+');
    try {
      fs.writeSync(fd, Buffer.from('x'), 0, 1, TIB);
      fs.writeSync(fd, Buffer.from('y'), 0, 1, 10 * 4096);
      assert.equal(nextStoredByte(fd, 0), 10 * 4096);
      assert.equal(nextStoredByte(fd, 11 * 4096), TIB - (TIB % 4096));
      assert.equal(nextStoredByte(fd, TIB + 4096), undefined);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a file with data at 1 TiB: checksum and snapshot round trip see its bytes, skipping the hole', async function () {
    if (!holesDetectable) this.skip();
    const h = await Harness.open(tmpDir('sparse-src'), { inlineMax: 0 });
    dirs.push(h.dir);
    const f = await h.create(1, 'far');
    assert.equal((await h.write(f, TIB, 'the end of a long file')).status, 0);
    assert.equal((await h.write(f, 5000, 'near the start')).status, 0);
    const g = await h.create(1, 'other');
    assert.equal((await h.write(g, 0, 'x')).status, 0);
    await h.store.sync();
    const sum = await storeChecksum(h.store);

    // one stored byte changed: the checksum changes (the bytes past the hole are read)
    const target = tmpDir('sparse-dst');
    dirs.push(target);
    const pipe = new PassThrough();
    const restored = restoreSnapshot(path.join(target, 'store'), pipe);
    const sent = await writeSnapshot(h.store, pipe);
    pipe.end();
    await restored;
    assert.ok(sent.bytes < 4 << 20, `the snapshot stream is small (${sent.bytes} bytes), the hole was not sent`);
    const copy = await openStore(path.join(target, 'store'), { inlineMax: 0 });
    try {
      assert.equal((await storeChecksum(copy)).checksum, sum.checksum, 'restored store equal to the source');
      const r = await copy.read(f, TIB, 64);
      assert.equal(Buffer.from(r.data!).toString(), 'the end of a long file');
    } finally {
      await copy.close();
    }
    assert.equal((await h.write(f, TIB + 3, 'E')).status, 0);
    await h.store.sync();
    assert.notEqual((await storeChecksum(h.store)).checksum, sum.checksum, 'a changed byte at 1 TiB changes the checksum');
    await h.close();
  });
});
