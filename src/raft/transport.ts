/**
 * Peer-to-peer TCP transport between Raft nodes (see docs/raft-storage.md, "Transport").
 *
 *  - Each node dials every peer twice: a control lane (votes, heartbeats, responses, empty appends)
 *    and a bulk lane (appends carrying entries, snapshot chunks), so a backlog of large entries never
 *    delays a heartbeat or a vote. Inbound connections only receive; outbound ones only send.
 *  - Handshake: the acceptor sends a random 16-byte challenge; the dialer answers with a hello frame
 *    (cluster id, from, to, lane, HMAC-SHA256(secret, challenge|cluster|from|to|lane)). Wrong cluster,
 *    unknown peer, wrong target or bad MAC: the connection is closed. Messages whose `from` differs
 *    from the authenticated peer are dropped.
 *  - Frames are length + CRC-32C + payload; the length is checked against a cap before anything is
 *    allocated (1 KiB before authentication). Oversize or damaged frames close the connection.
 *  - Per peer and lane, a bounded queue (messages and bytes): when full the message is dropped and
 *    counted (Raft retransmits). The socket's own buffer is kept under a high-water mark.
 *  - At most maxInboundConnections inbound connections: at the cap a new one replaces the oldest that
 *    has not authenticated yet (refused only when every one has), so idle connections from anyone
 *    who reaches the port cannot lock the peers out.
 *  - Reconnect with exponential backoff and jitter from an injected random function.
 *  - Listens on 127.0.0.1 unless configured otherwise.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import {
  CodecError,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameKind,
  HELLO_VERSION,
  MAC_BYTES,
  decodeHello,
  decodeMessage,
  encodeAccept,
  encodeChallenge,
  encodeHello,
  encodeMessageFrame,
} from './message-codec';
import { Message, MsgType, NodeId } from './types';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface TransportLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export interface LaneLimits {
  /** queued messages */
  msgs: number;
  /** queued frame bytes */
  bytes: number;
  /** stop writing into the socket while its buffer holds this many bytes */
  highWater: number;
}

export interface TransportOptions {
  id: NodeId;
  clusterId: string;
  /** address to listen on (default 127.0.0.1) */
  listenHost?: string;
  /** 0 = an ephemeral port (see port()) */
  listenPort: number;
  peers: Map<NodeId, PeerAddress> | Record<number, PeerAddress>;
  /** shared secret for the hello HMAC; without it only the cluster id is checked */
  secret?: string | Buffer;
  /** uniform in [0, 1): jitter of the reconnect backoff (default Math.random) */
  random?: () => number;
  /** largest frame payload accepted (default 64 MiB + 64 KiB) */
  maxFrameBytes?: number;
  control?: Partial<LaneLimits>;
  bulk?: Partial<LaneLimits>;
  backoff?: { initialMs?: number; maxMs?: number };
  handshakeTimeoutMs?: number;
  /** an outbound connection whose kernel send buffer made no progress for this long while data was
   * waiting is closed and redialed: the peer is dead or wedged (default 10 s) */
  sendStallTimeoutMs?: number;
  maxInboundConnections?: number;
  logger?: TransportLogger;
  onMessage: (m: Message) => void;
  /** an established outbound connection to the peer was lost (the core may resend from match) */
  onPeerDown?: (peer: NodeId) => void;
}

export const enum Lane {
  Control = 0,
  Bulk = 1,
}

/** Appends with entries and snapshot chunks go on the bulk lane; everything else on control. */
export function laneOf(m: Message): Lane {
  if (m.type === MsgType.Snap) return Lane.Bulk;
  if (m.type === MsgType.App && m.entries !== undefined && m.entries.length > 0) return Lane.Bulk;
  return Lane.Control;
}

export interface LaneStats {
  sent: number;
  sentBytes: number;
  dropped: number;
  queued: number;
  queuedBytes: number;
  connected: boolean;
  connects: number;
}

export interface TransportStats {
  received: number;
  receivedBytes: number;
  rejectedConnections: number;
  badFrames: number;
  /** messages the codec refused to encode (a value out of range): dropped */
  unencodable: number;
  peers: Record<number, { control: LaneStats; bulk: LaneStats }>;
}

const PRE_AUTH_MAX = 1024;

/** Delay before redial number `attempt` (0-based): exponential from initialMs, capped at maxMs, times
 * a jitter factor in [0.5, 1) drawn from `random`. */
export function reconnectDelayMs(attempt: number, b: { initialMs: number; maxMs: number }, random: () => number): number {
  const exp = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(exp * (0.5 + 0.5 * random())));
}

function helloMac(secret: Buffer | undefined, nonce: Buffer, clusterId: string, from: number, to: number, lane: number): Buffer {
  if (!secret) return Buffer.alloc(MAC_BYTES);
  return crypto.createHmac('sha256', secret).update(nonce).update(`|${clusterId}|${from}|${to}|${lane}`).digest();
}

const noopLogger: TransportLogger = { info() {}, warn() {}, error() {} };

class OutboundLane {
  private queue: Buffer[] = [];
  private head = 0;
  private queuedBytes = 0;
  private sock: net.Socket | undefined;
  private ready = false;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastFlushed = 0;
  private lastProgress = Date.now();
  readonly st: LaneStats = { sent: 0, sentBytes: 0, dropped: 0, queued: 0, queuedBytes: 0, connected: false, connects: 0 };

  constructor(
    private readonly t: Transport,
    readonly peer: NodeId,
    private addr: PeerAddress,
    readonly lane: Lane,
    private readonly limits: LaneLimits,
  ) {}

  start(): void {
    this.connect();
  }

  /** A new address redials; the same one keeps the connection (every applied `members` entry
   * restates every member's address: dropping all links then stalled replication at each one). */
  setAddress(a: PeerAddress): void {
    if (a.host === this.addr.host && a.port === this.addr.port) return;
    this.addr = a;
    this.sock?.destroy();
  }

  enqueue(frame: Buffer): boolean {
    const n = this.queue.length - this.head;
    if (n >= this.limits.msgs || this.queuedBytes + frame.length > this.limits.bytes) {
      this.st.dropped++;
      return false;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.pump();
    return true;
  }

  stats(): LaneStats {
    return { ...this.st, queued: this.queue.length - this.head, queuedBytes: this.queuedBytes, connected: this.ready };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sock?.destroy();
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  /** called periodically: close a connection whose send buffer stopped draining */
  checkStall(now: number): void {
    const s = this.sock;
    if (!this.ready || !s) {
      this.lastProgress = now;
      return;
    }
    const flushed = this.st.sentBytes - s.writableLength;
    if (s.writableLength === 0 || flushed > this.lastFlushed) {
      this.lastFlushed = flushed;
      this.lastProgress = now;
      return;
    }
    if (now - this.lastProgress > this.t.sendStallTimeoutMs) {
      this.t.log.warn({ peer: this.peer, lane: this.lane === Lane.Control ? 'control' : 'bulk', buffered: s.writableLength }, 'raft peer send stalled: reconnecting');
      this.lastProgress = now;
      s.destroy(new Error('send stalled'));
    }
  }

  private pump(): void {
    const s = this.sock;
    if (!this.ready || !s) return;
    while (this.head < this.queue.length && s.writableLength < this.limits.highWater) {
      const f = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as Buffer;
      this.queuedBytes -= f.length;
      this.st.sent++;
      this.st.sentBytes += f.length;
      s.write(f);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private connect(): void {
    if (this.closed) return;
    this.timer = undefined;
    const s = net.connect({ host: this.addr.host, port: this.addr.port });
    this.sock = s;
    this.ready = false;
    s.setNoDelay(true);
    const dec = new FrameDecoder(PRE_AUTH_MAX);
    const hsTimer = setTimeout(() => s.destroy(new Error('handshake timeout')), this.t.handshakeTimeoutMs);
    let stage: 'challenge' | 'accept' | 'ready' = 'challenge';
    s.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = dec.push(chunk);
      } catch (e) {
        s.destroy(e as Error);
        return;
      }
      for (const f of frames) {
        const kind = f[FRAME_HEADER_BYTES];
        if (stage === 'challenge' && kind === FrameKind.Challenge && f.length === FRAME_HEADER_BYTES + 1 + 16) {
          const nonce = f.subarray(FRAME_HEADER_BYTES + 1);
          const t = this.t;
          s.write(
            encodeHello({
              version: HELLO_VERSION,
              lane: this.lane,
              from: t.id,
              to: this.peer,
              clusterId: t.clusterId,
              mac: helloMac(t.secret, nonce, t.clusterId, t.id, this.peer, this.lane),
            }),
          );
          stage = 'accept';
        } else if (stage === 'accept' && kind === FrameKind.Accept) {
          stage = 'ready';
          clearTimeout(hsTimer);
          this.ready = true;
          this.attempts = 0;
          this.st.connects++;
          this.t.log.info({ peer: this.peer, lane: this.lane === Lane.Control ? 'control' : 'bulk' }, 'raft peer connected');
          this.pump();
        } else {
          s.destroy(new Error(`unexpected frame kind ${kind} in stage ${stage}`));
          return;
        }
      }
    });
    s.on('drain', () => this.pump());
    s.on('error', (e) => {
      if (this.ready) this.t.log.warn({ peer: this.peer, lane: this.lane === Lane.Control ? 'control' : 'bulk', err: e.message }, 'raft peer connection error');
    });
    s.on('close', () => {
      clearTimeout(hsTimer);
      if (this.sock !== s) return;
      const wasReady = this.ready;
      this.ready = false;
      this.sock = undefined;
      if (this.closed) return;
      if (wasReady) {
        this.t.log.warn({ peer: this.peer, lane: this.lane === Lane.Control ? 'control' : 'bulk' }, 'raft peer disconnected');
        this.t.onPeerDown?.(this.peer);
      }
      const delay = reconnectDelayMs(this.attempts, this.t.backoff, this.t.random);
      this.attempts++;
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }
}

interface Inbound {
  sock: net.Socket;
  from: NodeId;
  lane: number;
}

export class Transport {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly secret: Buffer | undefined;
  readonly random: () => number;
  readonly backoff: { initialMs: number; maxMs: number };
  readonly handshakeTimeoutMs: number;
  readonly sendStallTimeoutMs: number;
  readonly log: TransportLogger;
  private readonly maxFrame: number;
  private readonly maxInbound: number;
  private readonly onMessage: (m: Message) => void;
  readonly onPeerDown: ((peer: NodeId) => void) | undefined;
  private readonly host: string;
  private readonly listenPort: number;
  private readonly controlLimits: LaneLimits;
  private readonly bulkLimits: LaneLimits;
  private readonly peers = new Map<NodeId, PeerAddress>();
  private readonly lanes = new Map<NodeId, [OutboundLane, OutboundLane]>();
  private readonly inbound = new Set<Inbound>();
  private server: net.Server | undefined;
  private started = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly st = { received: 0, receivedBytes: 0, rejectedConnections: 0, badFrames: 0, unencodable: 0 };

  constructor(o: TransportOptions) {
    this.id = o.id;
    this.clusterId = o.clusterId;
    this.secret = o.secret === undefined ? undefined : Buffer.from(o.secret);
    this.random = o.random ?? Math.random;
    this.backoff = { initialMs: o.backoff?.initialMs ?? 50, maxMs: o.backoff?.maxMs ?? 2000 };
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? 5000;
    this.sendStallTimeoutMs = o.sendStallTimeoutMs ?? 10_000;
    this.log = o.logger ?? noopLogger;
    this.maxFrame = o.maxFrameBytes ?? 64 * 1024 * 1024 + 64 * 1024;
    this.maxInbound = o.maxInboundConnections ?? 64;
    this.onMessage = o.onMessage;
    this.onPeerDown = o.onPeerDown;
    this.host = o.listenHost ?? '127.0.0.1';
    this.listenPort = o.listenPort;
    this.controlLimits = { msgs: 4096, bytes: 4 << 20, highWater: 256 << 10, ...o.control };
    this.bulkLimits = { msgs: 256, bytes: 128 << 20, highWater: 4 << 20, ...o.bulk };
    const peers = o.peers instanceof Map ? o.peers : new Map(Object.entries(o.peers).map(([k, v]) => [Number(k), v] as const));
    for (const [id, a] of peers) if (id !== this.id) this.peers.set(id, a);
  }

  async start(): Promise<void> {
    const server = net.createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error({ err: e.message }, 'raft transport listener error'));
    this.started = true;
    for (const id of this.peers.keys()) this.startLanes(id);
    const every = Math.max(20, Math.min(1000, Math.floor(this.sendStallTimeoutMs / 4)));
    this.stallTimer = setInterval(() => {
      const now = Date.now();
      for (const l of this.lanes.values()) {
        l[0].checkStall(now);
        l[1].checkStall(now);
      }
    }, every);
    this.stallTimer.unref();
    this.log.info({ id: this.id, host: this.host, port: this.port(), peers: [...this.peers.keys()] }, 'raft transport listening');
  }

  port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Queue a message for its peer; false if it was dropped (queue full or unknown peer). */
  send(m: Message): boolean {
    const l = this.lanes.get(m.to);
    if (!l) return false;
    let frame: Buffer;
    try {
      frame = encodeMessageFrame(m);
    } catch (e) {
      this.st.unencodable++;
      this.log.error({ err: (e as Error).message, type: m.type, to: m.to }, 'raft transport: message not encodable, dropped');
      return false;
    }
    return l[laneOf(m)].enqueue(frame);
  }

  addPeer(id: NodeId, a: PeerAddress): void {
    if (id === this.id) return;
    const old = this.lanes.get(id);
    this.peers.set(id, a);
    if (old) {
      old[0].setAddress(a);
      old[1].setAddress(a);
    } else if (this.started) this.startLanes(id);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
    const l = this.lanes.get(id);
    if (l) {
      l[0].close();
      l[1].close();
      this.lanes.delete(id);
    }
    for (const c of this.inbound) if (c.from === id) c.sock.destroy();
  }

  stats(): TransportStats {
    const peers: TransportStats['peers'] = {};
    for (const [id, l] of this.lanes) peers[id] = { control: l[0].stats(), bulk: l[1].stats() };
    return { ...this.st, peers };
  }

  async close(): Promise<void> {
    this.started = false;
    if (this.stallTimer) clearInterval(this.stallTimer);
    for (const l of this.lanes.values()) {
      l[0].close();
      l[1].close();
    }
    this.lanes.clear();
    for (const c of this.inbound) c.sock.destroy();
    this.inbound.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private startLanes(id: NodeId): void {
    const a = this.peers.get(id)!;
    const l: [OutboundLane, OutboundLane] = [
      new OutboundLane(this, id, a, Lane.Control, this.controlLimits),
      new OutboundLane(this, id, a, Lane.Bulk, this.bulkLimits),
    ];
    this.lanes.set(id, l);
    l[0].start();
    l[1].start();
  }

  private reject(s: net.Socket, why: string, extra: object = {}): void {
    this.st.rejectedConnections++;
    this.log.warn({ remote: `${s.remoteAddress}:${s.remotePort}`, why, ...extra }, 'raft transport: connection dropped');
    s.destroy();
  }

  private accept(s: net.Socket): void {
    if (this.inbound.size >= this.maxInbound) {
      // connections that never authenticate (anyone who reaches the port) must not lock the peers
      // out: the oldest one still in its handshake makes room (a peer's handshake takes a round trip)
      let oldest: Inbound | undefined;
      for (const c of this.inbound) {
        if (c.lane === -1) {
          oldest = c;
          break;
        }
      }
      if (!oldest) {
        this.reject(s, 'too many connections');
        return;
      }
      this.inbound.delete(oldest);
      this.reject(oldest.sock, 'too many connections: the oldest not yet authenticated makes room');
    }
    s.setNoDelay(true);
    const conn: Inbound = { sock: s, from: 0, lane: -1 };
    this.inbound.add(conn);
    const nonce = crypto.randomBytes(16);
    const dec = new FrameDecoder(PRE_AUTH_MAX);
    let authed = false;
    const hsTimer = setTimeout(() => this.reject(s, 'handshake timeout'), this.handshakeTimeoutMs);
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(hsTimer);
      this.inbound.delete(conn);
    });
    s.write(encodeChallenge(nonce));
    s.on('data', (chunk: Buffer) => {
      if (s.destroyed) return;
      let frames: Buffer[];
      try {
        frames = dec.push(chunk);
      } catch (e) {
        this.st.badFrames++;
        this.reject(s, (e as Error).message, { peer: conn.from });
        return;
      }
      for (const f of frames) {
        if (s.destroyed) return;
        const kind = f[FRAME_HEADER_BYTES];
        if (!authed) {
          if (kind !== FrameKind.Hello) return this.reject(s, 'expected hello');
          let h;
          try {
            h = decodeHello(f, FRAME_HEADER_BYTES + 1, f.length);
          } catch (e) {
            return this.reject(s, `bad hello: ${(e as Error).message}`);
          }
          if (h.version !== HELLO_VERSION) return this.reject(s, `hello version ${h.version}`);
          if (h.clusterId !== this.clusterId) return this.reject(s, 'wrong cluster id', { clusterId: h.clusterId });
          if (h.to !== this.id) return this.reject(s, 'hello for another node', { to: h.to });
          if (!this.peers.has(h.from)) return this.reject(s, 'unknown peer', { from: h.from });
          if (h.lane !== Lane.Control && h.lane !== Lane.Bulk) return this.reject(s, 'bad lane');
          const want = helloMac(this.secret, nonce, this.clusterId, h.from, h.to, h.lane);
          if (!crypto.timingSafeEqual(want, h.mac)) return this.reject(s, 'bad hello MAC', { from: h.from });
          authed = true;
          clearTimeout(hsTimer);
          conn.from = h.from;
          conn.lane = h.lane;
          // a newer connection from the same peer and lane replaces an older one
          for (const c of this.inbound) if (c !== conn && c.from === h.from && c.lane === h.lane) c.sock.destroy();
          dec.maxPayload = this.maxFrame;
          s.write(encodeAccept());
          continue;
        }
        if (kind !== FrameKind.Message) return this.reject(s, `unexpected frame kind ${kind}`, { peer: conn.from });
        let m: Message;
        try {
          m = decodeMessage(f, FRAME_HEADER_BYTES + 1, f.length);
        } catch (e) {
          this.st.badFrames++;
          return this.reject(s, e instanceof CodecError ? e.message : 'undecodable message', { peer: conn.from });
        }
        if (m.from !== conn.from || m.to !== this.id) {
          this.st.badFrames++;
          continue;
        }
        this.st.received++;
        this.st.receivedBytes += f.length;
        try {
          this.onMessage(m);
        } catch (e) {
          this.log.error({ err: (e as Error).message, peer: m.from, type: m.type }, 'raft transport: message handler threw');
        }
      }
    });
  }
}
