import assert from 'node:assert/strict';
import net from 'node:net';
import type { RpcServer } from '../../src/nfs/rpc-server';
import { encodeAuthSys } from '../../src/nfs/auth';
import { HanfsMetrics } from '../../src/metrics';
import { RpcServer as Server } from '../../src/nfs/rpc-server';
import { silentLogger } from '../../src/log';
import { RawTcpClient, TestProgram, callMsg, newServer as makeServer, parseReply, record, serverScope, sleep, testLimits, u32be, udpCall, waitFor } from './helpers';

const PROG = 0x20000001;

describe('ONC RPC server over TCP', function () {
  this.timeout(10_000);
  let server: RpcServer;
  let prog: TestProgram;
  let port: number;
  const clients: RawTcpClient[] = [];

  async function connect(): Promise<RawTcpClient> {
    const c = await RawTcpClient.connect(port);
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    prog = new TestProgram();
    server = makeServer({ maxInflightPerConnection: 4, idleRecordTimeoutMs: 300 });
    port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
  });

  afterEach(async () => {
    prog.release();
    for (const c of clients.splice(0)) c.close();
    await server.close(500);
  });

  it('answers NULL with SUCCESS and an AUTH_NONE verifier', async () => {
    const c = await connect();
    const r = await c.call(callMsg(7, PROG, 3, 0));
    assert.deepEqual(r, { xid: 7, kind: 'accepted', stat: 0, body: Buffer.alloc(0) });
  });

  it('pipelines calls and replies in completion order', async () => {
    const c = await connect();
    // three calls in one write; the first takes longest
    const delays = [300, 150, 0];
    c.write(Buffer.concat(delays.map((d, i) => record(callMsg(100 + i, PROG, 3, 1, Buffer.concat([u32be(d), Buffer.from(`r${i}`)]))))));
    const order: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = parseReply(await c.next());
      assert.equal(r.kind, 'accepted');
      if (r.kind === 'accepted') assert.equal(r.body.toString(), `r${r.xid - 100}`);
      order.push(r.xid);
    }
    assert.deepEqual(order, [102, 101, 100]);
    assert.equal(prog.maxConcurrent, 3);
  });

  it('bounds calls in flight per connection and stops reading at the bound', async () => {
    const c = await connect();
    const n = 12;
    c.write(Buffer.concat(Array.from({ length: n }, (_, i) => record(callMsg(i + 1, PROG, 3, 6)))));
    await waitFor(() => prog.waiting === 4);
    await sleep(100);
    assert.equal(prog.waiting, 4, 'only maxInflightPerConnection calls started');
    const seen = new Set<number>();
    while (seen.size < n) {
      prog.release();
      const r = parseReply(await c.next());
      seen.add(r.xid);
      assert.ok(prog.maxConcurrent <= 4);
    }
    assert.equal(prog.maxConcurrent, 4);
  });

  it('rejects: PROG_UNAVAIL, PROG_MISMATCH with the range, PROC_UNAVAIL, RPC_MISMATCH', async () => {
    const c = await connect();
    assert.deepEqual(await c.call(callMsg(1, 0x20000099, 1, 0)), { xid: 1, kind: 'accepted', stat: 1, body: Buffer.alloc(0) });
    const mm = await c.call(callMsg(2, PROG, 7, 0));
    assert.deepEqual(mm, { xid: 2, kind: 'accepted', stat: 2, low: 2, high: 4, body: Buffer.alloc(0) });
    assert.deepEqual(await c.call(callMsg(3, PROG, 3, 99)), { xid: 3, kind: 'accepted', stat: 3, body: Buffer.alloc(0) });
    assert.deepEqual(await c.call(callMsg(4, PROG, 3, 0, undefined, { rpcvers: 3 })), {
      xid: 4,
      kind: 'denied',
      rejectStat: 0,
      low: 2,
      high: 2,
    });
  });

  it('GARBAGE_ARGS when the program says so or reads past the arguments; SYSTEM_ERR when it throws', async () => {
    const c = await connect();
    assert.equal((await c.call(callMsg(1, PROG, 3, 3)) as { stat: number }).stat, 4);
    assert.equal((await c.call(callMsg(2, PROG, 3, 4, u32be(1))) as { stat: number }).stat, 4);
    assert.equal((await c.call(callMsg(3, PROG, 3, 2)) as { stat: number }).stat, 5);
    // and the connection still works
    assert.equal((await c.call(callMsg(4, PROG, 3, 0)) as { stat: number }).stat, 0);
  });

  it('auth: AUTH_SYS parsed, malformed AUTH_SYS and unknown flavors AUTH_BADCRED, AUTH_SHORT REJECTEDCRED, bad verifier BADVERF', async () => {
    const c = await connect();
    const who = await c.call(callMsg(1, PROG, 3, 7, undefined, { cred: encodeAuthSys({ stamp: 9, machine: 'm', uid: 4242, gid: 1, gids: [] }) }));
    assert.equal(who.kind, 'accepted');
    if (who.kind === 'accepted') assert.equal(who.body.readUInt32BE(0), 4242);
    const denied = async (xid: number, o: Parameters<typeof callMsg>[5]) => {
      const r = await c.call(callMsg(xid, PROG, 3, 0, undefined, o));
      assert.equal(r.kind, 'denied', `xid ${xid}`);
      return r.kind === 'denied' ? r.authStat : undefined;
    };
    const seventeenGids = encodeAuthSys({ stamp: 1, machine: 'm', uid: 1, gid: 1, gids: Array.from({ length: 17 }, (_, i) => i) });
    assert.equal(await denied(10, { cred: seventeenGids }), 1);
    const longName = encodeAuthSys({ stamp: 1, machine: 'x'.repeat(256), uid: 1, gid: 1, gids: [] });
    assert.equal(await denied(11, { cred: longName }), 1);
    const good = encodeAuthSys({ stamp: 1, machine: 'm', uid: 1, gid: 1, gids: [2] });
    assert.equal(await denied(12, { cred: good.subarray(0, good.length - 4) }), 1, 'truncated gid list');
    assert.equal(await denied(13, { cred: Buffer.concat([good, Buffer.alloc(4)]) }), 1, 'trailing bytes');
    assert.equal(await denied(14, { credFlavor: 6, cred: Buffer.alloc(8) }), 1, 'RPCSEC_GSS');
    assert.equal(await denied(15, { credFlavor: 2, cred: Buffer.alloc(8) }), 2, 'AUTH_SHORT');
    assert.equal(await denied(16, { credFlavor: 0, cred: Buffer.alloc(4) }), 1, 'AUTH_NONE with a body');
    assert.equal(await denied(17, { verfFlavor: 1, verf: Buffer.alloc(4) }), 3, 'AUTH_SYS verifier');
    // an opaque_auth over 400 bytes
    assert.equal(await denied(18, { credFlavor: 1, cred: Buffer.alloc(404) }), 1);
    // a well-formed AUTH_NONE call is accepted by the server itself
    assert.equal((await c.call(callMsg(19, PROG, 3, 0, undefined, { credFlavor: 0 }))).kind, 'accepted');
  });

  it('a program answers AUTH_TOOWEAK', async () => {
    const c = await connect();
    const r = await c.call(callMsg(1, PROG, 3, 5, undefined, { credFlavor: 0 }));
    assert.deepEqual(r, { xid: 1, kind: 'denied', rejectStat: 1, authStat: 5 });
    const ok = await c.call(callMsg(2, PROG, 3, 5));
    assert.equal(ok.kind, 'accepted');
  });

  it('closes the connection on a REPLY message or a record too short to be a call', async () => {
    const a = await connect();
    a.send(callMsg(1, PROG, 3, 0, undefined, { msgType: 1 }));
    assert.equal(await a.waitClosed(), true);
    const b = await connect();
    b.send(Buffer.from([1, 2, 3]));
    assert.equal(await b.waitClosed(), true);
    // a truncated call header is dropped without reply; the next call is still answered
    const c = await connect();
    c.send(callMsg(5, PROG, 3, 0).subarray(0, 30));
    assert.equal((await c.call(callMsg(6, PROG, 3, 0))).xid, 6);
  });

  it('closes the connection on a 0x7fffffff / 0xffffffff fragment header without allocating', async () => {
    for (const h of [0x7fffffff, 0xffffffff]) {
      const c = await connect();
      c.write(u32be(h));
      assert.equal(await c.waitClosed(), true);
    }
    // the server still serves others
    const ok = await connect();
    assert.equal((await ok.call(callMsg(1, PROG, 3, 0))).kind, 'accepted');
  });

  it('accepts a call split into many fragments', async () => {
    const c = await connect();
    const msg = callMsg(77, PROG, 3, 1, Buffer.concat([u32be(0), Buffer.from('fragmented!')]));
    const parts: Buffer[] = [];
    for (let i = 0; i < msg.length; i += 5) {
      const piece = msg.subarray(i, i + 5);
      parts.push(u32be((i + 5 >= msg.length ? 0x80000000 : 0) | piece.length), piece, i === 10 ? u32be(0) : Buffer.alloc(0));
    }
    c.write(Buffer.concat(parts));
    const r = parseReply(await c.next());
    assert.equal(r.xid, 77);
    assert.equal(r.kind === 'accepted' && r.body.toString(), 'fragmented!');
  });

  it('closes a connection that holds a partial record too long (slowloris)', async () => {
    const c = await connect();
    const msg = record(callMsg(1, PROG, 3, 0));
    const t0 = Date.now();
    // trickle bytes: activity must not reset the partial-record clock
    let i = 0;
    const trickle = setInterval(() => {
      if (i < msg.length - 1 && !c.closed) c.write(msg.subarray(i, ++i));
    }, 50);
    const closed = await c.waitClosed(8000);
    clearInterval(trickle);
    assert.equal(closed, true);
    const took = Date.now() - t0;
    // 300 ms limit; the trickle (one byte per 50 ms) would have taken over 3 s
    assert.ok(took >= 250 && took < msg.length * 50, `closed after ${took} ms`);
    // a connection that is merely idle between records is not closed by that guard
    const idle = await connect();
    assert.equal((await idle.call(callMsg(2, PROG, 3, 0))).kind, 'accepted');
    await sleep(500);
    assert.equal(idle.closed, false);
  });

  it('keeps serving other connections while one is stuck', async () => {
    const stuck = await connect();
    stuck.write(Buffer.concat(Array.from({ length: 4 }, (_, i) => record(callMsg(i, PROG, 3, 6)))));
    await sleep(50);
    const other = await connect();
    assert.equal((await other.call(callMsg(9, PROG, 3, 0))).kind, 'accepted');
  });

  it('close() lets calls in flight finish and sends their replies', async () => {
    const c = await connect();
    c.send(callMsg(5, PROG, 3, 1, Buffer.concat([u32be(200), Buffer.from('late')])));
    await sleep(50);
    const closing = server.close(5000);
    const r = parseReply(await c.next());
    assert.equal(r.xid, 5);
    assert.equal(r.kind === 'accepted' && r.body.toString(), 'late');
    await closing;
    assert.equal(await c.waitClosed(), true);
    // no new connections
    await assert.rejects(RawTcpClient.connect(port));
  });
});

describe('ONC RPC server: limits and metrics', function () {
  this.timeout(30_000);
  // every server and client a test makes is closed even when the test fails
  const { newServer, servers, socks, connectTo } = serverScope();

  it('does not close a client that keeps completing records, each chunk ending mid-record', async () => {
    // a client streaming calls back to back (e.g. WRITEs larger than a TCP read): every chunk the
    // server reads completes one record and starts the next. No record is held long, so the
    // partial-record guard must not fire however long the stream lasts (here 2 s against 800 ms).
    const server = newServer({ idleRecordTimeoutMs: 800 });
    const port = (await server.listenTcp('127.0.0.1', 0, [new TestProgram()])).port;
    const c = await connectTo(port);
    const msgs = Array.from({ length: 20 }, (_, i) => record(callMsg(200 + i, PROG, 3, 0)));
    const half = msgs[0].length >> 1;
    c.write(msgs[0].subarray(0, half));
    for (let i = 0; i < msgs.length; i++) {
      await sleep(100);
      assert.equal(c.closed, false, `closed after ${i} records`);
      const next = i + 1 < msgs.length ? msgs[i + 1].subarray(0, half) : Buffer.alloc(0);
      c.write(Buffer.concat([msgs[i].subarray(half), next]));
    }
    for (let i = 0; i < msgs.length; i++) assert.equal(parseReply(await c.next()).xid, 200 + i);
    assert.equal(c.closed, false);
  });

  it('refuses connections over maxConnections', async () => {
    const server = newServer({ maxConnections: 2 });
    const port = (await server.listenTcp('127.0.0.1', 0, [new TestProgram()])).port;
    const a = await connectTo(port);
    const b = await connectTo(port);
    await sleep(50);
    const c = await connectTo(port);
    assert.equal(await c.waitClosed(2000), true);
    assert.equal((await a.call(callMsg(1, PROG, 3, 0))).kind, 'accepted');
    a.close();
    b.close();
    await server.close(100);
  });

  it('closes idle connections', async () => {
    const server = newServer({ idleConnectionTimeoutMs: 200 });
    const port = (await server.listenTcp('127.0.0.1', 0, [new TestProgram()])).port;
    const a = await connectTo(port);
    assert.equal(await a.waitClosed(2000), true);
    await server.close(100);
  });

  it('stops reading while the client does not read its replies', async () => {
    const prog = new TestProgram();
    const server = newServer({ maxInflightPerConnection: 64 });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const sock = net.connect({ port, host: '127.0.0.1' });
    await new Promise((r) => sock.once('connect', r));
    socks.push({ close: () => sock.destroy() });
    sock.pause(); // never read replies
    const big = record(callMsg(1, PROG, 3, 1, Buffer.concat([u32be(0), Buffer.alloc(60_000, 7)])));
    // 400 calls (24 MB), each echoing 60 KB back; Node queues what the kernel does not take yet
    const n = 400;
    for (let i = 0; i < n; i++) sock.write(big);
    // wait until the server stops making progress
    let last = -1;
    for (let i = 0; i < 50 && prog.calls !== last; i++) {
      last = prog.calls;
      await sleep(200);
    }
    const callsWhenStuck = prog.calls;
    await sleep(300);
    assert.equal(prog.calls, callsWhenStuck, 'no more calls processed while replies are not read');
    assert.ok(prog.calls > 0 && prog.calls < n, `server processed ${prog.calls} of ${n} calls`);
    // once the client reads, everything is answered
    let replies = 0;
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + (buf.readUInt32BE(0) & 0x7fffffff)) {
        buf = buf.subarray(4 + (buf.readUInt32BE(0) & 0x7fffffff));
        replies++;
      }
    });
    sock.resume();
    await waitFor(() => replies === n, 20_000);
    assert.equal(prog.calls, n);
  });

  it('a global budget of held record bytes stops reading every connection until calls finish', async () => {
    const prog = new TestProgram();
    const server = newServer({ maxRecordBytes: 64 * 1024, maxBufferedBytes: 100 * 1024 });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const a = await connectTo(port);
    const b = await connectTo(port);
    const big = (xid: number) => record(callMsg(xid, PROG, 3, 6, Buffer.alloc(40 * 1024)));
    a.write(Buffer.concat([big(1), big(2)]));
    b.write(big(3));
    await waitFor(() => prog.waiting === 3);
    assert.ok(server.heldBytes > 100 * 1024);
    // over budget: a third client's call is not even read
    const c = await connectTo(port);
    c.send(callMsg(9, PROG, 3, 0));
    await assert.rejects(c.next(300), /no reply/);
    prog.release();
    const r = parseReply(await c.next());
    assert.equal(r.xid, 9);
    assert.equal(parseReply(await b.next()).xid, 3);
    for (const x of [a, b, c]) x.close();
    await sleep(50);
    assert.equal(server.heldBytes, 0);
    await server.close(100);
  });

  it('counts calls, outcomes and in-flight in the metrics registry', async () => {
    const metrics = new HanfsMetrics({ defaultMetrics: false });
    const server = new Server({ limits: testLimits(), log: silentLogger(), metrics });
    servers.push(server);
    const port = (await server.listenTcp('127.0.0.1', 0, [new TestProgram()])).port;
    const c = await connectTo(port);
    await c.call(callMsg(1, PROG, 3, 0));
    await c.call(callMsg(2, PROG, 3, 3));
    await c.call(callMsg(3, 0x20000099, 1, 0));
    const text = await metrics.registry.metrics();
    assert.match(text, /hanfs_rpc_requests_total\{program="test",proc="NULL"\} 1/);
    assert.match(text, /hanfs_rpc_errors_total\{program="test",proc="GARBAGE",stat="GARBAGE_ARGS"\} 1/);
    assert.match(text, /hanfs_rpc_errors_total\{program="unknown",proc="unknown",stat="PROG_UNAVAIL"\} 1/);
    assert.match(text, /hanfs_rpc_duration_seconds_count\{program="test",proc="NULL"\} 1/);
    assert.match(text, /hanfs_rpc_inflight\{program="test"\} 0/);
    assert.match(text, /hanfs_rpc_connections 1/);
    c.close();
    await server.close(100);
  });
});

describe('ONC RPC server over UDP', function () {
  this.timeout(10_000);
  let server: RpcServer;
  let port: number;

  before(async () => {
    server = makeServer();
    port = (await server.listenUdp('127.0.0.1', 0, [new TestProgram()])).port;
  });
  after(() => server.close(100));

  it('one datagram, one call, reply to the sender', async () => {
    const r = parseReply(await udpCall(port, callMsg(0xdeadbeef, PROG, 3, 1, Buffer.concat([u32be(0), Buffer.from('udp')]))));
    assert.equal(r.xid, 0xdeadbeef);
    assert.equal(r.kind === 'accepted' && r.body.toString(), 'udp');
  });

  it('rejections over UDP too, and junk is dropped', async () => {
    const r = parseReply(await udpCall(port, callMsg(5, PROG, 9, 0)));
    assert.deepEqual(r, { xid: 5, kind: 'accepted', stat: 2, low: 2, high: 4, body: Buffer.alloc(0) });
    await assert.rejects(udpCall(port, Buffer.from([1, 2, 3]), 300));
    // still alive
    assert.equal(parseReply(await udpCall(port, callMsg(6, PROG, 3, 0))).kind, 'accepted');
  });
});
