/**
 * The duplicate request cache of the RPC server (src/nfs/duplicate-request-cache.ts), over real TCP
 * and UDP sockets: against the whole daemon (real LevelDB store, NFSv3 and MOUNT programs) for
 * REMOVE and MNT retransmits, and against a controllable program for calls in progress, keys and
 * bounds.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { inProcessConfig } from '../support/in-process';
import { startServer, type RunningServer } from '../../src/server';
import { silentLogger } from '../../src/log';
import { HanfsMetrics } from '../../src/metrics';
import { rootHandle } from '../../src/nfs/file-handle';
import { encodeAuthSys } from '../../src/nfs/auth';
import { RpcServer, XdrOut, xdrOpaque, xdrU32 } from '../../src/nfs/rpc-server';
import type { ProgramResult, RpcCallContext, RpcProgram } from '../../src/nfs/rpc-program';
import { DuplicateRequestCache, ENTRY_OVERHEAD, drcKey, sameKey, type DrcCall } from '../../src/nfs/duplicate-request-cache';
import { sattr } from '../nfs3/support/harness';
import { RawTcpClient, callMsg, parseReply, record, sleep, testLimits, u32be, waitFor, xdrStr, type Reply } from './helpers';

const NFS = 100003;
const MOUNT = 100005;
const REMOVE = 12;
const CREATE = 8;
const LOOKUP = 3;

function accepted(r: Reply): Buffer {
  assert.equal(r.kind, 'accepted');
  if (r.kind !== 'accepted') throw new Error('unreachable');
  assert.equal(r.stat, 0, `accept_stat ${r.stat}`);
  return r.body;
}

function nfsArgs(proc: number, req: unknown): Buffer {
  const enc = new Nfsv3Encoder(new Writer(64 * 1024));
  return Buffer.from(enc.encodeMessage(req as any, proc, true));
}

function nfsReply<T>(proc: number, r: Reply): T & { status: number } {
  const b = accepted(r);
  const out = new Nfsv3Decoder().decodeMessage(new Reader(b), proc, false) as any;
  assert.ok(out, 'reply decodes');
  return out;
}

async function metricValue(metrics: HanfsMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    if (Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)) sum += v.value;
  }
  return sum;
}

describe('duplicate request cache: the daemon (NFSv3 REMOVE, MOUNT MNT)', function () {
  this.timeout(30_000);
  let dir: string;
  let srv: RunningServer;
  let metrics: HanfsMetrics;
  const clients: RawTcpClient[] = [];

  async function connect(port: number): Promise<RawTcpClient> {
    const c = await RawTcpClient.connect(port);
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-drc-'));
    const c = inProcessConfig(dir);
    metrics = new HanfsMetrics({ defaultMetrics: false });
    srv = await startServer(c, { parts: { log: silentLogger(), metrics } });
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const root = () => new s.Nfsv3Fh(rootHandle(1));
  const createArgs = (name: string) =>
    nfsArgs(
      CREATE,
      new m.Nfsv3CreateRequest(
        new s.Nfsv3DirOpArgs(root(), name),
        new s.Nfsv3CreateHow(1, sattr({ mode: 0o644 })),
      ),
    );
  const removeArgs = (name: string) => nfsArgs(REMOVE, new m.Nfsv3RemoveRequest(new s.Nfsv3DirOpArgs(root(), name)));
  const lookupArgs = (name: string) => nfsArgs(LOOKUP, new m.Nfsv3LookupRequest(new s.Nfsv3DirOpArgs(root(), name)));

  it('answers a REMOVE retransmitted on a new connection from the cache: OK twice, removed once', async () => {
    const c1 = await connect(srv.nfs.port);
    assert.equal(nfsReply<m.Nfsv3CreateResponse>(CREATE, await c1.call(callMsg(1, NFS, 3, CREATE, createArgs('f')))).status, 0);
    c1.send(callMsg(2, NFS, 3, REMOVE, removeArgs('f')));
    const first = await c1.next();
    assert.equal(nfsReply<m.Nfsv3RemoveResponse>(REMOVE, parseReply(first)).status, 0);
    c1.close();
    // a new file of the same name: a REMOVE that ran again would remove it
    const c2 = await connect(srv.nfs.port);
    assert.equal(nfsReply<m.Nfsv3CreateResponse>(CREATE, await c2.call(callMsg(3, NFS, 3, CREATE, createArgs('f')))).status, 0);
    assert.notEqual(c2.sock.localPort, undefined);
    // the retransmit: same xid, same arguments, another connection (another source port)
    c2.send(callMsg(2, NFS, 3, REMOVE, removeArgs('f')));
    const again = await c2.next();
    assert.deepEqual(again, first, 'the very same reply bytes');
    assert.equal(nfsReply<m.Nfsv3LookupResponse>(LOOKUP, await c2.call(callMsg(4, NFS, 3, LOOKUP, lookupArgs('f')))).status, 0, 'the new file survives');
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total', { program: 'nfs', proc: 'REMOVE' }), 1);
    // a REMOVE with a new xid runs
    assert.equal(nfsReply<m.Nfsv3RemoveResponse>(REMOVE, await c2.call(callMsg(5, NFS, 3, REMOVE, removeArgs('f')))).status, 0);
    assert.equal(nfsReply<m.Nfsv3RemoveResponse>(REMOVE, await c2.call(callMsg(6, NFS, 3, REMOVE, removeArgs('f')))).status, 2, 'NOENT');
    // LOOKUP (idempotent) is never cached: same xid twice runs twice
    const l1 = nfsReply<m.Nfsv3LookupResponse>(LOOKUP, await c2.call(callMsg(4, NFS, 3, LOOKUP, lookupArgs('f'))));
    assert.equal(l1.status, 2);
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total'), 1);
  });

  it('a REMOVE with a reused xid but another name is not answered from the cache', async () => {
    const c = await connect(srv.nfs.port);
    for (const [xid, n] of [[10, 'a'], [11, 'b']] as const) {
      assert.equal(nfsReply<m.Nfsv3CreateResponse>(CREATE, await c.call(callMsg(xid, NFS, 3, CREATE, createArgs(n)))).status, 0);
    }
    assert.equal(nfsReply<m.Nfsv3RemoveResponse>(REMOVE, await c.call(callMsg(20, NFS, 3, REMOVE, removeArgs('a')))).status, 0);
    assert.equal(nfsReply<m.Nfsv3RemoveResponse>(REMOVE, await c.call(callMsg(20, NFS, 3, REMOVE, removeArgs('b')))).status, 0);
    assert.equal(nfsReply<m.Nfsv3LookupResponse>(LOOKUP, await c.call(callMsg(21, NFS, 3, LOOKUP, lookupArgs('b')))).status, 2, 'b removed');
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total'), 0);
  });

  it('answers a MNT retransmit from the cache (MOUNT declares MNT/UMNT non-idempotent)', async () => {
    const c1 = await connect(srv.mount.tcp.port);
    const a = await c1.call(callMsg(7, MOUNT, 3, 1, xdrStr('/export')));
    assert.equal(accepted(a).readUInt32BE(0), 0);
    const c2 = await connect(srv.mount.tcp.port);
    const b = await c2.call(callMsg(7, MOUNT, 3, 1, xdrStr('/export')));
    assert.deepEqual(b, a);
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total', { program: 'mount', proc: 'MNT' }), 1);
    // EXPORT is not cached
    await c2.call(callMsg(8, MOUNT, 3, 5));
    await c2.call(callMsg(8, MOUNT, 3, 5));
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total'), 1);
    const text = await metrics.registry.metrics();
    assert.match(text, /hanfs_rpc_drc_entries \d+/);
    assert.match(text, /hanfs_rpc_drc_bytes \d+/);
  });
});

/**
 * Program 0x20000010 v1: proc 1 MUTATE (non-idempotent): args u32 hold (1 = wait for release()),
 * u32 reply padding, opaque tag; answers u32 run number, opaque tag, the local address and port,
 * then `padding` zero bytes. proc 2 PEEK (idempotent): same, never cached.
 */
class MutatingProgram implements RpcProgram {
  readonly prog = 0x20000010;
  readonly versions = [1];
  readonly name = 'mutating';
  runs = 0;
  readonly contexts: RpcCallContext[] = [];
  private gate: (() => void)[] = [];

  procName(_v: number, proc: number): string {
    return ['NULL', 'MUTATE', 'PEEK'][proc] ?? 'unknown';
  }

  isNonIdempotent(_v: number, proc: number): boolean {
    return proc === 1;
  }

  get waiting(): number {
    return this.gate.length;
  }

  release(): void {
    const g = this.gate;
    this.gate = [];
    for (const f of g) f();
  }

  async handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult> {
    if (ctx.proc === 0) return { kind: 'success', body: new Uint8Array(0) };
    if (ctx.proc !== 1 && ctx.proc !== 2) return { kind: 'proc_unavail' };
    const hold = xdrU32(args);
    const padding = xdrU32(args);
    const tag = xdrOpaque(args, 1024);
    const run = ++this.runs;
    this.contexts.push(ctx);
    if (hold === 1) await new Promise<void>((r) => this.gate.push(r));
    const out = new XdrOut(64 + padding).u32(run).opaque(tag).string(ctx.localAddress ?? '-').u32(ctx.localPort ?? 0);
    out.fixed(new Uint8Array(padding), padding);
    return { kind: 'success', body: out.bytes() };
  }
}

function mutateArgs(tag: string, hold = 0, padding = 0): Buffer {
  return Buffer.concat([u32be(hold, padding), xdrStr(tag)]);
}

function runOf(r: Reply): number {
  return accepted(r).readUInt32BE(0);
}

describe('duplicate request cache: calls in progress, keys, bounds', function () {
  this.timeout(15_000);
  const PROG = 0x20000010;
  let server: RpcServer;
  let prog: MutatingProgram;
  let metrics: HanfsMetrics;
  let port: number;
  const clients: RawTcpClient[] = [];

  async function connect(): Promise<RawTcpClient> {
    const c = await RawTcpClient.connect(port);
    clients.push(c);
    return c;
  }

  async function start(drc: ConstructorParameters<typeof RpcServer>[0]['drc'] = {}): Promise<void> {
    prog = new MutatingProgram();
    metrics = new HanfsMetrics({ defaultMetrics: false });
    server = new RpcServer({ limits: testLimits(), log: silentLogger(), metrics, drc });
    metrics.watchDrc(server.drc);
    port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
  }

  afterEach(async () => {
    prog.release();
    for (const c of clients.splice(0)) c.close();
    await server.close(500);
  });

  it('passes the local address and port in the call context', async () => {
    await start();
    const c = await connect();
    await c.call(callMsg(1, PROG, 1, 2, mutateArgs('x')));
    assert.equal(prog.contexts[0].localAddress, '127.0.0.1');
    assert.equal(prog.contexts[0].localPort, port);
    assert.equal(prog.contexts[0].remotePort, c.sock.localPort);
  });

  it('never runs a retransmit while the original runs: dropped on the same connection, answered on a new one', async () => {
    await start();
    const c1 = await connect();
    c1.send(callMsg(42, PROG, 1, 1, mutateArgs('slow', 1)));
    await waitFor(() => prog.waiting === 1);
    // same connection: dropped (the original's reply will come on it)
    c1.send(callMsg(42, PROG, 1, 1, mutateArgs('slow', 1)));
    // the client reconnected: waits for the original
    const c2 = await connect();
    c2.send(callMsg(42, PROG, 1, 1, mutateArgs('slow', 1)));
    await waitFor(() => server.drc!.stats.inProgressHits === 2);
    await sleep(50);
    assert.equal(prog.runs, 1);
    assert.equal(prog.waiting, 1);
    prog.release();
    const r1 = await c1.next();
    const r2 = await c2.next();
    assert.deepEqual(r2, r1);
    assert.equal(runOf(parseReply(r1)), 1);
    await assert.rejects(c1.next(300), /no reply/, 'the duplicate on the same connection got no reply');
    assert.equal(prog.runs, 1);
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_inprogress_drops_total', { program: 'mutating', proc: 'MUTATE' }), 1);
    assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_hits_total', { program: 'mutating', proc: 'MUTATE' }), 1);
    // and later retransmits are answered from the cache
    const c3 = await connect();
    assert.deepEqual(await c3.call(callMsg(42, PROG, 1, 1, mutateArgs('slow', 1))), parseReply(r1));
    assert.equal(prog.runs, 1);
  });

  it('drops a UDP retransmit of a call in progress and answers the next one from the cache', async () => {
    await start();
    const udpPort = (await server.listenUdp('127.0.0.1', 0, [prog])).port;
    const sock = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    sock.on('message', (msg) => replies.push(msg));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    try {
      const msg = callMsg(77, PROG, 1, 1, mutateArgs('u', 1));
      sock.send(msg, udpPort, '127.0.0.1');
      await waitFor(() => prog.waiting === 1);
      sock.send(msg, udpPort, '127.0.0.1');
      await waitFor(() => server.drc!.stats.inProgressHits === 1);
      prog.release();
      await waitFor(() => replies.length === 1);
      await sleep(100);
      assert.equal(replies.length, 1, 'one reply for two datagrams');
      sock.send(msg, udpPort, '127.0.0.1');
      await waitFor(() => replies.length === 2);
      assert.deepEqual(replies[1], replies[0]);
      assert.equal(prog.runs, 1);
      assert.equal(await metricValue(metrics, 'hanfs_rpc_drc_inprogress_drops_total'), 1);
    } finally {
      sock.close();
    }
  });

  it('runs a reused xid with other arguments, another user or another procedure; a renewed AUTH_SYS stamp still hits', async () => {
    await start();
    const c = await connect();
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('a')))), 1);
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('b')))), 2, 'other arguments');
    // a difference beyond the checksummed bytes is still told apart by the length
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('b'.repeat(300))))), 3);
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('b'.repeat(299) + 'c')))), 3, 'same first bytes and length: a hit');
    const bob = encodeAuthSys({ stamp: 1, machine: 'testhost', uid: 2000, gid: 2000, gids: [] });
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('a'), { cred: bob }))), 4, 'another user');
    const stamped = encodeAuthSys({ stamp: 99, machine: 'testhost', uid: 2000, gid: 2000, gids: [] });
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('a'), { cred: stamped }))), 4, 'new stamp, same call');
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 2, mutateArgs('a')))), 5, 'idempotent procedure');
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 2, mutateArgs('a')))), 6, 'idempotent procedure, again');
    assert.equal(runOf(await c.call(callMsg(5, PROG, 1, 1, mutateArgs('a')))), 1, 'the first call, from the cache');
  });

  it('keeps at most maxEntries entries, evicting the least recently used', async () => {
    await start({ maxEntries: 8 });
    const c = await connect();
    for (let i = 0; i < 20; i++) {
      assert.equal(runOf(await c.call(callMsg(1000 + i, PROG, 1, 1, mutateArgs(`e${i}`)))), i + 1);
      assert.ok(server.drc!.size <= 8, `size ${server.drc!.size}`);
      // keep call 0 in use: it stays while others are evicted
      if (i % 4 === 3) assert.equal(runOf(await c.call(callMsg(1000, PROG, 1, 1, mutateArgs('e0')))), 1);
    }
    assert.equal(server.drc!.size, 8);
    assert.equal(runOf(await c.call(callMsg(1019, PROG, 1, 1, mutateArgs('e19')))), 20, 'recent: cached');
    assert.equal(runOf(await c.call(callMsg(1000, PROG, 1, 1, mutateArgs('e0')))), 1, 'recently used: cached');
    assert.equal(runOf(await c.call(callMsg(1001, PROG, 1, 1, mutateArgs('e1')))), 21, 'evicted: runs again');
    assert.ok((await metricValue(metrics, 'hanfs_rpc_drc_evictions')) >= 12);
  });

  it('keeps at most maxBytes of replies and does not keep replies over maxReplyBytes', async () => {
    const padding = 1000;
    // reply: 24 bytes of RPC header + run + tag + address + port + padding
    const replyBytes = 24 + 4 + 8 + 4 + 12 + 4 + padding;
    const maxBytes = 4 * (replyBytes + ENTRY_OVERHEAD) + 10;
    await start({ maxBytes, maxReplyBytes: 2000 });
    const c = await connect();
    for (let i = 0; i < 10; i++) {
      await c.call(callMsg(2000 + i, PROG, 1, 1, mutateArgs(`b${i}`, 0, padding)));
      assert.ok(server.drc!.bytes <= maxBytes, `bytes ${server.drc!.bytes}`);
    }
    assert.equal(server.drc!.size, 4);
    assert.equal(runOf(await c.call(callMsg(2009, PROG, 1, 1, mutateArgs('b9', 0, padding)))), 10);
    assert.equal(runOf(await c.call(callMsg(2000, PROG, 1, 1, mutateArgs('b0', 0, padding)))), 11);
    // a reply over maxReplyBytes is sent but not kept
    assert.equal(runOf(await c.call(callMsg(3000, PROG, 1, 1, mutateArgs('big', 0, 3000)))), 12);
    assert.equal(runOf(await c.call(callMsg(3000, PROG, 1, 1, mutateArgs('big', 0, 3000)))), 13);
  });

  it('runs without a cache when disabled', async () => {
    await start(false);
    assert.equal(server.drc, undefined);
    const c = await connect();
    assert.equal(runOf(await c.call(callMsg(9, PROG, 1, 1, mutateArgs('a')))), 1);
    assert.equal(runOf(await c.call(callMsg(9, PROG, 1, 1, mutateArgs('a')))), 2);
  });

  it('pipelined duplicates in one write: the original runs once, the copy is dropped', async () => {
    await start();
    const c = await connect();
    const msg = record(callMsg(55, PROG, 1, 1, mutateArgs('p', 1)));
    c.write(Buffer.concat([msg, msg]));
    await waitFor(() => server.drc!.stats.inProgressHits === 1);
    prog.release();
    assert.equal(runOf(parseReply(await c.next())), 1);
    await assert.rejects(c.next(300), /no reply/);
    assert.equal(prog.runs, 1);
  });
});

describe('duplicate request cache: the cache itself', () => {
  const call = (xid: number, args = 'x', address = '10.0.0.1'): DrcCall => ({
    transport: 'tcp', address, xid, prog: 100003, vers: 3, proc: 12, args: Buffer.from(args), credFlavor: 0, cred: new Uint8Array(0),
  });

  it('expires completed entries after ttlMs, counted from their last use', () => {
    let now = 0;
    const drc = new DuplicateRequestCache({ ttlMs: 1000 }, () => now);
    const t = drc.begin(call(1), 'conn');
    assert.equal(t.kind, 'execute');
    if (t.kind === 'execute') drc.finish(t.token, [Buffer.from('reply1')]);
    now = 900;
    assert.equal(drc.begin(call(1), 'conn').kind, 'cached');
    now = 1800; // 900 ms after the hit
    assert.equal(drc.begin(call(1), 'conn').kind, 'cached');
    now = 2801;
    const again = drc.begin(call(1), 'conn');
    assert.equal(again.kind, 'execute', 'expired');
    assert.equal(drc.stats.inProgress, 1);
    assert.equal(drc.size, 1);
  });

  it('keys by address, not port, and tells addresses, xids and transports apart; forgets calls that sent no reply', async () => {
    const drc = new DuplicateRequestCache();
    assert.ok(sameKey(drcKey(call(1)), drcKey(call(1))));
    assert.ok(!sameKey(drcKey(call(1)), drcKey(call(2))));
    assert.ok(!sameKey(drcKey(call(1, 'x', '10.0.0.1')), drcKey(call(1, 'x', '10.0.0.2'))));
    assert.ok(!sameKey(drcKey(call(1)), drcKey({ ...call(1), transport: 'udp' })));
    assert.ok(!sameKey(drcKey(call(1, 'x')), drcKey(call(1, 'y'))));
    const t = drc.begin(call(3), 'a');
    const dup = drc.begin(call(3), 'b');
    assert.equal(dup.kind, 'inprogress');
    assert.equal(dup.kind === 'inprogress' && dup.origin, 'a');
    const waited = dup.kind === 'inprogress' ? dup.wait() : Promise.resolve(undefined);
    if (t.kind === 'execute') drc.finish(t.token, undefined);
    assert.equal(await waited, undefined);
    assert.equal(drc.size, 0);
    assert.equal(drc.begin(call(3), 'a').kind, 'execute', 'no reply was sent: a retransmit runs');
  });

  it('holds reply bytes within what is charged plus two slabs, whatever entries are hit', () => {
    const drc = new DuplicateRequestCache({ maxEntries: 100 });
    const reply = Buffer.alloc(1000, 9);
    let seed = 7;
    let maxSlab = 0;
    for (let i = 0; i < 20000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      // mostly new calls; every third one retransmits one of the last 100 (a hit, often an old entry)
      const xid = i % 3 === 2 ? Math.max(0, i - 1 - ((seed >>> 8) % 100)) : i;
      const b = drc.begin(call(xid), 'o');
      if (b.kind === 'execute') drc.finish(b.token, [reply.subarray(0, 24), reply.subarray(24)]);
      else if (b.kind === 'cached') assert.deepEqual(b.reply, reply);
      maxSlab = Math.max(maxSlab, drc.slabBytes);
      assert.ok(drc.size <= 100);
    }
    assert.ok(maxSlab <= 100 * 1000 + 2 * 64 * 1024, `slab bytes ${maxSlab}`);
    assert.ok(drc.stats.hits > 1000);
  });

  it('agrees with a simple model under random calls (shared xids, LRU, bounds)', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const maxEntries = 10;
    const drc = new DuplicateRequestCache({ maxEntries, maxBytes: 1 << 20 });
    // model: completed keys, least recently used first; running keys with their tokens
    const lru: { k: string; reply: string }[] = [];
    const running = new Map<string, { token: any; reply: string }>();
    let seq = 0;
    for (let step = 0; step < 5000; step++) {
      const xid = rnd(6);
      const address = `10.0.0.${rnd(3)}`;
      const arg = `a${rnd(2)}`;
      const k = `${xid}|${address}|${arg}`;
      if (rnd(3) === 0 && running.size > 0) {
        // finish a running call
        const keys = [...running.keys()];
        const rk = keys[rnd(keys.length)];
        const r = running.get(rk)!;
        running.delete(rk);
        drc.finish(r.token, [Buffer.from(r.reply)]);
        lru.push({ k: rk, reply: r.reply });
      } else {
        const got = drc.begin(call(xid, arg, address), 'o');
        const i = lru.findIndex((e) => e.k === k);
        if (i >= 0) {
          assert.equal(got.kind, 'cached', `step ${step}`);
          assert.equal(got.kind === 'cached' && Buffer.from(got.reply).toString(), lru[i].reply);
          lru.push(...lru.splice(i, 1));
        } else if (running.has(k)) {
          assert.equal(got.kind, 'inprogress', `step ${step}`);
        } else {
          assert.equal(got.kind, 'execute', `step ${step}`);
          if (got.kind === 'execute') running.set(k, { token: got.token, reply: `r${seq++}` });
        }
      }
      // evictions: the least recently used completed entries, while over the bound
      while (lru.length + running.size > maxEntries && lru.length > 0) lru.shift();
      assert.equal(drc.size, lru.length + running.size, `step ${step}`);
    }
  });
});
