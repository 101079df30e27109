/**
 * Catch-up streams with a peer that stops (SIGSTOP, a partition that drops packets without a reset):
 * neither end may wait for it forever.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import pino from 'pino';
import { fetchStoreSnapshot, SnapshotServer } from '../../src/replication/catch-up';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import { rmDir, ROOT, tmpDir } from '../store/helpers';

const log = pino({ level: 'silent' });

describe('catch-up: a snapshot peer that stops', function () {
  this.timeout(20_000);
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('the receiver gives a source up that accepted and then sends nothing', async () => {
    // a "source" that takes the hello and then goes silent, the connection left open
    const socks = new Set<net.Socket>();
    let closed = 0;
    const silent = net.createServer((s) => {
      socks.add(s);
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.resume(); // (reads the hello, and sees the end)
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      silent.close(() => r());
    }));
    const port = (silent.address() as net.AddressInfo).port;
    const dir = tmpDir('catchup-idle');
    cleanup.push(() => rmDir(dir));
    const t0 = Date.now();
    await assert.rejects(
      fetchStoreSnapshot({
        dataDir: `${dir}/store`,
        sources: [{ id: 2, peer: { host: '127.0.0.1', port: 1 }, snapshot: { host: '127.0.0.1', port } }],
        minIndex: 1,
        clusterId: 'c',
        log,
        open: () => Promise.reject(new Error('nothing to open')),
        timeoutMs: 1000,
        idleMs: 300,
      }),
      /no member could send a store snapshot/,
    );
    assert.ok(Date.now() - t0 < 10_000);
    // every attempt's connection was closed by the receiver
    for (let i = 0; i < 100 && closed < socks.size; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(socks.size >= 1);
    assert.equal(closed, socks.size);
  });

  it('the sender gives a receiver up that asked for a snapshot and then reads nothing', async () => {
    const dir = tmpDir('catchup-idle-src');
    const store: LevelBlockStore = await openStore(dir);
    cleanup.push(async () => {
      await store.close().catch(() => undefined);
      rmDir(dir);
    });
    // a store bigger than what the socket buffers hold
    const c = await store.apply(1, { kind: 'create', time: { sec: 1, nsec: 0 }, cred: ROOT, dir: store.rootFileId, name: 'big', mode: 'unchecked', attrs: { mode: 0o644 } });
    assert.equal(c.status, 0);
    const file = (c as unknown as { obj: { fileid: number } }).obj.fileid;
    const w = await store.apply(2, { kind: 'write', time: { sec: 2, nsec: 0 }, cred: ROOT, file, offset: 0, data: Buffer.alloc(16 << 20, 0x5a), stable: 2 });
    assert.equal(w.status, 0);
    const server = new SnapshotServer({ host: '127.0.0.1', port: 0, clusterId: 'c', store: () => store, log, idleMs: 300 });
    await server.start();
    cleanup.push(() => server.stop());
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    sock.on('error', () => undefined);
    cleanup.push(() => void sock.destroy());
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(`${JSON.stringify({ cluster: 'c', nonce: '00', mac: '' })}\n`);
    // the receiver reads nothing for a while (its kernel buffer fills, then the sender's) ...
    await new Promise((r) => setTimeout(r, 1500));
    // ... then reads again: a sender that gave up has closed the stream short of its end
    let bytes = 0;
    sock.on('data', (b: Buffer) => (bytes += b.length));
    await new Promise<void>((r) => sock.once('close', () => r()));
    assert.ok(bytes < 16 << 20, `the whole snapshot was sent (${bytes} bytes)`);
    assert.equal(server.served, 0);
  });

  it('the sender streams to at most maxStreams receivers at once, however many ask together', async () => {
    const dir = tmpDir('catchup-streams-src');
    const store: LevelBlockStore = await openStore(dir);
    cleanup.push(async () => {
      await store.close().catch(() => undefined);
      rmDir(dir);
    });
    const c = await store.apply(1, { kind: 'create', time: { sec: 1, nsec: 0 }, cred: ROOT, dir: store.rootFileId, name: 'big', mode: 'unchecked', attrs: { mode: 0o644 } });
    const file = (c as unknown as { obj: { fileid: number } }).obj.fileid;
    await store.apply(2, { kind: 'write', time: { sec: 2, nsec: 0 }, cred: ROOT, file, offset: 0, data: Buffer.alloc(16 << 20, 0x5a), stable: 2 });
    const server = new SnapshotServer({ host: '127.0.0.1', port: 0, clusterId: 'c', store: () => store, log, maxStreams: 1, idleMs: 2000 });
    await server.start();
    cleanup.push(() => server.stop());
    // four receivers connect, then all send their hello at once and read nothing
    const socks = await Promise.all(
      [0, 1, 2, 3].map(
        () =>
          new Promise<net.Socket>((r) => {
            const s = net.connect({ host: '127.0.0.1', port: server.port }, () => r(s));
            s.on('error', () => undefined);
            s.pause();
          }),
      ),
    );
    cleanup.push(() => socks.forEach((s) => s.destroy()));
    for (const s of socks) s.write(`${JSON.stringify({ cluster: 'c', nonce: '00', mac: '' })}\n`);
    await new Promise((r) => setTimeout(r, 500));
    // a refused one was closed at once (its socket ends without a byte); a served one got bytes
    const got = await Promise.all(
      socks.map(
        (s) =>
          new Promise<number>((r) => {
            let n = 0;
            const done = () => r(n);
            s.on('data', (b: Buffer) => (n += b.length));
            s.once('close', done);
            setTimeout(done, 300);
            s.resume();
          }),
      ),
    );
    assert.equal(got.filter((n) => n > 0).length, 1, `bytes per receiver: ${got.join(', ')}`);
  });

  it('connections that never send a hello are bounded in number: the oldest make room', async () => {
    const dir = tmpDir('catchup-crowd');
    const store: LevelBlockStore = await openStore(dir);
    cleanup.push(async () => {
      await store.close().catch(() => undefined);
      rmDir(dir);
    });
    const server = new SnapshotServer({ host: '127.0.0.1', port: 0, clusterId: 'c', store: () => store, log });
    await server.start();
    cleanup.push(() => server.stop());
    let closed = 0;
    const socks: net.Socket[] = [];
    cleanup.push(() => socks.forEach((s) => s.destroy()));
    for (let i = 0; i < 40; i++) {
      const s = net.connect({ host: '127.0.0.1', port: server.port });
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      socks.push(s);
      await new Promise<void>((r) => s.once('connect', () => r()));
    }
    // (long before the hello timeout of 5 s)
    for (let i = 0; i < 50 && closed < 24; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(closed >= 24, `${40 - closed} connections without a hello held open`);
    // a receiver still gets its snapshot
    const rdir = tmpDir('catchup-crowd-dst');
    cleanup.push(() => rmDir(rdir));
    const restored = await fetchStoreSnapshot({
      dataDir: `${rdir}/store`,
      sources: [{ id: 2, peer: { host: '127.0.0.1', port: 1 }, snapshot: { host: '127.0.0.1', port: server.port } }],
      minIndex: 0,
      clusterId: 'c',
      log,
      open: () => openStore(`${rdir}/store`),
      timeoutMs: 5000,
    });
    await restored.close();
    assert.equal(server.served, 1);
  });

  it('stop() leaves no timer behind for a connection that never sent its hello', async () => {
    // (no store: a connection without a hello never reaches it, and an open store's own background
    // timers would come and go while the timers are counted)
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const noStore = (): LevelBlockStore => {
      throw new Error('no snapshot is served in this test');
    };
    const server = new SnapshotServer({ host: '127.0.0.1', port: 0, clusterId: 'c', store: noStore, log });
    await server.start();
    const before = timers();
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(timers(), before + 1, 'the hello timer runs');
    await server.stop();
    await new Promise<void>((r) => (sock.destroyed ? r() : sock.once('close', () => r())));
    await new Promise((r) => setImmediate(r));
    assert.equal(timers(), before, 'no timer left after stop()');
  });
});
