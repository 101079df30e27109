/**
 * Test helpers for the RPC layer: a raw ONC RPC client over real TCP/UDP sockets that can send any
 * bytes (malformed headers, odd fragments), an independent record-marking reader, reply parsing, and
 * small programs with controllable behaviour.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import type { ProgramResult, RpcCallContext, RpcProgram } from '../../src/nfs/rpc-program';
import { RpcServer, XdrOut, xdrU32 } from '../../src/nfs/rpc-server';
import { silentLogger } from '../../src/log';
import { DEFAULT_LIMITS, type Limits } from '../../src/config';
import { encodeAuthSys } from '../../src/nfs/auth';
import type { RpcMetrics } from '../../src/metrics';

export interface CallOpts {
  rpcvers?: number;
  credFlavor?: number;
  cred?: Uint8Array;
  verfFlavor?: number;
  verf?: Uint8Array;
  msgType?: number;
}

function pad(b: Uint8Array): Buffer {
  const padded = Buffer.alloc((b.length + 3) & ~3);
  padded.set(b);
  return padded;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export const SYS_CRED = encodeAuthSys({ stamp: 1, machine: 'testhost', uid: 1000, gid: 1000, gids: [1000, 27] });

/** An RPC call message (no record mark). */
export function callMsg(xid: number, prog: number, vers: number, proc: number, args: Uint8Array = new Uint8Array(0), o: CallOpts = {}): Buffer {
  const cred = o.cred ?? (o.credFlavor === undefined || o.credFlavor === 1 ? SYS_CRED : new Uint8Array(0));
  const verf = o.verf ?? new Uint8Array(0);
  return Buffer.concat([
    u32(xid),
    u32(o.msgType ?? 0),
    u32(o.rpcvers ?? 2),
    u32(prog),
    u32(vers),
    u32(proc),
    u32(o.credFlavor ?? 1),
    u32(cred.length),
    pad(cred),
    u32(o.verfFlavor ?? 0),
    u32(verf.length),
    pad(verf),
    Buffer.from(args),
  ]);
}

/** One record, one fragment. */
export function record(body: Uint8Array): Buffer {
  return Buffer.concat([u32(0x80000000 | body.length), Buffer.from(body)]);
}

export type Reply =
  | { xid: number; kind: 'accepted'; stat: number; low?: number; high?: number; body: Buffer }
  | { xid: number; kind: 'denied'; rejectStat: number; low?: number; high?: number; authStat?: number };

export function parseReply(b: Buffer): Reply {
  const xid = b.readUInt32BE(0);
  if (b.readUInt32BE(4) !== 1) throw new Error('not a reply');
  const replyStat = b.readUInt32BE(8);
  if (replyStat === 0) {
    const verfLen = b.readUInt32BE(16);
    let p = 20 + ((verfLen + 3) & ~3);
    const stat = b.readUInt32BE(p);
    p += 4;
    if (stat === 2) return { xid, kind: 'accepted', stat, low: b.readUInt32BE(p), high: b.readUInt32BE(p + 4), body: b.subarray(p + 8) };
    return { xid, kind: 'accepted', stat, body: b.subarray(p) };
  }
  const rejectStat = b.readUInt32BE(12);
  if (rejectStat === 0) return { xid, kind: 'denied', rejectStat, low: b.readUInt32BE(16), high: b.readUInt32BE(20) };
  return { xid, kind: 'denied', rejectStat, authStat: b.readUInt32BE(16) };
}

/** The result bytes of a reply that must be an accepted SUCCESS (asserts it). */
export function successBody(r: Reply): Buffer {
  assert.equal(r.kind, 'accepted');
  if (r.kind !== 'accepted') throw new Error('unreachable');
  assert.equal(r.stat, 0, `accept_stat ${r.stat}`);
  return r.body;
}

/** The XDR string at offset p of b, and the offset after it (padding included). */
export function readStr(b: Buffer, p: number): [string, number] {
  const n = b.readUInt32BE(p);
  return [b.subarray(p + 4, p + 4 + n).toString(), p + 4 + ((n + 3) & ~3)];
}

/**
 * Count the single-fragment records (replies) arriving on a raw socket, without parsing them. Adds a
 * 'data' listener: a socket that was paused stays paused until resumed.
 */
export function countRecords(sock: net.Socket): { readonly count: number } {
  const counter = { count: 0 };
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + (buf.readUInt32BE(0) & 0x7fffffff)) {
      buf = buf.subarray(4 + (buf.readUInt32BE(0) & 0x7fffffff));
      counter.count++;
    }
  });
  return counter;
}

/** A TCP client that reassembles records independently of the server's decoder. */
export class RawTcpClient {
  private buf = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private waiters: ((r: Buffer) => void)[] = [];
  private records: Buffer[] = [];
  closed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters) w();
    });
    sock.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawTcpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, localAddress }, () => resolve(new RawTcpClient(s)));
      s.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const h = this.buf.readUInt32BE(0);
      const len = h & 0x7fffffff;
      if (this.buf.length < 4 + len) break;
      this.parts.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
      if (h & 0x80000000) {
        const rec = Buffer.concat(this.parts);
        this.parts = [];
        const w = this.waiters.shift();
        if (w) w(rec);
        else this.records.push(rec);
      }
    }
  }

  write(b: Uint8Array): void {
    this.sock.write(b);
  }

  send(msg: Uint8Array): void {
    this.sock.write(record(msg));
  }

  next(timeoutMs = 3000): Promise<Buffer> {
    const r = this.records.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const waiter = (rec: Buffer) => {
        clearTimeout(t);
        resolve(rec);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error('no reply in time'));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async call(msg: Uint8Array): Promise<Reply> {
    this.send(msg);
    return parseReply(await this.next());
  }

  /** resolves true when the server closes the connection within timeoutMs */
  waitClosed(timeoutMs = 3000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

export function udpCall(port: number, msg: Uint8Array, timeoutMs = 3000, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP reply in time'));
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, host);
  });
}

/** Program 0x20000001, versions 2..4: proc 0 NULL, 1 echo after `delay` ms (u32 delay, opaque data),
 * 2 throws, 3 returns garbage_args, 4 reads past the end, 5 answers AUTH_TOOWEAK for AUTH_NONE,
 * 6 waits until released (gate), 7 returns the caller's uid, 8 returns u32 n bytes (a READ-like
 * small call with a big reply, in a buffer of exactly that size). */
export class TestProgram implements RpcProgram {
  readonly prog = 0x20000001;
  readonly versions = [2, 3, 4];
  readonly name = 'test';
  concurrent = 0;
  maxConcurrent = 0;
  calls = 0;
  private gate: (() => void)[] = [];

  procName(_v: number, proc: number): string {
    return ['NULL', 'ECHO', 'THROW', 'GARBAGE', 'OVERRUN', 'STRICT', 'GATE', 'WHOAMI', 'BIG'][proc] ?? 'unknown';
  }

  release(): void {
    const g = this.gate;
    this.gate = [];
    for (const f of g) f();
  }

  get waiting(): number {
    return this.gate.length;
  }

  async handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult> {
    this.calls++;
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    try {
      switch (ctx.proc) {
        case 0:
          return { kind: 'success', body: new Uint8Array(0) };
        case 1: {
          const delay = xdrU32(args);
          const rest = args.uint8.subarray(args.x, args.end);
          await new Promise((r) => setTimeout(r, delay));
          return { kind: 'success', body: Buffer.from(rest) };
        }
        case 2:
          throw new Error('boom');
        case 3:
          return { kind: 'garbage_args' };
        case 4:
          xdrU32(args);
          xdrU32(args);
          return { kind: 'success', body: new Uint8Array(0) };
        case 5:
          if (ctx.flavor === 0) return { kind: 'auth_error', stat: 5 };
          return { kind: 'success', body: new Uint8Array(0) };
        case 6:
          await new Promise<void>((r) => this.gate.push(r));
          return { kind: 'success', body: new XdrOut().u32(ctx.xid).bytes() };
        case 7:
          return { kind: 'success', body: new XdrOut().u32(ctx.sys ? ctx.sys.uid : 0xffffffff).bytes() };
        case 8:
          return { kind: 'success', body: Buffer.alloc(xdrU32(args), 5) };
        default:
          return { kind: 'proc_unavail' };
      }
    } finally {
      this.concurrent--;
    }
  }
}

export function testLimits(over: Partial<Limits> = {}): Limits {
  return { ...DEFAULT_LIMITS, maxRecordBytes: 64 * 1024, ...over };
}

export function newServer(over: Partial<Limits> = {}, metrics?: RpcMetrics): RpcServer {
  return new RpcServer({ limits: testLimits(over), log: silentLogger(), metrics });
}

/**
 * Servers and client sockets of the tests in one describe block, closed after each test even when it
 * fails. Call inside `describe`: it registers the afterEach hook.
 */
export function serverScope(): {
  /** a server (newServer) closed after the test */
  newServer(over?: Partial<Limits>, metrics?: RpcMetrics): RpcServer;
  /** servers made otherwise, closed after the test */
  servers: RpcServer[];
  /** sockets closed after the test */
  socks: { close(): void }[];
  /** a RawTcpClient closed after the test */
  connectTo(port: number): Promise<RawTcpClient>;
} {
  const servers: RpcServer[] = [];
  const socks: { close(): void }[] = [];
  afterEach(async () => {
    for (const s of socks.splice(0)) s.close();
    for (const s of servers.splice(0)) await s.close(100);
  });
  return {
    servers,
    socks,
    newServer(over, metrics) {
      const s = newServer(over, metrics);
      servers.push(s);
      return s;
    },
    async connectTo(port) {
      const c = await RawTcpClient.connect(port);
      socks.push(c);
      return c;
    },
  };
}

/** RpcMetrics that counts `dropped` reasons (connections closed for misbehaviour among them) */
export class DropCounter implements RpcMetrics {
  readonly drops = new Map<string, number>();
  callStarted(): void {}
  callFinished(): void {}
  connectionOpened(): void {}
  connectionClosed(): void {}
  dropped(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }
  count(reason: string): number {
    return this.drops.get(reason) ?? 0;
  }
}

export function u32be(...vals: number[]): Buffer {
  return Buffer.concat(vals.map(u32));
}

export function xdrStr(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([u32(b.length), pad(b)]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** poll until cond() holds; throws after timeoutMs */
export async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}
