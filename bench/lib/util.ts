/** Shared helpers of the benchmarks: statistics, tables, processes, RSS sampling, ports. */
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

export const now = (): number => Number(process.hrtime.bigint()) / 1e6; // ms, float

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samplesMs: number[]): { n: number; p50: number; p99: number; mean: number } {
  const s = Float64Array.from(samplesMs).sort();
  const arr = Array.from(s);
  const mean = arr.reduce((a, b) => a + b, 0) / (arr.length || 1);
  return { n: arr.length, p50: percentile(arr, 50), p99: percentile(arr, 99), mean };
}

/** Run `n` tasks with at most `conc` in flight; task(i) gets the index. */
export async function pool(n: number, conc: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (failed === null) {
      const i = next++;
      if (i >= n) return;
      try {
        await task(i);
      } catch (e) {
        failed = e;
        throw e;
      }
    }
  };
  const ws: Promise<void>[] = [];
  for (let k = 0; k < Math.min(conc, n); k++) ws.push(worker());
  const res = await Promise.allSettled(ws);
  for (const r of res) if (r.status === 'rejected') throw r.reason;
}

export function fmt(v: number | undefined | null, digits = 1): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  return v.toFixed(digits);
}

export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(cells[0]), sep, ...cells.slice(1).map(line)].join('\n');
}

export function log(...a: unknown[]): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export async function waitPort(port: number, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (alive && !alive()) throw new Error(`process exited before port ${port} opened`);
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await sleep(100);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** VmRSS and VmHWM of a process in bytes (undefined when it is gone). */
export function procMem(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(s);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(s);
    return { rss: Number(rss?.[1] ?? 0) * 1024, hwm: Number(hwm?.[1] ?? 0) * 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used so far, all its threads (thread pools included, and threads that have
 * ended: ganesha's come and go), in ms: utime + stime of /proc/PID/stat, in clock ticks of 10 ms
 * (USER_HZ is 100 on Linux). On a shared machine this tells what a phase cost the server when the
 * wall clock also counts other people's work. undefined when gone.
 */
export function procCpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Polls VmRSS/VmHWM of a pid every `periodMs`; keeps the peak it has seen. */
export class RssSampler {
  peakRss = 0;
  hwm = 0;
  last = 0;
  private timer: NodeJS.Timeout;
  constructor(readonly pid: number, periodMs = 100) {
    this.timer = setInterval(() => this.sample(), periodMs);
    this.timer.unref();
    this.sample();
  }
  sample(): void {
    const m = procMem(this.pid);
    if (!m) return;
    this.last = m.rss;
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.hwm > this.hwm) this.hwm = m.hwm;
  }
  /** reset the window peak (VmHWM itself can only be reset through /proc/PID/clear_refs) */
  resetWindow(): void {
    this.peakRss = 0;
    try {
      fs.writeFileSync(`/proc/${this.pid}/clear_refs`, '5'); // 5 = reset the peak RSS (VmHWM)
      this.hwm = 0;
    } catch {
      /* not permitted: keep the lifetime HWM */
    }
    this.sample();
  }
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

export const MiB = 1024 * 1024;
export const mb = (b: number): string => (b / MiB).toFixed(1);

export interface Managed {
  child: ChildProcess;
  pid: number;
  exited: boolean;
  stop(): Promise<void>;
}

/** Spawn a long-running process we own; stdout/stderr go to a log file. stop() ends it by its pid. */
export function spawnManaged(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Managed {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out], env: env ?? process.env });
  fs.closeSync(out);
  const m: Managed = {
    child,
    pid: child.pid!,
    exited: false,
    async stop() {
      if (m.exited) return;
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      // generous: a daemon run with --cpu-prof writes its profile on the way out
      const t = setTimeout(() => { if (!m.exited) child.kill('SIGKILL'); }, 30_000);
      await done;
      clearTimeout(t);
    },
  };
  child.once('exit', () => { m.exited = true; });
  return m;
}

export function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** apt-get install the packages if a command is missing (the bench machines are Debian, as root). */
export function ensureDebPackages(cmd: string, pkgs: string[]): void {
  if (which(cmd)) return;
  log(`installing ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
  }
}

export function parseArgs(argv: string[], spec: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = { ...spec };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    let key = a.slice(2);
    let val: string | undefined;
    const eq = key.indexOf('=');
    if (eq >= 0) { val = key.slice(eq + 1); key = key.slice(0, eq); }
    if (!(key in spec)) throw new Error(`unknown option --${key}; known: ${Object.keys(spec).map((k) => '--' + k).join(' ')}`);
    if (typeof spec[key] === 'boolean') { out[key] = val === undefined ? true : val !== 'false'; continue; }
    if (val === undefined) val = argv[++i];
    if (val === undefined) throw new Error(`--${key} needs a value`);
    out[key] = typeof spec[key] === 'number' ? Number(val) : val;
    if (typeof spec[key] === 'number' && !Number.isFinite(out[key] as number)) throw new Error(`--${key}: not a number`);
  }
  return out;
}

export function machineInfo(): Record<string, string | number> {
  const os = require('node:os') as typeof import('node:os');
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
}
