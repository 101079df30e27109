/**
 * `hanfs local-cluster` (npm start) with stand-in node processes (a script that records the signals it
 * gets): Ctrl-C, i.e. SIGINT to the terminal's whole foreground process group, stops every node with
 * exactly one signal (a node's second signal means "exit at once", skipping its graceful stop); the
 * command exits 0 then, and 1 when a node exits on its own with a failure.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, rmrf, sleep, tmpDir } from '../support/util';

const LOCAL_CLUSTER = path.join(REPO_ROOT, 'dist', 'src', 'replication', 'local-cluster.js');

/** a stand-in for `hanfs serve --config F`: records each signal in F.signals, exits 0 300 ms after the first */
const RECORDER = `
const fs = require('node:fs');
const out = process.argv[4] + '.signals';
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => { fs.appendFileSync(out, s + '\\n'); setTimeout(() => process.exit(0), 300); });
fs.writeFileSync(process.argv[4] + '.pid', String(process.pid));
setInterval(() => {}, 1000);
`;

describe('hanfs local-cluster: signals and exit status', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  const pids: number[] = [];
  after(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // (gone)
      }
    }
    dirs.forEach(rmrf);
  });

  function start(script: string): { dir: string; exit: Promise<number | null>; pid: number } {
    const dir = tmpDir('local-cluster');
    dirs.push(dir);
    const cli = path.join(dir, 'node.js');
    fs.writeFileSync(cli, script);
    const layout = { dataDir: path.join(dir, 'data'), nodes: 3, nfsPort: 0, mountPort: 0, peerBase: 1, adminBase: 1, logLevel: 'silent' };
    const driver = `require(${JSON.stringify(LOCAL_CLUSTER)}).localCluster(${JSON.stringify(cli)}, ${JSON.stringify(layout)}).then((c) => process.exit(c))`;
    // (a process group of its own, as a shell gives a foreground job)
    const p = spawn(process.execPath, ['-e', driver], { stdio: 'ignore', detached: true });
    pids.push(p.pid!);
    return { dir, pid: p.pid!, exit: new Promise((r) => p.once('exit', (code) => r(code))) };
  }

  it('Ctrl-C (SIGINT to the whole group) stops each node with exactly one signal; exit status 0', async () => {
    const { dir, exit, pid } = start(RECORDER);
    const cfg = (i: number) => path.join(dir, 'data', `node${i}`, 'hanfs.json');
    for (let i = 0; i < 200 && ![1, 2, 3].every((n) => fs.existsSync(`${cfg(n)}.pid`)); i++) await sleep(25);
    for (const n of [1, 2, 3]) pids.push(Number(fs.readFileSync(`${cfg(n)}.pid`, 'utf8')));
    process.kill(-pid, 'SIGINT');
    const code = await Promise.race([exit, sleep(10_000).then(() => 'still running')]);
    assert.equal(code, 0);
    for (const n of [1, 2, 3]) {
      const got = fs.readFileSync(`${cfg(n)}.signals`, 'utf8').trim().split('\n');
      assert.equal(got.length, 1, `node ${n} got ${got.join(', ')}`);
    }
  });

  it('SIGKILL of local-cluster itself: every node stops by itself (its IPC channel closed), no orphans', async () => {
    // a stand-in that stops as \`hanfs serve\` does when its parent's channel closes
    const script = RECORDER + `
process.on('disconnect', () => { fs.appendFileSync(out, 'disconnect\\n'); setTimeout(() => process.exit(0), 100); });
`;
    const { dir, pid } = start(script);
    const cfg = (i: number) => path.join(dir, 'data', `node${i}`, 'hanfs.json');
    for (let i = 0; i < 200 && ![1, 2, 3].every((n) => fs.existsSync(`${cfg(n)}.pid`)); i++) await sleep(25);
    const nodes = [1, 2, 3].map((n) => Number(fs.readFileSync(`${cfg(n)}.pid`, 'utf8')));
    pids.push(...nodes);
    process.kill(pid, 'SIGKILL');
    const alive = (p: number): boolean => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && nodes.some(alive); i++) await sleep(50);
    assert.deepEqual(nodes.filter(alive), [], 'nodes still running after local-cluster was killed');
    for (const n of [1, 2, 3]) assert.equal(fs.readFileSync(`${cfg(n)}.signals`, 'utf8').trim(), 'disconnect');
  });

  it('exits 1 when the nodes fail', async () => {
    const { exit } = start('process.exit(3)');
    const code = await Promise.race([exit, sleep(10_000).then(() => 'still running')]);
    assert.equal(code, 1);
  });
});
