/**
 * The stock Linux NFS client (Debian 12's 6.1 kernel in a QEMU guest, /work/shared/kernel-client)
 * mounts a 3-node hanfs cluster's service address with the command the cluster prints and runs
 * test/kernel/workload.sh; then `hanfs verify` finds the replicas identical and `hanfs fsck` is clean
 * on every node's store after a SIGTERM stop. (A single daemon is a one-node cluster: the same code
 * path, covered by the other suites; the guest run is too slow to do twice.)
 * Slow under TCG (no KVM here): run with `npm run test:kernel` (or HANFS_TEST_KERNEL=1 npm test).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestCluster } from '../support/cluster';
import { REPO_ROOT, run, tmpDir, rmrf } from '../support/util';
import { RUN_GUEST, guestEnv, printedMount, startGuestCluster } from './guest';

const SCRIPT = path.join(REPO_ROOT, 'test', 'kernel', 'workload.sh');

describe('Linux kernel NFSv3 client in a QEMU guest, on a 3-node cluster', function () {
  this.timeout(60 * 60_000);
  let c: TestCluster;
  let runDir: string;

  before(async function () {
    // (root not squashed: cp -a can keep owners)
    c = await startGuestCluster();
    runDir = tmpDir('kc');
  });
  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed && c) console.log(c.logs());
    await c?.destroy(failed || process.env.HANFS_KEEP_TEST_DIRS === '1');
    if (runDir && process.env.HANFS_KEEP_TEST_DIRS !== '1') rmrf(runDir);
  });

  it('mounts with the printed command and passes the workload; replicas identical, every store fsck-clean afterwards', async () => {
    const printed = await printedMount(c, await c.servingLeader());
    const t0 = Date.now();
    const r = await run(RUN_GUEST, [SCRIPT], {
      timeoutMs: 55 * 60_000,
      env: guestEnv(c, runDir, printed, 50 * 60, { KC_ENV_PASS: 'HANFS_MOUNT_CMD HANFS_KC_BIG_MB HANFS_KC_SMALL_FILES HANFS_KC_FIO_MB' }),
    });
    const secs = ((Date.now() - t0) / 1000).toFixed(0);
    const results = fs.existsSync(path.join(runDir, 'out', 'results.txt')) ? fs.readFileSync(path.join(runDir, 'out', 'results.txt'), 'utf8') : '';
    console.log(`      guest run took ${secs} s\n${results.replace(/^/gm, '      ')}`);
    const log = fs.existsSync(path.join(runDir, 'out', 'script.log')) ? fs.readFileSync(path.join(runDir, 'out', 'script.log'), 'utf8') : '';
    assert.equal(r.code, 0, `guest exit ${r.code}\n${results || log.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    assert.match(results, /PASS mount/);
    assert.doesNotMatch(results, /^FAIL/m);
    for (const n of c.nodes) assert.ok(n.running, `node ${n.id} still running after the workload`);
    // every replica has applied what the leader committed, and they are identical
    await c.expectIdentical(120_000);
    await c.expectStoresClean();
  });
});
