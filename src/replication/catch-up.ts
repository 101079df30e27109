/**
 * Catching a replica up from a snapshot of another replica's store (LevelDB plus data files),
 * streamed in chunks while writes go on: the serving node does not stop applying (the snapshot is
 * fuzzy, src/store/snapshot.ts) and memory stays bounded on both ends; the receiver then replays the
 * log from the snapshot's index.
 *
 * Wire: the receiver connects to the sender's snapshot address; when the cluster has a secret, the
 * sender first sends a challenge line (32 hex digits, 16 random bytes). The receiver sends one hello
 * line `{"cluster":ID,"nonce":HEX,"mac":HEX}` (nonce = the challenge, mac = HMAC-SHA256(secret,
 * "hanfs-snapshot\0" + ID + "\0" + nonce) when the cluster has a secret); the sender checks it and
 * writes the snapshot stream, then closes. A wrong cluster or mac gets the connection closed without
 * a byte of the store. (The nonce is the sender's: a hello seen on the wire, sent again, gets nothing.)
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as net from 'node:net';
import type { Logger } from '../log';
import type { LevelBlockStore } from '../store/block-store';
import { restoreSnapshot, SnapshotTooOldError, writeSnapshot, type SnapshotRestoreResult } from '../store/snapshot';
import type { ClusterMember } from './cluster-config';

const HELLO_MAX = 1024;
/** the sender's challenge: 32 hex digits and a newline */
const CHALLENGE_LINE_BYTES = 33;
const HELLO_TIMEOUT_MS = 5000;
/** connections waiting for their hello at once */
const MAX_PENDING_HELLOS = 16;
/** a snapshot stream on which no byte moved for this long is given up, on both ends: a peer that
 * stopped (SIGSTOP, a partition that drops packets without a reset) must not hold a restore (and
 * the follower's Ready loop) or a sender's stream slot and store snapshot forever */
export const SNAPSHOT_IDLE_MS = 60_000;

function mac(secret: Buffer | undefined, clusterId: string, nonce: string): string {
  if (!secret) return '';
  return createHmac('sha256', secret).update(`hanfs-snapshot\0${clusterId}\0${nonce}`).digest('hex');
}

export interface SnapshotServerOptions {
  host: string;
  port: number;
  clusterId: string;
  secret?: Buffer;
  store: () => LevelBlockStore;
  log: Logger;
  /** streams served at once (default 2) */
  maxStreams?: number;
  /** give a stream up when no byte could be sent for this long (default SNAPSHOT_IDLE_MS) */
  idleMs?: number;
}

export class SnapshotServer {
  private server: net.Server | undefined;
  private active = 0;
  private readonly socks = new Set<net.Socket>();
  /** connections still waiting for their hello, oldest first */
  private readonly pending = new Set<net.Socket>();
  served = 0;

  constructor(private readonly o: SnapshotServerOptions) {}

  get port(): number {
    return (this.server?.address() as net.AddressInfo | null)?.port ?? 0;
  }

  start(): Promise<void> {
    const server = net.createServer((sock) => this.accept(sock));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.o.host, port: this.o.port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.o.log.error({ err }, 'snapshot server error'));
        resolve();
      });
    });
  }

  private accept(sock: net.Socket): void {
    this.socks.add(sock);
    sock.on('close', () => this.socks.delete(sock));
    sock.on('error', () => undefined);
    // connections that never send a hello (anyone who reaches the port) are bounded in number: the
    // oldest makes room, so they can neither pile up nor keep a receiver out
    if (this.pending.size >= MAX_PENDING_HELLOS) {
      const oldest = this.pending.values().next().value as net.Socket;
      this.pending.delete(oldest);
      oldest.destroy();
    }
    this.pending.add(sock);
    sock.once('close', () => this.pending.delete(sock));
    let buf = Buffer.alloc(0);
    // the hello's MAC covers a nonce of this end's choosing: one seen on the wire cannot be replayed
    const challenge = this.o.secret ? randomBytes(16).toString('hex') : '';
    if (challenge) sock.write(`${challenge}\n`);
    const timer = setTimeout(() => sock.destroy(), HELLO_TIMEOUT_MS);
    sock.once('close', () => clearTimeout(timer)); // (stop() destroys the sockets: no timer outlives them)
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.length > HELLO_MAX) sock.destroy();
        return;
      }
      clearTimeout(timer);
      this.pending.delete(sock);
      sock.off('data', onData);
      sock.pause();
      let hello: { cluster?: unknown; nonce?: unknown; mac?: unknown };
      try {
        hello = JSON.parse(buf.subarray(0, nl).toString('utf8')) as typeof hello;
      } catch {
        sock.destroy();
        return;
      }
      const want = mac(this.o.secret, this.o.clusterId, challenge);
      const got = String(hello.mac ?? '');
      const okMac = want.length === got.length && timingSafeEqual(Buffer.from(want), Buffer.from(got));
      if (hello.cluster !== this.o.clusterId || !okMac) {
        this.o.log.warn({ remote: sock.remoteAddress }, 'snapshot request refused: wrong cluster or secret');
        sock.destroy();
        return;
      }
      // (the stream limit, counted when a stream would start: connections accepted together are
      // counted one by one here)
      if (this.active >= (this.o.maxStreams ?? 2)) {
        sock.destroy();
        return;
      }
      void this.serve(sock);
    };
    sock.on('data', onData);
  }

  private async serve(sock: net.Socket): Promise<void> {
    this.active++;
    const t0 = Date.now();
    const idleMs = this.o.idleMs ?? SNAPSHOT_IDLE_MS;
    // (destroying the socket fails the write waiting for 'drain', or the end waiting for the flush)
    sock.setTimeout(idleMs, () => sock.destroy(new Error(`snapshot receiver read nothing for ${idleMs} ms`)));
    try {
      const r = await writeSnapshot(this.o.store(), sock);
      await new Promise<void>((res) => sock.end(() => res()));
      this.served++;
      this.o.log.info({ index: r.index, bytes: r.bytes, ms: Date.now() - t0, remote: sock.remoteAddress }, 'store snapshot sent');
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'store snapshot stream failed');
      sock.destroy();
    } finally {
      this.active--;
    }
  }

  async stop(): Promise<void> {
    for (const s of this.socks) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

export interface FetchOptions {
  dataDir: string;
  /** members to ask, in order */
  sources: ClusterMember[];
  /** the snapshot must hold at least this index */
  minIndex: number;
  clusterId: string;
  secret?: Buffer;
  log: Logger;
  onProgress?: (bytes: number) => void;
  /** open the restored store */
  open: () => Promise<LevelBlockStore>;
  /** give up after this long in all (default 1 h) */
  timeoutMs?: number;
  /** give a source up when no byte arrived from it for this long (default SNAPSHOT_IDLE_MS) */
  idleMs?: number;
}

/** Stream a store snapshot from the first source that has one at `minIndex` or later and open it. */
export async function fetchStoreSnapshot(o: FetchOptions): Promise<LevelBlockStore> {
  const until = Date.now() + (o.timeoutMs ?? 3_600_000);
  for (let round = 0; Date.now() < until; round++) {
    for (const src of o.sources) {
      try {
        const r = await fetchFrom(src, o);
        const index = r.index;
        const opening = Date.now();
        const store = await o.open();
        o.log.info(
          { from: src.id, index, dataFiles: r.dataFiles, streamMs: r.streamMs, syncMs: r.syncMs, swapMs: r.swapMs, openMs: Date.now() - opening },
          'store restored from a snapshot; replaying the log after it',
        );
        return store;
      } catch (e) {
        // (a source whose snapshot is older than the log needs is refused at the stream's header,
        // before anything of it replaced this node's store)
        if (e instanceof SnapshotTooOldError) o.log.warn({ from: src.id, index: e.index, want: o.minIndex }, 'snapshot older than the log needs; trying another node');
        else o.log.warn({ from: src.id, err: (e as Error).message }, 'snapshot fetch failed');
      }
    }
    await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** round)));
  }
  throw new Error('no member could send a store snapshot');
}

function fetchFrom(src: ClusterMember, o: FetchOptions): Promise<SnapshotRestoreResult> {
  return new Promise<SnapshotRestoreResult>((resolve, reject) => {
    const sock = net.connect({ host: src.snapshot.host, port: src.snapshot.port });
    const idleMs = o.idleMs ?? SNAPSHOT_IDLE_MS;
    let streaming = true;
    // connecting, or streaming: a source that sends nothing for idleMs is given up (once the stream
    // ended, the local sync and swap take as long as they take)
    sock.setTimeout(idleMs, () => {
      if (streaming) sock.destroy(new Error(`no snapshot bytes from node ${src.id} for ${idleMs} ms`));
    });
    sock.once('error', reject);
    const hello = (nonce: string) => sock.write(`${JSON.stringify({ cluster: o.clusterId, nonce, mac: mac(o.secret, o.clusterId, nonce) })}\n`);
    sock.once('connect', () => {
      if (!o.secret) {
        hello(randomBytes(16).toString('hex'));
        restore();
        return;
      }
      // with a secret, the sender's challenge line first: the hello's MAC covers it
      let buf = Buffer.alloc(0);
      const early = () => reject(new Error(`node ${src.id} closed the snapshot connection before its challenge`));
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length < CHALLENGE_LINE_BYTES) return;
        sock.off('data', onData);
        sock.off('close', early);
        sock.pause();
        const line = buf.toString('latin1');
        if (buf.length !== CHALLENGE_LINE_BYTES || !/^[0-9a-f]{32}\n$/.test(line)) {
          sock.destroy();
          reject(new Error(`node ${src.id} sent no snapshot challenge`));
          return;
        }
        hello(line.slice(0, 32));
        restore();
      };
      sock.on('data', onData);
      sock.once('close', early);
    });
    const restore = () => {
      // from here on the restore's outcome is the attempt's: a stream error fails the restore (its
      // iterator throws), which cleans up its directory before the next attempt may start one
      sock.off('error', reject);
      sock.on('error', () => undefined);
      async function* counted(): AsyncIterable<Buffer> {
        let bytes = 0;
        try {
          for await (const c of sock) {
            bytes += (c as Buffer).length;
            o.onProgress?.(bytes);
            yield c as Buffer;
          }
        } finally {
          streaming = false;
          sock.setTimeout(0);
        }
      }
      restoreSnapshot(o.dataDir, counted(), { minIndex: o.minIndex }).then(
        (r) => {
          sock.destroy();
          resolve(r);
        },
        (e: unknown) => {
          sock.destroy();
          reject(e as Error);
        },
      );
    };
  });
}
