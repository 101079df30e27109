/**
 * The snapshot stream's hello with a cluster secret: a receiver (fetchStoreSnapshot) gets the store;
 * the very hello it sent, seen on the wire and sent again later by someone without the secret, gets
 * not a byte of the store (the MAC covers the sender's challenge, not a nonce the asker chose).
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import pino from 'pino';
import { fetchStoreSnapshot, SnapshotServer } from '../../src/replication/catch-up';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import { rmDir, ROOT, tmpDir } from '../store/helpers';

const log = pino({ level: 'silent' });

describe('catch-up: the snapshot hello with a cluster secret', function () {
  this.timeout(20_000);
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('a receiver with the secret gets the store; its hello replayed gets nothing', async () => {
    const secret = Buffer.from('a cluster secret of 32 bytes....');
    const dir = tmpDir('catchup-auth-src');
    const store: LevelBlockStore = await openStore(dir);
    cleanup.push(async () => {
      await store.close().catch(() => undefined);
      rmDir(dir);
    });
    const c = await store.apply(1, { kind: 'create', time: { sec: 1, nsec: 0 }, cred: ROOT, dir: store.rootFileId, name: 'f', mode: 'unchecked', attrs: { mode: 0o644 } });
    assert.equal(c.status, 0);
    const server = new SnapshotServer({ host: '127.0.0.1', port: 0, clusterId: 'c', secret, store: () => store, log });
    await server.start();
    cleanup.push(() => server.stop());

    // a tap between the receiver and the sender records what the receiver sends
    let sent = Buffer.alloc(0);
    const pairs = new Set<net.Socket>();
    const tap = net.createServer((down) => {
      const up = net.connect({ host: '127.0.0.1', port: server.port });
      for (const s of [down, up]) {
        pairs.add(s);
        s.on('error', () => undefined);
      }
      down.on('data', (b: Buffer) => (sent = Buffer.concat([sent, b])));
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => {
      for (const s of pairs) s.destroy();
      tap.close(() => r());
    }));
    const tapPort = (tap.address() as net.AddressInfo).port;

    const rdir = tmpDir('catchup-auth-dst');
    cleanup.push(() => rmDir(rdir));
    const restored = await fetchStoreSnapshot({
      dataDir: `${rdir}/store`,
      sources: [{ id: 2, peer: { host: '127.0.0.1', port: 1 }, snapshot: { host: '127.0.0.1', port: tapPort } }],
      minIndex: 1,
      clusterId: 'c',
      secret,
      log,
      open: () => openStore(`${rdir}/store`),
      timeoutMs: 10_000,
    });
    assert.equal(restored.appliedIndex, 1);
    await restored.close();
    assert.equal(server.served, 1);
    const hello = sent.subarray(0, sent.indexOf(10) + 1);
    assert.ok(hello.length > 1, 'the receiver sent a hello line');

    // the recorded hello, sent again straight to the sender
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    sock.on('error', () => undefined);
    cleanup.push(() => void sock.destroy());
    let got = Buffer.alloc(0);
    sock.on('data', (b: Buffer) => (got = Buffer.concat([got, b])));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(hello);
    await new Promise<void>((r) => sock.once('close', () => r()));
    // (at most the sender's own challenge line came back)
    assert.ok(got.length <= 33, `the replayed hello got ${got.length} bytes of the store`);
    assert.equal(server.served, 1);
  });
});
