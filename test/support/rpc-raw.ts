/** Hand-built ONC RPC records for hostile-input tests. */
import * as net from 'node:net';
import { RpcConnection, RpcConnectionClosedError, type RpcReply } from '../../src/nfs/client';
import { sleep } from './util';

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
export function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, n));
  return b;
}
export function opaque(data: Uint8Array): Buffer {
  const pad = (4 - (data.length % 4)) % 4;
  return Buffer.concat([u32(data.length), Buffer.from(data), Buffer.alloc(pad)]);
}
export function str(s: string | Buffer): Buffer {
  return opaque(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
}

export interface CallSpec {
  xid: number;
  rpcvers?: number;
  prog: number;
  vers: number;
  proc: number;
  credFlavor?: number;
  /** raw cred body (length prefix written from credLen ?? body.length) */
  credBody?: Buffer;
  credLen?: number;
  verfFlavor?: number;
  verfBody?: Buffer;
  args?: Buffer;
  msgType?: number;
}

export function authSysBody(uid: number, gid: number, gids: number[] = [], machine = 'fuzz'): Buffer {
  return Buffer.concat([u32(0), str(machine), u32(uid), u32(gid), u32(gids.length), ...gids.map(u32)]);
}

export function callBody(c: CallSpec): Buffer {
  const cred = c.credBody ?? authSysBody(0, 0);
  const credPad = Buffer.alloc((4 - (cred.length % 4)) % 4);
  const verf = c.verfBody ?? Buffer.alloc(0);
  return Buffer.concat([
    u32(c.xid),
    u32(c.msgType ?? 0),
    u32(c.rpcvers ?? 2),
    u32(c.prog),
    u32(c.vers),
    u32(c.proc),
    u32(c.credFlavor ?? 1),
    u32(c.credLen ?? cred.length),
    cred,
    credPad,
    u32(c.verfFlavor ?? 0),
    u32(verf.length),
    verf,
    Buffer.alloc((4 - (verf.length % 4)) % 4),
    c.args ?? Buffer.alloc(0),
  ]);
}

export function frame(body: Buffer, last = true): Buffer {
  return Buffer.concat([u32((last ? 0x80000000 : 0) | body.length), body]);
}

export type Outcome = { kind: 'reply'; reply: RpcReply } | { kind: 'closed' } | { kind: 'silent' };

/** Send raw bytes on `conn` and wait for the reply to `xid`, a close, or silence. */
export async function sendAndWait(conn: RpcConnection, bytes: Buffer, xid: number, timeoutMs = 5000): Promise<Outcome> {
  const p = conn.expectRaw(xid, timeoutMs);
  conn.writeBytes(bytes);
  try {
    return { kind: 'reply', reply: await p };
  } catch (err) {
    if (err instanceof RpcConnectionClosedError || conn.closed) return { kind: 'closed' };
    return { kind: 'silent' };
  }
}

/** A plain socket: did the server close it within timeoutMs? (data it sends is ignored) */
export function waitSocketClosed(sock: net.Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (sock.destroyed || sock.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), timeoutMs);
    const done = () => {
      clearTimeout(t);
      resolve(true);
    };
    sock.once('close', done);
    sock.once('end', done);
  });
}

export function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('data', () => undefined);
    s.once('error', reject);
    s.once('connect', () => {
      s.removeListener('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

export { sleep };
