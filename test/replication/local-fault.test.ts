/**
 * A local fault on one replica: its store fills up (ENOSPC on a data file) while the others have
 * room. That node must stop applying and serving and say why — never answer NOSPC where the other
 * replicas answer OK, never store something other than they do — and the cluster goes on with the
 * others: the client's write succeeds.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { CreateMode, expectOk, StableHow } from '../../src/nfs/client';
import { FailoverClient, TestCluster } from '../support/cluster';
import { CLI, run, sleep } from '../support/util';

const SMALL = 3;

function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = fs.mkdtempSync('/tmp/hanfs-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

function healthz(port: number): Promise<number> {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

describe('cluster: a replica whose disk fills up stops; the others go on', function () {
  this.timeout(180_000);
  let c: TestCluster | undefined;
  let mounted: string | undefined;

  before(function () {
    if (!canMount()) this.skip();
  });

  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed && c) console.log(c.logs());
    await c?.stopAll('SIGKILL');
    if (mounted) execFileSync('umount', ['-l', mounted], { stdio: 'ignore' });
    await c?.destroy(failed);
  });

  it('ENOSPC in one node\'s store: that node fails stop with the reason, the write succeeds on the majority', async () => {
    c = await TestCluster.start({
      logLevel: 'info',
      // node 3's store lives on a 12 MiB tmpfs (its Raft log on the ordinary disk)
      prepare: (id, dataDir) => {
        if (id !== SMALL) return;
        const store = path.join(dataDir, 'store');
        fs.mkdirSync(store, { recursive: true });
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', store]);
        mounted = store;
      },
    });
    await c.servingLeader();
    const cl = await FailoverClient.connect(c);
    const r = await cl.call((nfs) => nfs.create(cl.root, 'big', CreateMode.UNCHECKED, { mode: 0o644 }));
    expectOk(r, 'create');
    const fh = r.resok!.obj.handle!.data;
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    for (let i = 0; i < 24; i++) {
      const w = await cl.call((nfs) => nfs.write(fh, i * chunk.length, chunk, StableHow.FILE_SYNC));
      expectOk(w, `write ${i}: every write succeeds (NOSPC is the full node's own fault, not an answer)`);
    }
    const back = expectOk(await cl.call((nfs) => nfs.read(fh, 23 * chunk.length, 16)), 'read');
    assert.ok(Buffer.from(back.resok!.data).equals(chunk.subarray(0, 16)));

    let st = await c.status(SMALL);
    for (let i = 0; i < 50 && !st?.failure; i++) {
      await sleep(100);
      st = await c.status(SMALL);
    }
    assert.ok(st?.failure, 'the full node reports a failure');
    assert.match(String(st!.failure), /ENOSPC|no space/i);
    assert.equal(st!.serving, false);
    assert.equal(await healthz(c.node(SMALL).adminPort), 503, '/healthz says unhealthy');
    const leader = await c.servingLeader();
    assert.notEqual(leader, SMALL);
    // the two healthy replicas are identical
    const others = c.nodes.filter((n) => n.id !== SMALL);
    const v = await run(process.execPath, [CLI, 'verify', '--admin', others.map((n) => `127.0.0.1:${n.adminPort}`).join(',')], { timeoutMs: 120_000 });
    assert.equal(v.code, 0, `${v.stdout}${v.stderr}`);
    cl.close();
  });
});
