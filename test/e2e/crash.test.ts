/**
 * Crash safety: FILE_SYNC writes, UNSTABLE writes + COMMIT and CREATEs run against the daemon, it
 * is SIGKILLed at a random moment, restarted on the same data dir, and everything acknowledged as
 * stable must be there with the right bytes; the write verifier must change; fsck must pass.
 */
import * as assert from 'node:assert/strict';
import { CreateMode, NfsStat, StableHow, expectOk, type Fh, type Nfs3Client } from '../../src/nfs/client';
import { Daemon, fsck } from '../support/daemon';
import { openSession, type Session } from '../support/nfs';
import { rng, sleep } from '../support/util';

const ROUNDS = Number(process.env.HANFS_CRASH_ROUNDS ?? 5);
const SEED = Number(process.env.HANFS_CRASH_SEED ?? 20261122);
const CHUNK = 16 * 1024;

/** Deterministic content of chunk k of file `name`. */
/** Like expectOk but an AssertionError, so a wrong status is told apart from a dropped connection. */
function ok<T extends { status: number }>(r: T, what: string): T {
  assert.equal(r.status, NfsStat.OK, `${what}: NFS status ${r.status}`);
  return r;
}

function chunk(name: string, k: number): Buffer {
  const b = Buffer.alloc(CHUNK);
  let x = k * 2654435761;
  for (let i = 0; i < name.length; i++) x = Math.imul(x ^ name.charCodeAt(i), 16777619);
  for (let i = 0; i < CHUNK; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

interface Ledger {
  /** file name -> number of leading chunks acknowledged stable */
  stableChunks: Map<string, number>;
  /** names whose CREATE was acknowledged (CREATE is a synchronous metadata operation in NFSv3) */
  created: Set<string>;
}

async function syncWriter(nfs: Nfs3Client, dir: Fh, name: string, ledger: Ledger, stop: () => boolean): Promise<void> {
  const fh = ok(await nfs.create(dir, name, CreateMode.GUARDED, { mode: 0o644 }), `CREATE ${name}`).resok!.obj.handle!.data;
  ledger.created.add(name);
  ledger.stableChunks.set(name, 0);
  for (let k = 0; !stop(); k++) {
    const r = ok(await nfs.write(fh, k * CHUNK, chunk(name, k), StableHow.FILE_SYNC), `WRITE ${name}`);
    assert.equal(r.resok!.committed, StableHow.FILE_SYNC, 'FILE_SYNC write acknowledged as FILE_SYNC');
    ledger.stableChunks.set(name, k + 1);
  }
}

async function unstableWriter(nfs: Nfs3Client, dir: Fh, name: string, ledger: Ledger, stop: () => boolean, verfs: Buffer[]): Promise<void> {
  const fh = ok(await nfs.create(dir, name, CreateMode.GUARDED, { mode: 0o644 }), `CREATE ${name}`).resok!.obj.handle!.data;
  ledger.created.add(name);
  ledger.stableChunks.set(name, 0);
  for (let k = 0; !stop(); ) {
    const batch = 4;
    const writes = [];
    for (let j = 0; j < batch; j++) writes.push(nfs.write(fh, (k + j) * CHUNK, chunk(name, k + j), StableHow.UNSTABLE));
    const rs = await Promise.all(writes);
    for (const r of rs) verfs.push(Buffer.from(ok(r, `WRITE ${name}`).resok!.verf));
    const c = ok(await nfs.commit(fh, 0, 0), `COMMIT ${name}`).resok!;
    const cv = Buffer.from(c.verf);
    // a COMMIT whose verifier matches the writes' makes them stable
    if (rs.every((r) => Buffer.from(r.resok!.verf).equals(cv))) ledger.stableChunks.set(name, k + batch);
    k += batch;
  }
}

async function creator(nfs: Nfs3Client, dir: Fh, prefix: string, ledger: Ledger, stop: () => boolean): Promise<void> {
  for (let i = 0; !stop(); i++) {
    const name = `${prefix}-${i}`;
    const r = await nfs.create(dir, name, CreateMode.GUARDED, { mode: 0o600 });
    ok(r, `CREATE ${name}`);
    ledger.created.add(name);
  }
}

async function verify(nfs: Nfs3Client, dir: Fh, ledger: Ledger): Promise<{ files: number; bytes: number }> {
  let bytes = 0;
  for (const name of ledger.created) {
    const l = await nfs.lookup(dir, name);
    assert.equal(l.status, NfsStat.OK, `acknowledged CREATE of ${name} lost (LOOKUP status ${l.status})`);
  }
  for (const [name, n] of ledger.stableChunks) {
    if (n === 0) continue;
    const fh = expectOk(await nfs.lookup(dir, name), `LOOKUP ${name}`).resok!.object.data;
    const size = expectOk(await nfs.getattr(fh)).resok!.objAttributes.size;
    assert.ok(size >= BigInt(n * CHUNK), `${name}: size ${size} < ${n * CHUNK} acknowledged stable bytes`);
    const data = await nfs.readAll(fh, n * CHUNK, CHUNK, 8);
    for (let k = 0; k < n; k++) {
      if (!data.subarray(k * CHUNK, (k + 1) * CHUNK).equals(chunk(name, k))) {
        assert.fail(`${name}: chunk ${k} (of ${n} acknowledged stable) has wrong bytes after the crash`);
      }
    }
    bytes += n * CHUNK;
  }
  return { files: ledger.stableChunks.size, bytes };
}

describe('crash safety: SIGKILL during stable writes, COMMITs and CREATEs', function () {
  this.timeout(15 * 60_000);
  let d: Daemon;
  let s: Session | null = null;

  before(async () => {
    d = await Daemon.start();
  });
  after(async () => {
    s?.close();
    await d?.stop();
  });

  it(`survives ${ROUNDS} SIGKILLs at random moments with every stable acknowledgement intact`, async () => {
    const rand = rng(SEED);
    const ledger: Ledger = { stableChunks: new Map(), created: new Set() };
    s = await openSession(d);
    const dir = expectOk(await s.nfs.mkdir(s.root, 'crash', { mode: 0o755 })).resok!.obj.handle!.data;
    const root = s.root;
    for (let round = 0; round < ROUNDS; round++) {
      let stopped = false;
      const stop = () => stopped;
      const verfs: Buffer[] = [];
      const work = [
        syncWriter(s.nfs, dir, `sync-${round}-a`, ledger, stop),
        syncWriter(s.nfs, dir, `sync-${round}-b`, ledger, stop),
        unstableWriter(s.nfs, dir, `unstable-${round}`, ledger, stop, verfs),
        creator(s.nfs, dir, `c-${round}`, ledger, stop),
      ].map((p) => p.catch((e: Error) => e));
      const killAfter = 300 + Math.floor(rand() * 1700);
      await sleep(killAfter);
      stopped = true;
      await d.kill('SIGKILL');
      const results = await Promise.all(work);
      // errors are expected (the connection died); assertion failures are not
      for (const r of results) if (r instanceof assert.AssertionError) throw r;
      const before = new Set(verfs.map((v) => v.toString('hex')));
      s.close();

      await d.spawn();
      s = await openSession(d);
      assert.deepEqual(Buffer.from(s.root), Buffer.from(root), 'root handle survives the crash');
      const v = await verify(s.nfs, dir, ledger);
      // the write verifier must change: UNSTABLE data of the previous incarnation may be lost
      const probe = expectOk(await s.nfs.create(s.root, `probe-${round}`, CreateMode.UNCHECKED, { mode: 0o644 })).resok!.obj.handle!.data;
      const w = expectOk(await s.nfs.write(probe, 0, chunk(`unstable-${round}`, 0), StableHow.UNSTABLE)).resok!;
      const after = Buffer.from(w.verf).toString('hex');
      if (before.size > 0) assert.ok(!before.has(after), `write verifier ${after} unchanged across SIGKILL + restart`);
      expectOk(await s.nfs.commit(probe, 0, 0));
      console.log(`      round ${round}: killed after ${killAfter} ms; ${ledger.created.size} creates, ${v.files} files / ${v.bytes} stable bytes verified`);
    }
    s.close();
    s = null;
    // fsck on the state a crash leaves behind, then after a clean stop
    await d.kill('SIGKILL');
    const f1 = await fsck(d.dataDir);
    assert.equal(f1.code, 0, `fsck after SIGKILL: exit ${f1.code}\n${f1.stdout}${f1.stderr}`);
    await d.spawn();
    s = await openSession(d);
    await verify(s.nfs, dir, ledger);
    s.close();
    s = null;
    await d.kill('SIGTERM');
    const f2 = await fsck(d.dataDir);
    assert.equal(f2.code, 0, `fsck after clean stop: exit ${f2.code}\n${f2.stdout}${f2.stderr}`);
  });
});
