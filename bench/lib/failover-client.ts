/**
 * An NFSv3 client of a cluster's service address that behaves like the Linux kernel client across a
 * failover: each call is encoded once with its own xid; when the connection breaks (the old leader
 * died or released the address) or the call times out, it reconnects to the service address (now
 * held by the next leader) and resends the very same bytes, same xid — so the replicated
 * duplicate-request records can answer a retransmitted CREATE/REMOVE/WRITE the old leader already
 * executed. Every reply is stamped with the time and the connection generation it came on, which is
 * what the failover bench measures the client-visible stall from.
 *
 * Only the calls the failover bench needs (WRITE, COMMIT, CREATE GUARDED, REMOVE), arguments and
 * results coded by hand after RFC 1813; errors come back as status codes, not exceptions, so the
 * bench can count ESTALE, NOENT, EXIST, JUKEBOX.
 */
import { RpcConnection, type RpcReply } from '../../src/nfs/client/rpc-connection';
import { authSys, type Credential } from '../../src/nfs/client/auth';
import { MountClient } from '../../src/nfs/client/mount-client';
import { PROG_NFS, NfsProc } from '../../src/nfs/client/constants';
import { now, sleep } from './util';

const u32 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const u64 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
const opaque = (b: Uint8Array): Buffer => {
  const pad = (4 - (b.length & 3)) & 3;
  return Buffer.concat([u32(b.length), Buffer.from(b), Buffer.alloc(pad)]);
};

export const NFS3_OK = 0;
export const NFS3ERR_NOENT = 2;
export const NFS3ERR_EXIST = 17;
export const NFS3ERR_STALE = 70;
export const NFS3ERR_JUKEBOX = 10008;

export interface Stamp {
  t: number;
  gen: number;
}

export interface WriteRes {
  status: number;
  count: number;
  committed: number;
  verf: bigint;
}

export class FailoverNfsClient {
  conn: RpcConnection | null = null;
  /** connection generation: +1 per (re)connect */
  gen = 0;
  reconnects = 0;
  timeouts = 0;
  retransmits = 0;
  /** time and connection generation of every reply (the bench trims it) */
  readonly replies: Stamp[] = [];
  root!: Uint8Array;
  private readonly cred: Credential;
  private xid = ((Math.random() * 0x3fffffff) >>> 0) + 1;

  constructor(
    readonly name: string,
    private readonly nfsPort: number,
    private readonly mountPort: number,
    /** a call unanswered this long is resent on a new connection (the kernel's timeo is 60 s; the
     * bench uses less so that a dropped call would show as a long stall, not hang the run) */
    private readonly callTimeoutMs = 10_000,
  ) {
    this.cred = authSys({ uid: 0, gid: 0, machine: `hanfs-bench-${name}` });
  }

  private connecting: Promise<void> | null = null;

  /** (re)connect; concurrent callers share one attempt */
  connect(timeoutMs = 60_000): Promise<void> {
    if (!this.connecting) this.connecting = this.doConnect(timeoutMs).finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private async doConnect(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (!this.root) {
          const mc = new MountClient(await RpcConnection.connect({ port: this.mountPort, timeoutMs: 3000 }), this.cred);
          try {
            this.root = await mc.mntOrThrow('/export');
          } finally {
            mc.close();
          }
        }
        const c = await RpcConnection.connect({ port: this.nfsPort, timeoutMs: this.callTimeoutMs, maxRecordBytes: 4 << 20 });
        this.conn?.close();
        this.conn = c;
        this.gen++;
        this.reconnects++;
        return;
      } catch (e) {
        if (Date.now() > until) throw new Error(`${this.name}: no server on the service address within ${timeoutMs} ms: ${(e as Error).message}`);
        await sleep(10);
      }
    }
  }

  /** one RPC call message with record mark, xid fixed */
  private encode(xid: number, proc: number, args: Buffer): Buffer {
    const body = Buffer.concat([
      u32(xid), u32(0), u32(2), u32(PROG_NFS), u32(3), u32(proc),
      u32(this.cred.flavor), opaque(this.cred.body), u32(0), u32(0), args,
    ]);
    return Buffer.concat([u32(0x80000000 | body.length), body]);
  }

  /** send until answered; the same bytes (same xid) on every new connection */
  private async call(proc: number, args: Buffer, timeoutMs = 120_000): Promise<Buffer> {
    const xid = (this.xid = (this.xid + 1) >>> 0 || 1);
    const msg = this.encode(xid, proc, args);
    const until = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) this.retransmits++;
      const c = this.conn!;
      let reply: RpcReply | undefined;
      try {
        const p = c.expectRaw(xid);
        c.writeBytes(msg);
        reply = await p;
      } catch (e) {
        if ((e as Error).constructor.name === 'RpcTimeoutError') this.timeouts++;
        if (Date.now() > until) throw new Error(`${this.name}: proc ${proc} xid ${xid} unanswered for ${timeoutMs} ms: ${(e as Error).message}`);
        if (this.conn === c || this.connecting) await this.connect(Math.max(1000, until - Date.now()));
        continue;
      }
      if (reply.kind !== 'accepted' || reply.acceptStat !== 0) throw new Error(`${this.name}: proc ${proc}: RPC error ${JSON.stringify(reply)}`);
      this.replies.push({ t: now(), gen: this.gen });
      return Buffer.from(reply.results.buffer, reply.results.byteOffset, reply.results.byteLength);
    }
  }

  async write(fh: Uint8Array, offset: number, data: Uint8Array, stable: 0 | 1 | 2): Promise<WriteRes> {
    const r = await this.call(NfsProc.WRITE, Buffer.concat([opaque(fh), u64(offset), u32(data.length), u32(stable), opaque(data)]));
    const status = r.readUInt32BE(0);
    let p = skipWcc(r, 4);
    if (status !== NFS3_OK) return { status, count: 0, committed: 0, verf: 0n };
    const count = r.readUInt32BE(p);
    const committed = r.readUInt32BE(p + 4);
    p += 8;
    return { status, count, committed, verf: r.readBigUInt64BE(p) };
  }

  async commit(fh: Uint8Array): Promise<{ status: number; verf: bigint }> {
    const r = await this.call(NfsProc.COMMIT, Buffer.concat([opaque(fh), u64(0), u32(0)]));
    const status = r.readUInt32BE(0);
    const p = skipWcc(r, 4);
    return { status, verf: status === NFS3_OK ? r.readBigUInt64BE(p) : 0n };
  }

  /** CREATE GUARDED (a retransmission the server executed once must not say EXIST) */
  async createGuarded(dir: Uint8Array, name: string, mode = 0o644): Promise<{ status: number; fh?: Uint8Array }> {
    const sattr = Buffer.concat([u32(1), u32(mode), u32(0), u32(0), u32(0), u32(0), u32(0)]);
    const r = await this.call(NfsProc.CREATE, Buffer.concat([opaque(dir), opaque(Buffer.from(name)), u32(1), sattr]));
    const status = r.readUInt32BE(0);
    if (status !== NFS3_OK) return { status };
    if (r.readUInt32BE(4) === 0) return { status };
    const len = r.readUInt32BE(8);
    return { status, fh: Uint8Array.prototype.slice.call(r.subarray(12, 12 + len)) as Uint8Array };
  }

  async remove(dir: Uint8Array, name: string): Promise<number> {
    const r = await this.call(NfsProc.REMOVE, Buffer.concat([opaque(dir), opaque(Buffer.from(name))]));
    return r.readUInt32BE(0);
  }

  close(): void {
    this.conn?.close();
  }
}

/** wcc_data: pre_op_attr (24 bytes when present), post_op_attr (84 bytes when present) */
function skipWcc(r: Buffer, p: number): number {
  if (r.readUInt32BE(p) !== 0) p += 24;
  p += 4;
  if (r.readUInt32BE(p) !== 0) p += 84;
  return p + 4;
}
