/**
 * NFS benchmark: hanfs (by default a single-node Raft cluster; --hanfs-mode plain: the standalone
 * daemon) against nfs-ganesha (VFS FSAL), both on 127.0.0.1, both
 * driven by the same pipelined NFSv3 client, in the same run. See docs/benchmarks.md.
 *
 *   npm run bench -- [--size-mib 1024] [--files 2000] [--only seqwrite,seqread,...]
 *                    [--servers hanfs,ganesha] [--loops 2] [--dir-entries 100000] ...
 *
 * Phases: seqwrite, seqread, smallfiles, randwrite, latency, bigdir.
 * Prints tables to stdout and writes JSON to bench/results/nfs-<date>.json.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { connectBenchNfs, type BenchNfs, type Fh, type DirEntryPlus } from './lib/nfs-target';
import {
  now, summarize, pool, fmt, table, log, freePort, waitPort, sleep, RssSampler, procMem, procCpuMs, MiB,
  spawnManaged, type Managed, ensureDebPackages, parseArgs, machineInfo,
} from './lib/util';

const REPO = path.resolve(__dirname, '..', '..');
const PHASES = ['seqwrite', 'seqread', 'smallfiles', 'randwrite', 'latency', 'bigdir'] as const;
type Phase = (typeof PHASES)[number];

const opts = parseArgs(process.argv.slice(2), {
  'size-mib': 1024,
  'io-size-kib': 1024,
  inflight: 16,
  files: 2000,
  'files-conc': 16,
  'rand-ops': 500,
  'rand-writers': 16,
  'rand-conc-ops': 1600,
  'rand-file-mib': 64,
  'lat-calls': 5000,
  'dir-entries': 100000,
  'dir-conc': 64,
  // as the Linux client asks: maxcount = dtsize (64 KiB here), dircount = maxcount / 8
  'readdir-dircount': 8192,
  'readdir-maxcount': 65536,
  loops: 2,
  only: '',
  servers: 'hanfs,ganesha',
  workdir: '/var/tmp',
  'hanfs-export': '/export',
  'hanfs-cli': path.join(REPO, 'dist', 'src', 'cli.js'),
  'hanfs-args': '',
  /** cluster: hanfs as a single-node Raft cluster (a `cluster` section of one member: every
   * mutation through the Raft log, as a cluster node serves it); plain: the standalone daemon */
  'hanfs-mode': 'cluster',
  'hanfs-log-level': 'warn',
  'cpu-prof': false,
  keep: false,
  out: '',
  /** project: src/nfs/client (default); raw: the bench's hand-coded XDR on the same RPC connection */
  client: 'project',
});

const only = new Set<Phase>(
  String(opts.only) ? (String(opts.only).split(',') as Phase[]) : [...PHASES],
);
for (const p of only) if (!PHASES.includes(p)) throw new Error(`--only: unknown phase ${p}; phases: ${PHASES.join(',')}`);
const servers = String(opts.servers).split(',').filter(Boolean);
for (const s of servers) if (s !== 'hanfs' && s !== 'ganesha') throw new Error(`--servers: unknown ${s}`);

const IO = Number(opts['io-size-kib']) * 1024;
const INFLIGHT = Number(opts.inflight);

// ---- servers -------------------------------------------------------------------------------------

interface Server {
  name: string;
  pid: number;
  client: BenchNfs;
  /** a new connection (the server closed ours: a cluster node that released its service address) */
  reconnect?: () => Promise<void>;
  /** times the connection was lost and re-made */
  reconnects?: number;
  /** admin port (hanfs): /metrics is scraped after each phase */
  adminPort?: number;
  root: Fh;
  rss?: RssSampler;
  stop(): Promise<void>;
}

async function startHanfs(work: string): Promise<Server> {
  const cli = String(opts['hanfs-cli']);
  if (!fs.existsSync(cli)) throw new Error(`hanfs daemon not built: ${cli} missing (npx tsc -p .)`);
  const dataDir = path.join(work, 'hanfs-data');
  fs.mkdirSync(dataDir, { recursive: true });
  const nfsPort = await freePort();
  const mountPort = await freePort();
  const nodeArgs: string[] = [];
  if (opts['cpu-prof']) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${path.join(work, 'cpu-prof')}`);
  const adminPort = await freePort();
  // like the ganesha export: no root squash (the bench runs as uid 0), quiet logs
  const configFile = path.join(work, 'hanfs.json');
  const exportsCfg = [{ path: String(opts['hanfs-export']), rootSquash: false }];
  let args: string[];
  if (String(opts['hanfs-mode']) === 'cluster') {
    const peerPort = await freePort();
    const snapPort = await freePort();
    fs.writeFileSync(configFile, JSON.stringify({
      dataDir,
      listen: { host: '127.0.0.1', nfsPort, mountPort, portmapPort: 0 },
      admin: { host: '127.0.0.1', port: adminPort },
      exports: exportsCfg,
      log: { level: String(opts['hanfs-log-level']) },
      cluster: {
        nodeId: 1,
        clusterId: 'bench',
        members: [{ id: 1, peer: `127.0.0.1:${peerPort}`, snapshot: `127.0.0.1:${snapPort}`, admin: `127.0.0.1:${adminPort}` }],
      },
    }, null, 2));
    args = [...nodeArgs, cli, 'serve', '--config', configFile];
  } else if (String(opts['hanfs-mode']) === 'plain') {
    fs.writeFileSync(configFile, JSON.stringify({ exports: exportsCfg, log: { level: String(opts['hanfs-log-level']) } }, null, 2));
    args = [
      ...nodeArgs, cli, 'serve', '--config', configFile, '--data-dir', dataDir,
      '--nfs-port', String(nfsPort), '--mount-port', String(mountPort), '--admin', `127.0.0.1:${adminPort}`,
    ];
  } else {
    throw new Error(`--hanfs-mode: cluster | plain, not ${String(opts['hanfs-mode'])}`);
  }
  if (String(opts['hanfs-args'])) args.push(...String(opts['hanfs-args']).split(' ').filter(Boolean));
  const logFile = path.join(work, 'hanfs.log');
  log(`starting hanfs (${String(opts['hanfs-mode'])}): node ${args.join(' ')} (log ${logFile})`);
  const m: Managed = spawnManaged(process.execPath, args, logFile);
  try {
    await waitPort(nfsPort, 30_000, () => !m.exited);
    await waitPort(mountPort, 30_000, () => !m.exited);
  } catch (e) {
    await m.stop();
    throw new Error(`${(e as Error).message}; hanfs log:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  const client = await connectBenchNfs(String(opts.client), { name: 'hanfs', nfsPort, mountPort });
  const root = await client.mount(String(opts['hanfs-export']));
  const srv: Server = {
    name: 'hanfs', pid: m.pid, client, root, rss: new RssSampler(m.pid, 50), reconnects: 0, adminPort,
    async reconnect() {
      srv.client.close();
      await waitPort(nfsPort, 30_000, () => !m.exited);
      srv.client = await connectBenchNfs(String(opts.client), { name: 'hanfs', nfsPort, mountPort });
      srv.reconnects!++;
    },
    async stop() {
      srv.client.close();
      await m.stop();
    },
  };
  return srv;
}

async function startGanesha(work: string): Promise<Server> {
  ensureDebPackages('ganesha.nfsd', ['nfs-ganesha', 'nfs-ganesha-vfs']);
  const state = path.join(work, 'ganesha-state');
  const exportDir = path.join(work, 'ganesha-export');
  fs.mkdirSync(state, { recursive: true });
  fs.mkdirSync(exportDir, { recursive: true });
  const nfsPort = await freePort();
  const mountPort = await freePort();
  const script = path.join(REPO, 'bench', 'scripts', 'ganesha.sh');
  const env = { ...process.env, GANESHA_STATE: state, GANESHA_NFS_PORT: String(nfsPort), GANESHA_MNT_PORT: String(mountPort) };
  log(`starting nfs-ganesha on ${nfsPort}/${mountPort}, export ${exportDir}`);
  execFileSync('bash', [script, 'start', exportDir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const pid = Number(fs.readFileSync(path.join(state, 'ganesha.pid'), 'utf8').trim());
  const stop = async (): Promise<void> => {
    execFileSync('bash', [script, 'stop'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  };
  try {
    // ganesha opens its ports before its grace period ends; MOUNT answers only then
    const client = await connectBenchNfs(String(opts.client), { name: 'ganesha', nfsPort, mountPort });
    let root: Fh | undefined;
    for (let i = 0; i < 100 && !root; i++) {
      try {
        // mount_path_pseudo = false: the MOUNT path is the exported directory itself
        root = await client.mount(exportDir);
      } catch (e) {
        if (i === 99) throw e;
        await sleep(200);
      }
    }
    return {
      name: 'ganesha', pid, client, root: root!, rss: new RssSampler(pid, 100),
      async stop() {
        client.close();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---- data ------------------------------------------------------------------------------------------

/** 17 random blocks of IO bytes; block i of a stream is blocks[i % 17] (17 is prime: no short period). */
const BLOCKS = Array.from({ length: 17 }, () => randomBytes(IO));
const blockFor = (i: number): Buffer => BLOCKS[i % BLOCKS.length];
function smallContent(i: number): Buffer {
  const b = Buffer.alloc(4096);
  const src = BLOCKS[i % BLOCKS.length];
  src.copy(b, 0, (i * 4096) % (IO - 4096), ((i * 4096) % (IO - 4096)) + 4096);
  b.writeUInt32BE(i, 0);
  return b;
}

// ---- phases ----------------------------------------------------------------------------------------

type Metrics = Record<string, number>;

async function mkdirFresh(s: Server, name: string): Promise<Fh> {
  const existing = await s.client.lookup(s.root, name);
  if (existing) throw new Error(`${name} already exists on ${s.name}`);
  return s.client.mkdir(s.root, name);
}

async function seqWrite(s: Server, dir: Fh, sizeMiB: number): Promise<Metrics> {
  const c = s.client;
  const fh = await c.create(dir, 'seq.dat');
  const blocks = Math.floor((sizeMiB * MiB) / IO);
  let verf: bigint | undefined;
  let verfChanges = 0;
  const t0 = now();
  await pool(blocks, INFLIGHT, async (i) => {
    const data = blockFor(i);
    const r = await c.write(fh, i * IO, data, 0);
    if (r.count !== data.length) throw new Error(`short WRITE: ${r.count} of ${data.length} at block ${i}`);
    if (verf === undefined) verf = r.verf;
    else if (verf !== r.verf) verfChanges++;
  });
  const tw = now();
  const cverf = await c.commit(fh, 0, 0);
  const t1 = now();
  if (verf !== undefined && cverf !== verf) verfChanges++;
  if (verfChanges) throw new Error(`write verifier changed ${verfChanges} times during the write: data would have to be resent`);
  const bytes = blocks * IO;
  return {
    'MiB/s': bytes / MiB / ((t1 - t0) / 1000),
    'write phase s': (tw - t0) / 1000,
    'COMMIT ms': t1 - tw,
    MiB: bytes / MiB,
  };
}

const digests = new Map<number, string>();
/** sha256 of the stream of `blocks` blocks, computed once, before any timed section */
function expectedDigest(blocks: number): string {
  let d = digests.get(blocks);
  if (!d) {
    const h = createHash('sha256');
    for (let i = 0; i < blocks; i++) h.update(blockFor(i));
    d = h.digest('hex');
    digests.set(blocks, d);
  }
  return d;
}

async function seqRead(s: Server, dir: Fh, sizeMiB: number): Promise<Metrics> {
  const c = s.client;
  const fh = await c.lookup(dir, 'seq.dat');
  if (!fh) throw new Error('seq.dat missing: run seqwrite first');
  const blocks = Math.floor((sizeMiB * MiB) / IO);
  const expected = expectedDigest(blocks);

  const h = createHash('sha256');
  const ready = new Map<number, Uint8Array>();
  let nextHash = 0;
  const t0 = now();
  await pool(blocks, INFLIGHT, async (i) => {
    let off = 0;
    const parts: Uint8Array[] = [];
    while (off < IO) {
      const r = await c.read(fh, i * IO + off, IO - off);
      if (r.data.length === 0) throw new Error(`short READ at ${i * IO + off} (eof=${r.eof})`);
      parts.push(r.data);
      off += r.data.length;
    }
    ready.set(i, parts.length === 1 ? parts[0] : Buffer.concat(parts));
    while (ready.has(nextHash)) {
      h.update(ready.get(nextHash)!);
      ready.delete(nextHash);
      nextHash++;
    }
  });
  const got = h.digest('hex');
  const t1 = now();
  if (got !== expected) throw new Error(`sha256 mismatch: read ${got}, wrote ${expected}`);
  return { 'MiB/s': (blocks * IO) / MiB / ((t1 - t0) / 1000), MiB: (blocks * IO) / MiB };
}

async function listAll(c: BenchNfs, dir: Fh): Promise<DirEntryPlus[]> {
  const all: DirEntryPlus[] = [];
  let cookie = 0n;
  let verf: Uint8Array = new Uint8Array(8);
  for (;;) {
    const r = await c.readdirplus(dir, cookie, verf, Number(opts['readdir-dircount']), Number(opts['readdir-maxcount']));
    for (const e of r.entries) if (e.name !== '.' && e.name !== '..') all.push(e);
    if (r.eof) break;
    if (r.entries.length === 0) throw new Error('READDIRPLUS returned no entries and no eof');
    cookie = r.entries[r.entries.length - 1].cookie;
    verf = r.cookieverf;
  }
  return all;
}

async function smallFiles(s: Server, dir: Fh, n: number): Promise<Metrics> {
  const c = s.client;
  const conc = Number(opts['files-conc']);
  const sub = await c.mkdir(dir, 'small');
  const t0 = now();
  await pool(n, conc, async (i) => {
    const fh = await c.create(sub, `f${String(i).padStart(6, '0')}`);
    const r = await c.write(fh, 0, smallContent(i), 2);
    if (r.count !== 4096) throw new Error(`short WRITE ${r.count}`);
    if (r.committed !== 2) throw new Error(`FILE_SYNC WRITE answered with committed=${r.committed}`);
  });
  const t1 = now();
  const cpu1 = procCpuMs(s.pid);
  const entries = await listAll(c, sub);
  const t2 = now();
  const cpu2 = procCpuMs(s.pid);
  if (entries.length !== n) throw new Error(`READDIRPLUS listed ${entries.length} entries, expected ${n}`);
  let missingFh = 0;
  await pool(entries.length, conc, async (k) => {
    const e = entries[k];
    const i = Number(e.name.slice(1));
    let fh = e.fh;
    if (!fh) {
      missingFh++;
      fh = (await c.lookup(sub, e.name)) ?? undefined;
      if (!fh) throw new Error(`LOOKUP ${e.name} failed`);
    }
    const r = await c.read(fh, 0, 4096);
    if (!Buffer.from(r.data).equals(smallContent(i))) throw new Error(`content of ${e.name} differs`);
  });
  const t3 = now();
  const cpu3 = procCpuMs(s.pid);
  return {
    'create files/s': n / ((t1 - t0) / 1000),
    'list+read files/s': n / ((t3 - t1) / 1000),
    'list ms': t2 - t1,
    'read ms': t3 - t2,
    // CPU time of the server process (all threads): steadier than wall time on a shared machine
    'list server CPU ms': (cpu2 ?? NaN) - (cpu1 ?? NaN),
    'read server CPU ms': (cpu3 ?? NaN) - (cpu2 ?? NaN),
    'entries without handle': missingFh,
  };
}

async function randWrite(s: Server, dir: Fh): Promise<Metrics> {
  const c = s.client;
  const fileMiB = Number(opts['rand-file-mib']);
  const fh = await c.create(dir, 'rand.dat');
  const blocks = Math.floor((fileMiB * MiB) / IO);
  await pool(blocks, INFLIGHT, async (i) => { await c.write(fh, i * IO, blockFor(i), 0); });
  await c.commit(fh, 0, 0);
  const pages = (fileMiB * MiB) / 4096;
  const page = Buffer.alloc(4096, 0x5a);
  let seed = 12345;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % pages; };

  const pair = async (): Promise<number> => {
    const off = rnd() * 4096;
    const t = now();
    const w = await c.write(fh, off, page, 0);
    const v = await c.commit(fh, off, 4096);
    if (v !== w.verf) throw new Error('verifier changed between WRITE and COMMIT');
    return now() - t;
  };
  const serialN = Number(opts['rand-ops']);
  const lat1: number[] = [];
  const t0 = now();
  for (let k = 0; k < serialN; k++) lat1.push(await pair());
  const t1 = now();
  const writers = Number(opts['rand-writers']);
  const concN = Number(opts['rand-conc-ops']);
  const latN: number[] = [];
  const t2 = now();
  await pool(concN, writers, async () => { latN.push(await pair()); });
  const t3 = now();
  const s1 = summarize(lat1);
  const sN = summarize(latN);
  return {
    'serial ops/s': serialN / ((t1 - t0) / 1000),
    'serial p50 ms': s1.p50,
    'serial p99 ms': s1.p99,
    [`${writers} writers ops/s`]: concN / ((t3 - t2) / 1000),
    [`${writers} writers p50 ms`]: sN.p50,
    [`${writers} writers p99 ms`]: sN.p99,
  };
}

async function latency(s: Server): Promise<Metrics> {
  const c = s.client;
  const n = Number(opts['lat-calls']);
  const run = async (f: () => Promise<unknown>): Promise<number[]> => {
    for (let i = 0; i < Math.min(2000, n); i++) await f(); // warm-up: steady state, JIT-compiled paths
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = now();
      await f();
      out.push((now() - t) * 1000);
    }
    return out;
  };
  const nul = summarize(await run(() => c.null()));
  const ga = summarize(await run(() => c.getattr(s.root)));
  return { 'NULL p50 us': nul.p50, 'NULL p99 us': nul.p99, 'GETATTR p50 us': ga.p50, 'GETATTR p99 us': ga.p99 };
}

async function bigDirCreate(s: Server, n: number): Promise<Metrics> {
  const c = s.client;
  const dir = await mkdirFresh(s, 'bigdir');
  const t0 = now();
  await pool(n, Number(opts['dir-conc']), async (i) => { await c.create(dir, `entry-${String(i).padStart(7, '0')}`); });
  const t1 = now();
  return { 'create files/s': n / ((t1 - t0) / 1000) };
}

async function bigDirList(s: Server, n: number): Promise<Metrics> {
  const c = s.client;
  const dir = await c.lookup(s.root, 'bigdir');
  if (!dir) throw new Error('bigdir missing');
  s.rss?.resetWindow();
  const t0 = now();
  const cpu0 = procCpuMs(s.pid);
  const entries = await listAll(c, dir);
  const t1 = now();
  const cpu1 = procCpuMs(s.pid);
  s.rss?.sample();
  if (entries.length !== n) throw new Error(`listed ${entries.length} of ${n} entries`);
  return {
    'list ms': t1 - t0,
    'list server CPU ms': (cpu1 ?? NaN) - (cpu0 ?? NaN),
    'entries/s': n / ((t1 - t0) / 1000),
    'peak RSS during list MB': (s.rss?.hwm ?? 0) / MiB,
  };
}

/**
 * From the daemon's /metrics: the largest event-loop delay since the last scrape (prom-client resets
 * its histogram at each scrape, so: during the phase) and, for a cluster node, how many times it took
 * its service address (more than once = it released it, closing every client connection).
 */
async function adminFigures(port: number): Promise<Metrics> {
  const text = await new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
  });
  const val = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  const out: Metrics = { 'event-loop delay max ms': 1000 * val(/^nodejs_eventloop_lag_max_seconds (\S+)$/m) };
  const takes = val(/^hanfs_failovers_total\{kind="took-office"\} (\S+)$/m);
  if (Number.isFinite(takes)) out['service address takes (total)'] = takes;
  return out;
}

// ---- reporting --------------------------------------------------------------------------------------

interface PhaseResult {
  phase: string;
  loop: number;
  results: Record<string, Metrics | { error: string }>;
}

/** which direction is better for a metric: +1 higher, -1 lower, 0 neither */
function better(metric: string): number {
  if (/\/s$/.test(metric)) return 1;
  if (/( us| ms|^list s| s)$/.test(metric) || /MB$/.test(metric)) return -1;
  return 0;
}

const TARGETS: Record<string, string> = {
  'seqwrite MiB/s': '>= 1.0x',
  'seqread MiB/s': '>= 0.8x',
  'smallfiles create files/s': '>= 1.0x',
  'randwrite serial ops/s': '>= 1.0x',
  'randwrite 16 writers ops/s': '>= 1.0x',
  'latency NULL p50 us': '<= 1.5x',
};

function printPhase(pr: PhaseResult): string {
  const names = Object.keys(pr.results);
  const metricNames: string[] = [];
  for (const n of names) {
    const r = pr.results[n];
    if (!('error' in r)) for (const k of Object.keys(r)) if (!metricNames.includes(k)) metricNames.push(k);
  }
  const rows: string[][] = [];
  for (const m of metricNames) {
    const h = pr.results.hanfs as Metrics | undefined;
    const g = pr.results.ganesha as Metrics | undefined;
    const hv = h && !('error' in h) ? h[m] : undefined;
    const gv = g && !('error' in g) ? g[m] : undefined;
    const ratio = hv !== undefined && gv !== undefined && gv !== 0 ? hv / gv : undefined;
    const dir = better(m);
    const target = TARGETS[`${pr.phase} ${m}`] ?? '';
    rows.push([m, fmt(hv, 1), fmt(gv, 1), ratio === undefined ? '-' : ratio.toFixed(2) + 'x', dir > 0 ? 'higher' : dir < 0 ? 'lower' : '', target]);
  }
  let out = `\n### ${pr.phase} (loop ${pr.loop})\n` + table(['metric', 'hanfs', 'ganesha', 'hanfs/ganesha', 'better', 'target'], rows);
  for (const n of names) {
    const r = pr.results[n];
    if ('error' in r) out += `\n${n}: ERROR ${r.error}`;
  }
  return out;
}

// ---- main -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const work = fs.mkdtempSync(path.join(String(opts.workdir), 'hanfs-bench-'));
  log(`work dir ${work}; options ${JSON.stringify(opts)}`);
  const srv: Server[] = [];
  const results: PhaseResult[] = [];
  const memory: Record<string, unknown>[] = [];
  let failure: unknown = null;
  const stopAll = async (): Promise<void> => {
    for (const s of srv.splice(0)) {
      try { s.rss?.stop(); await s.stop(); } catch (e) { log(`stopping ${s.name}: ${(e as Error).message}`); }
    }
  };
  const onSig = (): void => { void stopAll().finally(() => process.exit(130)); };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    if (servers.includes('hanfs')) srv.push(await startHanfs(work));
    if (servers.includes('ganesha')) srv.push(await startGanesha(work));
    for (const s of srv) {
      const fi = await s.client.fsinfo(s.root);
      log(`${s.name}: pid ${s.pid}, FSINFO rtmax ${fi.rtmax} wtmax ${fi.wtmax} dtpref ${fi.dtpref}`);
      if (fi.wtmax < IO || fi.rtmax < IO) log(`WARNING ${s.name}: wtmax/rtmax below ${IO}; its replies may be short`);
    }
    const sizeMiB = Number(opts['size-mib']);
    if (only.has('seqread')) expectedDigest(Math.floor((sizeMiB * MiB) / IO));
    const loops = Number(opts.loops);
    const dirs = new Map<string, Fh>();
    for (let loop = 1; loop <= loops; loop++) {
      for (const s of srv) {
        try {
          dirs.set(s.name, await mkdirFresh(s, `run-${loop}`));
        } catch (e) {
          if (!s.reconnect) throw e;
          await s.reconnect();
          dirs.set(s.name, await mkdirFresh(s, `run-${loop}`));
        }
      }
      const phase = async (name: Phase, f: (s: Server) => Promise<Metrics>): Promise<void> => {
        if (!only.has(name)) return;
        const pr: PhaseResult = { phase: name, loop, results: {} };
        for (const s of srv) {
          log(`loop ${loop} ${name} on ${s.name}`);
          try {
            const cpu0 = process.cpuUsage();
            const w0 = now();
            const m = await f(s);
            const cpu = process.cpuUsage(cpu0);
            // the client shares the 2 cores with the server: how busy it kept one of them
            m['client CPU %'] = (100 * (cpu.user + cpu.system) / 1000) / (now() - w0);
            pr.results[s.name] = m;
            if (s.adminPort) Object.assign(m, await adminFigures(s.adminPort));
          } catch (e) {
            log(`${name} on ${s.name} failed: ${(e as Error).stack}`);
            pr.results[s.name] = { error: (e as Error).message };
            // a single-node cluster closes every connection when it releases its service address
            // (lease lapsed): reconnect so that the later phases still run
            if (s.reconnect) {
              await s.reconnect();
              log(`${s.name}: reconnected (${s.reconnects} so far)`);
            }
          }
        }
        results.push(pr);
        process.stdout.write(printPhase(pr) + '\n');
      };
      await phase('seqwrite', (s) => seqWrite(s, dirs.get(s.name)!, sizeMiB));
      await phase('seqread', (s) => seqRead(s, dirs.get(s.name)!, sizeMiB));
      await phase('smallfiles', (s) => smallFiles(s, dirs.get(s.name)!, Number(opts.files)));
      await phase('randwrite', (s) => randWrite(s, dirs.get(s.name)!));
      await phase('latency', (s) => latency(s));
      if (only.has('bigdir')) {
        const n = Number(opts['dir-entries']);
        if (loop === 1) await phase('bigdir', (s) => bigDirCreate(s, n));
        await phase('bigdir', (s) => bigDirList(s, n));
      }
      const mem: Record<string, unknown> = { loop };
      for (const s of srv) {
        s.rss?.sample();
        const m = procMem(s.pid);
        mem[s.name] = { rssMB: (m?.rss ?? 0) / MiB, peakSampledMB: (s.rss?.peakRss ?? 0) / MiB, vmHwmMB: (s.rss?.hwm ?? 0) / MiB, connectionsLost: s.reconnects ?? 0 };
      }
      memory.push(mem);
      process.stdout.write(`\nmemory after loop ${loop}: ` + srv.map((s) => {
        const m = mem[s.name] as { rssMB: number; peakSampledMB: number };
        return `${s.name} RSS ${m.rssMB.toFixed(1)} MB (peak sampled ${m.peakSampledMB.toFixed(1)} MB)${s.reconnects ? `, connection lost ${s.reconnects} times` : ''}`;
      }).join('; ') + '\n');
    }
  } catch (e) {
    failure = e;
    log(`bench failed: ${(e as Error).stack}`);
  } finally {
    await stopAll();
  }
  const peak = memory.reduce((a, m) => Math.max(a, (m.hanfs as { peakSampledMB?: number } | undefined)?.peakSampledMB ?? 0), 0);
  if (servers.includes('hanfs')) {
    process.stdout.write(`\nhanfs peak RSS (sampled every 50 ms over the whole run): ${peak.toFixed(1)} MB (target <= 300 MB)\n`);
    if (memory.length >= 2) {
      const first = (memory[0].hanfs as { rssMB: number }).rssMB;
      const last = (memory[memory.length - 1].hanfs as { rssMB: number }).rssMB;
      process.stdout.write(`hanfs RSS after loop 1: ${first.toFixed(1)} MB, after loop ${memory.length}: ${last.toFixed(1)} MB (growth ${(last - first).toFixed(1)} MB)\n`);
    }
  }
  const outFile = String(opts.out) || path.join(REPO, 'bench', 'results', `nfs-${started.toISOString().replace(/[:]/g, '-').slice(0, 19)}.json`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ started: started.toISOString(), machine: machineInfo(), options: opts, results, memory, hanfsPeakRssMB: peak, failure: failure ? String(failure) : null }, null, 2) + '\n');
  if (failure) process.stdout.write(`\nFAILED: ${(failure as Error).message}\n`);
  process.stdout.write(`\nresults: ${outFile}\n`);
  if (opts['cpu-prof']) process.stdout.write(`hanfs CPU profile(s): ${path.join(work, 'cpu-prof')}\n`);
  if (!opts.keep && !opts['cpu-prof']) fs.rmSync(work, { recursive: true, force: true });
  else process.stdout.write(`work dir kept: ${work}\n`);
  process.exitCode = failure ? 1 : 0;
}

void main();
