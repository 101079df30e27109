import { strict as assert } from 'node:assert';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import { firstDifference, storeDigest } from '../../src/store/checksum';
import type { StoreOp } from '../../src/store/types';
import { encodeEntry, type LogCommand } from '../../src/replication/op-codec';
import { StoreStateMachine } from '../../src/replication/store-state-machine';
import { EntryType, type Entry } from '../../src/raft/types';
import { rmDir, ROOT, tmpDir } from '../store/helpers';

describe('replication: StoreStateMachine', function () {
  this.timeout(60000);
  const stores: { store: LevelBlockStore; dir: string }[] = [];
  const open = async (): Promise<LevelBlockStore> => {
    const dir = tmpDir('ssm');
    const store = await openStore(dir, { logWal: true });
    stores.push({ store, dir });
    return store;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) {
      await s.store.close().catch(() => undefined);
      rmDir(s.dir);
    }
  });

  const create = (dir: number, name: string, sec: number): StoreOp => ({
    kind: 'create', time: { sec, nsec: 0 }, cred: ROOT, dir, name, mode: 'guarded', attrs: { mode: 0o644 },
  });
  const entry = (index: number, c: LogCommand): Entry => ({ index, term: 1, type: EntryType.Normal, data: encodeEntry(c) });

  it('two verify entries handed over back to back (a follower catching up): each digest is of the store at exactly its index, and no op is skipped', async () => {
    const store = await open();
    const root = store.rootFileId;
    const sm = new StoreStateMachine(store, { nodeId: 1 });
    // the Raft node hands committed entries over in order without waiting for asynchronous applies
    const log: Entry[] = [
      entry(1, { kind: 'op', op: create(root, 'a', 1) }),
      entry(2, { kind: 'verify' }),
      entry(3, { kind: 'op', op: create(root, 'b', 2) }),
      entry(4, { kind: 'verify' }),
      entry(5, { kind: 'op', op: create(root, 'c', 3) }),
    ];
    const results = await Promise.all(log.map((e) => sm.apply(e)));
    for (const i of [0, 2, 4]) assert.equal((results[i] as { status: number }).status, 0, `op at ${log[i]!.index}`);
    for (const name of ['a', 'b', 'c']) assert.equal((await store.lookup(root, name)).status, 0, name);

    // references: the same ops applied up to each verify entry, digested on a quiet store
    const ref = async (upTo: number) => {
      const r = await open();
      for (const e of log) {
        if (e.index > upTo) break;
        if (e.index === 1) await r.apply(1, create(root, 'a', 1));
        if (e.index === 3) await r.apply(3, create(root, 'b', 2));
      }
      await r.sync();
      return storeDigest(r);
    };
    for (const at of [2, 4]) {
      const d = sm.digestAt(at);
      assert.ok(d && !('error' in d), `digest at ${at}: ${JSON.stringify(d && 'error' in d ? d : 'missing')}`);
      const want = await ref(at);
      assert.equal(firstDifference({ ...want, index: at }, d as typeof want), undefined, `digest at ${at}`);
    }
  });

  it('a later verify digest that finishes first does not let its ops overtake the earlier one\'s (no op skipped)', async () => {
    const store = await open();
    const root = store.rootFileId;
    // the first digest is slow (its sync), the second one is not
    const sync = store.sync.bind(store);
    let syncs = 0;
    store.sync = async (f?: number) => {
      if (syncs++ === 0) await new Promise((r) => setTimeout(r, 300));
      return sync(f);
    };
    const sm = new StoreStateMachine(store, { nodeId: 1 });
    const log: Entry[] = [
      entry(1, { kind: 'op', op: create(root, 'a', 1) }),
      entry(2, { kind: 'verify' }),
      entry(3, { kind: 'op', op: create(root, 'b', 2) }),
      entry(4, { kind: 'verify' }),
      entry(5, { kind: 'op', op: create(root, 'c', 3) }),
    ];
    await Promise.all(log.map((e) => sm.apply(e)));
    // (before: 'c' at 5 ran first, and 'b' at 3 was then taken for a replay of an applied op)
    const found = await Promise.all(['a', 'b', 'c'].map(async (n) => (await store.lookup(root, n)).status));
    assert.deepEqual(found, [0, 0, 0]);
    assert.equal(store.appliedIndex, 5);
  });
});
