/**
 * Catch-up bench: a 3-node cluster holding many files; a 4th node joins (`hanfs cluster join`) while
 * a writer runs. The log is compacted early (snapshotEntries 1000, no entries kept behind the
 * snapshot), so the new node catches up from a streamed store snapshot and then the log.
 *
 *   node dist/bench/catchup-bench.js [--files 10000] [--file-kib 64] [--conc 16] [--log-level info --keep] [--cpu-prof]
 *
 * --keep leaves the cluster's work folder (each node's log, e.g. node4's snapshot fetch and restore);
 * --cpu-prof runs every node under `node --cpu-prof` (profiles in the work folder's prof/, kept).
 *
 * Prints: the store's size, the catch-up time and rate against the disk's own `dd conv=fsync`
 * rate measured in the same run (the receiver writes what the sender reads: the disk bounds it) and
 * against a copy of node 1's store by `tar | tar` + `sync -f` (the same files by standard tools), the
 * writer's longest stall during the join, peak RSS per node, and `hanfs verify`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateMode, StableHow, expectOk } from '../src/nfs/client';
import { FailoverClient, TestCluster } from '../test/support/cluster';
import { CLI, freePorts, run } from '../test/support/util';
import { fmt, log, machineInfo, MiB, now, parseArgs, pool, procMem, sleep, table } from './lib/util';

const opts = parseArgs(process.argv.slice(2), { files: 10000, 'file-kib': 64, conc: 16, 'log-level': 'warn', keep: false, 'cpu-prof': false });

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir]).toString().split(/\s/)[0]);
}

async function main(): Promise<void> {
  const files = Number(opts.files);
  const fileBytes = Number(opts['file-kib']) * 1024;
  const profDir = path.join(os.tmpdir(), `hanfs-catchup-prof-${process.pid}`);
  if (opts['cpu-prof']) opts.keep = true;
  const c = await TestCluster.start({
    logLevel: String(opts['log-level']),
    snapshotEntries: 1000,
    catchUpEntries: 0,
    nodeArgs: opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  });
  const peak = new Map<number, number>();
  const sampler = setInterval(() => {
    for (const n of c.nodes) {
      if (!n.pid || !n.running) continue;
      const m = procMem(n.pid);
      if (m) peak.set(n.id, Math.max(peak.get(n.id) ?? 0, m.hwm, m.rss));
    }
  }, 100);
  try {
    // the disk's own rate, same run
    const ddFile = path.join(c.workDir, 'dd.bin');
    const t0 = now();
    execFileSync('dd', ['if=/dev/zero', `of=${ddFile}`, 'bs=1M', 'count=512', 'conv=fsync'], { stdio: 'ignore' });
    const ddMiBs = 512 / ((now() - t0) / 1000);
    fs.rmSync(ddFile, { force: true });

    await c.servingLeader();
    const cl = await FailoverClient.connect(c);
    log(`filling: ${files} files of ${fileBytes / 1024} KiB`);
    const data = Buffer.alloc(fileBytes, 0x6b);
    const tf = now();
    await pool(files, Number(opts.conc), async (i) => {
      const r = await cl.call((nfs) => nfs.create(cl.root, `f${i}`, CreateMode.UNCHECKED, { mode: 0o644 }));
      expectOk(r, 'create');
      const fh = r.resok!.obj.handle!.data;
      expectOk(await cl.call((nfs) => nfs.write(fh, 0, data, StableHow.UNSTABLE)), 'write');
    });
    log(`filled in ${((now() - tf) / 1000).toFixed(1)} s`);
    const storeBytes = duBytes(path.join(c.node(1).dir, 'data', 'store'));

    // the same files copied by standard tools on the same disk, the peer for a store of many small
    // files (dd measures one big sequential file): tar of node 1's store piped into tar, then
    // `sync -f` (syncfs) to make the copy durable. No writer runs meanwhile; the reading tar's exit
    // status is not checked (the store is live: a LevelDB file may change while read), the
    // extracting tar's and sync's are.
    const copyDir = path.join(c.workDir, 'tar-copy');
    fs.mkdirSync(copyDir);
    const tt = now();
    execFileSync('bash', ['-c', 'tar -C "$1" -cf - . | tar -C "$2" -xf - && sync -f "$2"', 'tar-copy', path.join(c.node(1).dir, 'data', 'store'), copyDir], { stdio: 'ignore' });
    const tarMs = now() - tt;
    fs.rmSync(copyDir, { recursive: true, force: true });
    log(`tar copy of node 1's store: ${(tarMs / 1000).toFixed(1)} s`);

    // node 4: joins while a writer runs
    const [peer, snap, admin] = await freePorts(3);
    const cfg1 = JSON.parse(fs.readFileSync(c.node(1).configPath, 'utf8')) as Record<string, any>;
    const dir = path.join(c.workDir, 'node4');
    fs.mkdirSync(dir, { recursive: true });
    const me = { id: 4, peer: `127.0.0.1:${peer}`, snapshot: `127.0.0.1:${snap}`, admin: `127.0.0.1:${admin}` };
    const node4 = c.addNode(4, dir, { ...cfg1, dataDir: path.join(dir, 'data'), admin: { host: '127.0.0.1', port: admin }, cluster: { ...cfg1.cluster, nodeId: 4, bootstrap: 'join', members: [...cfg1.cluster.members, me] } }, admin);
    c.spawn(node4);
    const wfh = expectOk(await cl.call((nfs) => nfs.create(cl.root, 'writer', CreateMode.UNCHECKED, { mode: 0o644 })), 'create').resok!.obj.handle!.data;
    let stop = false;
    let maxGap = 0;
    let writes = 0;
    const writer = (async () => {
      let last = now();
      for (let i = 0; !stop; i++) {
        expectOk(await cl.call((nfs) => nfs.write(wfh, (i % 4096) * 4096, Buffer.alloc(4096, i & 0xff), StableHow.FILE_SYNC)), 'write');
        const t = now();
        maxGap = Math.max(maxGap, t - last);
        last = t;
        writes++;
      }
    })();
    await sleep(500);
    const tj = now();
    const join = await run(process.execPath, [CLI, 'cluster', 'join', '--config', node4.configPath], { timeoutMs: 3_600_000 });
    const joinMs = now() - tj;
    stop = true;
    await writer;
    if (join.code !== 0) throw new Error(`join failed: ${join.stdout}${join.stderr}`);
    const st = await c.status(await c.servingLeader());
    await c.waitApplied(st!.commit, 120_000);
    const v = await c.verify();
    const received = duBytes(path.join(dir, 'data', 'store'));
    const rate = received / MiB / (joinMs / 1000);
    console.log(`\n### catch-up of a new node (${files} files x ${fileBytes / 1024} KiB, writer running)`);
    console.log(
      table(
        ['figure', 'value'],
        [
          ['store size on node 1, MiB', fmt(storeBytes / MiB)],
          ['received by node 4, MiB', fmt(received / MiB)],
          ['join (learner -> caught up -> voter), s', fmt(joinMs / 1000, 2)],
          ['catch-up rate, MiB/s', fmt(rate)],
          ['disk dd conv=fsync, MiB/s', fmt(ddMiBs)],
          ['ratio to the disk (target >= 0.5x)', `${fmt(rate / ddMiBs, 2)}x`],
          ['tar | tar + sync -f of node 1\'s store, s', fmt(tarMs / 1000, 2)],
          ['ratio to the tar copy (tar time / join time)', `${fmt(tarMs / joinMs, 2)}x`],
          ['writer: FILE_SYNC writes during the join', writes],
          ['writer: longest stall, ms (target < 2000)', fmt(maxGap, 0)],
          ['hanfs verify', v.code === 0 ? '4 replicas identical' : `FAILED ${v.stdout}${v.stderr}`.trim()],
          ...[...peak].map(([id, b]) => [`peak RSS node ${id}, MB`, fmt(b / 1e6)]),
        ],
      ),
    );
    const out = path.join(__dirname, '..', '..', 'bench', 'results', `catchup-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
    fs.writeFileSync(
      out,
      JSON.stringify({ machine: machineInfo(), opts, storeBytes, received, joinMs, rate, ddMiBs, tarMs, writes, maxGapMs: maxGap, verify: v.code === 0, peakRss: Object.fromEntries(peak) }, null, 2),
    );
    console.log(`results: ${out}`);
    cl.close();
  } finally {
    clearInterval(sampler);
    // (--keep: stopped with SIGTERM, so that nodes run under NODE_OPTIONS=--cpu-prof write their profiles)
    if (opts.keep === true) await c.stopAll('SIGTERM');
    await c.destroy(opts.keep === true);
    if (opts.keep) console.log(`work folder kept: ${c.workDir}`);
    if (opts['cpu-prof']) console.log(`CPU profiles of the nodes: ${profDir}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
