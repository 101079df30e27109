/**
 * The stock Linux NFS client (Debian 12's 6.1 kernel in a QEMU guest, /work/shared/kernel-client)
 * mounts hanfs with the command the daemon prints and runs test/kernel/workload.sh; then fsck.
 * Slow under TCG (no KVM here): run with `npm run test:kernel` (or HANFS_TEST_KERNEL=1 npm test).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon, fsck, testExport } from '../support/daemon';
import { REPO_ROOT, run, tmpDir, rmrf } from '../support/util';

const KC_DIR = process.env.HANFS_KERNEL_CLIENT_DIR ?? path.resolve(REPO_ROOT, '..', 'shared', 'kernel-client');
const SCRIPT = path.join(REPO_ROOT, 'test', 'kernel', 'workload.sh');

describe('Linux kernel NFSv3 client in a QEMU guest', function () {
  this.timeout(60 * 60_000);
  let d: Daemon;
  let runDir: string;

  before(async function () {
    if (!fs.existsSync(path.join(KC_DIR, 'run-guest.sh'))) throw new Error(`kernel-client harness not found at ${KC_DIR} (HANFS_KERNEL_CLIENT_DIR)`);
    // the guest is root; without root squash cp -a can keep owners
    d = await Daemon.start({ exports: [testExport({ path: '/export', rootSquash: false })], logLevel: 'warn' });
    runDir = tmpDir('kc');
  });
  after(async () => {
    await d?.stop();
    if (runDir && process.env.HANFS_KEEP_TEST_DIRS !== '1') rmrf(runDir);
  });

  it('mounts with the printed command and passes the workload; fsck is clean afterwards', async () => {
    const printed = d.printedMountCommand();
    assert.ok(printed, `the daemon printed no mount command:\n${d.output.slice(0, 2000)}`);
    assert.match(printed!, new RegExp(`port=${d.nfsPort}`));
    assert.match(printed!, new RegExp(`mountport=${d.mountPort}`));
    const t0 = Date.now();
    const r = await run(path.join(KC_DIR, 'run-guest.sh'), [SCRIPT], {
      timeoutMs: 55 * 60_000,
      env: {
        ...process.env,
        NFS_PORT: String(d.nfsPort),
        MOUNT_PORT: String(d.mountPort),
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
    assert.ok(d.running, 'daemon still running after the workload');
    await d.kill('SIGTERM');
    const f = await fsck(d.dataDir);
    assert.equal(f.code, 0, `fsck: ${f.stdout}${f.stderr}`);
  });
});
