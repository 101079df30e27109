/**
 * Test harness: a cluster of real raft-node-main processes on 127.0.0.1 with real storage and TCP.
 * Every child is tracked by PID and killed in stopAll().
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import pino from 'pino';
import { RaftNode, type RaftNodeOptions } from '../../../src/raft/raft-node';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    servers.push(s);
    ports.push((s.address() as net.AddressInfo).port);
  }
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  return ports;
}

/**
 * A RaftNode in this process: voter `id` of a cluster of ports.length voters on 127.0.0.1 (ids 1..n,
 * in the order of `ports`), its log in root/n<id>, 20 ms ticks, silent unless `logger` is given.
 */
export function startLocalNode(
  o: { root: string; ports: number[]; id: number; clusterId: string } & Pick<RaftNodeOptions, 'stateMachine'> & Partial<RaftNodeOptions>,
): Promise<RaftNode> {
  const { root, ports, ...rest } = o;
  return RaftNode.start({
    peers: Object.fromEntries(ports.map((port, k) => [k + 1, { host: '127.0.0.1', port }])),
    dir: path.join(root, `n${o.id}`),
    secret: 'k',
    tickMs: 20,
    electionTicks: 10,
    logger: pino({ level: 'silent' }),
    ...rest,
  });
}

/** The node of `nodes` that leads (waits up to about 5 s). */
export async function leaderOf(nodes: Map<number, RaftNode>): Promise<RaftNode> {
  for (let i = 0; i < 500; i++) {
    for (const n of nodes.values()) if (n.isLeader()) return n;
    await sleep(10);
  }
  throw new Error('no leader');
}

/** One line-protocol client connection; commands are answered in order. */
export class LineClient {
  private sock: net.Socket;
  private buf = '';
  private waiting: { lines: number; got: string[]; resolve: (l: string[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private dead: Error | undefined;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => this.onData(c));
    const die = (e: Error) => {
      this.dead = e;
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(e);
      }
    };
    sock.on('error', die);
    sock.on('close', () => die(new Error('connection closed')));
  }

  static connect(port: number, timeoutMs = 2000): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('connect timeout'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new LineClient(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  private onData(c: string): void {
    this.buf += c;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const w = this.waiting[0];
      if (!w) continue;
      w.got.push(line);
      if (w.got.length === 1 && line.startsWith('ok ') && w.lines < 0) w.lines = 1 + Number(line.slice(3));
      if (w.lines < 0) w.lines = 1;
      if (w.got.length >= w.lines) {
        this.waiting.shift();
        clearTimeout(w.timer);
        w.resolve(w.got);
      }
    }
  }

  /** Send one command; `multi` when the answer is "ok <n>" followed by n lines (dump). */
  call(cmd: string, timeoutMs = 5000, multi = false): Promise<string[]> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timeout: ${cmd.slice(0, 40)}`));
        this.close();
      }, timeoutMs);
      this.waiting.push({ lines: multi ? -1 : 1, got: [], resolve, reject, timer });
      this.sock.write(cmd + '\n');
    });
  }

  async one(cmd: string, timeoutMs = 5000): Promise<string> {
    return (await this.call(cmd, timeoutMs))[0];
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface NodeSpec {
  id: number;
  peerPort: number;
  clientPort: number;
  dir: string;
}

export class Cluster {
  readonly nodes: NodeSpec[] = [];
  private procs = new Map<number, ChildProcess>();
  private exits = new Map<number, Promise<void>>();
  private readonly main: string;

  constructor(
    readonly root: string,
    readonly n: number,
    private readonly extraArgs: string[] = [],
  ) {
    this.main = path.resolve(__dirname, '../../../src/raft/raft-node-main.js');
  }

  async init(): Promise<void> {
    const ports = await freePorts(this.n * 2);
    for (let i = 0; i < this.n; i++) {
      this.nodes.push({ id: i + 1, peerPort: ports[i], clientPort: ports[this.n + i], dir: path.join(this.root, `node-${i + 1}`) });
    }
  }

  peersArg(): string {
    return this.nodes.map((n) => `${n.id}=127.0.0.1:${n.peerPort}`).join(',');
  }

  start(id: number): void {
    const n = this.nodes[id - 1];
    const log = fs.openSync(path.join(this.root, `node-${id}.log`), 'a');
    const p = spawn(process.execPath, [this.main, '--id', String(id), '--peers', this.peersArg(), '--dir', n.dir, '--client-port', String(n.clientPort), ...this.extraArgs], {
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.procs.set(id, p);
    this.exits.set(id, new Promise((r) => p.once('exit', () => r())));
  }

  pid(id: number): number | undefined {
    return this.procs.get(id)?.pid;
  }

  running(id: number): boolean {
    const p = this.procs.get(id);
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(id);
    if (!p) return;
    if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, signal);
    await Promise.race([this.exits.get(id), sleep(10_000)]);
    this.procs.delete(id);
  }

  async stopAll(): Promise<void> {
    for (const id of [...this.procs.keys()]) await this.kill(id, 'SIGKILL');
  }

  async status(id: number): Promise<{ role: string; leader: number; term: number; applied: number; commit: number; lastIndex: number; firstIndex: number } | undefined> {
    try {
      const c = await LineClient.connect(this.nodes[id - 1].clientPort, 1000);
      try {
        const l = await c.one('status', 2000);
        return l.startsWith('ok ') ? JSON.parse(l.slice(3)) : undefined;
      } finally {
        c.close();
      }
    } catch {
      return undefined;
    }
  }

  /** The node all running nodes agree is leader (and which says so itself), or 0. */
  async leader(): Promise<number> {
    for (let id = 1; id <= this.n; id++) {
      if (!this.running(id)) continue;
      const s = await this.status(id);
      if (s && s.role === 'leader') return id;
    }
    return 0;
  }

  async waitLeader(timeoutMs: number): Promise<number> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const l = await this.leader();
      if (l) return l;
      await sleep(50);
    }
    throw new Error('no leader elected in time');
  }

  async dump(id: number): Promise<{ index: number; payload: string }[]> {
    const c = await LineClient.connect(this.nodes[id - 1].clientPort, 2000);
    try {
      const lines = await c.call('dump', 20_000, true);
      return lines.slice(1).map((l) => {
        const sp = l.indexOf(' ');
        return { index: Number(l.slice(0, sp)), payload: l.slice(sp + 1) };
      });
    } finally {
      c.close();
    }
  }
}
