/**
 * Starts the real hanfs daemon (`node dist/src/cli.js serve ...`) as a child process on free
 * loopback ports with a temporary data dir, waits until NFS and MOUNT listen, and stops it by PID.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExportConfig, Limits } from '../../src/config';
import { CLI, freePorts, rmrf, run, sleep, tmpDir, waitForPort, type RunResult } from './util';

/** an export as the daemon's config file takes it */
export type TestExport = ExportConfig;

export function testExport(over: Partial<TestExport> = {}): TestExport {
  return {
    path: '/export',
    id: 1,
    clients: ['127.0.0.0/8'],
    readOnly: false,
    rootSquash: false,
    allSquash: false,
    anonUid: 65534,
    anonGid: 65534,
    allowAuthNone: false,
    ...over,
  };
}

export interface DaemonOptions {
  exports?: TestExport[];
  limits?: Partial<Limits>;
  logLevel?: string;
  /** reuse a work dir (data dir inside it) instead of a new temporary one */
  workDir?: string;
  startTimeoutMs?: number;
  /** run the embedded portmapper on a free port */
  portmap?: boolean;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) {
    if (c.pid && c.exitCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
});

export class Daemon {
  child: ChildProcess | null = null;
  /** everything the daemon printed on stdout+stderr in its current run (first 256 KiB) */
  output = '';
  private starts = 0;

  private constructor(
    readonly workDir: string,
    readonly dataDir: string,
    readonly configPath: string,
    readonly nfsPort: number,
    readonly mountPort: number,
    readonly adminPort: number,
    readonly config: Record<string, unknown>,
    private readonly ownsWorkDir: boolean,
    private readonly startTimeoutMs: number,
  ) {}

  static async start(opts: DaemonOptions = {}): Promise<Daemon> {
    const ownsWorkDir = !opts.workDir;
    const workDir = opts.workDir ?? tmpDir('e2e');
    const dataDir = path.join(workDir, 'data');
    fs.mkdirSync(dataDir, { recursive: true });
    const [nfsPort, mountPort, adminPort, portmapPort] = await freePorts(4);
    const config = {
      dataDir,
      listen: { host: '127.0.0.1', nfsPort, mountPort, portmapPort: opts.portmap ? portmapPort : 0 },
      admin: { host: '127.0.0.1', port: adminPort },
      exports: opts.exports ?? [testExport()],
      limits: {
        maxRecordBytes: 4 * 1024 * 1024 + 65536,
        maxInflightPerConnection: 128,
        maxConnections: 256,
        idleRecordTimeoutMs: 30_000,
        idleConnectionTimeoutMs: 600_000,
        drcMaxEntries: 4096,
        ...opts.limits,
      },
      log: { level: opts.logLevel ?? 'warn' },
    };
    const configPath = path.join(workDir, 'hanfs.json');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const d = new Daemon(workDir, dataDir, configPath, nfsPort, mountPort, adminPort, config, ownsWorkDir, opts.startTimeoutMs ?? 30_000);
    await d.spawn();
    return d;
  }

  get portmapPort(): number {
    return (this.config.listen as { portmapPort: number }).portmapPort;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get logFile(): string {
    return path.join(this.workDir, `daemon-${this.starts}.log`);
  }

  /** (Re)start the daemon on the same ports and data dir. */
  async spawn(): Promise<void> {
    if (this.running) throw new Error('daemon already running');
    this.starts++;
    this.output = '';
    const log = fs.createWriteStream(this.logFile);
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--data-dir', this.dataDir, '--nfs-port', String(this.nfsPort), '--mount-port', String(this.mountPort), '--config', this.configPath],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
    );
    this.child = child;
    live.add(child);
    const onData = (d: Buffer) => {
      log.write(d);
      if (this.output.length < 256 * 1024) this.output += d.toString();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => {
      live.delete(child);
      log.end();
    });
    try {
      await waitForPort(this.nfsPort, this.startTimeoutMs, '127.0.0.1', () => this.running);
      await waitForPort(this.mountPort, this.startTimeoutMs, '127.0.0.1', () => this.running);
      if (this.portmapPort) await waitForPort(this.portmapPort, this.startTimeoutMs, '127.0.0.1', () => this.running);
      // the start-up banner (mount command, libnfs URL) is printed once everything is up
      const bannerBy = Date.now() + 5000;
      while (!/libnfs:|nfs:\/\//.test(this.output) && Date.now() < bannerBy && this.running) await sleep(50);
    } catch (err) {
      await this.kill('SIGKILL');
      throw new Error(`daemon did not start: ${(err as Error).message}\n--- output ---\n${this.output.slice(-4000)}`);
    }
  }

  /** Send a signal by PID and wait (bounded) for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !child.pid || !this.running) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      process.kill(child.pid, signal);
    } catch {
      return;
    }
    const t = sleep(timeoutMs).then(() => 'timeout');
    if ((await Promise.race([exited.then(() => 'exit'), t])) === 'timeout' && this.running) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.kill(signal);
    await this.spawn();
  }

  /** Stop and remove the temporary work dir (unless HANFS_KEEP_TEST_DIRS=1 or it was given). */
  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    if (this.ownsWorkDir && process.env.HANFS_KEEP_TEST_DIRS !== '1') rmrf(this.workDir);
  }

  /** VmRSS of the daemon in bytes (from /proc/PID/status). */
  rssBytes(): number {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    if (!m) throw new Error('no VmRSS');
    return Number(m[1]) * 1024;
  }

  httpGet(urlPath: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.adminPort, path: urlPath, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('admin request timed out')));
      req.on('error', reject);
    });
  }

  metrics(): Promise<string> {
    return this.httpGet('/metrics').then((r) => {
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      return r.body;
    });
  }

  /** The mount command line the daemon printed at start-up, if any. */
  printedMountCommand(): string | undefined {
    const m = /mount\s+(?:-t\s+nfs\s+)?-o\s+\S+\s+\S+:\S+\s+\S+/.exec(this.output);
    return m?.[0];
  }

  /** The libnfs URL the daemon printed at start-up, if any. */
  printedLibnfsUrl(): string | undefined {
    return /nfs:\/\/[^\s"']+/.exec(this.output)?.[0];
  }

  url(exportPath = '/export', extra = ''): string {
    return `nfs://127.0.0.1${exportPath}?version=3&nfsport=${this.nfsPort}&mountport=${this.mountPort}${extra}`;
  }
}

export function fsck(dataDir: string, timeoutMs = 120_000): Promise<RunResult> {
  return run(process.execPath, [CLI, 'fsck', '--data-dir', dataDir], { timeoutMs });
}
