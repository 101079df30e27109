/**
 * What an end-to-end suite runs against: one daemon (test/support/daemon.ts) or a 3-node cluster
 * (test/support/cluster.ts) whose serving leader holds the service address. Both are real
 * processes on loopback; a suite opens sessions on `nfsPort`/`mountPort` and asks `alive()`.
 *
 * `e2eTargets()` is the list a suite makes one `describe` per target for: HANFS_E2E_TARGETS
 * (comma separated, `daemon` and/or `cluster`), both by default.
 */
import * as fs from 'node:fs';
import type { Limits } from '../../src/config';
import { TestCluster } from './cluster';
import { Daemon, testExport, type TestExport } from './daemon';
import { sleep, waitForPort } from './util';

export type TargetKind = 'daemon' | 'cluster';

export interface TargetOptions {
  exports?: TestExport[];
  limits?: Partial<Limits>;
  logLevel?: string;
  /** run the embedded portmapper (a cluster: on every node, bound by the serving one) */
  portmap?: boolean;
}

export interface NfsTarget {
  readonly kind: TargetKind;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** the portmapper's port (0 unless started with `portmap`) */
  readonly portmapPort: number;
  /** the daemon; for a cluster: every node process, and the node that served at the start still
   * serves (no failover happened) */
  alive(): Promise<boolean>;
  /** VmRSS of the serving process (bytes) */
  rssBytes(): number;
  /** what the serving process printed at start-up */
  printedLibnfsUrl(): string | undefined;
  /** the start-up output and log tails, for failure messages */
  output(): string;
  url(exportPath?: string, extra?: string): string;
  /** the daemon: SIGTERM and start it again on the same data dir. A cluster: SIGTERM the serving
   * node, wait until another node serves the service address, then start the stopped node again
   * (so the clients' next calls reach a different replica) */
  restartServing(): Promise<void>;
  /** the Prometheus text of the serving process's admin endpoint */
  metrics(): Promise<string>;
  stop(): Promise<void>;
  /** the cluster, for a cluster target */
  readonly cluster?: TestCluster;
}

export function e2eTargets(): TargetKind[] {
  const v = (process.env.HANFS_E2E_TARGETS ?? 'daemon,cluster').split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of v) if (k !== 'daemon' && k !== 'cluster') throw new Error(`HANFS_E2E_TARGETS: unknown target ${k}`);
  return v as TargetKind[];
}

function libnfsUrl(port: number, mountPort: number, exportPath: string, extra: string): string {
  return `nfs://127.0.0.1${exportPath}?version=3&nfsport=${port}&mountport=${mountPort}${extra}`;
}

function rss(pid: number | undefined): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!m) throw new Error('no VmRSS');
  return Number(m[1]) * 1024;
}

class DaemonTarget implements NfsTarget {
  readonly kind = 'daemon';
  constructor(readonly d: Daemon) {}
  get nfsPort(): number {
    return this.d.nfsPort;
  }
  get mountPort(): number {
    return this.d.mountPort;
  }
  get portmapPort(): number {
    return this.d.portmapPort;
  }
  async alive(): Promise<boolean> {
    return this.d.running;
  }
  restartServing(): Promise<void> {
    return this.d.restart('SIGTERM');
  }
  metrics(): Promise<string> {
    return this.d.metrics();
  }
  rssBytes(): number {
    return this.d.rssBytes();
  }
  printedLibnfsUrl(): string | undefined {
    return this.d.printedLibnfsUrl();
  }
  output(): string {
    return this.d.output.slice(-4000);
  }
  url(exportPath = '/export', extra = ''): string {
    return this.d.url(exportPath, extra);
  }
  stop(): Promise<void> {
    return this.d.stop();
  }
}

class ClusterTarget implements NfsTarget {
  readonly kind = 'cluster';
  constructor(
    readonly cluster: TestCluster,
    /** the node that served when the target was ready (or after the last restartServing) */
    private leader: number,
  ) {}
  private get c(): TestCluster {
    return this.cluster;
  }
  get nfsPort(): number {
    return this.c.nfsPort;
  }
  get mountPort(): number {
    return this.c.mountPort;
  }
  get portmapPort(): number {
    return this.c.portmapPort;
  }
  async alive(): Promise<boolean> {
    if (!this.c.nodes.every((n) => n.running)) return false;
    const s = await this.c.status(this.leader, 5000);
    return !!s && s.serving && s.holdsServiceAddress;
  }
  rssBytes(): number {
    return rss(this.c.node(this.leader).pid);
  }
  printedLibnfsUrl(): string | undefined {
    return /nfs:\/\/[^\s"']+/.exec(this.c.node(this.leader).output)?.[0];
  }
  output(): string {
    return this.c.logs();
  }
  url(exportPath = '/export', extra = ''): string {
    return libnfsUrl(this.c.nfsPort, this.c.mountPort, exportPath, extra);
  }
  async restartServing(): Promise<void> {
    const old = await this.c.servingLeader(30_000);
    await this.c.kill(old, 'SIGTERM');
    const next = await this.c.servingLeader(60_000);
    if (next === old) throw new Error(`node ${old} serves again after its stop`);
    this.c.spawn(this.c.node(old));
    const st = await this.c.status(next);
    if (!st) throw new Error(`node ${next} does not answer /cluster/status`);
    await this.c.waitApplied(st.commit, 60_000);
    this.leader = next;
  }
  async metrics(): Promise<string> {
    const r = await this.c.adminGet(await this.c.servingLeader(30_000), '/metrics');
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return r.body;
  }
  async stop(): Promise<void> {
    await this.c.stopAll('SIGTERM');
    await this.c.destroy(process.env.HANFS_KEEP_TEST_DIRS === '1');
  }
}

export async function startTarget(kind: TargetKind, o: TargetOptions = {}): Promise<NfsTarget> {
  if (kind === 'daemon') return new DaemonTarget(await Daemon.start({ exports: o.exports, limits: o.limits, logLevel: o.logLevel, portmap: o.portmap }));
  const c = await TestCluster.start({
    nodes: 3,
    logLevel: o.logLevel ?? process.env.HANFS_TEST_CLUSTER_LOG_LEVEL ?? 'warn',
    exports: o.exports ?? [testExport()],
    limits: o.limits,
    portmap: o.portmap,
  });
  try {
    const leader = await c.servingLeader(60_000);
    await waitForPort(c.nfsPort, 30_000);
    await waitForPort(c.mountPort, 30_000);
    if (c.portmapPort) await waitForPort(c.portmapPort, 30_000);
    // the start-up banner (mount command, libnfs URL) comes once the node is up
    for (let i = 0; i < 100 && !/nfs:\/\//.test(c.node(leader).output); i++) await sleep(50);
    return new ClusterTarget(c, leader);
  } catch (e) {
    const logs = c.logs();
    await c.destroy();
    throw new Error(`cluster did not start serving: ${(e as Error).message}\n${logs}`);
  }
}
