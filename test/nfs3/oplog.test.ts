/**
 * Mutations through the op sequencer: concurrent calls are applied in one order with consecutive
 * indexes, and the results are what a serial run gives. Plus names that are not UTF-8.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { XdrEncoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrEncoder';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { LocalOpLog } from '../../src/nfs/nfs3/op-sequencer';
import { Nfs3Harness, P, S, ALICE } from './support/harness';

describe('nfs3 op sequencing', function () {
  this.timeout(30_000);
  let h: Nfs3Harness;
  beforeEach(async () => {
    h = await Nfs3Harness.open();
  });
  afterEach(async () => h.close());

  it('applies concurrent writes and creates in order, each op once', async () => {
    const start = h.store.appliedIndex;
    const f = await h.mkfile(h.root(), 'data');
    const chunks: Buffer[] = [];
    for (let i = 0; i < 64; i++) chunks.push(createHash('sha256').update(String(i)).digest());
    const writes = chunks.map((c, i) => h.write(f, i * 32, c, i % 3 === 0 ? 2 : 0));
    const creates = Array.from({ length: 20 }, (_, i) => h.create(h.root(), `c${i}`));
    const results = await Promise.all([...writes, ...creates]);
    for (const r of results) assert.equal(r.status, S.OK);
    // 1 create + 64 writes + 20 creates, one index each
    assert.equal(h.store.appliedIndex, start + 1 + 64 + 20);
    const all = await h.read(f, 0, 64 * 32);
    assert.deepEqual(Buffer.from(all.resok!.data), Buffer.concat(chunks));
    const names = await h.listAll(h.root());
    for (let i = 0; i < 20; i++) assert.ok(names.includes(`c${i}`));
  });

  it('the serial mode (one apply at a time) gives the same results', async () => {
    const log = new LocalOpLog(h.store, { pipeline: false });
    const base = { time: { sec: 1, nsec: 0 }, cred: { uid: 0, gid: 0, gids: [] } };
    const root = h.store.rootFileId;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => log.submit({ kind: 'mkdir', ...base, dir: root, name: `d${i}`, attrs: { mode: 0o755 } })),
    );
    for (const r of results) assert.equal(r.status, S.OK);
    const again = await log.submit({ kind: 'mkdir', ...base, dir: root, name: 'd3', attrs: {} });
    assert.equal(again.status, S.EXIST);
    assert.equal(log.depth, 0);
  });

  it('names that are not UTF-8 are refused (INVAL) or not found (NOENT), never mangled', async () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x67]);
    const enc = (proc: number) => {
      const w = new Writer();
      const x = new XdrEncoder(w);
      x.writeVarlenOpaque(h.root().data);
      x.writeVarlenOpaque(name);
      if (proc === P.CREATE) {
        x.writeUnsignedInt(1); // GUARDED, empty sattr3
        for (let i = 0; i < 6; i++) x.writeUnsignedInt(0);
      }
      return w.flush().slice();
    };
    const c = await h.raw(P.CREATE, enc(P.CREATE), ALICE);
    assert.equal(c.kind, 'success');
    const status = (b: Uint8Array) => Buffer.from(b).readUInt32BE(0);
    assert.equal(status((c as any).body), S.INVAL);
    const l = await h.raw(P.LOOKUP, enc(P.LOOKUP), ALICE);
    assert.equal(status((l as any).body), S.NOENT);
    // the U+FFFD spelling a lossy decoder would produce does not exist either
    assert.equal((await h.lookup(h.root(), 'f\ufffd\ufffdg')).status, S.NOENT);
  });

  it('two replicas fed the same calls give the same handles, cookies and attributes', async () => {
    const other = await Nfs3Harness.open();
    try {
      const run = async (x: Nfs3Harness) => {
        const d = await x.mkdirFh(x.root(), 'd');
        const f = await x.mkfile(d, 'f');
        await x.write(f, 0, Buffer.from('same'), 2);
        await x.symlink(d, 'l', 'f');
        await x.remove(d, 'f');
        const g = await x.mkfile(d, 'g');
        const list = await x.readdirplus(d, 0n, new Uint8Array(8), 4096, 65536);
        return {
          handles: [d, g].map((h) => Buffer.from(h.data).toString('hex')),
          stale: (await x.getattr(f)).status,
          entries: JSON.stringify(list.resok, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)),
        };
      };
      const a = await run(h);
      const b = await run(other);
      assert.deepEqual(a, b);
      assert.equal(a.stale, S.STALE);
    } finally {
      await other.close();
    }
  });
});
