/**
 * Raft benchmark: a 3-node hanfs Raft cluster (src/raft/raft-node-main.ts processes, data on disk,
 * real fsync) against a 3-member etcd 3.4 cluster, both on 127.0.0.1, driven by the same load
 * generator. See docs/benchmarks.md.
 *
 *   npm run bench:raft -- [--duration-s 5] [--sizes 1024,65536] [--conc 1,16,256]
 *                         [--systems hanfs,etcd]
 *
 * A proposal is one replicated, durably committed entry: for hanfs a `propose` on the leader's
 * client port (answered with the committed index), for etcd a Put of the value through the etcd3
 * gRPC client to the leader. Also measures one local fsync (1 KiB write + fdatasync) and one
 * loopback TCP round trip, and relates the single-proposer commit latency to their sum.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  now, summarize, fmt, table, log, freePort, waitPort, sleep, spawnManaged, type Managed, ensureDebPackages,
  parseArgs, machineInfo, MiB, procMem,
} from './lib/util';

const REPO = path.resolve(__dirname, '..', '..');

const opts = parseArgs(process.argv.slice(2), {
  'duration-s': 5,
  'warmup-s': 1,
  // raft-node-main's client port takes lines up to 1 MiB + 1 KiB, so a full 64 KiB payload fits;
  // etcd gets the same sizes
  sizes: '1024,65536',
  conc: '1,16,256',
  systems: 'hanfs,etcd',
  workdir: '/var/tmp',
  'raft-main': path.join(REPO, 'dist', 'src', 'raft', 'raft-node-main.js'),
  'raft-args': '',
  /** client-port connections to the hanfs leader (proposers share them, pipelined); 0 = one per proposer */
  'hanfs-conns': 16,
  /** etcd3: the etcd3 npm gRPC client (default); http: etcd's JSON gateway over keep-alive HTTP */
  'etcd-client': 'etcd3',
  'fsync-iters': 500,
  'rtt-iters': 5000,
  /** run the hanfs raft nodes under node --cpu-prof (profiles in <work dir>/cpu-prof; implies --keep) */
  'cpu-prof': false,
  keep: false,
  out: '',
});
const systems = String(opts.systems).split(',').filter(Boolean);
const sizes = String(opts.sizes).split(',').map(Number);
const concs = String(opts.conc).split(',').map(Number);
const durationMs = Number(opts['duration-s']) * 1000;

/** A cluster under test: propose() resolves once the entry is committed by a majority. */
interface Target {
  name: string;
  pids: number[];
  /** `worker` is the proposer's number (0..conc-1), for targets that keep one connection per proposer */
  propose(worker: number, payload: Buffer): Promise<void>;
  /** called before a run with `conc` proposers */
  prepare(conc: number): Promise<void>;
  stop(): Promise<void>;
}

/** Random printable payload (no spaces, no newlines): valid as a line-protocol token and as raw bytes. */
function payload(size: number): Buffer {
  const alphabet = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
  const r = randomBytes(size);
  for (let i = 0; i < size; i++) r[i] = alphabet[r[i] & 63];
  return r;
}

// ---- hanfs raft cluster --------------------------------------------------------------------------

/**
 * The raft-node-main client port: a line protocol, `propose <payload>\n` answered by one line with
 * the committed index. Replies come in request order on a connection, so calls can be pipelined on
 * it: a FIFO of waiters.
 */
class LineConn {
  private buf = '';
  private waiters: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private err: Error | null = null;
  private constructor(readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).replace(/\r$/, '');
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w.resolve(line);
      }
    });
    const fail = (e: Error): void => {
      this.err = this.err ?? e;
      for (const w of this.waiters.splice(0)) w.reject(this.err);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('client connection closed')));
  }
  static connect(port: number): Promise<LineConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('error', reject);
      s.once('connect', () => { s.removeListener('error', reject); resolve(new LineConn(s)); });
    });
  }
  request(head: string, body?: Buffer): Promise<string> {
    if (this.err) return Promise.reject(this.err);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (body) {
        this.sock.cork();
        this.sock.write(head);
        this.sock.write(body);
        this.sock.write('\n');
        this.sock.uncork();
      } else {
        this.sock.write(head + '\n');
      }
    });
  }
  close(): void {
    this.sock.destroy();
  }
}

async function startHanfsRaft(work: string): Promise<Target> {
  const main = String(opts['raft-main']);
  if (!fs.existsSync(main)) throw new Error(`raft node not built: ${main} missing (npx tsc -p .)`);
  const ids = [1, 2, 3];
  const peerPorts = await Promise.all(ids.map(() => freePort()));
  const clientPorts = await Promise.all(ids.map(() => freePort()));
  const peers = ids.map((id, i) => `${id}=127.0.0.1:${peerPorts[i]}`).join(',');
  const procs: Managed[] = [];
  for (const [i, id] of ids.entries()) {
    const dir = path.join(work, `raft-${id}`);
    fs.mkdirSync(dir, { recursive: true });
    const nodeFlags = opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.join(work, 'cpu-prof')}`] : [];
    // (--keep-payloads no: the test state machine keeps digests, not every payload, so that its memory
    // and snapshots measure the Raft node, not a growing in-memory copy of everything proposed)
    const args = [...nodeFlags, main, '--id', String(id), '--peers', peers, '--dir', dir, '--client-port', String(clientPorts[i]), '--keep-payloads', 'no'];
    if (String(opts['raft-args'])) args.push(...String(opts['raft-args']).split(' ').filter(Boolean));
    log(`starting raft node ${id}: node ${args.join(' ')}`);
    procs.push(spawnManaged(process.execPath, args, path.join(work, `raft-${id}.log`)));
  }
  const stop = async (): Promise<void> => { await Promise.all(procs.map((p) => p.stop())); };
  try {
    for (const [i, p] of procs.entries()) await waitPort(clientPorts[i], 30_000, () => !p.exited);
    // find the leader: the node whose propose succeeds
    let leader = -1;
    const deadline = Date.now() + 30_000;
    while (leader < 0 && Date.now() < deadline) {
      for (const [i] of ids.entries()) {
        const c = await LineConn.connect(clientPorts[i]);
        try {
          const line = await Promise.race([c.request('propose ', Buffer.from('probe')), sleep(2000).then(() => 'timeout')]);
          if (/^(ok\s+)?\d+$/i.test(line.trim())) { leader = i; break; }
        } catch { /* not ready */ } finally { c.close(); }
      }
      if (leader < 0) await sleep(300);
    }
    if (leader < 0) throw new Error('no raft leader accepted a proposal within 30 s');
    log(`hanfs raft leader: node ${ids[leader]} (client port ${clientPorts[leader]})`);
    let conns: LineConn[] = [];
    const fixedConns = Number(opts['hanfs-conns']);
    return {
      name: 'hanfs',
      pids: procs.map((p) => p.pid),
      async prepare(conc: number) {
        for (const c of conns) c.close();
        const n = fixedConns > 0 ? Math.min(fixedConns, conc) : conc;
        conns = await Promise.all(Array.from({ length: n }, () => LineConn.connect(clientPorts[leader])));
      },
      async propose(worker: number, data: Buffer) {
        const line = await conns[worker % conns.length].request('propose ', data);
        if (!/^(ok\s+)?\d+$/i.test(line.trim())) throw new Error(`propose answered: ${line.slice(0, 200)}`);
      },
      async stop() {
        for (const c of conns) c.close();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---- etcd cluster ----------------------------------------------------------------------------------

async function startEtcd(work: string): Promise<Target> {
  ensureDebPackages('etcd', ['etcd-server', 'etcd-client']);
  const names = ['e1', 'e2', 'e3'];
  const peerPorts = await Promise.all(names.map(() => freePort()));
  const clientPorts = await Promise.all(names.map(() => freePort()));
  const initial = names.map((n, i) => `${n}=http://127.0.0.1:${peerPorts[i]}`).join(',');
  const procs: Managed[] = [];
  for (const [i, n] of names.entries()) {
    const dir = path.join(work, `etcd-${n}`);
    const args = [
      '--name', n, '--data-dir', dir,
      '--listen-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
      '--listen-client-urls', `http://127.0.0.1:${clientPorts[i]}`,
      '--advertise-client-urls', `http://127.0.0.1:${clientPorts[i]}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
      '--quota-backend-bytes', String(8 * 1024 * MiB),
      '--logger', 'zap', '--log-level', 'warn',
    ];
    log(`starting etcd ${n}: etcd ${args.join(' ')}`);
    procs.push(spawnManaged('etcd', args, path.join(work, `etcd-${n}.log`)));
  }
  const stop = async (): Promise<void> => { await Promise.all(procs.map((p) => p.stop())); };
  try {
    for (const [i, p] of procs.entries()) await waitPort(clientPorts[i], 30_000, () => !p.exited);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { Etcd3 } = require('etcd3') as typeof import('etcd3');
    let leader = -1;
    const deadline = Date.now() + 30_000;
    while (leader < 0 && Date.now() < deadline) {
      for (const [i] of names.entries()) {
        const c = new Etcd3({ hosts: `http://127.0.0.1:${clientPorts[i]}` });
        try {
          const st = await c.maintenance.status();
          if (st.leader !== '0' && st.leader === st.header.member_id) leader = i;
        } catch { /* not ready */ } finally { c.close(); }
        if (leader >= 0) break;
      }
      if (leader < 0) await sleep(300);
    }
    if (leader < 0) throw new Error('etcd elected no leader within 30 s');
    log(`etcd leader: ${names[leader]} (client port ${clientPorts[leader]})`);
    const leaderPort = clientPorts[leader];
    if (String(opts['etcd-client']) === 'http') {
      // etcd's JSON gateway (/v3/kv/put, value base64) over keep-alive HTTP/1.1: a much cheaper client
      // than gRPC in Node, to show how much of the etcd figure is the etcd3 library's own CPU
      const http = require('node:http') as typeof import('node:http');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
      return {
        name: 'etcd',
        pids: procs.map((p) => p.pid),
        async prepare() { /* nothing */ },
        propose(worker: number, data: Buffer) {
          const body = JSON.stringify({ key: Buffer.from(`bench/${worker}`).toString('base64'), value: data.toString('base64') });
          return new Promise<void>((resolve, reject) => {
            const req = http.request({ host: '127.0.0.1', port: leaderPort, path: '/v3/kv/put', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`etcd put: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`))));
            });
            req.on('error', reject);
            req.end(body);
          });
        },
        async stop() {
          agent.destroy();
          await stop();
        },
      };
    }
    // one client (one gRPC channel, HTTP/2-multiplexed) to the leader, as etcd clients are used
    const client = new Etcd3({ hosts: `http://127.0.0.1:${leaderPort}` });
    return {
      name: 'etcd',
      pids: procs.map((p) => p.pid),
      async prepare() { /* nothing */ },
      async propose(worker: number, data: Buffer) {
        await client.put(`bench/${worker}`).value(data).exec();
      },
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

// ---- load generator ----------------------------------------------------------------------------------

interface RunResult {
  system: string;
  size: number;
  conc: number;
  ops: number;
  seconds: number;
  opsPerS: number;
  mibPerS: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  firstError?: string;
  /** CPU time the load generator (this process, incl. the client library) spent per op, µs */
  clientCpuUsPerOp: number;
}

async function runLoad(t: Target, size: number, conc: number, ms: number, record: boolean): Promise<RunResult> {
  const data = payload(size);
  await t.prepare(conc);
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const end = t0 + ms;
  let last = t0;
  const worker = async (w: number): Promise<void> => {
    while (now() < end) {
      const s = now();
      try {
        await t.propose(w, data);
        const e = now();
        last = Math.max(last, e);
        if (record) lat.push(e - s);
      } catch (err) {
        errors++;
        firstError = firstError ?? (err as Error).message;
        if (errors > 100) throw err;
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, (_, w) => worker(w)));
  const seconds = (last - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const st = summarize(lat);
  return {
    system: t.name, size, conc, ops: lat.length, seconds,
    opsPerS: lat.length / seconds, mibPerS: (lat.length * size) / MiB / seconds,
    p50ms: st.p50, p99ms: st.p99, errors, firstError,
    clientCpuUsPerOp: (cpu.user + cpu.system) / Math.max(1, lat.length),
  };
}

// ---- baselines: fsync and loopback RTT ---------------------------------------------------------------------

function fsyncLatency(dir: string, iters: number): { p50ms: number; p99ms: number } {
  const f = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(f, 'w');
  const buf = Buffer.alloc(1024, 7);
  const lat: number[] = [];
  try {
    for (let i = 0; i < iters; i++) {
      const s = now();
      fs.writeSync(fd, buf, 0, buf.length, (i % 1024) * 1024);
      fs.fdatasyncSync(fd);
      lat.push(now() - s);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(f, { force: true });
  }
  const s = summarize(lat);
  return { p50ms: s.p50, p99ms: s.p99 };
}

/** Round trip of 64 bytes to an echo server in another process over loopback TCP. */
async function loopbackRtt(iters: number): Promise<{ p50ms: number; p99ms: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', `require('net').createServer((s)=>{s.setNoDelay(true);s.pipe(s)}).listen(${port},'127.0.0.1')`], { stdio: 'ignore' });
  try {
    await waitPort(port, 10_000);
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const msg = Buffer.alloc(64, 1);
    const lat: number[] = [];
    let got = 0;
    let wake: (() => void) | null = null;
    sock.on('data', (d: Buffer) => { got += d.length; if (got >= msg.length && wake) { got -= msg.length; const w = wake; wake = null; w(); } });
    for (let i = 0; i < iters; i++) {
      const s = now();
      await new Promise<void>((r) => { wake = r; sock.write(msg); });
      lat.push(now() - s);
    }
    sock.destroy();
    const st = summarize(lat.slice(Math.min(100, lat.length >> 1)));
    return { p50ms: st.p50, p99ms: st.p99 };
  } finally {
    child.kill('SIGTERM');
  }
}

// ---- main ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const work = fs.mkdtempSync(path.join(String(opts.workdir), 'hanfs-raft-bench-'));
  log(`work dir ${work}; options ${JSON.stringify(opts)}`);
  const fsync = fsyncLatency(work, Number(opts['fsync-iters']));
  const rtt = await loopbackRtt(Number(opts['rtt-iters']));
  log(`fsync (1 KiB + fdatasync) p50 ${fsync.p50ms.toFixed(3)} ms; loopback RTT p50 ${rtt.p50ms.toFixed(3)} ms`);
  const results: RunResult[] = [];
  const memory: Record<string, number[]> = {};
  let failure: unknown = null;
  for (const sys of systems) {
    let t: Target | undefined;
    try {
      t = sys === 'hanfs' ? await startHanfsRaft(work) : sys === 'etcd' ? await startEtcd(work) : undefined;
      if (!t) throw new Error(`unknown system ${sys}`);
      if (Number(opts['warmup-s']) > 0) await runLoad(t, 1024, 16, Number(opts['warmup-s']) * 1000, false);
      for (const size of sizes) {
        for (const conc of concs) {
          log(`${sys}: ${size} B entries, ${conc} proposers, ${durationMs / 1000} s`);
          const r = await runLoad(t, size, conc, durationMs, true);
          log(`  ${r.opsPerS.toFixed(0)} ops/s, p50 ${r.p50ms.toFixed(2)} ms, p99 ${r.p99ms.toFixed(2)} ms, client CPU ${r.clientCpuUsPerOp.toFixed(0)} us/op${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`);
          results.push(r);
        }
      }
      memory[sys] = t.pids.map((p) => (procMem(p)?.hwm ?? 0) / MiB);
    } catch (e) {
      failure = failure ?? e;
      log(`${sys} failed: ${(e as Error).stack}`);
    } finally {
      if (t) await t.stop();
    }
  }

  const rows: string[][] = [];
  for (const size of sizes) {
    for (const conc of concs) {
      const h = results.find((r) => r.system === 'hanfs' && r.size === size && r.conc === conc);
      const e = results.find((r) => r.system === 'etcd' && r.size === size && r.conc === conc);
      const ratio = (a?: number, b?: number): string => (a !== undefined && b ? (a / b).toFixed(2) + 'x' : '-');
      rows.push([
        `${size % 1024 === 0 ? size / 1024 + ' KiB' : size + ' B'} x ${conc}`,
        fmt(h?.opsPerS, 0), fmt(e?.opsPerS, 0), ratio(h?.opsPerS, e?.opsPerS),
        fmt(h?.mibPerS, 2), fmt(e?.mibPerS, 2),
        fmt(h?.p50ms, 2), fmt(e?.p50ms, 2), ratio(h?.p50ms, e?.p50ms),
        fmt(h?.p99ms, 2), fmt(e?.p99ms, 2), ratio(h?.p99ms, e?.p99ms),
      ]);
    }
  }
  process.stdout.write('\n### Raft commit: hanfs 3-node vs etcd 3.4 3-member (loopback, fsync on)\n');
  process.stdout.write(table(
    ['entry x proposers', 'hanfs ops/s', 'etcd ops/s', 'ops ratio', 'hanfs MiB/s', 'etcd MiB/s', 'hanfs p50 ms', 'etcd p50 ms', 'p50 ratio', 'hanfs p99 ms', 'etcd p99 ms', 'p99 ratio'],
    rows,
  ) + '\n');
  process.stdout.write('(ops ratio: higher is better for hanfs; p50/p99 ratio: lower is better for hanfs)\n');
  const cpuRows: string[][] = [];
  for (const size of sizes) {
    for (const conc of concs) {
      const h = results.find((r) => r.system === 'hanfs' && r.size === size && r.conc === conc);
      const e = results.find((r) => r.system === 'etcd' && r.size === size && r.conc === conc);
      cpuRows.push([`${size % 1024 === 0 ? size / 1024 + ' KiB' : size + ' B'} x ${conc}`, fmt(h?.clientCpuUsPerOp, 0), fmt(e?.clientCpuUsPerOp, 0)]);
    }
  }
  process.stdout.write('\nload generator CPU per proposal (this process: client library + bookkeeping), us\n');
  process.stdout.write(table(['entry x proposers', `hanfs (line protocol)`, `etcd (${String(opts['etcd-client'])})`], cpuRows) + '\n');
  const base = fsync.p50ms + rtt.p50ms;
  process.stdout.write(`\nlocal fsync (1 KiB write + fdatasync) p50 ${fsync.p50ms.toFixed(3)} ms (p99 ${fsync.p99ms.toFixed(3)}); loopback TCP RTT p50 ${rtt.p50ms.toFixed(3)} ms (p99 ${rtt.p99ms.toFixed(3)})\n`);
  for (const size of sizes) {
    for (const sys of systems) {
      const r = results.find((x) => x.system === sys && x.size === size && x.conc === 1);
      if (r) process.stdout.write(`single-proposer commit latency vs (fsync + RTT = ${base.toFixed(3)} ms): ${sys} ${size} B p50 ${r.p50ms.toFixed(3)} ms = ${(r.p50ms / base).toFixed(2)}x (target for hanfs <= 2x)\n`);
    }
  }
  for (const [sys, hwm] of Object.entries(memory)) process.stdout.write(`${sys} peak RSS per node (VmHWM): ${hwm.map((m) => m.toFixed(0) + ' MB').join(', ')}\n`);
  const outFile = String(opts.out) || path.join(REPO, 'bench', 'results', `raft-${started.toISOString().replace(/[:]/g, '-').slice(0, 19)}.json`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ started: started.toISOString(), machine: machineInfo(), options: opts, fsync, rtt, results, memory, failure: failure ? String(failure) : null }, null, 2) + '\n');
  process.stdout.write(`\nresults: ${outFile}\n`);
  if (!opts.keep && !opts['cpu-prof']) fs.rmSync(work, { recursive: true, force: true });
  else process.stdout.write(`work dir kept: ${work}${opts['cpu-prof'] ? ` (raft node CPU profiles in ${path.join(work, 'cpu-prof')})` : ''}\n`);
  process.exitCode = failure ? 1 : 0;
}

void main();
