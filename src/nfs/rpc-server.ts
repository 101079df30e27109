/**
 * ONC RPC server (RFC 5531) over TCP (record marking, pipelined calls) and UDP (one datagram = one
 * call). It parses the call header, authenticates (auth.ts), finds the program and version, hands the
 * arguments to the program (rpc-program.ts) and sends back whatever the program answers, or the
 * rejection the RFC prescribes. Hostile input costs bounded memory and never crashes the process:
 * record sizes are capped before buffering, calls in flight per connection are capped (the socket is
 * no longer read while at the cap or while replies are not being read by the client), partial and
 * queued records count against the global budget that gates reading (maxBufferedBytes), replies not
 * yet written out are counted per connection (above maxReplyBytesPerConnection no further call is
 * read or started) and in a separate global reply budget (maxReplyBytesTotal: over it, the
 * connection with the largest backlog is closed, so a client that does not read its replies never
 * stalls the others), a connection whose reply backlog stays above maxReplyBytesPerConnection with
 * nothing written out for idleRecordTimeoutMs is closed, connections per client address are capped,
 * a client that holds a partial record too long is disconnected, and a program that throws yields
 * SYSTEM_ERR.
 * Procedures a program declares non-idempotent go through the duplicate request cache
 * (duplicate-request-cache.ts): a retransmit is answered with the reply already sent, and is never
 * run while the original is still running.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { DEFAULT_LIMITS, type Limits } from '../config';
import type { Logger } from '../log';
import type { RpcMetrics } from '../metrics';
import { AuthFlavor, type AuthSys, type ProgramResult, type RpcCallContext, type RpcProgram } from './rpc-program';
import { AuthStat, MAX_AUTH_BYTES, checkAuth } from './auth';
import { RecordDecoder, TooManyFragmentsError, encodeRecord, joinRecord } from './record-marking';
import { normalizeAddress } from './exports';
import { DuplicateRequestCache, type DrcLimits, type DrcToken } from './duplicate-request-cache';

export const RPC_VERSION = 2;

const enum MsgType {
  CALL = 0,
  REPLY = 1,
}

/** accept_stat */
export const enum AcceptStat {
  SUCCESS = 0,
  PROG_UNAVAIL = 1,
  PROG_MISMATCH = 2,
  PROC_UNAVAIL = 3,
  GARBAGE_ARGS = 4,
  SYSTEM_ERR = 5,
}

const AUTH_STAT_NAMES = ['AUTH_OK', 'AUTH_BADCRED', 'AUTH_REJECTEDCRED', 'AUTH_BADVERF', 'AUTH_REJECTEDVERF', 'AUTH_TOOWEAK'];

// ---------------------------------------------------------------------------------------------
// strict XDR reading for program arguments. Reader.buf()/utf8() do not check bounds themselves; these
// do, and throw GarbageArgsError (a RangeError), which the server answers with GARBAGE_ARGS.

export class GarbageArgsError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'GarbageArgsError';
  }
}

export function xdrU32(r: Reader): number {
  if (r.end - r.x < 4) throw new GarbageArgsError('truncated arguments');
  return r.u32();
}

/** variable-length opaque<max> */
export function xdrOpaque(r: Reader, max: number): Uint8Array {
  const len = xdrU32(r);
  if (len > max) throw new GarbageArgsError(`opaque of ${len} bytes exceeds ${max}`);
  const padded = (len + 3) & ~3;
  if (r.end - r.x < padded) throw new GarbageArgsError('truncated opaque');
  const out = r.uint8.subarray(r.x, r.x + len);
  r.x += padded;
  return out;
}

/** string<max>, decoded as UTF-8 */
export function xdrString(r: Reader, max: number): string {
  const b = xdrOpaque(r, max);
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
}

/** Small growable XDR writer for replies. */
export class XdrOut {
  private buf: Buffer;
  private len = 0;
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }
  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u32(v: number): this {
    this.need(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }
  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }
  opaque(data: Uint8Array): this {
    const padded = (data.length + 3) & ~3;
    this.u32(data.length);
    this.need(padded);
    this.buf.set(data, this.len);
    this.buf.fill(0, this.len + data.length, this.len + padded);
    this.len += padded;
    return this;
  }
  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }
  /** fixed-length opaque (no length word) */
  fixed(data: Uint8Array, size: number): this {
    const padded = (size + 3) & ~3;
    this.need(padded);
    this.buf.fill(0, this.len, this.len + padded);
    this.buf.set(data.subarray(0, size), this.len);
    this.len += padded;
    return this;
  }
  get length(): number {
    return this.len;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

// ---------------------------------------------------------------------------------------------
// replies

function acceptedReply(xid: number, stat: AcceptStat, mismatch?: [number, number]): Buffer {
  const b = Buffer.allocUnsafe(mismatch ? 32 : 24);
  b.writeUInt32BE(xid, 0);
  b.writeUInt32BE(MsgType.REPLY, 4);
  b.writeUInt32BE(0, 8); // MSG_ACCEPTED
  b.writeUInt32BE(0, 12); // verifier AUTH_NONE
  b.writeUInt32BE(0, 16); // verifier length 0
  b.writeUInt32BE(stat, 20);
  if (mismatch) {
    b.writeUInt32BE(mismatch[0], 24);
    b.writeUInt32BE(mismatch[1], 28);
  }
  return b;
}

function rpcMismatchReply(xid: number): Buffer {
  const b = Buffer.allocUnsafe(24);
  b.writeUInt32BE(xid, 0);
  b.writeUInt32BE(MsgType.REPLY, 4);
  b.writeUInt32BE(1, 8); // MSG_DENIED
  b.writeUInt32BE(0, 12); // RPC_MISMATCH
  b.writeUInt32BE(RPC_VERSION, 16);
  b.writeUInt32BE(RPC_VERSION, 20);
  return b;
}

function authErrorReply(xid: number, stat: number): Buffer {
  const b = Buffer.allocUnsafe(20);
  b.writeUInt32BE(xid, 0);
  b.writeUInt32BE(MsgType.REPLY, 4);
  b.writeUInt32BE(1, 8); // MSG_DENIED
  b.writeUInt32BE(1, 12); // AUTH_ERROR
  b.writeUInt32BE(stat >>> 0, 16);
  return b;
}

/**
 * Client-triggered warnings (bad records, slow clients, failing procedures) are rate-limited so that
 * one hostile client cannot flood the log: a burst of 20, then 10 per second; the number suppressed
 * is reported with the next line that gets through.
 */
export class LogLimiter {
  private tokens: number;
  private last = Date.now();
  private suppressed = 0;
  constructor(private readonly perSecond = 10, private readonly burst = 20) {
    this.tokens = burst;
  }
  /** undefined: drop this line; else extra fields to log with it */
  take(): { suppressed?: number } | undefined {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.suppressed++;
      return undefined;
    }
    this.tokens--;
    const extra = this.suppressed > 0 ? { suppressed: this.suppressed } : {};
    this.suppressed = 0;
    return extra;
  }
}

/** What to do with one record/datagram. */
export type Disposition =
  /** `release`: see ProgramResult: call once the parts are handed to the socket or given up */
  | { kind: 'reply'; parts: Uint8Array[]; release?: () => void }
  /** send nothing */
  | { kind: 'drop'; reason: string }
  /** not an RPC call at all: on TCP the stream is not ours to trust any more */
  | { kind: 'close'; reason: string };

export interface RpcServerOptions {
  limits: Pick<
    Limits,
    'maxRecordBytes' | 'maxInflightPerConnection' | 'maxConnections' | 'idleRecordTimeoutMs' | 'idleConnectionTimeoutMs'
  > &
    Partial<Pick<Limits, 'maxBufferedBytes' | 'maxReplyBytesPerConnection' | 'maxReplyBytesTotal' | 'maxConnectionsPerClient'>> &
    Partial<DrcConfigLimits>;
  log: Logger;
  metrics?: RpcMetrics;
  /** calls in flight over one UDP socket; more are dropped (UDP clients retransmit). Default 256 */
  maxUdpInflight?: number;
  /** largest reply fragment written (default: one fragment per reply) */
  maxReplyFragment?: number;
  /**
   * the duplicate request cache: its limits (over `limits.drcMaxEntries`/`drcMaxBytes` and the
   * defaults of duplicate-request-cache.ts), or false to run without one
   */
  drc?: Partial<DrcLimits> | false;
  /**
   * May a client at this address send records up to `limits.maxRecordBytes`? Others are held to
   * SMALL_RECORD_BYTES, enough for every call they can make (NULL, portmap, MOUNT): an address no
   * export admits cannot fill the global read budget with partial 1 MiB records and stall every
   * client. Default: every address may.
   */
  admitsLargeRecords?: (address: string) => boolean;
}

/** the record limit of a client that `admitsLargeRecords` refuses: NULL, portmap and MOUNT calls
 * (a 1024-byte path, credential and verifier of 400 bytes each) fit many times over */
export const SMALL_RECORD_BYTES = 16 * 1024;

/** DRC bounds as they may appear among the configured limits */
export interface DrcConfigLimits {
  /** entries of the duplicate request cache (completed + in progress); 0 = cache nothing */
  drcMaxEntries: number;
  /** bytes of the duplicate request cache (cached replies + per-entry overhead) */
  drcMaxBytes: number;
}

export interface Listener {
  readonly transport: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
  readonly programs: readonly RpcProgram[];
}

interface ProgramTable {
  get(prog: number): RpcProgram | undefined;
}

function table(programs: readonly RpcProgram[]): ProgramTable {
  const m = new Map<number, RpcProgram>();
  for (const p of programs) {
    if (m.has(p.prog)) throw new Error(`program ${p.prog} registered twice on one listener`);
    m.set(p.prog, p);
  }
  return m;
}

interface Peer {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  transport: 'tcp' | 'udp';
}

const NOOP_METRICS: RpcMetrics = {
  callStarted() {},
  callFinished() {},
  connectionOpened() {},
  connectionClosed() {},
  dropped() {},
};

function u32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

function safeIsNonIdempotent(p: RpcProgram, vers: number, proc: number): boolean {
  try {
    return p.isNonIdempotent?.(vers, proc) === true;
  } catch {
    return false;
  }
}

function safeProcName(p: RpcProgram, vers: number, proc: number): string {
  try {
    const n = p.procName(vers, proc);
    return typeof n === 'string' && n.length > 0 && n.length <= 64 ? n : 'unknown';
  } catch {
    return 'unknown';
  }
}

export class RpcServer {
  readonly log: Logger;
  private readonly limits: RpcServerOptions['limits'];
  private readonly metrics: RpcMetrics;
  private readonly maxUdpInflight: number;
  private readonly maxReplyFragment: number | undefined;
  private readonly tcpServers: net.Server[] = [];
  private readonly udpSockets: { sock: dgram.Socket; inflight: { n: number } }[] = [];
  private readonly conns = new Set<TcpConnection>();
  private readonly handles = new Map<Listener, net.Server | dgram.Socket>();
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private udpInflightTotal = 0;
  private readonly limiter = new LogLimiter();
  /**
   * bytes held for TCP connections: partial records and complete records queued or being processed.
   * Over maxHeld no connection is read.
   */
  private held = 0;
  /**
   * bytes of replies handed to TCP sockets and not yet written out. Kept apart from `held`: a client
   * that does not read its replies must not stop the server reading the others. Over maxReplyHeld the
   * connection with the largest backlog is closed.
   */
  private replyHeld = 0;
  private readonly maxReplyHeld: number;
  /** TCP connections open per client address */
  private readonly perClient = new Map<string, number>();
  private readonly maxPerClient: number;
  private readonly maxHeld: number;
  /** the duplicate request cache (undefined: disabled) */
  readonly drc: DuplicateRequestCache | undefined;
  private readonly admitsLargeRecords: ((address: string) => boolean) | undefined;

  constructor(opts: RpcServerOptions) {
    this.log = opts.log;
    this.admitsLargeRecords = opts.admitsLargeRecords;
    this.limits = opts.limits;
    this.metrics = opts.metrics ?? NOOP_METRICS;
    this.maxUdpInflight = opts.maxUdpInflight ?? 256;
    this.maxReplyFragment = opts.maxReplyFragment;
    this.maxHeld = opts.limits.maxBufferedBytes ?? DEFAULT_LIMITS.maxBufferedBytes;
    this.maxReplyHeld = opts.limits.maxReplyBytesTotal ?? DEFAULT_LIMITS.maxReplyBytesTotal;
    this.maxPerClient = opts.limits.maxConnectionsPerClient ?? DEFAULT_LIMITS.maxConnectionsPerClient;
    if (opts.drc !== false) {
      const l: Partial<DrcLimits> = {};
      if (opts.limits.drcMaxEntries !== undefined) l.maxEntries = opts.limits.drcMaxEntries;
      if (opts.limits.drcMaxBytes !== undefined) l.maxBytes = opts.limits.drcMaxBytes;
      this.drc = new DuplicateRequestCache({ ...l, ...opts.drc });
    }
  }

  /** the largest record a TCP client at `address` may send (see RpcServerOptions.admitsLargeRecords) */
  recordLimitFor(address: string): number {
    const max = this.limits.maxRecordBytes;
    let large = true;
    try {
      large = this.admitsLargeRecords?.(address) ?? true;
    } catch {
      large = false;
    }
    return large ? max : Math.min(max, SMALL_RECORD_BYTES);
  }

  /** true while the records held exceed the global budget: connections are not read */
  get overBudget(): boolean {
    return this.held > this.maxHeld;
  }

  get heldBytes(): number {
    return this.held;
  }

  hold(n: number): void {
    this.held += n;
  }

  release(n: number): void {
    const wasOver = this.overBudget;
    this.held -= n;
    if (wasOver && !this.overBudget) for (const c of this.conns) c.updateFlow();
  }

  /** bytes of replies handed to TCP sockets and not yet written out */
  get replyHeldBytes(): number {
    return this.replyHeld;
  }

  /** a reply of n bytes handed to a socket; over the global reply budget, shed the largest backlog */
  holdReply(n: number): void {
    this.replyHeld += n;
    while (this.replyHeld > this.maxReplyHeld) {
      let worst: TcpConnection | undefined;
      for (const c of this.conns) if (c.unsentBytes > 0 && (!worst || c.unsentBytes > worst.unsentBytes)) worst = c;
      if (!worst) break;
      // closing it releases its backlog at once (abort), so the loop ends
      worst.abort(
        'reply-backlog',
        { replyBytesTotal: this.replyHeld, maxReplyBytesTotal: this.maxReplyHeld },
        'replies not read by the client exceed the global reply budget, closing the connection with the largest backlog',
      );
    }
  }

  releaseReply(n: number): void {
    this.replyHeld -= n;
  }

  /** warn about something a client did, rate-limited */
  clientWarn(obj: object, msg: string, level: 'warn' | 'error' = 'warn'): void {
    const extra = this.limiter.take();
    if (extra) this.log[level]({ ...obj, ...extra }, msg);
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Serve `programs` over TCP on host:port (port 0 = ephemeral). */
  listenTcp(host: string, port: number, programs: readonly RpcProgram[]): Promise<Listener> {
    const progs = table(programs);
    const server = net.createServer({ noDelay: true, allowHalfOpen: true });
    server.on('connection', (sock) => this.accept(sock, progs));
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.error({ err }, 'TCP listener error'));
        const a = server.address() as net.AddressInfo;
        const l: Listener = { transport: 'tcp', host: a.address, port: a.port, family: a.family as 'IPv4' | 'IPv6', programs };
        this.tcpServers.push(server);
        this.handles.set(l, server);
        resolve(l);
      });
    });
  }

  /** Serve `programs` over UDP on host:port: one datagram is one call, the reply goes to the sender. */
  listenUdp(host: string, port: number, programs: readonly RpcProgram[]): Promise<Listener> {
    const progs = table(programs);
    const type = net.isIPv6(host) ? 'udp6' : 'udp4';
    const sock = dgram.createSocket({ type, reuseAddr: false });
    const inflight = { n: 0 };
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        sock.close();
        reject(err);
      };
      sock.once('error', onError);
      sock.bind({ address: host, port, exclusive: true }, () => {
        sock.off('error', onError);
        sock.on('error', (err) => this.log.error({ err }, 'UDP socket error'));
        const a = sock.address();
        sock.on('message', (msg, rinfo) => this.onDatagram(sock, inflight, progs, msg, rinfo, a));
        const l: Listener = { transport: 'udp', host: a.address, port: a.port, family: a.family as 'IPv4' | 'IPv6', programs };
        this.udpSockets.push({ sock, inflight });
        this.handles.set(l, sock);
        resolve(l);
      });
    });
  }

  /** Close one listener (connections it accepted stay open). */
  async closeListener(l: Listener): Promise<void> {
    const h = this.handles.get(l);
    if (!h) return;
    this.handles.delete(l);
    if (h instanceof net.Server) {
      this.tcpServers.splice(this.tcpServers.indexOf(h), 1);
      await new Promise<void>((res) => h.close(() => res()));
    } else {
      const i = this.udpSockets.findIndex((u) => u.sock === h);
      if (i >= 0) this.udpSockets.splice(i, 1);
      await new Promise<void>((res) => h.close(() => res()));
    }
  }

  /**
   * Stop accepting, stop reading new calls, let calls in flight finish and their replies go out
   * (for at most `graceMs`), then close every socket.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const serversClosed = Promise.all(this.tcpServers.map((s) => new Promise<void>((res) => s.close(() => res()))));
    for (const c of this.conns) c.stopReading();
    const drained = new Promise<void>((res) => {
      this.idleWaiters.push(res);
      this.checkIdle();
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((res) => {
      timer = setTimeout(res, graceMs);
    });
    await Promise.race([drained, timedOut]);
    if (timer) clearTimeout(timer);
    for (const c of [...this.conns]) c.end();
    for (const { sock } of this.udpSockets) {
      try {
        sock.close();
      } catch {
        /* already closed */
      }
    }
    await serversClosed;
  }

  private busy(): boolean {
    if (this.udpInflightTotal > 0) return true;
    for (const c of this.conns) if (c.busy) return true;
    return false;
  }

  /** called whenever work finishes; resolves close() waiters once nothing is in flight */
  checkIdle(): void {
    if (!this.closing || this.idleWaiters.length === 0 || this.busy()) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private accept(sock: net.Socket, progs: ProgramTable): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    if (this.conns.size >= this.limits.maxConnections) {
      this.metrics.dropped('max-connections');
      this.clientWarn({ remote: sock.remoteAddress, max: this.limits.maxConnections }, 'connection limit reached, refusing');
      sock.destroy();
      return;
    }
    const addr = normalizeAddress(sock.remoteAddress ?? '');
    const open = this.perClient.get(addr) ?? 0;
    if (open >= this.maxPerClient) {
      this.metrics.dropped('max-connections-per-client');
      this.clientWarn({ remote: addr, max: this.maxPerClient }, 'connection limit per client reached, refusing');
      sock.destroy();
      return;
    }
    this.perClient.set(addr, open + 1);
    const c = new TcpConnection(this, sock, progs, this.limits, this.metrics, this.maxReplyFragment);
    this.conns.add(c);
    this.metrics.connectionOpened('tcp');
    sock.once('close', () => {
      const left = (this.perClient.get(addr) ?? 1) - 1;
      if (left > 0) this.perClient.set(addr, left);
      else this.perClient.delete(addr);
      this.conns.delete(c);
      this.metrics.connectionClosed('tcp');
      this.checkIdle();
    });
  }

  private onDatagram(
    sock: dgram.Socket,
    inflight: { n: number },
    progs: ProgramTable,
    msg: Buffer,
    rinfo: dgram.RemoteInfo,
    local: net.AddressInfo,
  ): void {
    if (this.closing) return;
    if (msg.length > this.limits.maxRecordBytes) {
      this.metrics.dropped('too-large');
      return;
    }
    if (inflight.n >= this.maxUdpInflight) {
      this.metrics.dropped('udp-busy');
      return;
    }
    inflight.n++;
    this.udpInflightTotal++;
    const peer: Peer = {
      remoteAddress: normalizeAddress(rinfo.address),
      remotePort: rinfo.port,
      localAddress: normalizeAddress(local.address),
      localPort: local.port,
      transport: 'udp',
    };
    this.dispatch(msg, progs, peer)
      .then((d) => {
        if (d.kind !== 'reply') {
          this.metrics.dropped(d.reason);
          return;
        }
        const out = d.parts.length === 1 ? d.parts[0] : Buffer.concat(d.parts);
        // (a single part is never a releasable tail: that always follows a header and a body)
        if (d.parts.length > 1) d.release?.();
        if (out.length > 65507) {
          this.clientWarn({ bytes: out.length }, 'UDP reply too large, dropped');
          this.metrics.dropped('udp-reply-too-large');
          return;
        }
        sock.send(out, rinfo.port, rinfo.address, (err) => {
          if (err) this.log.debug({ err }, 'UDP send failed');
        });
      })
      .catch((err) => this.log.error({ err }, 'UDP dispatch failed'))
      .finally(() => {
        inflight.n--;
        this.udpInflightTotal--;
        this.checkIdle();
      });
  }

  /**
   * Decide the fate of one record: parse the call header, authenticate, find program and version,
   * run the procedure. Never throws.
   */
  async dispatch(rec: Uint8Array, progs: ProgramTable, peer: Peer): Promise<Disposition> {
    const n = rec.length;
    if (n < 8) return { kind: 'close', reason: 'short-record' };
    const xid = u32(rec, 0);
    const mtype = u32(rec, 4);
    if (mtype !== MsgType.CALL) return { kind: 'close', reason: mtype === MsgType.REPLY ? 'reply-received' : 'bad-msg-type' };
    if (n < 12) return { kind: 'drop', reason: 'truncated-header' };
    const rpcvers = u32(rec, 8);
    if (rpcvers !== RPC_VERSION) {
      this.metrics.callFinished('rpc', 'unknown', 0, 'RPC_MISMATCH');
      return { kind: 'reply', parts: [rpcMismatchReply(xid)] };
    }
    if (n < 32) return { kind: 'drop', reason: 'truncated-header' };
    const prog = u32(rec, 12);
    const vers = u32(rec, 16);
    const proc = u32(rec, 20);
    const credFlavor = u32(rec, 24);
    const credLen = u32(rec, 28);
    const program = progs.get(prog);
    const progLabel = program ? program.name : 'unknown';
    if (credLen > MAX_AUTH_BYTES) {
      this.metrics.callFinished(progLabel, 'unknown', 0, 'AUTH_BADCRED');
      return { kind: 'reply', parts: [authErrorReply(xid, AuthStat.BADCRED)] };
    }
    let p = 32 + ((credLen + 3) & ~3);
    if (n < p + 8) return { kind: 'drop', reason: 'truncated-header' };
    const cred = rec.subarray(32, 32 + credLen);
    const verfFlavor = u32(rec, p);
    const verfLen = u32(rec, p + 4);
    if (verfLen > MAX_AUTH_BYTES) {
      this.metrics.callFinished(progLabel, 'unknown', 0, 'AUTH_BADVERF');
      return { kind: 'reply', parts: [authErrorReply(xid, AuthStat.BADVERF)] };
    }
    p += 8;
    const verfEnd = p + ((verfLen + 3) & ~3);
    if (n < verfEnd) return { kind: 'drop', reason: 'truncated-header' };
    const verf = rec.subarray(p, p + verfLen);
    const auth = checkAuth(credFlavor, cred, verfFlavor, verf);
    if (!auth.ok) {
      this.metrics.callFinished(progLabel, 'unknown', 0, AUTH_STAT_NAMES[auth.stat] ?? 'AUTH_ERROR');
      this.log.debug({ xid, remote: peer.remoteAddress, credFlavor, stat: auth.stat }, 'call rejected: auth');
      return { kind: 'reply', parts: [authErrorReply(xid, auth.stat)] };
    }
    if (!program) {
      this.metrics.callFinished('unknown', 'unknown', 0, 'PROG_UNAVAIL');
      return { kind: 'reply', parts: [acceptedReply(xid, AcceptStat.PROG_UNAVAIL)] };
    }
    const versions = program.versions;
    if (!versions.includes(vers)) {
      this.metrics.callFinished(program.name, 'unknown', 0, 'PROG_MISMATCH');
      return {
        kind: 'reply',
        parts: [acceptedReply(xid, AcceptStat.PROG_MISMATCH, [Math.min(...versions), Math.max(...versions)])],
      };
    }
    const procLabel = safeProcName(program, vers, proc);
    // non-idempotent procedures: the duplicate request cache decides whether this call runs
    let drcToken: DrcToken | undefined;
    if (this.drc && program.isNonIdempotent && safeIsNonIdempotent(program, vers, proc)) {
      const call = {
        transport: peer.transport,
        address: peer.remoteAddress,
        xid,
        prog,
        vers,
        proc,
        args: rec.subarray(verfEnd, n),
        credFlavor,
        cred,
      };
      const seen = this.drc.begin(call, peer);
      if (seen.kind === 'cached') {
        this.metrics.drcHit?.(program.name, procLabel);
        this.log.debug({ xid, program: program.name, proc: procLabel, remote: peer.remoteAddress }, 'retransmit answered from the duplicate request cache');
        return { kind: 'reply', parts: [seen.reply] };
      }
      if (seen.kind === 'inprogress') {
        // The original is still running. Its reply goes out on the connection it came in on: a
        // duplicate on that same connection (or over UDP, where the client retransmits anyway) is
        // dropped. A duplicate on another TCP connection (the client reconnected; the original's
        // connection is gone or will not be read) waits for the original and gets its reply.
        if (peer.transport === 'tcp' && seen.origin !== peer) {
          const reply = await seen.wait();
          if (reply) {
            this.metrics.drcHit?.(program.name, procLabel);
            return { kind: 'reply', parts: [reply] };
          }
        }
        this.metrics.drcInProgressDrop?.(program.name, procLabel);
        this.log.debug({ xid, program: program.name, proc: procLabel, remote: peer.remoteAddress }, 'retransmit of a call in progress dropped');
        return { kind: 'drop', reason: 'drc-inprogress' };
      }
      drcToken = seen.token;
    }
    try {
      const d = await this.run(program, procLabel, xid, vers, proc, auth, peer, rec, verfEnd);
      // what is kept is a copy of exactly what is sent
      if (drcToken) this.drc?.finish(drcToken, d.kind === 'reply' ? d.parts : undefined);
      return d;
    } finally {
      // never leave an entry in progress (waiting duplicates would wait forever)
      if (drcToken && !drcToken.finished) this.drc?.finish(drcToken, undefined);
    }
  }

  /** Run the procedure and turn its result into a reply. Never throws. */
  private async run(
    program: RpcProgram,
    procLabel: string,
    xid: number,
    vers: number,
    proc: number,
    auth: { flavor: AuthFlavor; sys?: AuthSys },
    peer: Peer,
    rec: Uint8Array,
    verfEnd: number,
  ): Promise<Disposition> {
    const n = rec.length;
    const prog = program.prog;
    const ctx: RpcCallContext = {
      xid,
      prog,
      vers,
      proc,
      flavor: auth.flavor,
      sys: auth.flavor === AuthFlavor.SYS ? auth.sys : undefined,
      remoteAddress: peer.remoteAddress,
      remotePort: peer.remotePort,
      localAddress: peer.localAddress,
      localPort: peer.localPort,
      transport: peer.transport,
    };
    // the args reader's buffer ends exactly where the record ends, so reading past it throws
    const args = new Reader(rec, undefined, verfEnd, n);
    const t0 = performance.now();
    this.metrics.callStarted(program.name, procLabel);
    let result: ProgramResult;
    try {
      result = await program.handle(ctx, args);
    } catch (err) {
      if (err instanceof RangeError) {
        this.log.debug({ xid, prog, vers, proc, err: (err as Error).message }, 'undecodable arguments');
        result = { kind: 'garbage_args' };
      } else {
        this.clientWarn({ err, xid, program: program.name, proc: procLabel, remote: peer.remoteAddress }, 'procedure failed', 'error');
        result = { kind: 'system_err' };
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    // procedures the program does not know are not metric labels (bounded label sets)
    const label = result?.kind === 'proc_unavail' ? 'unknown' : procLabel;
    let disposition: Disposition;
    let outcome: string;
    switch (result?.kind) {
      case 'success':
        disposition = {
          kind: 'reply',
          parts: result.tail
            ? [acceptedReply(xid, AcceptStat.SUCCESS), result.body, ...result.tail]
            : [acceptedReply(xid, AcceptStat.SUCCESS), result.body],
          release: result.release,
        };
        outcome = 'SUCCESS';
        break;
      case 'proc_unavail':
        disposition = { kind: 'reply', parts: [acceptedReply(xid, AcceptStat.PROC_UNAVAIL)] };
        outcome = 'PROC_UNAVAIL';
        break;
      case 'garbage_args':
        disposition = { kind: 'reply', parts: [acceptedReply(xid, AcceptStat.GARBAGE_ARGS)] };
        outcome = 'GARBAGE_ARGS';
        break;
      case 'auth_error':
        disposition = { kind: 'reply', parts: [authErrorReply(xid, result.stat)] };
        outcome = AUTH_STAT_NAMES[result.stat] ?? 'AUTH_ERROR';
        break;
      case 'drop':
        disposition = { kind: 'drop', reason: 'program-drop' };
        outcome = 'DROP';
        break;
      case 'system_err':
        disposition = { kind: 'reply', parts: [acceptedReply(xid, AcceptStat.SYSTEM_ERR)] };
        outcome = 'SYSTEM_ERR';
        break;
      default:
        this.log.error({ xid, program: program.name, proc: procLabel }, 'procedure returned no valid result');
        disposition = { kind: 'reply', parts: [acceptedReply(xid, AcceptStat.SYSTEM_ERR)] };
        outcome = 'SYSTEM_ERR';
    }
    this.metrics.callFinished(program.name, label, seconds, outcome);
    if (this.log.isLevelEnabled('trace')) {
      this.log.trace({ xid, program: program.name, proc: label, remote: peer.remoteAddress, outcome, seconds }, 'call');
    }
    return disposition;
  }
}

/** replies up to this size are copied into one buffer with their record mark (joinRecord) */
const JOIN_REPLY_MAX = 16 * 1024;

/** One TCP connection: record marking in, pipelined calls, replies out in completion order. */
class TcpConnection {
  private readonly decoder: RecordDecoder;
  private readonly queue: Uint8Array[] = [];
  private inflight = 0;
  /** the socket is corked until the next setImmediate (corkUntilImmediate) */
  private corkedForTurn = false;
  private paused = false;
  /** server shutdown: start no new calls */
  private stopped = false;
  /** the client half-closed: answer what it sent, then close */
  private peerEnded = false;
  private recordTimer: NodeJS.Timeout | undefined;
  private readonly peer: Peer;
  /** bytes of the partial record counted in the server's held bytes */
  private partialHeld = 0;
  /** bytes of replies handed to the socket and not yet written out (counted in the server's reply bytes) */
  private unsent = 0;
  /** runs while unsent > maxUnsent: nothing written out for idleRecordTimeoutMs closes the connection */
  private backlogTimer: NodeJS.Timeout | undefined;
  /** set once the socket closed and everything it held was released */
  private released = false;
  private readonly maxUnsent: number;

  constructor(
    private readonly server: RpcServer,
    private readonly sock: net.Socket,
    private readonly progs: ProgramTable,
    private readonly limits: RpcServerOptions['limits'],
    private readonly metrics: RpcMetrics,
    private readonly maxReplyFragment: number | undefined,
  ) {
    this.maxUnsent = limits.maxReplyBytesPerConnection ?? DEFAULT_LIMITS.maxReplyBytesPerConnection;
    this.peer = {
      remoteAddress: normalizeAddress(sock.remoteAddress ?? ''),
      remotePort: sock.remotePort ?? 0,
      localAddress: normalizeAddress(sock.localAddress ?? ''),
      localPort: sock.localPort ?? 0,
      transport: 'tcp',
    };
    this.decoder = new RecordDecoder({ maxRecordBytes: server.recordLimitFor(this.peer.remoteAddress) });
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 60_000);
    sock.setTimeout(limits.idleConnectionTimeoutMs, () => {
      if (this.busy) return; // replies still to come: not idle
      this.server.log.debug({ remote: this.peer.remoteAddress }, 'idle connection closed');
      this.metrics.dropped('idle');
      this.sock.destroy();
    });
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.updateFlow());
    sock.on('error', (err) => this.server.log.debug({ err: err.message, remote: this.peer.remoteAddress }, 'connection error'));
    sock.on('end', () => {
      // half-close from the client: answer what it sent, then close
      this.peerEnded = true;
      this.clearRecordTimer();
      if (!this.busy) this.end();
    });
    // over the global budget a new connection is not read either
    this.updateFlow();
    sock.once('close', () => this.releaseAll());
  }

  get unsentBytes(): number {
    return this.unsent;
  }

  /** the socket is closed or being closed: release everything it holds (once) */
  private releaseAll(): void {
    this.clearRecordTimer();
    this.clearBacklogTimer();
    this.dropQueue(); // never start calls for a connection that is gone
    if (this.released) return;
    // replies that will never be written and the partial record are no longer held
    this.released = true;
    const u = this.unsent;
    const p = this.partialHeld;
    this.unsent = 0;
    this.partialHeld = 0;
    if (u > 0) this.server.releaseReply(u);
    if (p > 0) this.server.release(p);
  }

  /** close the connection for misbehaviour; what it holds is released at once */
  abort(reason: string, obj: object, msg: string): void {
    if (this.released) return;
    if (!this.sock.destroyed) {
      this.server.clientWarn({ remote: this.peer.remoteAddress, unsentBytes: this.unsent, ...obj }, msg);
      this.metrics.dropped(reason);
    }
    this.releaseAll();
    this.sock.destroy();
  }

  get busy(): boolean {
    return this.inflight > 0 || this.queue.length > 0;
  }

  /** graceful shutdown: take no new calls; queued but unstarted calls are discarded (never executed) */
  stopReading(): void {
    this.stopped = true;
    this.dropQueue();
    this.clearRecordTimer();
    this.updateFlow();
    if (!this.busy) this.end();
  }

  private dropQueue(): void {
    let n = 0;
    for (const r of this.queue) n += r.length;
    this.queue.length = 0;
    if (n > 0) this.server.release(n);
  }

  private ending = false;

  end(): void {
    if (this.sock.destroyed || this.ending) return;
    this.ending = true;
    this.sock.end();
    // do not wait forever for a peer that does not read
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.stopped || this.peerEnded) return;
    let records: Uint8Array[];
    try {
      records = this.decoder.push(chunk);
    } catch (err) {
      this.server.clientWarn({ remote: this.peer.remoteAddress, err: (err as Error).message }, 'bad record, closing connection');
      this.metrics.dropped(err instanceof TooManyFragmentsError ? 'too-many-fragments' : 'record-too-large');
      this.sock.destroy();
      return;
    }
    for (const r of records) {
      this.queue.push(r);
      this.server.hold(r.length);
    }
    // the partial-record clock times one record: a record completed, so a partial record left now is
    // a new one and gets its own idleRecordTimeoutMs (a client streaming records back to back, each
    // read ending mid-record, is not a slow sender)
    if (records.length > 0) this.clearRecordTimer();
    // the partial record is held too (its bytes were not counted before)
    const partial = this.decoder.bufferedBytes;
    if (partial > this.partialHeld) this.server.hold(partial - this.partialHeld);
    else if (partial < this.partialHeld) this.server.release(this.partialHeld - partial);
    this.partialHeld = partial;
    this.pump();
    this.updateFlow();
  }

  private pump(): void {
    while (
      !this.stopped &&
      this.queue.length > 0 &&
      this.inflight < this.limits.maxInflightPerConnection &&
      this.unsent <= this.maxUnsent
    ) {
      const rec = this.queue.shift() as Uint8Array;
      this.inflight++;
      const size = rec.length;
      this.server
        .dispatch(rec, this.progs, this.peer)
        .then((d) => this.finish(d))
        .catch((err) => {
          this.server.log.error({ err }, 'dispatch failed');
        })
        .finally(() => {
          this.inflight--;
          this.server.release(size);
          if (this.sock.destroyed) {
            this.server.checkIdle();
            return;
          }
          this.pump();
          this.updateFlow();
          if ((this.stopped || this.peerEnded) && !this.busy) this.end();
          this.server.checkIdle();
        });
    }
  }

  private finish(d: Disposition): void {
    if (this.sock.destroyed) {
      if (d.kind === 'reply') d.release?.();
      return;
    }
    if (d.kind === 'close') {
      this.server.log.debug({ remote: this.peer.remoteAddress, reason: d.reason }, 'not an RPC call, closing connection');
      this.metrics.dropped(d.reason);
      this.sock.destroy();
      return;
    }
    if (d.kind === 'drop') {
      this.metrics.dropped(d.reason);
      return;
    }
    let size = 0;
    for (const p of d.parts) size += p.length;
    // other calls of this connection are under way: let replies that finish in this turn share a writev
    if (this.inflight > 1 || this.queue.length > 0) this.corkUntilImmediate();
    // the reply is held until the socket has written it out: a client that does not read its replies
    // makes the connection stop (updateFlow, pump) instead of queueing replies without bound
    if (size <= JOIN_REPLY_MAX && (this.maxReplyFragment === undefined || size <= this.maxReplyFragment)) {
      // small reply (all but READ data): one buffer, one write
      const total = size + 4;
      this.unsent += total;
      this.server.holdReply(total);
      if (!this.released) this.sock.write(joinRecord(d.parts, size), () => this.written(total)); // (copied)
      d.release?.();
      if (this.released) return; // shed: this connection had the largest backlog
      this.checkBacklog(false);
      return;
    }
    const chunks = encodeRecord(d.parts, this.maxReplyFragment);
    let total = 0;
    for (const c of chunks) total += c.length;
    this.unsent += total;
    this.server.holdReply(total);
    if (this.released) {
      d.release?.();
      return; // shed: this connection had the largest backlog
    }
    this.sock.cork();
    for (let i = 0; i < chunks.length; i++) {
      if (i < chunks.length - 1) this.sock.write(chunks[i]);
      else {
        // the write callback runs once the socket is done with every chunk (or failed, or was
        // destroyed): only then may the READ data be reused
        this.sock.write(chunks[i], () => {
          this.written(total);
          d.release?.();
        });
      }
    }
    this.sock.uncork();
    this.checkBacklog(false);
  }

  /**
   * Replies finished in the same turn of the event loop (e.g. every caller a group commit released)
   * go out in one writev: the socket stays corked until the check phase of this turn, which runs
   * before the loop waits for I/O again, so no reply waits for anything but the others. A lone call
   * (nothing else in flight on the connection) is written at once.
   */
  private corkUntilImmediate(): void {
    if (this.corkedForTurn) return;
    this.corkedForTurn = true;
    this.sock.cork();
    setImmediate(() => {
      this.corkedForTurn = false;
      if (!this.sock.destroyed) this.sock.uncork();
    });
  }

  /**
   * A connection whose unsent replies exceed maxReplyBytesPerConnection and of which nothing has been
   * written out for idleRecordTimeoutMs (its client does not read) is closed, so that what it holds is
   * released in bounded time. A slow reader that makes progress restarts the clock.
   */
  private checkBacklog(progress: boolean): void {
    if (this.released || this.unsent <= this.maxUnsent) {
      this.clearBacklogTimer();
      return;
    }
    if (progress) this.clearBacklogTimer();
    if (this.backlogTimer) return;
    const timeoutMs = this.limits.idleRecordTimeoutMs;
    this.backlogTimer = setTimeout(() => {
      this.backlogTimer = undefined;
      this.abort('reply-stalled', { timeoutMs }, 'client does not read its replies, closing connection');
    }, timeoutMs);
    this.backlogTimer.unref();
  }

  private clearBacklogTimer(): void {
    if (this.backlogTimer) {
      clearTimeout(this.backlogTimer);
      this.backlogTimer = undefined;
    }
  }

  /** a reply of n bytes left the socket (or failed to: the socket is being destroyed) */
  private written(n: number): void {
    if (this.released) return; // already released when the socket closed
    this.unsent -= n;
    this.server.releaseReply(n);
    if (this.sock.destroyed) return;
    this.checkBacklog(true);
    this.pump();
    this.updateFlow();
  }

  /**
   * Read from the socket only while the connection may start more calls and the client reads its
   * replies. While paused because of this connection (calls or replies pending), the partial-record
   * clock does not run (we are the ones not reading); while paused only because the server's global
   * budget is exceeded it keeps running, so a sender stalled mid-record is still closed.
   */
  updateFlow(): void {
    if (this.sock.destroyed) return;
    const localStop =
      this.stopped ||
      this.peerEnded ||
      this.queue.length > 0 ||
      this.inflight >= this.limits.maxInflightPerConnection ||
      this.unsent > this.maxUnsent ||
      this.sock.writableNeedDrain;
    const stop = localStop || this.server.overBudget;
    if (stop && !this.paused) {
      this.paused = true;
      this.sock.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.sock.resume();
    }
    if (!localStop && this.decoder.hasPartialRecord) {
      if (!this.recordTimer) {
        this.recordTimer = setTimeout(() => {
          this.server.clientWarn(
            { remote: this.peer.remoteAddress, bufferedBytes: this.decoder.bufferedBytes, timeoutMs: this.limits.idleRecordTimeoutMs },
            'partial record held too long, closing connection',
          );
          this.metrics.dropped('slow-record');
          this.sock.destroy();
        }, this.limits.idleRecordTimeoutMs);
        this.recordTimer.unref();
      }
    } else {
      this.clearRecordTimer();
    }
  }

  private clearRecordTimer(): void {
    if (this.recordTimer) {
      clearTimeout(this.recordTimer);
      this.recordTimer = undefined;
    }
  }
}
