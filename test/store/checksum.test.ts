import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { openStore } from '../../src/store/block-store';
import { describeDifference, digestChecksum, firstDifference, storeChecksum, storeDigest } from '../../src/store/checksum';
import type { StoreOptions } from '../../src/store/types';
import { Harness, tmpDir } from './helpers';
import { populate, type Populated } from './fixture';

describe('store: checksums', function () {
  this.timeout(120000);
  const open: Harness[] = [];
  const make = async (opts: StoreOptions = {}): Promise<Harness> => {
    const h = await Harness.open(tmpDir('cksum'), opts);
    open.push(h);
    return h;
  };
  afterEach(async () => {
    for (const h of open.splice(0)) await h.destroy();
  });

  it('replicas built by the same ops have the same checksum and digest, whatever their on-disk layout', async () => {
    const a = await make();
    // another layout: nothing inline, nothing journaled; and a third restarted midway
    const b = await make({ inlineMax: 0, journalMaxWrite: 0 });
    const c = await make();
    await populate(a, 9);
    await populate(b, 9);
    await populate(c, 9);
    await c.reopen();
    const ca = await storeChecksum(a.store);
    assert.equal(ca.index, a.store.appliedIndex);
    assert.equal(ca.files, 11); // root + the 10 objects populate() leaves
    assert.match(ca.checksum, /^[0-9a-f]{64}$/);
    assert.deepEqual(await storeChecksum(b.store), ca);
    assert.deepEqual(await storeChecksum(c.store), ca);
    const da = await storeDigest(a.store);
    const db = await storeDigest(b.store);
    assert.equal(firstDifference(da, db), undefined);
    assert.equal(digestChecksum(da), ca.checksum);
    assert.deepEqual(da.objects.map((o) => o.fileid), [...da.objects.map((o) => o.fileid)].sort((x, y) => x - y));
    assert.equal(da.objects.length, ca.files);
    // checksum at a pinned index; a different one is refused
    assert.deepEqual(await storeChecksum(a.store, { atIndex: ca.index }), ca);
    await assert.rejects(storeChecksum(a.store, { atIndex: ca.index - 1 }), /not/);
  });

  it('one byte of one file differs: the checksum differs and firstDifference names that file (content)', async () => {
    for (const which of ['big', 'small', 'sparse'] as const) {
      const a = await make();
      const b = await make();
      const ia = await populate(a, 5);
      await populate(b, 5);
      const id = ia[which as keyof Populated];
      const at = which === 'sparse' ? 64 * 1024 * 1024 + 17 : which === 'big' ? 2_000_001 : 3;
      // the same op on both except for one byte of data: same attributes, different content
      await a.write(id, at, Buffer.from([0x41]));
      await b.write(id, at, Buffer.from([0x42]));
      const [ca, cb] = [await storeChecksum(a.store), await storeChecksum(b.store)];
      assert.equal(ca.index, cb.index);
      assert.notEqual(ca.checksum, cb.checksum, which);
      const d = firstDifference(await storeDigest(a.store), await storeDigest(b.store));
      assert.deepEqual(d && { fileid: d.fileid, part: d.part }, { fileid: id, part: 'content' }, which);
      assert.equal(describeDifference(d!), `first at file id ${id} (content)`);
    }
  });

  it('a byte changed behind the store\'s back in a data file, an attribute, a missing file, a different index', async () => {
    const a = await make();
    const b = await make();
    const ids = await populate(a, 6);
    await populate(b, 6);
    // flip a byte of b's data file on disk (store closed: a silent disk corruption)
    await b.close();
    const file = b.store.data.pathOf(ids.big);
    const fd = fs.openSync(file, 'r+');
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, 1_234_567);
    one[0] ^= 0x10;
    fs.writeSync(fd, one, 0, 1, 1_234_567);
    fs.closeSync(fd);
    b.store = await openStore(b.dir);
    let d = firstDifference(await storeDigest(a.store), await storeDigest(b.store));
    assert.deepEqual(d && [d.fileid, d.part], [ids.big, 'content']);
    assert.notEqual((await storeChecksum(a.store)).checksum, (await storeChecksum(b.store)).checksum);

    // an attribute: the record differs (and the data file difference comes later in file id order)
    const c = await make();
    const e = await make();
    const ic = await populate(c, 6);
    await populate(e, 6);
    await c.op({ kind: 'setattr', file: ic.small, attrs: { mode: 0o600 } });
    await e.op({ kind: 'setattr', file: ic.small, attrs: { mode: 0o640 } });
    d = firstDifference(await storeDigest(c.store), await storeDigest(e.store));
    assert.deepEqual(d && [d.fileid, d.part], [ic.small, 'record']);

    // a file only one side has; and digests at different indexes
    const dc = await storeDigest(c.store);
    const fewer = { ...dc, objects: dc.objects.filter((o) => o.fileid !== ic.fifo) };
    d = firstDifference(dc, fewer);
    assert.deepEqual(d && [d.fileid, d.part], [ic.fifo, 'missing']);
    d = firstDifference(dc, { ...dc, index: dc.index + 1 });
    assert.equal(d?.part, 'index');
    d = firstDifference(dc, { ...dc, state: '00'.repeat(32) });
    assert.equal(d?.part, 'state');
    assert.equal(describeDifference(d!), 'first in the state record (counters)');
  });

  it('a directory listing difference is content of that directory', async () => {
    const a = await make();
    const b = await make();
    const ia = await populate(a, 8);
    await populate(b, 8);
    // same op shape, different names: the directory's attributes (times, counts) agree
    await a.create(ia.sub, 'x');
    await b.create(ia.sub, 'y');
    const d = firstDifference(await storeDigest(a.store), await storeDigest(b.store));
    assert.deepEqual(d && [d.fileid, d.part], [ia.sub, 'content']);
  });
});
