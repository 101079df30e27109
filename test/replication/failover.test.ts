/**
 * Three real node processes, real storage and TCP; the leader is SIGKILLed again and again while
 * clients work. Nothing a client was told is stable may be lost; after the run the replicas are
 * identical (`hanfs verify`) and every store is clean (`hanfs fsck`).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateMode, expectOk, StableHow, type Nfs3Client } from '../../src/nfs/client';
import { FailoverClient, TestCluster } from '../support/cluster';
import { commandExists, rng, randomBytesSeeded, run, sha256, sha256File, sleep } from '../support/util';
import { encodeAuthSys } from '../../src/nfs/auth';
import { callMsg, RawTcpClient, xdrStr, u32be, successBody } from '../rpc/helpers';

const CHUNK = 4096;

function chunk(file: number, i: number): Buffer {
  return randomBytesSeeded(rng(file * 1_000_003 + i + 1), CHUNK);
}

async function createFile(cl: FailoverClient, name: string): Promise<Uint8Array> {
  const r = await cl.call((nfs) => nfs.create(cl.root, name, CreateMode.UNCHECKED, { mode: 0o644 }));
  expectOk(r, 'create');
  return r.resok!.obj.handle!.data;
}

async function readAll(nfs: Nfs3Client, fh: Uint8Array, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += 1 << 20) {
    const r = expectOk(await nfs.read(fh, off, Math.min(1 << 20, size - off)), 'read');
    parts.push(Buffer.from(r.resok!.data));
  }
  return Buffer.concat(parts);
}

describe('cluster: SIGKILL of the leader while clients write', function () {
  this.timeout(600_000);
  let c: TestCluster;

  before(async () => {
    c = await TestCluster.start({ logLevel: 'warn' });
    await c.servingLeader();
  });

  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed) console.log(c?.logs());
    await c?.destroy(failed);
  });

  it('FILE_SYNC and UNSTABLE+COMMIT writers: 3 leader kills and a follower kill (each restarted), every acknowledged stable byte is there', async () => {
    const cl = await FailoverClient.connect(c);
    const cl2 = await FailoverClient.connect(c);
    const syncFh = await createFile(cl, 'sync.bin');
    const unstableFh = await createFile(cl2, 'unstable.bin');
    const stableSync = new Set<number>();
    const stableUnstable = new Set<number>();
    const gaps: number[] = [];
    let last = Date.now();
    const seen = () => {
      const now = Date.now();
      gaps.push(now - last);
      last = now;
    };
    let stop = false;
    const syncWriter = (async () => {
      for (let i = 0; !stop && i < 50_000; i++) {
        const data = chunk(1, i);
        const r = await cl.call((nfs) => nfs.write(syncFh, i * CHUNK, data, StableHow.FILE_SYNC));
        expectOk(r, 'write');
        assert.equal(r.resok!.count, CHUNK);
        assert.ok(r.resok!.committed >= StableHow.DATA_SYNC, 'a FILE_SYNC write is answered stable');
        stableSync.add(i);
        seen();
      }
    })();
    // UNSTABLE batches of 8 then COMMIT; a verifier change means: resend the batch (RFC 1813 3.3.7)
    const unstableWriter = (async () => {
      for (let b = 0; !stop && b < 5000; b++) {
        for (let attempt = 0; ; attempt++) {
          assert.ok(attempt < 20, 'a batch committed within 20 attempts');
          const verfs: string[] = [];
          const stableNow: number[] = [];
          for (let k = 0; k < 8; k++) {
            const i = b * 8 + k;
            const r = await cl2.call((nfs) => nfs.write(unstableFh, i * CHUNK, chunk(2, i), StableHow.UNSTABLE));
            expectOk(r, 'write');
            if (r.resok!.committed !== StableHow.UNSTABLE) stableNow.push(i);
            verfs.push(Buffer.from(r.resok!.verf).toString('hex'));
          }
          const cm = await cl2.call((nfs) => nfs.commit(unstableFh));
          expectOk(cm, 'commit');
          for (const i of stableNow) stableUnstable.add(i);
          const cv = Buffer.from(cm.resok!.verf).toString('hex');
          if (verfs.every((v) => v === cv)) {
            for (let k = 0; k < 8; k++) stableUnstable.add(b * 8 + k);
            break;
          }
        }
      }
    })();
    const kills: number[] = [];
    for (let k = 0; k < 3; k++) {
      await sleep(2000);
      const leader = await c.servingLeader();
      kills.push(leader);
      await c.kill(leader, 'SIGKILL');
      await c.servingLeader();
      await sleep(500);
      c.spawn(c.node(leader));
    }
    // a follower killed and restarted while the writers go on catches up from the log
    const leaderNow = await c.servingLeader();
    const follower = c.nodes.find((n) => n.id !== leaderNow)!;
    await c.kill(follower.id, 'SIGKILL');
    await sleep(1500);
    c.spawn(follower);
    await sleep(1500);
    stop = true;
    await Promise.all([syncWriter, unstableWriter]);
    assert.ok(stableSync.size > 50, `FILE_SYNC writes went on (${stableSync.size})`);
    assert.ok(stableUnstable.size > 50, `UNSTABLE+COMMIT writes went on (${stableUnstable.size})`);

    // every acknowledged chunk reads back as written, from the leader of now
    const n1 = Math.max(...stableSync) + 1;
    const got1 = await cl.call((nfs) => readAll(nfs, syncFh, n1 * CHUNK));
    for (const i of stableSync) assert.ok(got1.subarray(i * CHUNK, (i + 1) * CHUNK).equals(chunk(1, i)), `FILE_SYNC chunk ${i} intact`);
    const n2 = Math.max(...stableUnstable) + 1;
    const got2 = await cl2.call((nfs) => readAll(nfs, unstableFh, n2 * CHUNK));
    for (const i of stableUnstable) assert.ok(got2.subarray(i * CHUNK, (i + 1) * CHUNK).equals(chunk(2, i)), `committed chunk ${i} intact`);
    cl.close();
    cl2.close();
    const sorted = [...gaps].sort((a, b) => a - b);
    console.log(
      `      kills of nodes ${kills.join(', ')}: ${stableSync.size} FILE_SYNC + ${stableUnstable.size} committed chunks; ` +
        `longest client-visible stalls ${sorted.slice(-3).join(', ')} ms`,
    );

    // all three up again: the replicas converge and are identical
    await c.expectIdentical();
  });

  it('a retransmitted REMOVE and RENAME that the old leader executed get OK from the new leader, not NOENT', async () => {
    const cl = await FailoverClient.connect(c);
    for (const name of ['drc-a', 'drc-b']) await createFile(cl, name);
    const root = Buffer.from(cl.root);
    const fh = Buffer.concat([u32be(root.length), root, Buffer.alloc((4 - (root.length % 4)) % 4)]);
    const removeArgs = Buffer.concat([fh, xdrStr('drc-a')]);
    const renameArgs = Buffer.concat([fh, xdrStr('drc-b'), fh, xdrStr('drc-c')]);
    const xid1 = 0x5eed0001;
    const xid2 = 0x5eed0002;
    const cred = encodeAuthSys({ stamp: 1, machine: 'client', uid: 0, gid: 0, gids: [] });
    const removeCall = callMsg(xid1, 100003, 3, 12, removeArgs, { cred });
    const renameCall = callMsg(xid2, 100003, 3, 14, renameArgs, { cred });
    const status = (r: Awaited<ReturnType<RawTcpClient["call"]>>) => successBody(r).readUInt32BE(0);

    const raw = await RawTcpClient.connect(c.nfsPort);
    assert.equal(status(await raw.call(removeCall)), 0, 'REMOVE executed');
    assert.equal(status(await raw.call(renameCall)), 0, 'RENAME executed');
    raw.close();
    cl.close();

    await c.kill(await c.servingLeader(), 'SIGKILL');
    await c.servingLeader();
    let raw2: RawTcpClient | undefined;
    for (let i = 0; i < 200 && !raw2; i++) raw2 = await RawTcpClient.connect(c.nfsPort).catch(() => sleep(50).then(() => undefined));
    assert.ok(raw2, 'reconnected to the service address');
    assert.equal(status(await raw2.call(removeCall)), 0, 'retransmitted REMOVE: OK (same answer as the old leader)');
    assert.equal(status(await raw2.call(renameCall)), 0, 'retransmitted RENAME: OK');
    const hits = ((await c.status(await c.servingLeader())) as unknown as { requestHits: number }).requestHits;
    assert.ok(hits >= 2, `answered from the replicated duplicate-request record (hits ${hits})`);
    // a new call (another xid) is executed, not answered from the record: the file is gone
    const fresh = callMsg(xid1 + 100, 100003, 3, 12, removeArgs, { cred });
    assert.equal(status(await raw2.call(fresh)), 2, 'a new REMOVE of the removed file: NOENT');
    raw2.close();
    for (const n of c.nodes) if (!n.running) c.spawn(n);
  });

  it('libnfs nfs-cp of a 64 MiB file across a leader kill: same sha256; then every store is fsck-clean', async function () {
    if (!commandExists('nfs-cp')) this.skip();
    const src = path.join(c.workDir, 'big.bin');
    fs.writeFileSync(src, randomBytesSeeded(rng(7), 64 << 20));
    const url = (name: string) => `nfs://127.0.0.1/export/${name}?version=3&nfsport=${c.nfsPort}&mountport=${c.mountPort}`;
    await c.servingLeader();
    const cp = run('nfs-cp', [src, url('big.bin')], { timeoutMs: 300_000 });
    await sleep(1500);
    const leader = await c.servingLeader();
    await c.kill(leader, 'SIGKILL');
    const r = await cp;
    assert.equal(r.code, 0, `nfs-cp: ${r.stderr}`);
    const back = path.join(c.workDir, 'back.bin');
    const cat = await run('nfs-cp', [url('big.bin'), back], { timeoutMs: 300_000 });
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(await sha256File(back), sha256(fs.readFileSync(src)));
    c.spawn(c.node(leader));
    await c.expectIdentical();
    await c.expectStoresClean();
  });
});
