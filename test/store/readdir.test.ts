import { strict as assert } from 'node:assert';
import { Nfs3Status as S } from '../../src/store/types';
import { Harness, ROOT } from './helpers';

const R = 1;

describe('store: readdir and cookies', function () {
  this.timeout(120000);
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.open();
  });
  afterEach(async () => {
    await h.destroy();
  });

  it('lists ".", ".." then entries in cookie order; cookies survive restart', async () => {
    const d = await h.mkdir(R, 'd');
    for (const n of ['b', 'a', 'c']) await h.create(d, n);
    const r = await h.store.readdir(d, 0, undefined, 10);
    assert.equal(r.status, S.OK);
    assert.equal(r.eof, true);
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.cookie]),
      [['.', 1], ['..', 2], ['b', 3], ['a', 4], ['c', 5]],
    );
    assert.equal(r.entries[0].fileid, d);
    assert.equal(r.entries[1].fileid, R);
    const root = await h.store.readdir(R, 0, undefined, 10);
    assert.deepEqual(root.entries.slice(0, 2).map((e) => e.fileid), [R, R], '".." of the root is the root');
    // removal and re-creation: remaining cookies unchanged, new name gets a fresh cookie
    await h.op({ kind: 'remove', dir: d, name: 'a' });
    await h.create(d, 'a');
    await h.op({ kind: 'rename', fromDir: d, fromName: 'b', toDir: d, toName: 'bb' });
    await h.reopen();
    const r2 = await h.store.readdir(d, 0, undefined, 10);
    assert.deepEqual(r2.entries.map((e) => [e.name, e.cookie]), [['.', 1], ['..', 2], ['c', 5], ['a', 6], ['bb', 7]]);
    assert.equal(r2.cookieverf, r.cookieverf, 'verifier stable');
    // resume from a cookie whose entry was removed
    const r3 = await h.store.readdir(d, 4, r.cookieverf, 10);
    assert.deepEqual(r3.entries.map((e) => e.name), ['c', 'a', 'bb']);
    // resume from "." and ".."
    assert.deepEqual((await h.store.readdir(d, 1, r.cookieverf, 2)).entries.map((e) => e.name), ['..', 'c']);
    assert.deepEqual((await h.store.readdir(d, 2, r.cookieverf, 1)).entries.map((e) => e.name), ['c']);
    // the last cookie issued is valid (empty, eof), beyond it is not
    const last = await h.store.readdir(d, 7, r.cookieverf, 10);
    assert.equal(last.status, S.OK);
    assert.deepEqual([last.entries.length, last.eof], [0, true]);
    assert.equal((await h.store.readdir(d, 8, r.cookieverf, 10)).status, S.BAD_COOKIE);
    assert.equal((await h.store.readdir(d, 3, 'ffffffffffffffff', 10)).status, S.BAD_COOKIE);
    assert.equal((await h.store.readdir(d, 0, 'ffffffffffffffff', 10)).status, S.OK, 'verifier ignored at cookie 0');
    const other = await h.store.readdir(R, 0, undefined, 1);
    assert.notEqual(other.cookieverf, r.cookieverf);
    assert.equal((await h.store.readdir(d, 3, other.cookieverf, 10)).status, S.BAD_COOKIE);
    const f = (await h.store.lookup(d, 'c')).obj!.fileid;
    assert.equal((await h.store.readdir(f, 0, undefined, 10)).status, S.NOTDIR);
    assert.equal((await h.store.readdir(4242, 0, undefined, 10)).status, S.STALE);
  });

  it('lists ops applied but not yet written to LevelDB, consistently', async () => {
    const d = await h.mkdir(R, 'd');
    const f = await h.create(R, 'u');
    // hold the data barrier shut: after an UNSTABLE write, every later batch stays pending in memory
    const data = h.store.data as unknown as { syncDirty: () => Promise<void> };
    const syncDirty = data.syncDirty.bind(data);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    data.syncDirty = async () => {
      await gate;
      return syncDirty();
    };
    const ps: Promise<unknown>[] = [];
    let listed: string[] = [];
    try {
      ps.push(h.write(f, 0, Buffer.alloc(4096, 1), 0));
      for (let i = 0; i < 300; i++) {
        ps.push(h.op({ kind: 'create', dir: d, name: `n${i}`, mode: 'guarded', attrs: {} }));
        if (i % 3 === 2) ps.push(h.op({ kind: 'rename', fromDir: d, fromName: `n${i - 1}`, toDir: d, toName: `m${i - 1}` }));
      }
      const last = h.index;
      // listings while the ops are applied: each one a consistent state
      for (let round = 0; round < 10_000 && h.store.appliedIndex < last; round++) {
        await new Promise((r) => setImmediate(r));
        const r = await h.store.readdir(d, 0, undefined, 10_000);
        assert.equal(r.status, S.OK);
        const ids = r.entries.map((e) => e.fileid);
        assert.equal(new Set(ids).size, ids.length, 'no entry twice');
        const cookies = r.entries.map((e) => e.cookie);
        assert.deepEqual([...cookies].sort((a, b) => a - b), cookies, 'cookie order');
      }
      assert.equal(h.store.appliedIndex, last, 'all applied while the writer is held');
      assert.ok(h.store.pendingBatches > 0);
      const r = await h.store.readdir(d, 0, undefined, 10_000);
      assert.equal(r.entries.length, 302, 'every applied op is listed');
      listed = r.entries.map((e) => e.name);
      const p1 = await h.store.readdir(d, 0, undefined, 100);
      const p2 = await h.store.readdir(d, p1.entries[99].cookie, p1.cookieverf, 1000);
      assert.deepEqual([...p1.entries, ...p2.entries], r.entries, 'pages from memory');
      assert.equal((await h.store.lookup(d, 'm1')).status, S.OK);
      assert.equal((await h.store.lookup(d, 'n1')).status, S.NOENT);
    } finally {
      open(); // never leave the writer held (a failed assertion would hang close())
    }
    await Promise.all(ps);
    assert.equal(h.store.pendingBatches, 0);
    const names = await h.names(d);
    assert.equal(names.length, 302);
    assert.deepEqual(names, listed, 'same listing once written');
  });

  it('pages exactly at the boundary report eof correctly', async () => {
    const d = await h.mkdir(R, 'd');
    for (let i = 0; i < 8; i++) await h.create(d, `f${i}`);
    const p1 = await h.store.readdir(d, 0, undefined, 5);
    assert.deepEqual([p1.entries.length, p1.eof], [5, false]);
    const p2 = await h.store.readdir(d, p1.entries[4].cookie, p1.cookieverf, 5);
    assert.deepEqual([p2.entries.length, p2.eof], [5, true]);
    const empty = await h.mkdir(R, 'e');
    const pe = await h.store.readdir(empty, 0, undefined, 2);
    assert.deepEqual([pe.entries.length, pe.eof], [2, true]);
    // a page of one entry: "." alone does not end an empty directory, ".." follows
    const one = await h.store.readdir(empty, 0, undefined, 1);
    assert.deepEqual([one.entries.map((e) => e.name), one.eof], [['.'], false]);
    const two = await h.store.readdir(empty, 1, one.cookieverf, 1);
    assert.deepEqual([two.entries.map((e) => e.name), two.eof], [['..'], true]);
  });

  it('100k-entry directory: paged listing returns each name once with O(n) reads', async function () {
    // a hang guard, not a speed target (bench/store-bench.ts measures speed): ~20 s on an idle 2-core
    // machine, several times that when the machine is shared
    this.timeout(600_000);
    const N = 100_000;
    const d = await h.mkdir(R, 'big');
    // pipelined creates: group commit makes this a few hundred LevelDB sync writes, not 100k
    const chunk = 5000;
    for (let i = 0; i < N; i += chunk) {
      const ps = [];
      for (let j = i; j < Math.min(N, i + chunk); j++) {
        ps.push(h.op({ kind: 'create', dir: d, name: `file-${j.toString(36)}`, mode: 'unchecked', attrs: {} }, ROOT));
      }
      for (const r of await Promise.all(ps)) assert.equal(r.status, S.OK);
    }
    assert.equal((await h.store.getattr(d))!.size, 0);
    const reads0 = h.store.stats.dbReads;
    const seen = new Set<string>();
    let cookie = 0;
    let verf: string | undefined;
    let pages = 0;
    let prev = 0;
    for (;;) {
      const r = await h.store.readdir(d, cookie, verf, 1000);
      assert.equal(r.status, S.OK);
      pages++;
      for (const e of r.entries) {
        assert.ok(e.cookie > prev, 'cookies increase');
        prev = e.cookie;
        assert.ok(!seen.has(e.name), `duplicate ${e.name}`);
        seen.add(e.name);
      }
      if (r.eof) break;
      cookie = r.entries[r.entries.length - 1].cookie;
      verf = r.cookieverf;
    }
    assert.equal(seen.size, N + 2);
    const reads = h.store.stats.dbReads - reads0;
    // every page reads its entries plus one look-ahead and the directory inode (cached): linear
    assert.ok(reads <= N + 3 * pages, `reads ${reads} for ${N} entries in ${pages} pages`);
    // a page from the middle costs only its own entries
    const r0 = h.store.stats.dbReads;
    const mid = await h.store.readdir(d, 50_000, verf, 100);
    assert.equal(mid.entries.length, 100);
    assert.ok(h.store.stats.dbReads - r0 <= 102);
  });
});
