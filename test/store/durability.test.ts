import { strict as assert } from 'node:assert';
import { Nfs3Status as S, type StoreOp } from '../../src/store/types';
import { Harness, ROOT } from './helpers';

const R = 1;

describe('store: durability and group commit', function () {
  this.timeout(60000);
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.open(undefined, { inlineMax: 0 }); // these tests are about data files
  });
  afterEach(async () => {
    await h.destroy();
  });

  it('metadata ops and stable writes are durable when apply resolves; UNSTABLE after sync()', async () => {
    const f = await h.create(R, 'f');
    assert.ok(h.store.durableAppliedIndex >= h.index, 'create durable');
    const w = await h.write(f, 0, 'stable', 2);
    assert.equal(w.status, S.OK);
    assert.ok(h.store.durableAppliedIndex >= h.index, 'FILE_SYNC durable');
    assert.equal(h.store.stats.journalWrites, 1, 'a small stable write is made durable by the journal');
    assert.equal(h.store.data.syncedGateSeq, h.store.data.gateSeq, 'every change the journal does not cover is synced');
    const before = h.store.durableAppliedIndex;
    await h.write(f, 6, 'unstable', 0);
    await h.write(f, 14, '!', 0);
    assert.equal(h.store.appliedIndex, before + 2);
    assert.ok(h.store.durableAppliedIndex < h.store.appliedIndex, 'UNSTABLE resolves before it is durable');
    await h.store.sync(f);
    assert.equal(h.store.durableAppliedIndex, h.store.appliedIndex);
    assert.equal(h.store.data.syncedGateSeq, h.store.data.gateSeq);
    await h.store.checkpoint();
    assert.equal(h.store.data.syncedSeq, h.store.data.writeSeq, 'a checkpoint syncs the journaled data too');
    assert.equal((await h.readAll(f)).toString(), 'stableunstable!');
  });

  it('concurrent stable callers share group commits (LevelDB sync writes)', async () => {
    await h.reopen(); // default options: small files inline
    const callers = 16;
    const perCaller = 4;
    const g0 = h.store.stats.groupCommits;
    const data = Buffer.alloc(4096, 1);
    let n = 0;
    await Promise.all(
      Array.from({ length: callers }, async (_, c) => {
        for (let k = 0; k < perCaller; k++) {
          const cr = await h.op({ kind: 'create', dir: R, name: `c${c}-${k}`, mode: 'guarded', attrs: {} });
          assert.equal(cr.status, S.OK);
          const w = await h.op({ kind: 'write', file: cr.obj!.fileid, offset: 0, data, stable: 2 });
          assert.equal(w.status, S.OK);
          n += 2;
        }
      }),
    );
    const commits = h.store.stats.groupCommits - g0;
    assert.equal(n, callers * perCaller * 2);
    assert.ok(commits <= n / 2, `${commits} LevelDB sync writes for ${n} stable ops`);
    // the same ops from one caller need one group commit each
    const g1 = h.store.stats.groupCommits;
    for (let k = 0; k < 8; k++) await h.create(R, `s${k}`);
    assert.equal(h.store.stats.groupCommits - g1, 8);
  });

  it('malformed ops give INVAL, never an exception or a broken store', async () => {
    const t = { sec: 1, nsec: 0 };
    const bad = [
      { kind: 'create', dir: R, name: 'x', mode: 'bogus', attrs: {}, time: t, cred: ROOT },
      { kind: 'setattr', file: R, time: t, cred: ROOT },
      { kind: 'write', file: R, offset: 0, data: 'str', stable: 2, time: t, cred: ROOT },
      { kind: 'mkdir', dir: 'x', name: 'y', attrs: {}, time: t, cred: ROOT },
      { kind: 'remove', dir: R, name: 'x', time: { sec: -1, nsec: 0 }, cred: ROOT },
      { kind: 'remove', dir: R, name: 'x', time: t, cred: { uid: 0, gid: 0 } },
      { kind: 'nope', time: t, cred: ROOT },
    ] as unknown as StoreOp[];
    for (const op of bad) assert.equal((await h.store.apply(++h.index, op)).status, S.INVAL, JSON.stringify(op));
    assert.equal((await h.op({ kind: 'setattr', file: R, attrs: { mode: -1 } })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'setattr', file: R, attrs: { uid: 2 ** 40 } })).status, S.INVAL);
    assert.equal((await h.op({ kind: 'write', file: await h.create(R, 'w'), offset: -5, data: Buffer.from('x'), stable: 2 })).status, S.INVAL);
    assert.ok(await h.create(R, 'still-works'));
  });
});
