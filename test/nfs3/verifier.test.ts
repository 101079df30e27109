/**
 * Write verifier rotation (invariant 1: the verifier changes whenever uncommitted data could have been
 * lost). The real LevelDB block store sits behind a wrapper that fails `sync` / `apply` on demand the
 * way a disk error would (EIO), or holds an apply until released.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { Nfs3Status, type BlockStore, type FileId, type OpResult, type StoreOp, type Time } from '../../src/store/types';
import { openStore } from '../../src/store';
import { ExportTable } from '../../src/nfs/exports';
import { createNfs3Program } from '../../src/nfs/nfs3';
import { rootHandle } from '../../src/nfs/file-handle';
import { WriteVerifier, rotateWriteVerifier, snapshotVerifier, type RotateReason } from '../../src/nfs/write-verifier';
import { inProcessConfig } from '../support/in-process';
import { startServer, type RunningServer } from '../../src/server';
import { silentLogger } from '../../src/log';
import { HanfsMetrics } from '../../src/metrics';
import { Nfs3Harness, S, ALICE } from './support/harness';
import { RawTcpClient, callMsg } from '../rpc/helpers';

function eio(what: string): Error {
  return Object.assign(new Error(`${what}: input/output error`), { code: 'EIO', errno: -5 });
}

/** The real store, with failures and holds on demand. */
class FaultyStore implements BlockStore {
  /** the next n sync() calls reject with EIO */
  failSyncs = 0;
  /** apply() of ops this matches rejects with EIO (without reaching the store) */
  failApply: ((op: StoreOp) => boolean) | undefined;
  /** apply() of ops this matches answers this status (without reaching the store) */
  answerApply: ((op: StoreOp) => Nfs3Status | undefined) | undefined;
  /** apply() of ops this matches waits for release() after the store applied them */
  holdApply: ((op: StoreOp) => boolean) | undefined;
  private held: (() => void)[] = [];
  syncCalls = 0;
  /** indexes answered here without reaching the store (the store's own indexes stay dense) */
  private skipped = 0;

  constructor(readonly inner: BlockStore) {}

  get appliedIndex(): number {
    return this.inner.appliedIndex + this.skipped;
  }
  get rootFileId(): FileId {
    return this.inner.rootFileId;
  }
  get holding(): number {
    return this.held.length;
  }
  release(): void {
    const h = this.held;
    this.held = [];
    for (const f of h) f();
  }

  async apply(index: number, op: StoreOp): Promise<OpResult> {
    if (this.failApply?.(op)) throw eio('pwrite');
    const st = this.answerApply?.(op);
    if (st !== undefined) {
      this.skipped++;
      return { status: st };
    }
    const r = await this.inner.apply(index - this.skipped, op);
    if (this.holdApply?.(op)) await new Promise<void>((res) => this.held.push(res));
    return r;
  }
  async sync(file?: FileId): Promise<void> {
    this.syncCalls++;
    if (this.failSyncs > 0) {
      this.failSyncs--;
      throw eio('fdatasync');
    }
    return this.inner.sync(file);
  }
  getattr: BlockStore['getattr'] = (f) => this.inner.getattr(f);
  getattrMany: BlockStore['getattrMany'] = (f) => this.inner.getattrMany(f);
  lookup: BlockStore['lookup'] = (d, n) => this.inner.lookup(d, n);
  readdir: BlockStore['readdir'] = (d, c, v, n) => this.inner.readdir(d, c, v, n);
  read: BlockStore['read'] = (f, o, c) => this.inner.read(f, o, c);
  readlink: BlockStore['readlink'] = (f) => this.inner.readlink(f);
  fsstat: BlockStore['fsstat'] = () => this.inner.fsstat();
  close: BlockStore['close'] = () => this.inner.close();
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('nfs3 write verifier rotation', function () {
  this.timeout(20_000);
  let h: Nfs3Harness;
  let store: FaultyStore;
  let reasons: RotateReason[];
  let shared: s.Nfsv3Fh;

  beforeEach(async () => {
    h = await Nfs3Harness.open();
    store = new FaultyStore(h.store);
    let clock = 1_800_000_000;
    h.program = createNfs3Program({
      store,
      exports: new ExportTable(h.exports),
      verifier: h.verifier.bytes,
      now: (): Time => ({ sec: ++clock, nsec: 0 }),
    });
    reasons = [];
    h.verifier.onRotate = (r) => reasons.push(r);
    shared = await h.mkdirFh(h.root(), 'shared', { mode: 0o777 });
  });
  afterEach(async () => h.close());

  it('a failed COMMIT answers IO and rotates: later WRITE and COMMIT carry the new verifier', async () => {
    const f = await h.mkfile(shared, 'a', { mode: 0o644 }, ALICE);
    const w1 = await h.write(f, 0, Buffer.from('unstable data'), 0, ALICE);
    assert.equal(w1.status, S.OK);
    assert.equal(w1.resok!.committed, 0);
    const v1 = hex(w1.resok!.verf);
    assert.equal(v1, hex(h.verifier.bytes));

    store.failSyncs = 1;
    const c1 = await h.commit(f, ALICE);
    assert.equal(c1.status, S.IO);
    assert.ok(c1.resfail, 'COMMIT3resfail with wcc_data');
    assert.deepEqual(reasons, ['commit-failed']);
    const v2 = hex(h.verifier.bytes);
    assert.notEqual(v2, v1);

    // the client resends its UNSTABLE write: it sees the new verifier...
    const w2 = await h.write(f, 0, Buffer.from('unstable data'), 0, ALICE);
    assert.equal(hex(w2.resok!.verf), v2);
    // ... and a COMMIT that succeeds carries it too
    const c2 = await h.commit(f, ALICE);
    assert.equal(c2.status, S.OK);
    assert.equal(hex(c2.resok!.verf), v2);
    assert.equal(h.verifier.rotations, 1);
  });

  it('a stable WRITE whose apply fails with EIO answers IO and rotates; so does an IO answer from the store', async () => {
    const f = await h.mkfile(shared, 'b', { mode: 0o644 }, ALICE);
    const v1 = hex((await h.write(f, 0, Buffer.from('x'), 0, ALICE)).resok!.verf);
    store.failApply = (op) => op.kind === 'write';
    const w = await h.write(f, 0, Buffer.from('stable'), 2, ALICE);
    assert.equal(w.status, S.IO);
    assert.ok(w.resfail);
    store.failApply = undefined;
    const v2 = hex(h.verifier.bytes);
    assert.notEqual(v2, v1);
    assert.equal(hex((await h.commit(f, ALICE)).resok!.verf), v2);

    store.answerApply = (op) => (op.kind === 'write' ? Nfs3Status.IO : undefined);
    assert.equal((await h.write(f, 0, Buffer.from('y'), 1, ALICE)).status, S.IO);
    store.answerApply = undefined;
    const v3 = hex(h.verifier.bytes);
    assert.notEqual(v3, v2);
    assert.equal(hex((await h.write(f, 0, Buffer.from('z'), 0, ALICE)).resok!.verf), v3);
    assert.deepEqual(reasons, ['write-failed', 'write-failed']);
  });

  it('a WRITE in progress while the verifier rotates answers the old verifier, so the client resends', async () => {
    const f = await h.mkfile(shared, 'c', { mode: 0o644 }, ALICE);
    const g = await h.mkfile(shared, 'd', { mode: 0o644 }, ALICE);
    const v1 = hex(h.verifier.bytes);
    store.holdApply = (op) => op.kind === 'write';
    const pending = h.write(f, 0, Buffer.from('in flight'), 0, ALICE);
    while (store.holding === 0) await new Promise((r) => setTimeout(r, 5));
    store.holdApply = undefined;
    // meanwhile a sync fails (this write's data may be among what was lost)
    store.failSyncs = 1;
    assert.equal((await h.commit(g, ALICE)).status, S.IO);
    const v2 = hex(h.verifier.bytes);
    assert.notEqual(v2, v1);
    store.release();
    const w = await pending;
    assert.equal(w.status, S.OK);
    assert.equal(hex(w.resok!.verf), v1, 'the verifier of when the data was handed to the store');
    const c = await h.commit(f, ALICE);
    assert.equal(hex(c.resok!.verf), v2, 'COMMIT shows the change: the client resends the write');
  });

  it('other mutations rotate when the store fails them, not when they fail normally; reads never', async () => {
    const v0 = hex(h.verifier.bytes);
    assert.equal((await h.create(shared, 'e', 'guarded', { mode: 0o644 }, ALICE)).status, S.OK);
    assert.equal((await h.create(shared, 'e', 'guarded', { mode: 0o644 }, ALICE)).status, S.EXIST);
    assert.equal((await h.remove(shared, 'nothing', ALICE)).status, S.NOENT);
    assert.equal(hex(h.verifier.bytes), v0, 'ordinary failures do not rotate');
    store.failApply = (op) => op.kind !== 'write';
    assert.equal((await h.mkdir(shared, 'sub', { mode: 0o755 }, ALICE)).status, S.IO);
    assert.deepEqual(reasons, ['op-failed']);
    store.failApply = undefined;
    store.answerApply = () => Nfs3Status.IO;
    assert.equal((await h.remove(shared, 'e', ALICE)).status, S.IO);
    store.answerApply = undefined;
    assert.deepEqual(reasons, ['op-failed', 'op-failed']);
    assert.equal((await h.getattr(shared)).status, S.OK);
    assert.equal((await h.lookup(shared, 'missing')).status, S.NOENT);
    assert.equal(h.verifier.rotations, 2);
  });

  it('rotateWriteVerifier rotates the owning WriteVerifier (hooks run) or bare bytes in place; snapshots do not follow', () => {
    const v = new WriteVerifier();
    const seen: RotateReason[] = [];
    v.onRotate = (r) => seen.push(r);
    const before = snapshotVerifier(v.bytes);
    rotateWriteVerifier(v.bytes, 'commit-failed');
    assert.deepEqual(seen, ['commit-failed']);
    assert.notEqual(hex(v.bytes), hex(before));
    assert.equal(v.rotations, 1);
    const bare = new Uint8Array(8);
    rotateWriteVerifier(bare, 'manual');
    assert.notEqual(hex(bare), '0000000000000000');
    const snap = snapshotVerifier(bare);
    rotateWriteVerifier(bare, 'manual');
    assert.notEqual(hex(bare), hex(snap));
  });
});

describe('nfs3 write verifier rotation: the daemon over TCP', function () {
  this.timeout(30_000);
  let dir: string;
  let srv: RunningServer | undefined;
  let client: RawTcpClient | undefined;

  afterEach(async () => {
    client?.close();
    await srv?.stop();
    srv = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function args(proc: number, req: unknown): Buffer {
    return Buffer.from(new Nfsv3Encoder(new Writer(64 * 1024)).encodeMessage(req as any, proc, true));
  }
  async function call<T>(xid: number, proc: number, req: unknown): Promise<T & { status: number }> {
    const r = await client!.call(callMsg(xid, 100003, 3, proc, args(proc, req)));
    assert.ok(r.kind === 'accepted' && r.stat === 0);
    return new Nfsv3Decoder().decodeMessage(new Reader(r.kind === 'accepted' ? r.body : Buffer.alloc(0)), proc, false) as any;
  }

  it('WRITE UNSTABLE gets V1, COMMIT fails with IO, the next WRITE and COMMIT carry V2; counted in metrics', async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-verf-'));
    const c = inProcessConfig(dir);
    const metrics = new HanfsMetrics({ defaultMetrics: false });
    let faulty: FaultyStore | undefined;
    srv = await startServer(c, {
      parts: {
        log: silentLogger(),
        metrics,
        openStore: async (d) => (faulty = new FaultyStore(await openStore(d, { rootMode: 0o1777 }))),
      },
    });
    client = await RawTcpClient.connect(srv.nfs.port);
    const root = new s.Nfsv3Fh(rootHandle(1));
    const how = new s.Nfsv3CreateHow(0, new s.Nfsv3Sattr(
      new s.Nfsv3SetMode(true, 0o644), new s.Nfsv3SetUid(false), new s.Nfsv3SetGid(false), new s.Nfsv3SetSize(false),
      new s.Nfsv3SetAtime(0), new s.Nfsv3SetMtime(0),
    ));
    const cr = await call<m.Nfsv3CreateResponse>(1, 8, new m.Nfsv3CreateRequest(new s.Nfsv3DirOpArgs(root, 'f'), how));
    assert.equal(cr.status, 0);
    const fh = cr.resok!.obj.handle!;
    const write = (xid: number) =>
      call<m.Nfsv3WriteResponse>(xid, 7, new m.Nfsv3WriteRequest(fh, 0n, 4, 0, Buffer.from('data')));
    const commit = (xid: number) => call<m.Nfsv3CommitResponse>(xid, 21, new m.Nfsv3CommitRequest(fh, 0n, 0));

    const w1 = await write(2);
    const v1 = hex(w1.resok!.verf);
    assert.equal(v1, hex(srv.verifier));
    faulty!.failSyncs = 1;
    assert.equal((await commit(3)).status, Nfs3Status.IO);
    const w2 = await write(4);
    const v2 = hex(w2.resok!.verf);
    assert.notEqual(v2, v1);
    const c2 = await commit(5);
    assert.equal(c2.status, 0);
    assert.equal(hex(c2.resok!.verf), v2);
    assert.equal(hex(srv.verifier), v2);
    const text = await metrics.registry.metrics();
    assert.match(text, /hanfs_nfs_write_verifier_rotations_total\{reason="commit-failed"\} 1/);
    // a rotation from outside (e.g. on becoming leader) is counted under its reason
    srv.rotateVerifier('leader');
    assert.notEqual(hex(srv.verifier), v2);
    assert.match(await metrics.registry.metrics(), /hanfs_nfs_write_verifier_rotations_total\{reason="leader"\} 1/);
  });
});
