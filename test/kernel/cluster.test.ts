/**
 * The stock Linux NFSv3 client (Debian 12's 6.1 kernel in a QEMU guest, /work/shared/kernel-client)
 * mounts a 3-node hanfs cluster's service address `hard`, with the command the cluster prints, and
 * runs test/kernel/failover-workload.sh (fio with crc32c verification and git clone --no-local of a
 * bare repository made here + git fsck, side by side; a heartbeat write every 100 ms) while this test SIGKILLs the Raft leader KILLS times, restarting each
 * killed node a few seconds later. Then: guest exit 0 (no I/O error, no verify failure, fsck clean),
 * `hanfs verify` finds the replicas identical, and `hanfs fsck` is clean on every node after a
 * SIGTERM stop. Prints the client-visible stall per kill (largest heartbeat gap after it).
 * Slow under TCG (no KVM here): `npm run test:kernel`, or part of `npm test` unless HANFS_TEST_KERNEL=0.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestCluster } from '../support/cluster';
import { REPO_ROOT, run, rmrf, sleep, tmpDir } from '../support/util';
import { RUN_GUEST, guestEnv, printedMount, startGuestCluster } from './guest';

const SCRIPT = path.join(REPO_ROOT, 'test', 'kernel', 'failover-workload.sh');
const KILLS = Number(process.env.HANFS_KC_KILLS ?? 3);
/** appended to the printed mount options (none by default: the command the cluster prints is what
 * is tested; it carries timeo=30,retrans=2, see CLUSTER_MOUNT_OPTIONS) */
const MOUNT_OPTS = process.env.HANFS_KC_MOUNT_OPTS ?? '';

/** bash -c MAKE_REPO make-repo DIR: DIR/repo.git, a bare repository of 40 commits */
const MAKE_REPO = `set -e
export GIT_AUTHOR_NAME=hanfs GIT_AUTHOR_EMAIL=hanfs@example.invalid GIT_COMMITTER_NAME=hanfs GIT_COMMITTER_EMAIL=hanfs@example.invalid
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null
w="$1/work"
git init -q "$w"
for i in $(seq 1 40); do
  seq 1 $((i * 150)) > "$w/file$((i % 7)).txt"
  head -c 6000 /dev/urandom | base64 > "$w/blob$((i % 13)).txt"
  mkdir -p "$w/dir$((i % 5))" && echo "$i" > "$w/dir$((i % 5))/n$i"
  git -C "$w" add -A && git -C "$w" commit -q -m "commit $i"
done
git clone -q --bare "$w" "$1/repo.git"
rm -rf "$w"`;

interface Kill {
  node: number;
  /** host clock, ms */
  at: number;
  /** until another node served the service address, ms */
  electedMs: number;
}

/** heartbeat stalls: per kill, the largest gap between two heartbeat lines ending after the kill
 * (and before the next one); guest times are mapped onto the host clock by `offsetMs` */
export function stallsPerKill(hb: string, kills: Kill[], offsetMs: number): { baselineMs: number; stallsMs: number[] } {
  const ts = hb
    .split('\n')
    .filter((l) => /^\d+\.\d+$/.test(l.trim()))
    .map((l) => Number(l) * 1000 - offsetMs);
  const gaps: { end: number; ms: number }[] = [];
  for (let i = 1; i < ts.length; i++) gaps.push({ end: ts[i], ms: ts[i] - ts[i - 1] });
  const before = gaps.filter((g) => kills.length === 0 || g.end < kills[0].at - 500).map((g) => g.ms).sort((a, b) => a - b);
  const baselineMs = before.length ? before[Math.floor(before.length / 2)] : NaN;
  const stallsMs = kills.map((k, i) => {
    const from = k.at - 500;
    const to = i + 1 < kills.length ? kills[i + 1].at - 500 : Infinity;
    return Math.max(0, ...gaps.filter((g) => g.end > from && g.end <= to).map((g) => g.ms));
  });
  return { baselineMs, stallsMs };
}

describe('Linux kernel NFSv3 client on a 3-node cluster while the leader is SIGKILLed', function () {
  this.timeout(60 * 60_000);
  let c: TestCluster;
  let runDir: string;

  before(async function () {
    // (root not squashed: git and fio work as they would on a local disk)
    c = await startGuestCluster();
    runDir = tmpDir('kcc');
  });
  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed && c) console.log(c.logs());
    await c?.destroy(failed || process.env.HANFS_KEEP_TEST_DIRS === '1');
    if (runDir && !failed && process.env.HANFS_KEEP_TEST_DIRS !== '1') rmrf(runDir);
    else if (runDir) console.log(`      guest run folder kept: ${runDir}`);
  });

  it(`hard mount: fio --verify=crc32c and git clone + fsck across ${KILLS} leader kills; replicas identical, stores fsck-clean`, async () => {
    const printed = await printedMount(c, 1);
    assert.match(printed, /\bhard,timeo=30,retrans=2\b/);
    // the repository the guest clones: 40 commits of text files, made here (the guest is slow)
    const share = path.join(runDir, 'share');
    fs.mkdirSync(share);
    const mk = await run('bash', ['-c', MAKE_REPO, 'make-repo', share], { timeoutMs: 120_000 });
    assert.equal(mk.code, 0, `making the repository: ${mk.stdout}${mk.stderr}`);
    const out = path.join(runDir, 'out');
    const t0 = Date.now();
    let guestDone = false;
    const guest = run(RUN_GUEST, [SCRIPT], {
      timeoutMs: 40 * 60_000,
      env: guestEnv(c, runDir, printed, 35 * 60, {
        KC_SHARE_DIR: share,
        KC_ENV_PASS: 'HANFS_MOUNT_CMD HANFS_KC_MOUNT_OPTS HANFS_KC_FIO_MB HANFS_KC_MAX_ROUNDS',
        HANFS_KC_MOUNT_OPTS: MOUNT_OPTS,
      }),
    }).finally(() => (guestDone = true));

    // wait until the guest has mounted and its workload runs; map its clock onto ours
    const startedFile = path.join(out, 'started');
    while (!fs.existsSync(startedFile) && !guestDone && Date.now() - t0 < 20 * 60_000) await sleep(100);
    const startedAt = Date.now();
    let offsetMs = 0;
    if (fs.existsSync(startedFile)) offsetMs = Number(fs.readFileSync(startedFile, 'utf8').trim()) * 1000 - startedAt;
    const bootSecs = ((startedAt - t0) / 1000).toFixed(0);

    const kills: Kill[] = [];
    let killError = '';
    try {
      for (let k = 0; k < KILLS && !guestDone; k++) {
        await sleep(k === 0 ? 6000 : 4000);
        if (guestDone) break;
        const leader = await c.servingLeader();
        const at = Date.now();
        await c.kill(leader, 'SIGKILL');
        await c.servingLeader(60_000);
        kills.push({ node: leader, at, electedMs: Date.now() - at });
        await sleep(3000);
        c.spawn(c.node(leader));
        // the restarted node has caught up before the next kill (so two nodes always hold the log)
        const st = await c.status(await c.servingLeader());
        await c.waitApplied(st!.commit, 120_000);
      }
    } catch (e) {
      killError = (e as Error).message;
    }
    const killsDoneWhileGuestRan = !guestDone;
    fs.writeFileSync(path.join(out, 'kills-done'), `${Date.now()}\n`);
    const r = await guest;
    const secs = ((Date.now() - t0) / 1000).toFixed(0);

    const read = (f: string) => (fs.existsSync(path.join(out, f)) ? fs.readFileSync(path.join(out, f), 'utf8') : '');
    const results = read('results.txt');
    const { baselineMs, stallsMs } = stallsPerKill(read('hb.log'), kills, offsetMs);
    console.log(`      guest run took ${secs} s (boot + mount ${bootSecs} s); mount options +${MOUNT_OPTS || '(none)'}`);
    console.log(`${results.replace(/^/gm, '      ')}`);
    console.log(`      heartbeat: median gap before the first kill ${baselineMs.toFixed(0)} ms (a 100 ms pause + one small file rewritten on the mount)`);
    kills.forEach((k, i) =>
      console.log(`      kill ${i + 1}: node ${k.node} SIGKILLed; another node served after ${k.electedMs} ms; client-visible stall ${stallsMs[i].toFixed(0)} ms`),
    );

    const log = read('script.log');
    assert.equal(r.code, 0, `guest exit ${r.code}\n${results || log.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    assert.equal(killError, '', `killing leaders: ${killError}`);
    assert.equal(kills.length, KILLS, `only ${kills.length} of ${KILLS} kills happened while the guest ran`);
    assert.ok(killsDoneWhileGuestRan, 'the guest finished before all kills were done');
    assert.match(results, /PASS mount/);
    assert.match(results, /PASS fio-round-1 /);
    assert.match(results, /PASS git-round-1 /);
    assert.match(results, /PASS all-clones-fsck-cold/);
    assert.match(results, /PASS heartbeat/);
    assert.match(results, /PASS umount/);
    assert.doesNotMatch(results, /^FAIL/m);
    assert.ok(stallsMs.every((s) => s > 0), 'the heartbeat saw every kill window');

    // every node up again: the replicas converge and are identical
    for (const n of c.nodes) if (!n.running) c.spawn(n);
    await c.expectIdentical(120_000);
    await c.expectStoresClean();
  });
});
