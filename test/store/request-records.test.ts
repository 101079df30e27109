import { strict as assert } from 'node:assert';
import { FileType, Nfs3Status as S, type OpResult, type StoreOp } from '../../src/store/types';
import { decodeOpResult, encodeOpResult, P_REQUEST, P_REQUEST_ORDER } from '../../src/store/codec';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { restoreSnapshot, snapshotKeyClass, writeSnapshot } from '../../src/store/snapshot';
import { storeChecksum } from '../../src/store/checksum';
import { cutKey } from '../../src/store/codec';
import { Harness, ROOT, rmDir, tmpDir } from './helpers';

const R = 1;
const key = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

interface Internals {
  db: { keys(o: object): { all(): Promise<Buffer[]> } };
}

async function countKeys(h: Harness, prefix: number): Promise<number> {
  const db = (h.store as unknown as Internals).db;
  return (await db.keys({ gte: Buffer.from([prefix]), lt: Buffer.from([prefix + 1]) }).all()).length;
}

describe('store: OpResult codec', () => {
  it('round-trips every field (Attr, Wcc with and without parts, count)', () => {
    const attr = {
      type: FileType.REG,
      mode: 0o4755,
      nlink: 3,
      uid: 0xffff_fffe,
      gid: 7,
      size: 2 ** 40 + 3,
      used: 2 ** 40 + 65536,
      rdev: [5, 9] as [number, number],
      fileid: 2 ** 50 + 1,
      generation: 123456789,
      atime: { sec: 1, nsec: 2 },
      mtime: { sec: 0xffff_ffff, nsec: 999_999_999 },
      ctime: { sec: 1_700_000_000, nsec: 500 },
    };
    const full: OpResult = {
      status: S.OK,
      obj: attr,
      wcc: { before: { size: 10, mtime: { sec: 3, nsec: 4 }, ctime: { sec: 5, nsec: 6 } }, after: { ...attr, type: FileType.DIR } },
      wcc2: { after: attr },
      count: 65536,
    };
    for (const r of [full, { status: S.NOSPC }, { status: S.NOT_SYNC, wcc: {} }, { status: S.OK, count: 0 }, { status: S.ACCES, wcc2: { before: full.wcc!.before } }]) {
      assert.deepEqual(decodeOpResult(encodeOpResult(r)), r);
    }
    const enc = encodeOpResult(full);
    assert.throws(() => decodeOpResult(enc.subarray(0, enc.length - 1)), /truncated/);
    assert.throws(() => decodeOpResult(Buffer.concat([enc, Buffer.from([0])])), /trailing/);
  });
});

describe('store: duplicate-request records', function () {
  this.timeout(30000);
  let h: Harness;
  afterEach(async () => {
    await h?.destroy();
  });

  const mkdir = (name: string, sec = 100): StoreOp => ({ kind: 'mkdir', dir: R, name, attrs: {}, time: { sec, nsec: 0 }, cred: ROOT });

  it('the same request key gets the same result twice and changes nothing the second time', async () => {
    h = await Harness.open(undefined, { logWal: true });
    const k = key('client-a:xid-1');
    const first = await h.store.apply(1, mkdir('d'), k);
    assert.equal(first.status, S.OK);
    const counters = { ...h.store.counters };
    const again = await h.store.apply(2, mkdir('d', 200), k);
    assert.deepEqual(again, first, 'the recorded result (a re-run would be EXIST)');
    assert.equal(h.store.appliedIndex, 2, 'the index advances');
    assert.equal(h.store.counters.fileCount, counters.fileCount);
    assert.equal(h.store.counters.nextFileId, counters.nextFileId);
    assert.deepEqual(h.store.lookupRequest(k), first);
    assert.equal(h.store.lookupRequest(key('other')), undefined);
    // a failed op's result is recorded too
    const k2 = key('client-a:xid-2');
    const fail = await h.store.apply(3, { kind: 'rmdir', dir: R, name: 'nope', time: { sec: 1, nsec: 0 }, cred: ROOT }, k2);
    assert.equal(fail.status, S.NOENT);
    assert.deepEqual(h.store.lookupRequest(k2), fail);
    // without a key, the same op runs again
    assert.equal((await h.store.apply(4, mkdir('d'))).status, S.EXIST);
    await assert.rejects(h.store.apply(5, mkdir('e'), new Uint8Array(65)), /request key/);
    await assert.rejects(h.store.apply(5, mkdir('e'), new Uint8Array(0)), /request key/);
  });

  it('keeps at most drcEntries records, evicting the oldest op index; records survive a reopen', async () => {
    h = await Harness.open(undefined, { drcEntries: 4 });
    const results: OpResult[] = [];
    for (let i = 1; i <= 10; i++) results.push(await h.store.apply(i, mkdir(`d${i}`), key(`k${i}`)));
    assert.equal(h.store.requestRecords, 4);
    for (let i = 1; i <= 6; i++) assert.equal(h.store.lookupRequest(key(`k${i}`)), undefined, `k${i} evicted`);
    for (let i = 7; i <= 10; i++) assert.deepEqual(h.store.lookupRequest(key(`k${i}`)), results[i - 1]);
    await h.reopen({ drcEntries: 4 });
    assert.equal(await countKeys(h, P_REQUEST), 4, 'evicted records are deleted from LevelDB');
    assert.equal(await countKeys(h, P_REQUEST_ORDER), 4);
    for (let i = 7; i <= 10; i++) assert.deepEqual(h.store.lookupRequest(key(`k${i}`)), results[i - 1], `k${i} after reopen`);
    assert.deepEqual(await h.store.apply(11, mkdir('d10'), key('k10')), results[9], 'a duplicate after reopen');
    // an evicted key is a new request: the op runs (and fails: d1 exists)
    assert.equal((await h.store.apply(12, mkdir('d1'), key('k1'))).status, S.EXIST);
    assert.equal(h.store.requestRecords, 4);
    assert.equal(h.store.lookupRequest(key('k7')), undefined, 'the oldest went');
  });

  it('request records travel in snapshots and count in the store checksum; cut records stay local', async () => {
    assert.equal(snapshotKeyClass(cutKey(5, 0)), 'skip');
    h = await Harness.open(undefined, { logWal: true });
    const r1 = await h.store.apply(1, mkdir('a'), key('k1'));
    const dir = tmpDir('snap-drc');
    try {
      const file = path.join(dir, 'snap');
      const out = fs.createWriteStream(file);
      await writeSnapshot(h.store, out);
      await new Promise<void>((resolve, reject) => {
        out.once('error', reject);
        out.end(resolve);
      });
      const target = path.join(dir, 'restored');
      await restoreSnapshot(target, fs.createReadStream(file));
      const g = await Harness.open(target, { logWal: true });
      try {
        assert.deepEqual(g.store.lookupRequest(key('k1')), r1);
        assert.deepEqual(await storeChecksum(g.store), await storeChecksum(h.store));
        // the same op without the record: another checksum
        assert.deepEqual(await g.store.apply(2, mkdir('b'), key('k2')), await h.store.apply(2, mkdir('b')));
        assert.notEqual((await storeChecksum(g.store)).checksum, (await storeChecksum(h.store)).checksum);
      } finally {
        await g.destroy();
      }
    } finally {
      rmDir(dir);
    }
  });
});

describe('store: monotonic op times', function () {
  this.timeout(30000);
  let h: Harness;
  afterEach(async () => {
    await h?.destroy();
  });

  it('stamps never go below the highest op time applied, across a reopen; explicit SETATTR times stay', async () => {
    h = await Harness.open();
    const at = (sec: number, nsec = 0) => ({ time: { sec, nsec } });
    const a = await h.op({ kind: 'mkdir', dir: R, name: 'a', attrs: {}, ...at(1000, 5) });
    assert.deepEqual(a.obj!.mtime, { sec: 1000, nsec: 5 });
    const b = await h.op({ kind: 'mkdir', dir: R, name: 'b', attrs: {}, ...at(900) }); // earlier clock
    assert.deepEqual(b.obj!.ctime, { sec: 1000, nsec: 5 }, 'not below the highest time');
    assert.deepEqual(b.wcc!.after!.mtime, { sec: 1000, nsec: 5 }, 'the directory too');
    const c = await h.op({ kind: 'setattr', file: a.obj!.fileid, attrs: { mtime: { sec: 10, nsec: 0 }, atime: 'server' }, ...at(950) });
    assert.deepEqual(c.obj!.mtime, { sec: 10, nsec: 0 }, 'a client-given time is kept');
    assert.deepEqual(c.obj!.atime, { sec: 1000, nsec: 5 }, "'server' is the op's (monotonic) time");
    assert.deepEqual(c.obj!.ctime, { sec: 1000, nsec: 5 });
    await h.reopen();
    const d = await h.op({ kind: 'mkdir', dir: R, name: 'd', attrs: {}, ...at(999, 999) });
    assert.deepEqual(d.obj!.mtime, { sec: 1000, nsec: 5 }, 'the highest time survives a reopen');
    const e = await h.op({ kind: 'mkdir', dir: R, name: 'e', attrs: {}, ...at(2000) });
    assert.deepEqual(e.obj!.mtime, { sec: 2000, nsec: 0 }, 'later times are taken as they are');
  });
});
