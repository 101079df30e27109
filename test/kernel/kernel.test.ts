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
import { TestCluster } from '../support/cluster';
import { testExport } from '../support/daemon';
import { REPO_ROOT, run, tmpDir, rmrf } from '../support/util';

const KC_DIR = process.env.HANFS_KERNEL_CLIENT_DIR ?? path.resolve(REPO_ROOT, '..', 'shared', 'kernel-client');
const SCRIPT = path.join(REPO_ROOT, 'test', 'kernel', 'workload.sh');

describe('Linux kernel NFSv3 client in a QEMU guest, on a 3-node cluster', function () {
  this.timeout(60 * 60_000);
  let c: TestCluster;
  let runDir: string;

  before(async function () {
    if (!fs.existsSync(path.join(KC_DIR, 'run-guest.sh'))) throw new Error(`kernel-client harness not found at ${KC_DIR} (HANFS_KERNEL_CLIENT_DIR)`);
    // the guest is root; without root squash cp -a can keep owners
    c = await TestCluster.start({ logLevel: 'warn', exports: [testExport({ path: '/export', rootSquash: false })] });
    await c.servingLeader(60_000);
    runDir = tmpDir('kc');
  });
  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed && c) console.log(c.logs());
    await c?.destroy(failed || process.env.HANFS_KEEP_TEST_DIRS === '1');
    if (runDir && process.env.HANFS_KEEP_TEST_DIRS !== '1') rmrf(runDir);
  });

  it('mounts with the printed command and passes the workload; replicas identical, every store fsck-clean afterwards', async () => {
    const leader = await c.servingLeader();
    const printed = await c.printedMountCommand(leader);
    assert.ok(printed, `node ${leader} printed no mount command:\n${c.node(leader).output.slice(0, 2000)}`);
    assert.match(printed!, new RegExp(`port=${c.nfsPort}\\b`));
    assert.match(printed!, new RegExp(`mountport=${c.mountPort}\\b`));
    const t0 = Date.now();
    const r = await run(path.join(KC_DIR, 'run-guest.sh'), [SCRIPT], {
      timeoutMs: 55 * 60_000,
      env: {
        ...process.env,
        NFS_PORT: String(c.nfsPort),
        MOUNT_PORT: String(c.mountPort),
        EXPORT: '/export',
        KC_RUN_DIR: runDir,
        KC_TIMEOUT: String(50 * 60),
        KC_SCRATCH_GB: '0',
        KC_ENV_PASS: 'HANFS_MOUNT_CMD HANFS_KC_BIG_MB HANFS_KC_SMALL_FILES HANFS_KC_FIO_MB',
        HANFS_MOUNT_CMD: printed!,
      },
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
    const st = await c.status(await c.servingLeader());
    await c.waitApplied(st!.commit, 120_000);
    const v = await c.verify();
    assert.equal(v.code, 0, `hanfs verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /replicas identical/);
    await c.stopAll('SIGTERM');
    for (const n of c.nodes) {
      const f = await c.fsck(n.id);
      assert.equal(f.code, 0, `fsck node ${n.id}: ${f.stdout}${f.stderr}`);
    }
  });
});
