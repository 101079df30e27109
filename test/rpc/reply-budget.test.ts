/**
 * Review findings on the TCP server's memory: replies a client does not read are held (counted in the
 * server's reply budget, apart from the budget that gates reading) and stop the connection; a client
 * that never reads its replies is closed (global reply budget, stalled-reader clock) without stalling
 * the others; big NFS replies do not pin the shared 2 MiB writer
 * buffer; one client address cannot take every connection slot.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { RpcServer, SMALL_RECORD_BYTES } from '../../src/nfs/rpc-server';
import { ReplyEncoder } from '../../src/nfs/nfs3/xdr';
import { silentLogger } from '../../src/log';
import { DropCounter, RawTcpClient, TestProgram, callMsg, countRecords, parseReply, record, serverScope, sleep, testLimits, u32be, waitFor } from './helpers';

const PROG = 0x20000001;
const MiB = 1024 * 1024;
/** a small call answered with 1 MiB (like an NFS READ of 1 MiB) */
const bigCall = (xid: number) => record(callMsg(xid, PROG, 3, 8, u32be(MiB)));

describe('ONC RPC server: replies not read by the client', function () {
  this.timeout(30_000);
  const { newServer, socks, servers } = serverScope();
  async function rawSocket(port: number, localAddress?: string): Promise<net.Socket> {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    sock.on('error', () => undefined);
    await new Promise((r) => sock.once('connect', r));
    socks.push({ close: () => sock.destroy() });
    return sock;
  }
  /** wait until prog.calls stops changing */
  async function settle(prog: TestProgram): Promise<void> {
    let last = -1;
    for (let i = 0; i < 50 && prog.calls !== last; i++) {
      last = prog.calls;
      await sleep(200);
    }
  }

  it('64 pipelined 1 MiB replies never read are counted in the reply bytes, released on close; others are served', async () => {
    const prog = new TestProgram();
    const server = newServer();
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const sock = await rawSocket(port);
    sock.pause(); // never read replies
    const n = 64;
    sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => bigCall(i + 1))));
    await waitFor(() => prog.calls === n, 10_000);
    await settle(prog);
    // what the kernel did not take is queued in the process, and accounted for (it used to be 0), in
    // the reply budget: not in the budget that gates reading every connection
    const held = server.replyHeldBytes;
    assert.ok(held > 16 * MiB, `held ${held} bytes`);
    assert.ok(held <= n * (MiB + 64), `held ${held} bytes`);
    assert.ok(server.heldBytes < MiB, `records held ${server.heldBytes} bytes`);
    // the client's further calls are neither read nor run
    sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => bigCall(n + i + 1))));
    await sleep(500);
    assert.equal(prog.calls, n);
    // a well-behaved client is served meanwhile
    const c = await RawTcpClient.connect(port);
    socks.push(c);
    const r = await c.call(callMsg(1000, PROG, 3, 8, u32be(MiB)));
    assert.equal(r.kind === 'accepted' && r.body.length, MiB);
    c.close();
    // the stuck connection goes away: everything it held is released
    sock.destroy();
    await waitFor(() => server.heldBytes === 0 && server.replyHeldBytes === 0);
  });

  it('stops starting queued calls while the unsent replies exceed maxReplyBytesPerConnection', async () => {
    const prog = new TestProgram();
    const server = newServer({ maxInflightPerConnection: 4, maxReplyBytesPerConnection: 2 * MiB });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const sock = await rawSocket(port);
    sock.pause();
    const n = 64;
    // one write: the server reads all 64 calls at once and queues what it cannot start
    sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => bigCall(i + 1))));
    await settle(prog);
    // without the bound every queued call would run (64 MiB of replies); with it, only what the
    // kernel socket buffers take plus the bound and the calls in flight
    assert.ok(prog.calls < n / 2, `${prog.calls} of ${n} calls run`);
    const held = server.heldBytes + server.replyHeldBytes;
    assert.ok(held < 16 * MiB, `held ${held} bytes`);
    // once the client reads, everything is answered and nothing stays held
    const replies = countRecords(sock);
    sock.resume();
    await waitFor(() => replies.count === n, 20_000);
    assert.equal(prog.calls, n);
    await waitFor(() => server.heldBytes === 0 && server.replyHeldBytes === 0);
  });

  /**
   * `stalled` connections from 127.0.0.1 pipeline 64 calls answered with 1 MiB each and never read;
   * meanwhile a client on 127.0.0.2 makes calls one after the other (64 KiB replies), each of which
   * must be answered within 2 s. Returns once every stalled connection is closed (within
   * `closeWithinMs`), the good client has been served a few more times, and nothing is held.
   */
  async function stalledReadersAndGoodClient(
    server: RpcServer,
    metrics: DropCounter,
    prog: TestProgram,
    stalled: number,
    closeWithinMs: number,
  ): Promise<number> {
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const good = await RawTcpClient.connect(port, '127.0.0.1', '127.0.0.2');
    socks.push(good);
    for (let k = 0; k < stalled; k++) {
      const s = await rawSocket(port);
      s.pause(); // never read replies
      s.write(Buffer.concat(Array.from({ length: 64 }, (_, i) => bigCall(k * 1000 + i + 1))));
    }
    // (the stalled clients never read, so they do not see the close: count on the server's side)
    const allClosed = () => metrics.count('reply-backlog') + metrics.count('reply-stalled') >= stalled && server.connectionCount === 1;
    const t0 = Date.now();
    const perCallMs = 2000;
    let goodCalls = 0;
    // the good client is served throughout, and for a while after the stalled ones are gone
    let after = 0;
    while (after < 5) {
      if (allClosed()) after++;
      assert.ok(Date.now() - t0 < closeWithinMs, `stalled connections still open after ${closeWithinMs} ms`);
      const started = Date.now();
      const xid = 100_000 + goodCalls;
      good.send(callMsg(xid, PROG, 3, 8, u32be(64 * 1024)));
      const r = parseReply(await good.next(perCallMs));
      assert.equal(r.xid, xid);
      assert.equal(r.kind === 'accepted' && r.body.length, 64 * 1024);
      assert.ok(Date.now() - started < perCallMs);
      goodCalls++;
      await sleep(20);
    }
    assert.equal(good.closed, false);
    // everything the stalled connections held is released
    await waitFor(() => server.replyHeldBytes === 0 && server.heldBytes === 0);
    return goodCalls;
  }

  it('closes the connection with the largest reply backlog over maxReplyBytesTotal; other clients keep being served', async () => {
    const prog = new TestProgram();
    const metrics = new DropCounter();
    // the stalled-reader clock is far away: only the global reply budget closes the stalled readers
    const server = newServer(
      { maxInflightPerConnection: 8, maxReplyBytesPerConnection: 2 * MiB, maxReplyBytesTotal: 4 * MiB, idleRecordTimeoutMs: 60_000 },
      metrics,
    );
    const goodCalls = await stalledReadersAndGoodClient(server, metrics, prog, 3, 15_000);
    assert.ok(goodCalls >= 5);
    assert.equal(metrics.count('reply-backlog'), 3);
    assert.equal(metrics.count('reply-stalled'), 0);
  });

  it('closes a connection whose reply backlog stays above maxReplyBytesPerConnection for idleRecordTimeoutMs', async () => {
    const prog = new TestProgram();
    const metrics = new DropCounter();
    // the global reply budget (default 256 MiB) is never reached: the stalled-reader clock closes them
    const server = newServer({ maxInflightPerConnection: 8, maxReplyBytesPerConnection: 256 * 1024, idleRecordTimeoutMs: 500 }, metrics);
    await stalledReadersAndGoodClient(server, metrics, prog, 2, 10_000);
    assert.equal(metrics.count('reply-stalled'), 2);
    assert.equal(metrics.count('reply-backlog'), 0);
  });

  it('a slow reader that keeps reading is not closed by the stalled-reader clock', async () => {
    const prog = new TestProgram();
    const metrics = new DropCounter();
    // the clock counts a reply once it is written out whole (1 MiB here): 1 s leaves room for a few
    // bursts in which a loaded machine did not schedule the reader (500 ms failed now and then)
    const clockMs = 1000;
    const server = newServer({ maxInflightPerConnection: 4, maxReplyBytesPerConnection: 64 * 1024, idleRecordTimeoutMs: clockMs }, metrics);
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const sock = await rawSocket(port);
    sock.pause();
    const n = 48;
    sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => bigCall(i + 1))));
    await sleep(100);
    // read in short bursts with pauses shorter than the clock, for well over the clock's length
    const replies = countRecords(sock);
    sock.pause();
    const t0 = Date.now();
    while (replies.count < n && !sock.destroyed && Date.now() - t0 < 20_000) {
      sock.resume();
      await sleep(5);
      sock.pause();
      await sleep(100);
    }
    assert.deepEqual([...metrics.drops], []);
    assert.equal(replies.count, n);
    assert.ok(Date.now() - t0 > clockMs, `read for longer than the clock (${Date.now() - t0} ms)`);
    assert.equal(sock.destroyed, false);
    assert.equal(metrics.count('reply-stalled'), 0);
    await waitFor(() => server.heldBytes === 0 && server.replyHeldBytes === 0);
  });

  it('a partial record is counted in the held bytes until it completes or the connection closes', async () => {
    const prog = new TestProgram();
    const server = newServer({ idleRecordTimeoutMs: 60_000 });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const sock = await rawSocket(port);
    const msg = record(callMsg(1, PROG, 3, 1, Buffer.concat([u32be(0), Buffer.alloc(30_000, 1)])));
    sock.write(msg.subarray(0, 20_000));
    await waitFor(() => server.heldBytes === 20_000 - 4);
    sock.destroy();
    await waitFor(() => server.heldBytes === 0);
  });

  it('keeps the partial-record clock running while paused only by the global budget', async () => {
    const prog = new TestProgram();
    const server = newServer({ maxRecordBytes: 64 * 1024, maxBufferedBytes: 100 * 1024, idleRecordTimeoutMs: 300 });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const a = await RawTcpClient.connect(port);
    socks.push(a);
    // one call held by the gate: 60 KiB of the 100 KiB budget
    a.send(callMsg(1, PROG, 3, 6, Buffer.alloc(60 * 1024)));
    await waitFor(() => prog.waiting === 1);
    assert.ok(!server.overBudget);
    // a sender that stalls mid-record: its partial record takes the server over the budget, which
    // pauses its connection; the slow-record clock still closes it
    const b = await RawTcpClient.connect(port);
    socks.push(b);
    b.write(record(callMsg(3, PROG, 3, 1, Buffer.alloc(50 * 1024))).subarray(0, 45 * 1024));
    await waitFor(() => server.overBudget);
    assert.equal(await b.waitClosed(3000), true);
    await waitFor(() => !server.overBudget);
    assert.equal(a.closed, false);
    prog.release();
  });

  it('an address no export admits may send only small records: its partial 1 MiB records cannot fill the read budget', async () => {
    const prog = new TestProgram();
    const metrics = new DropCounter();
    const server = new RpcServer({
      limits: testLimits({ maxBufferedBytes: 4 * MiB, idleRecordTimeoutMs: 60_000 }),
      log: silentLogger(),
      metrics,
      admitsLargeRecords: (a) => a === '127.0.0.1',
    });
    servers.push(server);
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    // from an address no export admits: a small call is answered, a record header over the small
    // limit closes the connection before anything is buffered
    const outsider = await rawSocket(port, '127.0.0.2');
    const got = new Promise<Buffer>((r) => outsider.once('data', r));
    outsider.write(record(callMsg(7, PROG, 3, 1, Buffer.alloc(1000))));
    assert.equal((await got).readUInt32BE(4), 7);
    const big = record(callMsg(8, PROG, 3, 1, Buffer.alloc(SMALL_RECORD_BYTES + 1)));
    const closed = new Promise<void>((r) => outsider.once('close', () => r()));
    outsider.write(big.subarray(0, 4096));
    await closed;
    assert.equal(metrics.count('record-too-large'), 1);
    assert.equal(server.heldBytes, 0);
    // an admitted client may hold a partial record of that size (it is finishing a WRITE)
    const member = await rawSocket(port, '127.0.0.1');
    member.write(big.subarray(0, big.length - 10));
    await waitFor(() => server.heldBytes === big.length - 10 - 4);
    const answered = new Promise<Buffer>((r) => member.once('data', r));
    member.write(big.subarray(big.length - 10));
    assert.equal((await answered).readUInt32BE(4), 8);
    assert.equal(metrics.count('record-too-large'), 1);
  });

  it('refuses connections over maxConnectionsPerClient from one address; other addresses are served', async () => {
    const prog = new TestProgram();
    const server = newServer({ maxConnectionsPerClient: 2 });
    const port = (await server.listenTcp('127.0.0.1', 0, [prog])).port;
    const a = await RawTcpClient.connect(port);
    const b = await RawTcpClient.connect(port);
    socks.push(a, b);
    await sleep(50);
    const c = await RawTcpClient.connect(port);
    socks.push(c);
    assert.equal(await c.waitClosed(2000), true);
    assert.equal((await a.call(callMsg(1, PROG, 3, 0))).kind, 'accepted');
    // another client address (Linux answers on all of 127/8) is not affected
    const other = await rawSocket(port, '127.0.0.2');
    const got = new Promise<Buffer>((r) => other.once('data', r));
    other.write(record(callMsg(2, PROG, 3, 0)));
    const d = await got;
    assert.equal(d.readUInt32BE(4), 2);
    // a slot freed is usable again
    a.close();
    await waitFor(() => server.connectionCount === 2);
    const e = await RawTcpClient.connect(port);
    socks.push(e);
    assert.equal((await e.call(callMsg(3, PROG, 3, 0))).kind, 'accepted');
  });
});

describe('NFS reply encoder: replies do not pin the shared writer buffer', () => {
  it('a 1 MiB reply is copied into a buffer of its own size; the writer buffer is reused', () => {
    const enc = new ReplyEncoder();
    const first = enc.writer.uint8;
    const data = Buffer.alloc(MiB, 3);
    const outs: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) {
      enc.u32(i);
      enc.varOpaque(data);
      const out = enc.flush();
      assert.equal(out.length, 4 + 4 + MiB);
      assert.equal(out.buffer.byteLength, out.length, 'exactly sized');
      outs.push(out);
    }
    // the replies are independent of each other and of the writer
    assert.equal(Buffer.from(outs[0]).readUInt32BE(0), 0);
    assert.equal(Buffer.from(outs[7]).readUInt32BE(0), 7);
    assert.equal(enc.writer.uint8, first, 'no new 2 MiB buffer per reply');
    enc.u32(42);
    const small = enc.flush();
    assert.deepEqual([...small], [0, 0, 0, 42]);
    assert.ok(small.buffer.byteLength <= 8192);
  });
});
