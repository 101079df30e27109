/**
 * Failover and cluster-throughput benchmark: a 3-node hanfs cluster (real `hanfs serve` processes
 * with a `cluster` section, loopback, one disk), in one run:
 *
 *   disk        the disk's own figures: `dd bs=1M count=1024 conv=fsync` and a loop of 4 KiB
 *               write + fdatasync (node), the peers the cluster figures are divided by (disk / 3:
 *               three replicas share the one disk)
 *   throughput  the cluster's sequential 1 GiB write (1 MiB UNSTABLE WRITEs, 16 in flight, one
 *               COMMIT), serial 4 KiB WRITE + COMMIT pairs and serial 4 KiB FILE_SYNC WRITEs
 *   kill        while three clients work (serial 4 KiB FILE_SYNC writes; UNSTABLE batches + COMMIT;
 *               CREATE GUARDED + REMOVE), SIGKILL the serving leader `--kills` times; each time the
 *               killed node is restarted and caught up before the next kill
 *   transfer    planned `hanfs cluster transfer-leader` `--transfers` times
 *   failback    kill the leader, restart it, let it catch up, transfer the leadership back to it
 *
 * The stall of one event for one client: its last reply on the connection it had when the event
 * began (from the old leader) to its first reply on a later connection (from the new one). The
 * clients retransmit like the kernel client (same xid on the new connection), so the replicated
 * duplicate-request records are exercised. At the end every acknowledged stable write is read back,
 * replica digests are compared (`hanfs verify`), and ESTALE / NOENT / EXIST answers are counted.
 *
 *   npm run bench:failover -- [--kills 20] [--transfers 10] [--failbacks 5] [--tick-ms 50]
 *                             [--election-ticks 20] [--only disk,throughput,kill,transfer,failback]
 *                             [--size-mib 1024] [--keep]
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as os from 'node:os';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { TestCluster } from '../test/support/cluster';
import { CLI, run } from '../test/support/util';
import { FailoverNfsClient, NFS3_OK, NFS3ERR_EXIST, NFS3ERR_JUKEBOX, NFS3ERR_NOENT, NFS3ERR_STALE } from './lib/failover-client';
import { ProjectBenchNfs } from './lib/nfs-target';
import { now, summarize, pool, fmt, table, log, sleep, procMem, MiB, parseArgs, machineInfo, percentile } from './lib/util';

const REPO = path.resolve(__dirname, '..', '..');
const PHASES = ['disk', 'throughput', 'kill', 'transfer', 'failback'] as const;
type Phase = (typeof PHASES)[number];

const opts = parseArgs(process.argv.slice(2), {
  /** 3; 1 runs the disk and throughput phases against a single-node cluster (ratios vs disk / 1) */
  nodes: 3,
  kills: 20,
  transfers: 10,
  failbacks: 5,
  'tick-ms': 50,
  'election-ticks': 20,
  'settle-ms': 1000,
  'size-mib': 1024,
  inflight: 16,
  'fsync-ops': 1000,
  'pair-ops': 500,
  only: '',
  'log-level': 'warn',
  'cpu-prof': false,
  keep: false,
  out: '',
});
const only = new Set<Phase>(String(opts.only) ? (String(opts.only).split(',') as Phase[]) : [...PHASES]);
for (const p of only) if (!PHASES.includes(p)) throw new Error(`--only: unknown phase ${p}; phases: ${PHASES.join(',')}`);

// ---- memory of every node process ----------------------------------------------------------------

const peakRss = new Map<number, number>(); // node id -> peak RSS bytes over all its processes
let rssTimer: NodeJS.Timeout | undefined;
function sampleRss(c: TestCluster): void {
  for (const n of c.nodes) {
    if (!n.running || !n.pid) continue;
    const m = procMem(n.pid);
    if (!m) continue;
    peakRss.set(n.id, Math.max(peakRss.get(n.id) ?? 0, m.rss, m.hwm));
  }
}

// ---- node metrics (Prometheus text from each node's admin endpoint) ----------------------------------

function httpGet(port: number, p: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

interface NodeFsync { count: number; sumS: number; over: Record<string, number>; serviceTakes: number; loopLagMaxMs: number; loopLagP99Ms: number }
/** the Raft log fsync histogram of every running node: how many, mean, and how many took longer than 0.1/0.5/1 s */
async function fsyncStats(c: TestCluster): Promise<Record<string, NodeFsync>> {
  const out: Record<string, NodeFsync> = {};
  for (const n of c.nodes) {
    if (!n.running) continue;
    const text = await httpGet(n.adminPort, '/metrics');
    const val = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    const count = val(/^hanfs_raft_fsync_seconds_count(?:\{[^}]*\})? (\S+)$/m);
    const sumS = val(/^hanfs_raft_fsync_seconds_sum(?:\{[^}]*\})? (\S+)$/m);
    const over: Record<string, number> = {};
    for (const le of ['0.1', '0.5', '1']) over[`> ${le} s`] = count - val(new RegExp(`^hanfs_raft_fsync_seconds_bucket\\{[^}]*le="${le}"[^}]*\\} (\\S+)$`, 'm'));
    const serviceTakes = val(/^hanfs_failovers_total\{kind="took-office"\} (\S+)$/m);
    // prom-client's event-loop delay histogram is reset at each scrape: this is the phase's
    const loopLagMaxMs = 1000 * val(/^nodejs_eventloop_lag_max_seconds (\S+)$/m);
    const loopLagP99Ms = 1000 * val(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m);
    out[`node ${n.id}`] = { count, sumS, over, serviceTakes, loopLagMaxMs, loopLagP99Ms };
  }
  return out;
}

function printFsync(title: string, f: Record<string, NodeFsync>): string {
  return `\n${title}\n` + table(['node', 'Raft log fsyncs', 'mean ms', '> 0.1 s', '> 0.5 s', '> 1 s', 'service address taken', 'event-loop delay p99 ms', 'max ms'],
    Object.entries(f).map(([k, v]) => [k, String(v.count), fmt((1000 * v.sumS) / v.count, 2), String(v.over['> 0.1 s']), String(v.over['> 0.5 s']), String(v.over['> 1 s']), fmt(v.serviceTakes, 0), fmt(v.loopLagP99Ms, 1), fmt(v.loopLagMaxMs, 1)]));
}

// ---- disk ----------------------------------------------------------------------------------------

function diskBaseline(dir: string): Record<string, number> {
  const f = path.join(dir, 'dd.bin');
  const t0 = now();
  execFileSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', 'count=1024', 'conv=fsync'], { stdio: 'ignore' });
  const ddMiBs = 1024 / ((now() - t0) / 1000);
  fs.rmSync(f, { force: true });
  const g = path.join(dir, 'fsync.bin');
  const fd = fs.openSync(g, 'w');
  const buf = Buffer.alloc(4096, 0x42);
  const n = Number(opts['fsync-ops']);
  const lat: number[] = [];
  const t1 = now();
  for (let i = 0; i < n; i++) {
    const t = now();
    fs.writeSync(fd, buf, 0, 4096, i * 4096);
    fs.fdatasyncSync(fd);
    lat.push(now() - t);
  }
  const fsyncPerS = n / ((now() - t1) / 1000);
  fs.closeSync(fd);
  fs.rmSync(g, { force: true });
  const s = summarize(lat);
  return { 'dd MiB/s': ddMiBs, '4 KiB write+fdatasync /s': fsyncPerS, 'fdatasync p50 ms': s.p50, 'fdatasync p99 ms': s.p99 };
}

// ---- cluster throughput --------------------------------------------------------------------------

async function clusterThroughput(c: TestCluster): Promise<Record<string, number>> {
  // a client that reconnects and retransmits (same xid) like the kernel client: if the leadership
  // moves during the phase the figure includes the stall, and the move is counted
  const cl = new FailoverNfsClient('throughput', c.nfsPort, c.mountPort, 30_000);
  await cl.connect();
  const leaderBefore = await c.servingLeader();
  try {
    const cr = await cl.createGuarded(cl.root, 'seq.dat');
    if (cr.status !== NFS3_OK || !cr.fh) throw new Error(`CREATE seq.dat: ${cr.status}`);
    const fh = cr.fh;
    const IO = MiB;
    const blocks = Number(opts['size-mib']);
    const data = Array.from({ length: 17 }, (_, k) => Buffer.alloc(IO, k + 1));
    const verfs = new Set<bigint>();
    const t0 = now();
    await pool(blocks, Number(opts.inflight), async (i) => {
      const r = await cl.write(fh, i * IO, data[i % 17], 0);
      if (r.status !== NFS3_OK || r.count !== IO) throw new Error(`WRITE: status ${r.status} count ${r.count}`);
      verfs.add(r.verf);
    });
    const tw = now();
    const cm = await cl.commit(fh);
    const t1 = now();
    if (cm.status !== NFS3_OK) throw new Error(`COMMIT: ${cm.status}`);
    const seq = (blocks * IO) / MiB / ((t1 - t0) / 1000);
    const seqConnections = cl.reconnects;

    const page = Buffer.alloc(4096, 0x5a);
    const pages = (blocks * IO) / 4096;
    let seed = 12345;
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % pages; };
    const n = Number(opts['pair-ops']);
    const lat: number[] = [];
    const t2 = now();
    for (let k = 0; k < n; k++) {
      const t = now();
      const off = rnd() * 4096;
      const w = await cl.write(fh, off, page, 0);
      const v = await cl.commit(fh);
      if (w.status || v.status) throw new Error(`WRITE/COMMIT: ${w.status} ${v.status}`);
      lat.push(now() - t);
    }
    const t3 = now();
    const latSync: number[] = [];
    for (let k = 0; k < n; k++) {
      const t = now();
      const w = await cl.write(fh, rnd() * 4096, page, 2);
      if (w.status || w.committed !== 2) throw new Error(`FILE_SYNC WRITE: status ${w.status} committed=${w.committed}`);
      latSync.push(now() - t);
    }
    const t4 = now();
    const sp = summarize(lat);
    const ss = summarize(latSync);
    const leaderAfter = await c.servingLeader();
    return {
      'seq write MiB/s': seq,
      'seq write phase s': (tw - t0) / 1000,
      'seq COMMIT ms': t1 - tw,
      'seq: leader changes seen (reconnects)': seqConnections - 1,
      'seq: distinct write verifiers': verfs.size,
      '4 KiB WRITE+COMMIT /s': n / ((t3 - t2) / 1000),
      'WRITE+COMMIT p50 ms': sp.p50,
      'WRITE+COMMIT p99 ms': sp.p99,
      '4 KiB FILE_SYNC WRITE /s': n / ((t4 - t3) / 1000),
      'FILE_SYNC p50 ms': ss.p50,
      'FILE_SYNC p99 ms': ss.p99,
      'reconnects in all': cl.reconnects - 1,
      'leader moved': leaderBefore !== leaderAfter ? 1 : 0,
    };
  } finally {
    cl.close();
  }
}

// ---- failover workload ---------------------------------------------------------------------------

const CHUNK = 4096;
function chunk(stream: number, i: number): Buffer {
  const b = Buffer.alloc(CHUNK);
  createHash('sha256').update(`${stream}:${i}`).digest().copy(b, 0);
  b.writeUInt32BE(i, 32);
  b.writeUInt32BE(stream, 36);
  for (let p = 64; p < CHUNK; p += 32) b.copy(b, p, 0, 32);
  return b;
}

interface Counters {
  ok: number;
  stale: number;
  noent: number;
  exist: number;
  jukebox: number;
  other: number;
  otherCodes: number[];
  verifierResends: number;
}
const newCounters = (): Counters => ({ ok: 0, stale: 0, noent: 0, exist: 0, jukebox: 0, other: 0, otherCodes: [], verifierResends: 0 });
function countStatus(k: Counters, status: number): void {
  if (status === NFS3_OK) k.ok++;
  else if (status === NFS3ERR_STALE) k.stale++;
  else if (status === NFS3ERR_NOENT) k.noent++;
  else if (status === NFS3ERR_EXIST) k.exist++;
  else if (status === NFS3ERR_JUKEBOX) k.jukebox++;
  else {
    k.other++;
    if (k.otherCodes.length < 20) k.otherCodes.push(status);
  }
}

interface Worker {
  name: string;
  client: FailoverNfsClient;
  counters: Counters;
  done: Promise<void>;
}

interface Workload {
  workers: Worker[];
  syncFh: Uint8Array;
  unstableFh: Uint8Array;
  ackedSync: Set<number>;
  /** batches (of 8 chunks) committed with an unchanged verifier */
  ackedUnstable: Set<number>;
  stop(): Promise<void>;
}

async function startWorkload(c: TestCluster): Promise<Workload> {
  let stopping = false;
  const mk = async (name: string): Promise<FailoverNfsClient> => {
    const cl = new FailoverNfsClient(name, c.nfsPort, c.mountPort);
    await cl.connect();
    return cl;
  };
  const a = await mk('sync');
  const b = await mk('unstable');
  const m = await mk('meta');
  const cs = await a.createGuarded(a.root, 'sync.bin');
  const cu = await b.createGuarded(b.root, 'unstable.bin');
  const cd = await m.createGuarded(m.root, 'meta-probe');
  if (cs.status || cu.status || cd.status || !cs.fh || !cu.fh) throw new Error(`CREATE failed: ${cs.status} ${cu.status} ${cd.status}`);
  await m.remove(m.root, 'meta-probe');
  const syncFh = cs.fh;
  const unstableFh = cu.fh;
  const ackedSync = new Set<number>();
  const ackedUnstable = new Set<number>();

  const ks = newCounters();
  const syncDone = (async () => {
    for (let i = 0; !stopping; i++) {
      for (;;) {
        const r = await a.write(syncFh, i * CHUNK, chunk(1, i), 2);
        countStatus(ks, r.status);
        if (r.status === NFS3ERR_JUKEBOX) { await sleep(50); continue; }
        if (r.status === NFS3_OK && r.count === CHUNK && r.committed === 2) ackedSync.add(i);
        break;
      }
    }
  })();

  const ku = newCounters();
  const BATCH = 8;
  const unstableDone = (async () => {
    for (let bi = 0; !stopping; bi++) {
      for (let attempt = 0; attempt < 100; attempt++) {
        const verfs: bigint[] = [];
        let bad = false;
        for (let j = 0; j < BATCH; j++) {
          const i = bi * BATCH + j;
          const r = await b.write(unstableFh, i * CHUNK, chunk(2, i), 0);
          countStatus(ku, r.status);
          if (r.status !== NFS3_OK || r.count !== CHUNK) { bad = true; break; }
          verfs.push(r.verf);
        }
        if (bad) { await sleep(50); continue; }
        const cm = await b.commit(unstableFh);
        countStatus(ku, cm.status);
        if (cm.status !== NFS3_OK) { await sleep(50); continue; }
        if (verfs.every((v) => v === cm.verf)) {
          ackedUnstable.add(bi);
          break;
        }
        ku.verifierResends++; // RFC 1813 3.3.7: the server may have lost the batch; resend it
      }
    }
  })();

  const km = newCounters();
  const metaDone = (async () => {
    for (let i = 0; !stopping; i++) {
      const name = `m-${i}`;
      const cr = await m.createGuarded(m.root, name);
      countStatus(km, cr.status);
      const rm = await m.remove(m.root, name);
      countStatus(km, rm);
    }
  })();

  const workers: Worker[] = [
    { name: 'FILE_SYNC 4 KiB writer', client: a, counters: ks, done: syncDone },
    { name: 'UNSTABLE+COMMIT writer', client: b, counters: ku, done: unstableDone },
    { name: 'CREATE+REMOVE', client: m, counters: km, done: metaDone },
  ];
  return {
    workers, syncFh, unstableFh, ackedSync, ackedUnstable,
    async stop() {
      stopping = true;
      await Promise.all(workers.map((w) => w.done));
      for (const w of workers) w.client.close();
    },
  };
}

// ---- events --------------------------------------------------------------------------------------

interface FailEvent {
  kind: 'kill' | 'transfer' | 'failback' | 'failback-kill';
  round: number;
  from: number;
  to: number;
  t: number;
  gens: number[];
  /** until the new leader was reported serving (admin status), ms */
  servingAfterMs: number;
  stallsMs?: number[];
}

async function waitNewReplies(w: Workload, gens: number[], timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = w.workers.every((k, i) => {
      const r = k.client.replies;
      return r.length > 0 && r[r.length - 1].gen > gens[i];
    });
    if (ok) return;
    if (Date.now() > until) throw new Error('a client got no reply from the new leader within 60 s');
    await sleep(20);
  }
}

async function waitServing(c: TestCluster, not: number, timeoutMs = 60_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const id = await c.servingLeader(Math.max(1000, until - Date.now()));
    if (id !== not) return id;
    if (Date.now() > until) throw new Error(`leadership did not move from ${not}`);
    await sleep(20);
  }
}

/** every node running and caught up with the leader's commit index */
async function waitAllCaughtUp(c: TestCluster, timeoutMs = 120_000): Promise<void> {
  const leader = await c.servingLeader(timeoutMs);
  const s = await c.status(leader);
  if (!s) throw new Error('leader status unavailable');
  await c.waitApplied(s.commit, timeoutMs);
}

async function transfer(c: TestCluster, to: number): Promise<void> {
  const r = await run(process.execPath, [CLI, 'cluster', 'transfer-leader', '--to', String(to), '--admin', c.adminList], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`transfer-leader --to ${to}: ${r.stdout} ${r.stderr}`);
}

function stallsOf(w: Workload, e: FailEvent): number[] {
  return w.workers.map((k, i) => {
    const g = e.gens[i];
    let lastOld = -Infinity;
    let firstNew = Infinity;
    for (const r of k.client.replies) {
      if (r.gen <= g) lastOld = Math.max(lastOld, r.t);
      else if (r.t < firstNew) firstNew = r.t;
    }
    return firstNew - lastOld;
  });
}

// ---- main ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const tickMs = Number(opts['tick-ms']);
  const electionTicks = Number(opts['election-ticks']);
  const results: Record<string, unknown> = {};
  let failure: unknown = null;
  const out = (s: string): void => void process.stdout.write(s + '\n');
  const profDir = path.join(os.tmpdir(), `hanfs-failover-prof-${started.toISOString().replace(/[:.]/g, '-')}`);
  if (opts['cpu-prof']) {
    // (--cpu-prof is not allowed in NODE_OPTIONS: the nodes get it on their command line; a node
    // writes its profile when it exits on SIGTERM at the end)
    fs.mkdirSync(profDir, { recursive: true });
    out(`CPU profiles of the nodes: ${profDir}`);
  }
  let c: TestCluster | undefined;
  const events: FailEvent[] = [];
  let wl: Workload | undefined;
  try {
    c = await TestCluster.start({
      nodes: Number(opts.nodes),
      logLevel: String(opts['log-level']),
      tickMs,
      electionTicks,
      nodeArgs: opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    });
    log(`cluster in ${c.workDir}: tickMs ${tickMs}, electionTicks ${electionTicks}; nfs ${c.nfsPort} mount ${c.mountPort}; admin ${c.adminList}`);
    const cc = c;
    rssTimer = setInterval(() => sampleRss(cc), 100);
    await c.servingLeader();

    if (only.has('disk')) {
      log('disk baseline (dd 1 GiB conv=fsync, 4 KiB write+fdatasync loop) in the cluster work dir');
      results.disk = diskBaseline(c.workDir);
      out('\n### disk (same filesystem as the nodes)\n' + table(['metric', 'value'], Object.entries(results.disk as Record<string, number>).map(([k, v]) => [k, fmt(v, 2)])));
    }
    if (only.has('throughput')) {
      log('cluster throughput');
      const before = await fsyncStats(c); // also resets the event-loop delay histograms
      const tp = await clusterThroughput(c);
      results.throughput = tp;
      const d = results.disk as Record<string, number> | undefined;
      const rows: string[][] = [];
      const N = Number(opts.nodes);
      const ratio = (v: number, base: number | undefined): string => (base ? (v / (base / N)).toFixed(2) + 'x' : '-');
      for (const [k, v] of Object.entries(tp)) {
        let r = '';
        let base = '';
        if (k === 'seq write MiB/s') { r = ratio(v, d?.['dd MiB/s']); base = d ? fmt(d['dd MiB/s'] / N, 1) : '-'; }
        if (k === '4 KiB WRITE+COMMIT /s' || k === '4 KiB FILE_SYNC WRITE /s') { r = ratio(v, d?.['4 KiB write+fdatasync /s']); base = d ? fmt(d['4 KiB write+fdatasync /s'] / N, 1) : '-'; }
        rows.push([k, fmt(v, 2), base, r, r ? '>= 0.8x' : '']);
      }
      out(`\n### ${N}-node cluster on one disk vs the disk / ${N}\n` + table(['metric', 'cluster', `disk / ${N}`, 'ratio', 'target'], rows));
      const fs1 = await fsyncStats(c);
      for (const [k, v] of Object.entries(fs1)) {
        const b = before[k];
        if (!b) continue;
        v.count -= b.count;
        v.sumS -= b.sumS;
        v.serviceTakes -= b.serviceTakes;
        for (const o of Object.keys(v.over)) v.over[o] -= b.over[o];
      }
      results.throughputFsync = fs1;
      out(printFsync('Raft log fsyncs during the throughput phase (each node, from its /metrics)', fs1));
    }

    const wantEvents = only.has('kill') || only.has('transfer') || only.has('failback');
    if (wantEvents) {
      await waitAllCaughtUp(c);
      wl = await startWorkload(c);
      await sleep(Number(opts['settle-ms']));
      const gensNow = (): number[] => wl!.workers.map((k) => k.client.gen);
      const settle = async (): Promise<void> => {
        await waitAllCaughtUp(c!);
        await sleep(Number(opts['settle-ms']));
      };
      const kill = async (kind: FailEvent['kind'], round: number): Promise<FailEvent> => {
        const from = await c!.servingLeader();
        const gens = gensNow();
        const t = now();
        await c!.kill(from, 'SIGKILL');
        const to = await waitServing(c!, from);
        const servingAfterMs = now() - t;
        await waitNewReplies(wl!, gens);
        const e: FailEvent = { kind, round, from, to, t, gens, servingAfterMs };
        events.push(e);
        c!.spawn(c!.node(from));
        await settle();
        log(`${kind} ${round}: ${from} -> ${to}, serving after ${servingAfterMs.toFixed(0)} ms`);
        return e;
      };
      const planned = async (kind: FailEvent['kind'], round: number, to: number): Promise<FailEvent> => {
        const from = await c!.servingLeader();
        const gens = gensNow();
        const t = now();
        await transfer(c!, to);
        const got = await waitServing(c!, from);
        const servingAfterMs = now() - t;
        await waitNewReplies(wl!, gens);
        const e: FailEvent = { kind, round, from, to: got, t, gens, servingAfterMs };
        events.push(e);
        await settle();
        log(`${kind} ${round}: ${from} -> ${got} (asked ${to}), serving after ${servingAfterMs.toFixed(0)} ms`);
        return e;
      };
      if (only.has('kill')) for (let k = 1; k <= Number(opts.kills); k++) await kill('kill', k);
      if (only.has('transfer')) {
        for (let k = 1; k <= Number(opts.transfers); k++) {
          const from = await c.servingLeader();
          await planned('transfer', k, (from % 3) + 1);
        }
      }
      if (only.has('failback')) {
        for (let k = 1; k <= Number(opts.failbacks); k++) {
          const e = await kill('failback-kill', k);
          await planned('failback', k, e.from);
        }
      }
      await wl.stop();
      const w = wl;
      wl = undefined;

      // ---- correctness: read back, replica digests -------------------------------------------
      log('reading back every acknowledged stable write');
      const rd = await ProjectBenchNfs.connect({ name: 'check', nfsPort: c.nfsPort, mountPort: c.mountPort });
      let lostSync = 0;
      let lostUnstable = 0;
      try {
        const maxS = Math.max(-1, ...w.ackedSync);
        for (let i = 0; i <= maxS; i += 256) {
          const n = Math.min(256, maxS + 1 - i);
          const r = await rd.read(w.syncFh, i * CHUNK, n * CHUNK);
          const got = Buffer.from(r.data);
          for (let j = 0; j < n; j++) {
            if (!w.ackedSync.has(i + j)) continue;
            if (!got.subarray(j * CHUNK, (j + 1) * CHUNK).equals(chunk(1, i + j))) lostSync++;
          }
        }
        for (const bi of w.ackedUnstable) {
          const r = await rd.read(w.unstableFh, bi * 8 * CHUNK, 8 * CHUNK);
          const got = Buffer.from(r.data);
          for (let j = 0; j < 8; j++) if (!got.subarray(j * CHUNK, (j + 1) * CHUNK).equals(chunk(2, bi * 8 + j))) lostUnstable++;
        }
      } finally {
        rd.close();
      }
      const v = await c.verify();
      const verifyOk = v.code === 0;
      if (!verifyOk) log(`hanfs verify failed: ${v.stdout} ${v.stderr}`);

      for (const e of events) e.stallsMs = stallsOf(w, e);
      const kinds: FailEvent['kind'][] = ['kill', 'transfer', 'failback-kill', 'failback'];
      const rows: string[][] = [];
      const summary: Record<string, unknown> = {};
      for (const kind of kinds) {
        const es = events.filter((e) => e.kind === kind);
        if (!es.length) continue;
        for (let wi = 0; wi <= w.workers.length; wi++) {
          const xs = es.map((e) => (wi < w.workers.length ? e.stallsMs![wi] : Math.max(...e.stallsMs!))).sort((x, y) => x - y);
          const label = wi < w.workers.length ? w.workers[wi].name : 'worst client';
          const s = { n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs[xs.length - 1] };
          summary[`${kind} / ${label}`] = s;
          rows.push([kind, label, String(s.n), fmt(s.p50, 0), fmt(s.p99, 0), fmt(s.max, 0)]);
        }
        const sv = es.map((e) => e.servingAfterMs).sort((x, y) => x - y);
        rows.push([kind, 'new leader serving (admin poll)', String(sv.length), fmt(percentile(sv, 50), 0), fmt(percentile(sv, 99), 0), fmt(sv[sv.length - 1], 0)]);
      }
      out(`\n### client-visible stall per event, ms (tickMs ${tickMs}, electionTicks ${electionTicks}: election timeout ${tickMs * electionTicks}-${tickMs * (electionTicks + Math.ceil(electionTicks / 2))} ms)\n` +
        table(['event', 'client', 'n', 'p50 ms', 'p99 ms', 'max ms'], rows));
      out('\nreference (the issue): DRBD+Pacemaker 15-60 s; keepalived ~3.6 s; nfs-ganesha HA 20-22 s + 90 s grace. targets: kill p99 < 2 s, transfer < 1 s, failback <= kill');
      const wrows = w.workers.map((k) => [k.name, String(k.counters.ok), String(k.counters.stale), String(k.counters.noent), String(k.counters.exist), String(k.counters.jukebox), `${k.counters.other}${k.counters.otherCodes.length ? ' ' + k.counters.otherCodes.join(',') : ''}`, String(k.counters.verifierResends), String(k.client.retransmits), String(k.client.timeouts), String(k.client.reconnects)]);
      out('\n### answers\n' + table(['client', 'OK', 'ESTALE', 'NOENT', 'EXIST', 'JUKEBOX', 'other', 'verifier resends', 'retransmits', 'RPC timeouts', 'connections'], wrows));
      out(`\nacknowledged stable: ${w.ackedSync.size} FILE_SYNC chunks (lost ${lostSync}), ${w.ackedUnstable.size} committed UNSTABLE batches of 8 (lost chunks ${lostUnstable}); hanfs verify: ${verifyOk ? 'replicas identical' : 'FAILED'}`);
      results.failover = {
        summary, events, lostSync, lostUnstable, verifyOk, ackedSync: w.ackedSync.size, ackedUnstableBatches: w.ackedUnstable.size,
        counters: Object.fromEntries(w.workers.map((k) => [k.name, { ...k.counters, retransmits: k.client.retransmits, timeouts: k.client.timeouts, connections: k.client.reconnects }])),
      };
      if (lostSync || lostUnstable || !verifyOk) throw new Error(`data check failed: lost ${lostSync} + ${lostUnstable}, verify ${verifyOk}`);
    }
  } catch (e) {
    failure = e;
    log(`bench failed: ${(e as Error).stack}`);
  } finally {
    if (wl) await Promise.race([wl.stop().catch(() => undefined), sleep(5000)]);
    if (c) sampleRss(c);
    if (rssTimer) clearInterval(rssTimer);
    if (c) {
      if (opts['cpu-prof']) await c.stopAll('SIGTERM');
      await c.destroy(Boolean(opts.keep) || Boolean(opts['cpu-prof']));
      if (opts.keep || opts['cpu-prof']) out(`work dir kept: ${c.workDir}`);
    }
  }
  const rss = Object.fromEntries([...peakRss].map(([id, b]) => [`node ${id}`, b / MiB]));
  results.peakRssMB = rss;
  out('\npeak RSS per node (sampled every 100 ms, VmHWM included, over every process of the node): ' +
    Object.entries(rss).map(([k, v]) => `${k} ${v.toFixed(1)} MB`).join(', ') + ' (target <= 300 MB)');
  const outFile = String(opts.out) || path.join(REPO, 'bench', 'results', `failover-${started.toISOString().replace(/[:]/g, '-').slice(0, 19)}.json`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ started: started.toISOString(), machine: machineInfo(), loadavg: require('node:os').loadavg(), options: opts, results, failure: failure ? String(failure) : null }, null, 2) + '\n');
  if (failure) out(`\nFAILED: ${(failure as Error).message}`);
  out(`results: ${outFile}`);
  process.exitCode = failure ? 1 : 0;
}

void main();
