/**
 * Prometheus metrics (prom-client) and the admin HTTP endpoint serving /metrics and /healthz.
 *
 * The RPC server reports every call (program, procedure, duration, outcome); the NFS3 program reports
 * NFS status codes and data bytes through `NfsMetrics`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the NFS3 program reports (given to createNfs3Program as deps.metrics). */
export interface NfsMetrics {
  /** a procedure answered with nfsstat3 != NFS3_OK (`proc` is the procedure name, e.g. "LOOKUP") */
  nfsError(proc: string, status: number): void;
  /** file data bytes returned by READ */
  bytesRead(n: number): void;
  /** file data bytes accepted by WRITE */
  bytesWritten(n: number): void;
}

/** What the RPC server reports. `outcome` is "success", an accept_stat or a reject reason name. */
export interface RpcMetrics {
  callStarted(program: string, proc: string): void;
  callFinished(program: string, proc: string, seconds: number, outcome: string): void;
  connectionOpened(transport: 'tcp'): void;
  connectionClosed(transport: 'tcp'): void;
  /** a record or datagram dropped without a reply, or a connection closed for misbehaviour */
  dropped(reason: string): void;
  /** a retransmitted non-idempotent call answered from the duplicate request cache, not run again */
  drcHit?(program: string, proc: string): void;
  /** a retransmit of a call still in progress, dropped (the original's reply will answer it) */
  drcInProgressDrop?(program: string, proc: string): void;
}

/** What the duplicate request cache reports on scrape (src/nfs/duplicate-request-cache.ts). */
export interface DrcGaugeSource {
  readonly stats: { entries: number; inProgress: number; bytes: number; evictions: number };
}

export class HanfsMetrics implements NfsMetrics, RpcMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'program' | 'proc'>;
  private readonly duration: Histogram<'program' | 'proc'>;
  private readonly inflight: Gauge<'program'>;
  private readonly rpcErrors: Counter<'program' | 'proc' | 'stat'>;
  private readonly nfsErrors: Counter<'proc' | 'status'>;
  private readonly read: Counter;
  private readonly written: Counter;
  private readonly connections: Gauge;
  private readonly drops: Counter<'reason'>;
  private readonly drcHits: Counter<'program' | 'proc'>;
  private readonly drcInProgressDrops: Counter<'program' | 'proc'>;
  private readonly verifierRotations: Counter<'reason'>;
  private drcSource: DrcGaugeSource | undefined;
  /**
   * Counts kept in plain fields on the call path and handed to prom-client when the registry is
   * scraped (the metrics' `collect`): a prom-client update with labels builds and hashes a label
   * key, several per call showed in profiles. Calls in flight by program; calls finished since the
   * last scrape by program and procedure; READ/WRITE data bytes since the last scrape.
   */
  private readonly inflightNow = new Map<string, number>();
  private readonly unpublishedCalls = new Map<string, Map<string, number>>();
  private unpublishedRead = 0;
  private unpublishedWritten = 0;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const self = this;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'hanfs_rpc_requests_total',
      help: 'ONC RPC calls answered or dropped, by program and procedure',
      labelNames: ['program', 'proc'],
      registers,
      collect() {
        for (const [program, procs] of self.unpublishedCalls) {
          for (const [proc, n] of procs) if (n > 0) this.inc({ program, proc }, n);
          procs.clear();
        }
      },
    });
    this.duration = new Histogram({
      name: 'hanfs_rpc_duration_seconds',
      help: 'Time from a call being parsed to its reply being queued',
      labelNames: ['program', 'proc'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.inflight = new Gauge({
      name: 'hanfs_rpc_inflight',
      help: 'ONC RPC calls being processed',
      labelNames: ['program'],
      registers,
      collect() {
        for (const [program, n] of self.inflightNow) this.set({ program }, n);
      },
    });
    this.rpcErrors = new Counter({
      name: 'hanfs_rpc_errors_total',
      help: 'Calls not answered with accept_stat SUCCESS, by outcome (PROG_UNAVAIL, GARBAGE_ARGS, AUTH_BADCRED, ...)',
      labelNames: ['program', 'proc', 'stat'],
      registers,
    });
    this.nfsErrors = new Counter({
      name: 'hanfs_nfs_errors_total',
      help: 'NFSv3 replies with a status other than NFS3_OK, by procedure and nfsstat3',
      labelNames: ['proc', 'status'],
      registers,
    });
    // a counter published from a plain field on scrape: take() returns what was added since then
    const publishedOnScrape = (name: string, help: string, take: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.inc(take());
        },
      });
    this.read = publishedOnScrape('hanfs_nfs_bytes_read_total', 'File data bytes returned by READ', () => {
      const n = self.unpublishedRead;
      self.unpublishedRead = 0;
      return n;
    });
    this.written = publishedOnScrape('hanfs_nfs_bytes_written_total', 'File data bytes accepted by WRITE', () => {
      const n = self.unpublishedWritten;
      self.unpublishedWritten = 0;
      return n;
    });
    this.connections = new Gauge({ name: 'hanfs_rpc_connections', help: 'Open TCP connections', registers });
    this.drops = new Counter({
      name: 'hanfs_rpc_dropped_total',
      help: 'Records/datagrams dropped without reply and connections closed for misbehaviour, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.drcHits = new Counter({
      name: 'hanfs_rpc_drc_hits_total',
      help: 'Retransmitted non-idempotent calls answered from the duplicate request cache without running them again',
      labelNames: ['program', 'proc'],
      registers,
    });
    this.drcInProgressDrops = new Counter({
      name: 'hanfs_rpc_drc_inprogress_drops_total',
      help: 'Retransmits of non-idempotent calls still in progress, dropped (the original answers)',
      labelNames: ['program', 'proc'],
      registers,
    });
    const drc = () => this.drcSource?.stats;
    new Gauge({
      name: 'hanfs_rpc_drc_entries',
      help: 'Entries in the duplicate request cache (completed and in progress)',
      registers,
      collect() {
        this.set(drc()?.entries ?? 0);
      },
    });
    new Gauge({
      name: 'hanfs_rpc_drc_bytes',
      help: 'Bytes charged to the duplicate request cache (cached replies and per-entry overhead)',
      registers,
      collect() {
        this.set(drc()?.bytes ?? 0);
      },
    });
    new Gauge({
      name: 'hanfs_rpc_drc_evictions',
      help: 'Completed entries evicted from the duplicate request cache (bounds or age) since start',
      registers,
      collect() {
        this.set(drc()?.evictions ?? 0);
      },
    });
    this.verifierRotations = new Counter({
      name: 'hanfs_nfs_write_verifier_rotations_total',
      help: 'Changes of the NFSv3 write verifier after start (uncommitted data may have been lost), by reason',
      labelNames: ['reason'],
      registers,
    });
  }

  /** report the duplicate request cache's size on scrape */
  watchDrc(source: DrcGaugeSource | undefined): void {
    this.drcSource = source;
  }

  drcHit(program: string, proc: string): void {
    this.drcHits.inc({ program, proc });
  }

  drcInProgressDrop(program: string, proc: string): void {
    this.drcInProgressDrops.inc({ program, proc });
  }

  /** the write verifier changed; `reason` is one of a few fixed words (bounded label set) */
  verifierRotated(reason: string): void {
    this.verifierRotations.inc({ reason });
  }

  callStarted(program: string): void {
    this.inflightNow.set(program, (this.inflightNow.get(program) ?? 0) + 1);
  }

  callFinished(program: string, proc: string, seconds: number, outcome: string): void {
    this.inflightNow.set(program, (this.inflightNow.get(program) ?? 0) - 1);
    let procs = this.unpublishedCalls.get(program);
    if (procs === undefined) this.unpublishedCalls.set(program, (procs = new Map()));
    procs.set(proc, (procs.get(proc) ?? 0) + 1);
    this.duration.observe({ program, proc }, seconds);
    if (outcome !== 'SUCCESS') this.rpcErrors.inc({ program, proc, stat: outcome });
  }

  connectionOpened(): void {
    this.connections.inc();
  }

  connectionClosed(): void {
    this.connections.dec();
  }

  dropped(reason: string): void {
    this.drops.inc({ reason });
  }

  /** the status of every NFS reply; only failures (status != NFS3_OK) are errors */
  nfsError(proc: string, status: number): void {
    if (status === 0) return;
    this.nfsErrors.inc({ proc, status: String(status) });
  }

  bytesRead(n: number): void {
    this.unpublishedRead += n;
  }

  bytesWritten(n: number): void {
    this.unpublishedWritten += n;
  }
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The admin endpoint: GET /metrics (Prometheus text format), GET /healthz (200 "ok" while `healthy()`
 * returns true, else 503). Nothing else; it listens on loopback unless configured otherwise.
 */
/** More admin endpoints (the cluster's): return true if the request was taken. */
export type AdminRoutes = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean;

export function startAdminServer(
  host: string,
  port: number,
  metrics: HanfsMetrics,
  healthy: () => boolean = () => true,
  routes?: AdminRoutes,
): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (routes && url.startsWith('/cluster/') && routes(req, res, new URL(req.url ?? '/', 'http://admin'))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics failed: ${err.message}\n`);
        },
      );
      return;
    }
    if (url === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'unhealthy\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = 64;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      resolve({
        host: addr.address,
        port: addr.port,
        close: () =>
          new Promise<void>((res) => {
            server.close(() => res());
            server.closeAllConnections();
          }),
      });
    });
  });
}
