import { strict as assert } from 'node:assert';
import { Nfs3Status as S } from '../../src/store/types';
import { Harness } from './helpers';

const R = 1; // root fileid

describe('store: read paths', function () {
  this.timeout(20000);
  let h: Harness;
  afterEach(async () => {
    await h.destroy();
  });

  it('a cache miss never caches attributes older than the newest op', async () => {
    h = await Harness.open(undefined, { inodeCacheSize: 2 });
    const files: number[] = [];
    for (let i = 0; i < 20; i++) files.push(await h.create(R, `f${i}`));
    // the first files are out of the cache now; start a read of each, then change them before awaiting
    for (const f of files.slice(0, 10)) {
      const pending = h.store.getattr(f);
      const op = h.op({ kind: 'setattr', file: f, attrs: { mode: 0o600 } });
      await pending;
      assert.equal((await op).status, S.OK);
      assert.equal((await h.store.getattr(f))!.mode & 0o777, 0o600, `fileid ${f}`);
      const l = await h.store.lookup(R, `f${files.indexOf(f)}`);
      assert.equal(l.obj!.mode & 0o777, 0o600);
    }
  });
});
