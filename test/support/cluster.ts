/**
 * Test harness: a hanfs cluster of real node processes (`hanfs serve --config` with a `cluster`
 * section) on loopback, real storage and TCP; the service address (NFS, MOUNT) is held by whichever
 * node leads. Every child is tracked by PID and killed at the end (and at process exit).
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { MountClient, Nfs3Client, RpcConnection } from '../../src/nfs/client';
import { CLI, freePorts, rmrf, run, sleep, tmpDir, type RunResult } from './util';
import type { Limits } from '../../src/config';
import { testExport, type TestExport } from './daemon';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.pid && c.exitCode === null) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
});

export interface NodeStatus {
  node: number;
  role: string;
  term: number;
  leader: number;
  commit: number;
  applied: number;
  storeApplied: number;
  storeDurable: number;
  serving: boolean;
  holdsServiceAddress: boolean;
  failure: string | null;
  followers: { id: number; match: number; lag: number }[];
}

export interface ClusterOptions {
  nodes?: number;
  logLevel?: string;
  tickMs?: number;
  electionTicks?: number;
  snapshotEntries?: number;
  catchUpEntries?: number;
  followerHoldMs?: number;
  /** exports of every node (default: one /export for 127.0.0.0/8, root not squashed) */
  exports?: TestExport[];
  /** limits over the cluster's defaults, for every node */
  limits?: Partial<Limits>;
  /** run the embedded portmapper on a free port (it moves with the service address) */
  portmap?: boolean;
  /** called for each node before its first start, with its data dir (e.g. to mount something there) */
  prepare?: (id: number, dataDir: string) => void;
  /** node options every node process starts with (e.g. --cpu-prof, which NODE_OPTIONS refuses) */
  nodeArgs?: string[];
}

export class ClusterNode {
  child: ChildProcess | null = null;
  starts = 0;
  /** what the node printed on stdout+stderr in its current run (first 256 KiB) */
  output = '';
  constructor(
    readonly id: number,
    readonly dir: string,
    readonly configPath: string,
    readonly adminPort: number,
  ) {}

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get logFile(): string {
    return path.join(this.dir, `node-${this.starts}.log`);
  }
}

export class TestCluster {
  private constructor(
    readonly workDir: string,
    /** by id - 1 */
    readonly nodes: ClusterNode[],
    readonly nfsPort: number,
    readonly mountPort: number,
    /** 0 unless started with `portmap` */
    readonly portmapPort = 0,
    /** node options every node process (nodes added later included) starts with */
    readonly nodeArgs: string[] = [],
  ) {}

  static async start(o: ClusterOptions = {}): Promise<TestCluster> {
    const n = o.nodes ?? 3;
    const workDir = tmpDir('cluster');
    const ports = await freePorts(3 + 3 * n);
    const [nfsPort, mountPort] = ports;
    const portmapPort = o.portmap ? ports[2 + 3 * n] : 0;
    const members = [];
    for (let i = 1; i <= n; i++) {
      const b = 2 + 3 * (i - 1);
      members.push({ id: i, peer: `127.0.0.1:${ports[b]}`, snapshot: `127.0.0.1:${ports[b + 1]}`, admin: `127.0.0.1:${ports[b + 2]}` });
    }
    const nodes: ClusterNode[] = [];
    for (let i = 1; i <= n; i++) {
      const dir = path.join(workDir, `node${i}`);
      fs.mkdirSync(dir, { recursive: true });
      const cfg = {
        dataDir: path.join(dir, 'data'),
        listen: { host: '127.0.0.1', nfsPort, mountPort, portmapPort },
        admin: { host: '127.0.0.1', port: ports[2 + 3 * (i - 1) + 2] },
        exports: o.exports ?? [testExport()],
        limits: { maxRecordBytes: 4 * 1024 * 1024 + 65536, drcMaxEntries: 4096, ...o.limits },
        log: { level: o.logLevel ?? 'info' },
        cluster: {
          nodeId: i,
          clusterId: 'test-cluster',
          members,
          tickMs: o.tickMs ?? 50,
          electionTicks: o.electionTicks ?? 20,
          ...(o.snapshotEntries ? { snapshotEntries: o.snapshotEntries } : {}),
          ...(o.catchUpEntries !== undefined ? { catchUpEntries: o.catchUpEntries } : {}),
          ...(o.followerHoldMs !== undefined ? { followerHoldMs: o.followerHoldMs } : {}),
        },
      };
      const configPath = path.join(dir, 'hanfs.json');
      fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2));
      nodes.push(new ClusterNode(i, dir, configPath, ports[2 + 3 * (i - 1) + 2]));
    }
    const c = new TestCluster(workDir, nodes, nfsPort, mountPort, portmapPort, o.nodeArgs);
    for (const node of nodes) o.prepare?.(node.id, path.join(node.dir, 'data'));
    for (const node of nodes) c.spawn(node);
    return c;
  }

  /** a node not started with the cluster (a member to join later); its config written here */
  addNode(id: number, dir: string, config: unknown, adminPort: number): ClusterNode {
    const configPath = path.join(dir, 'hanfs.json');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const n = new ClusterNode(id, dir, configPath, adminPort);
    this.nodes.push(n);
    return n;
  }

  get adminList(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.adminPort}`).join(',');
  }

  node(id: number): ClusterNode {
    return this.nodes[id - 1];
  }

  spawn(node: ClusterNode): void {
    if (node.running) throw new Error(`node ${node.id} already running`);
    node.starts++;
    node.output = '';
    const log = fs.createWriteStream(node.logFile);
    const child = spawn(process.execPath, [...this.nodeArgs, CLI, 'serve', '--config', node.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    node.child = child;
    live.add(child);
    const onData = (d: Buffer) => {
      log.write(d);
      if (node.output.length < 256 * 1024) node.output += d.toString();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => {
      live.delete(child);
      log.end();
    });
  }

  /** the mount command line node `id` printed at start-up (waits up to timeoutMs for it) */
  async printedMountCommand(id = 1, timeoutMs = 30_000): Promise<string | undefined> {
    const node = this.node(id);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = /mount\s+(?:-t\s+nfs\s+)?-o\s+\S+\s+\S+:\S+\s+\S+/.exec(node.output);
      if (m || Date.now() > until || !node.running) return m?.[0];
      await sleep(50);
    }
  }

  /** SIGKILL (or another signal) a node by its PID and wait until it is gone. */
  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(id);
    const child = node.child;
    if (!child || !node.running) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid!, signal);
    await Promise.race([gone, sleep(15_000)]);
    if (node.running) {
      process.kill(child.pid!, 'SIGKILL');
      await gone;
    }
  }

  /** GET `urlPath` from node `id`'s admin endpoint */
  adminGet(id: number, urlPath: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.node(id).adminPort, path: urlPath, timeout: timeoutMs }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('admin request timed out')));
      req.on('error', reject);
    });
  }

  async status(id: number, timeoutMs = 2000): Promise<NodeStatus | undefined> {
    const node = this.node(id);
    if (!node.running) return undefined;
    return new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: node.adminPort, path: '/cluster/status', timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as NodeStatus);
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
    });
  }

  /** the id of the node that serves (leader, lease, service address held); waits up to timeoutMs */
  async servingLeader(timeoutMs = 30_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      for (const n of this.nodes) {
        const s = await this.status(n.id, 500);
        if (s?.serving && s.holdsServiceAddress) return n.id;
      }
      await sleep(50);
    }
    throw new Error(`no serving leader within ${timeoutMs} ms`);
  }

  /** wait until every running node has applied at least `index` */
  async waitApplied(index: number, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      let all = true;
      for (const n of this.nodes) {
        if (!n.running) continue;
        const s = await this.status(n.id);
        if (!s || s.applied < index) all = false;
      }
      if (all) return;
      if (Date.now() > until) throw new Error(`not every node applied ${index} within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** `hanfs verify` over the running nodes */
  verify(): Promise<RunResult> {
    const admins = this.nodes.filter((n) => n.running).map((n) => `127.0.0.1:${n.adminPort}`).join(',');
    return run(process.execPath, [CLI, 'verify', '--admin', admins], { timeoutMs: 180_000 });
  }

  /** Every running node applies what the serving leader has committed; then `hanfs verify` must find
   * the replicas identical. Returns verify's output. */
  async expectIdentical(timeoutMs = 60_000): Promise<string> {
    const st = await this.status(await this.servingLeader());
    await this.waitApplied(st!.commit, timeoutMs);
    const v = await this.verify();
    assert.equal(v.code, 0, `hanfs verify: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /replicas identical/);
    return v.stdout;
  }

  /** SIGTERM every node; then `hanfs fsck` must be clean on each node's store. */
  async expectStoresClean(): Promise<void> {
    await this.stopAll('SIGTERM');
    for (const n of this.nodes) {
      const f = await this.fsck(n.id);
      assert.equal(f.code, 0, `fsck node ${n.id}: ${f.stdout}${f.stderr}`);
    }
  }

  /** `hanfs fsck` of a stopped node's store */
  fsck(id: number): Promise<RunResult> {
    return run(process.execPath, [CLI, 'fsck', '--config', this.node(id).configPath], { timeoutMs: 120_000 });
  }

  async stopAll(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.id, signal)));
  }

  async destroy(keepOnFailure = false): Promise<void> {
    await this.stopAll('SIGKILL');
    if (!keepOnFailure) rmrf(this.workDir);
  }

  logs(): string {
    const out: string[] = [];
    for (const n of this.nodes) {
      for (let k = 1; k <= n.starts; k++) {
        const f = path.join(n.dir, `node-${k}.log`);
        if (fs.existsSync(f)) out.push(`--- node ${n.id} run ${k}\n${fs.readFileSync(f, 'utf8').split('\n').slice(-40).join('\n')}`);
      }
    }
    return out.join('\n');
  }
}

/** An NFS client of the cluster's service address that reconnects (to whichever node holds it). */
export class FailoverClient {
  nfs!: Nfs3Client;
  root!: Uint8Array;
  reconnects = 0;
  private constructor(
    private readonly nfsPort: number,
    private readonly mountPort: number,
  ) {}

  static async connect(c: TestCluster, timeoutMs = 30_000): Promise<FailoverClient> {
    const f = new FailoverClient(c.nfsPort, c.mountPort);
    await f.reconnect(timeoutMs);
    f.reconnects = 0;
    return f;
  }

  async reconnect(timeoutMs = 30_000): Promise<void> {
    this.nfs?.close();
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (!this.root) {
          const mc = new MountClient(await RpcConnection.connect({ port: this.mountPort, timeoutMs: 3000 }));
          try {
            this.root = await mc.mntOrThrow('/export');
          } finally {
            mc.close();
          }
        }
        this.nfs = new Nfs3Client(await RpcConnection.connect({ port: this.nfsPort, timeoutMs: 3000, maxRecordBytes: 16 << 20 }));
        await this.nfs.null();
        this.reconnects++;
        return;
      } catch (e) {
        this.nfs?.close();
        if (Date.now() > until) throw new Error(`no server on the service address within ${timeoutMs} ms: ${(e as Error).message}`);
        await sleep(20);
      }
    }
  }

  /** run `f` until it gets an answer, reconnecting and retrying on connection loss or timeout (the
   * way an NFS client retransmits after a failover) */
  async call<T>(f: (nfs: Nfs3Client) => Promise<T>, timeoutMs = 60_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await f(this.nfs);
      } catch (e) {
        if (Date.now() > until) throw e;
        await this.reconnect(Math.max(1000, until - Date.now()));
      }
    }
  }

  close(): void {
    this.nfs?.close();
  }
}
