/**
 * One TCP connection to an ONC RPC server (RFC 5531) with many calls in flight: calls are encoded
 * straight into one growing Writer (no per-call buffers), writes issued in the same tick are
 * corked into one writev, replies are matched by xid, and each call has a deadline swept by a
 * single timer.
 */
import * as net from 'node:net';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { RpcMessageEncoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageEncoder';
import { RpcMessageDecoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageDecoder';
import {
  RpcOpaqueAuth,
  RpcAcceptedReplyMessage,
  RpcRejectedReplyMessage,
} from '@jsonjoy.com/json-pack/lib/rpc/messages';
import { RecordDecoder } from '../record-marking';
import { AUTH_NONE, type Credential } from './auth';
import { AcceptStat } from './constants';

export interface RpcAcceptedReply {
  kind: 'accepted';
  xid: number;
  acceptStat: number;
  mismatch?: { low: number; high: number };
  verfFlavor: number;
  /** result bytes after accept_stat (empty when none) */
  results: Uint8Array;
}
export interface RpcDeniedReply {
  kind: 'denied';
  xid: number;
  rejectStat: number;
  mismatch?: { low: number; high: number };
  authStat?: number;
}
export type RpcReply = RpcAcceptedReply | RpcDeniedReply;

export class RpcError extends Error {
  constructor(readonly reply: RpcReply, readonly prog: number, readonly proc: number) {
    super(
      reply.kind === 'accepted'
        ? `RPC prog ${prog} proc ${proc}: accept_stat ${reply.acceptStat}`
        : `RPC prog ${prog} proc ${proc}: denied reject_stat ${reply.rejectStat} auth_stat ${reply.authStat}`,
    );
  }
}
export class RpcTimeoutError extends Error {}
export class RpcConnectionClosedError extends Error {}
export class RpcDecodeError extends Error {}

export interface RpcConnectionOptions {
  host?: string;
  port: number;
  /** per-call timeout (ms), default 30 s */
  timeoutMs?: number;
  /** largest reply record accepted (bytes), default 8 MiB */
  maxRecordBytes?: number;
  /** connect timeout (ms), default 5 s */
  connectTimeoutMs?: number;
  /** bind to this local port (e.g. < 1024 for "secure" ports); optional */
  localPort?: number;
}

type ArgWriter = ((w: Writer) => void) | Uint8Array | null;

interface Pending {
  deadline: number;
  prog: number;
  proc: number;
  raw: boolean;
  decode: ((r: Reader) => unknown) | null;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

const VERF_NONE = new RpcOpaqueAuth(0, new Reader(new Uint8Array(0)));

export class RpcConnection {
  readonly writer = new Writer(256 * 1024);
  private readonly rpcEncoder = new RpcMessageEncoder(this.writer);
  private readonly rpcDecoder = new RpcMessageDecoder();
  private readonly replyReader = new Reader();
  private readonly pending = new Map<number, Pending>();
  private readonly authCache = new WeakMap<Credential, RpcOpaqueAuth>();
  private xid = (Math.random() * 0x7fffffff) >>> 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private corked = false;
  private closedError: Error | null = null;
  readonly timeoutMs: number;
  /** calls sent and replies received, for benchmarks */
  sent = 0;
  received = 0;

  private constructor(readonly socket: net.Socket, opts: RpcConnectionOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    const rd = new RecordDecoder({ maxRecordBytes: opts.maxRecordBytes ?? 8 * 1024 * 1024 });
    socket.on('data', (chunk: Buffer) => {
      let records: Uint8Array[];
      try {
        records = rd.push(chunk);
      } catch (err) {
        return this.fail(err as Error);
      }
      for (const rec of records) this.onRecord(rec);
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new RpcConnectionClosedError('connection closed')));
  }

  static connect(opts: RpcConnectionOptions): Promise<RpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: opts.host ?? '127.0.0.1', port: opts.port, localPort: opts.localPort });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${opts.host ?? '127.0.0.1'}:${opts.port} timed out`));
      }, opts.connectTimeoutMs ?? 5000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RpcConnection(socket, opts));
      });
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  close(): void {
    this.socket.destroy();
    this.fail(new RpcConnectionClosedError('closed by client'));
  }

  /** Resolves when the server closes (or the socket ends). */
  waitClosed(): Promise<void> {
    if (this.closedError) return Promise.resolve();
    return new Promise((r) => this.socket.once('close', () => r()));
  }

  private auth(cred: Credential): RpcOpaqueAuth {
    let a = this.authCache.get(cred);
    if (!a) {
      a = new RpcOpaqueAuth(cred.flavor as any, new Reader(cred.body));
      this.authCache.set(cred, a);
    }
    return a;
  }

  /** Send a call whose reply is decoded by `decode` (results reader); non-SUCCESS rejects with RpcError. */
  call<T>(prog: number, vers: number, proc: number, cred: Credential, args: ArgWriter, decode: (r: Reader) => T): Promise<T> {
    return this.send(prog, vers, proc, cred, args, false, decode) as Promise<T>;
  }

  /** Send a call with raw argument bytes and get the raw reply (accepted with any status, or denied). */
  callRaw(prog: number, vers: number, proc: number, args: Uint8Array = new Uint8Array(0), cred: Credential = AUTH_NONE): Promise<RpcReply> {
    return this.send(prog, vers, proc, cred, args, true, null) as Promise<RpcReply>;
  }

  /** Write arbitrary bytes (already record-marked or not) to the socket, for hostile-input tests. */
  writeBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Wait for the reply to an xid sent by hand with writeBytes. */
  expectRaw(xid: number, timeoutMs = this.timeoutMs): Promise<RpcReply> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      this.pending.set(xid, { deadline: Date.now() + timeoutMs, prog: 0, proc: 0, raw: true, decode: null, resolve, reject });
      this.armSweep();
    });
  }

  nextXid(): number {
    this.xid = (this.xid + 1) >>> 0;
    return this.xid;
  }

  private send(prog: number, vers: number, proc: number, cred: Credential, args: ArgWriter, raw: boolean, decode: ((r: Reader) => unknown) | null): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const xid = this.nextXid();
      const w = this.writer;
      // headroom so json-pack's string writer (which reserves its length slot without a capacity
      // check) never straddles a grow; the record always starts at x0 (everything before is flushed)
      w.ensureCapacity(65536);
      w.x += 4;
      this.rpcEncoder.writeCall(xid, prog, vers, proc, this.auth(cred), VERF_NONE);
      if (args instanceof Uint8Array) {
        if (args.length) w.buf(args, args.length);
      } else if (args) {
        args(w);
      }
      // the writer may have grown (moved) while encoding: x0 moves with the record
      const hdrPos = w.x0;
      const bodyLen = w.x - hdrPos - 4;
      w.view.setUint32(hdrPos, (0x80000000 | bodyLen) >>> 0);
      const bytes = w.flush();
      this.pending.set(xid, { deadline: Date.now() + this.timeoutMs, prog, proc, raw, decode, resolve, reject });
      this.armSweep();
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(bytes);
      this.sent++;
    });
  }

  private armSweep(): void {
    if (this.sweepTimer) return;
    const period = Math.max(20, Math.min(250, this.timeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), period);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [xid, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(xid);
        p.reject(new RpcTimeoutError(`RPC prog ${p.prog} proc ${p.proc} xid ${xid} timed out`));
      }
    }
    if (this.pending.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  private onRecord(rec: Uint8Array): void {
    const reader = this.replyReader;
    reader.reset(rec);
    reader.end = rec.length; // Reader.reset() leaves `end` alone
    let msg;
    try {
      msg = this.rpcDecoder.decodeMessage(reader);
    } catch (err) {
      return this.fail(new RpcDecodeError(`undecodable RPC reply: ${(err as Error).message}`));
    }
    if (!msg) return this.fail(new RpcDecodeError('truncated RPC reply'));
    const p = this.pending.get(msg.xid);
    if (!p) return; // late reply to a timed-out call, or a duplicate
    this.pending.delete(msg.xid);
    this.received++;
    let reply: RpcReply;
    if (msg instanceof RpcAcceptedReplyMessage) {
      if (!p.raw && msg.stat === AcceptStat.SUCCESS) {
        const results = msg.results ?? new Reader(new Uint8Array(0));
        let value: unknown;
        try {
          value = p.decode!(results);
        } catch (err) {
          return p.reject(new RpcDecodeError(`undecodable results for prog ${p.prog} proc ${p.proc}: ${(err as Error).message}`));
        }
        if (value === undefined) return p.reject(new RpcDecodeError(`truncated results for prog ${p.prog} proc ${p.proc}`));
        return p.resolve(value);
      }
      const results = msg.results ? msg.results.buf(msg.results.size()) : new Uint8Array(0);
      reply = {
        kind: 'accepted',
        xid: msg.xid,
        acceptStat: msg.stat,
        mismatch: msg.mismatchInfo ? { low: msg.mismatchInfo.low, high: msg.mismatchInfo.high } : undefined,
        verfFlavor: msg.verf.flavor,
        // copy: the record may be a view into a socket chunk
        results: p.raw ? Uint8Array.prototype.slice.call(results) : results,
      };
    } else if (msg instanceof RpcRejectedReplyMessage) {
      reply = {
        kind: 'denied',
        xid: msg.xid,
        rejectStat: msg.stat,
        mismatch: msg.mismatchInfo ? { low: msg.mismatchInfo.low, high: msg.mismatchInfo.high } : undefined,
        authStat: msg.authStat,
      };
    } else {
      return p.reject(new RpcDecodeError('server sent a CALL'));
    }
    if (p.raw) p.resolve(reply);
    else p.reject(new RpcError(reply, p.prog, p.proc));
  }

  private fail(err: Error): void {
    if (!this.closedError) this.closedError = err;
    if (!this.socket.destroyed) this.socket.destroy();
    if (this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
    const pend = [...this.pending.values()];
    this.pending.clear();
    for (const p of pend) p.reject(err);
  }
}
