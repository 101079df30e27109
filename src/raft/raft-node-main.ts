/**
 * A stand-alone Raft node with a test state machine, for the real-process tests and the benchmarks.
 *
 *   node dist/src/raft/raft-node-main.js --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
 *        --dir D --client-port P [--client-host 127.0.0.1] [--cluster-id ID] [--secret-file F]
 *        [--tick-ms 100] [--election-ticks 10] [--snapshot-entries 10000] [--metrics-port M] [--log-level info]
 *        [--keep-payloads yes|no]
 *
 * State machine: an append-only sequence of payloads; a payload "key=value" also sets key. With
 * `--keep-payloads no` (the benchmark) only each payload's length and SHA-256 prefix are kept, so the
 * state machine (and its snapshots) stay small however much is proposed.
 * Client port (127.0.0.1 by default), one command per line, answers in request order:
 *   propose <payload>  -> "ok <index>" once committed and applied here | "notleader <id>" | "err <msg>"
 *   get <key>          -> linearizable: "ok <value>" | "nil" | "notleader <id>" | "err <msg>"
 *   read               -> linearizable barrier: "ok <readIndex> <appliedCount>"
 *   dump               -> "ok <n>" then n lines "<index> <payload>"
 *   status             -> "ok <json>"
 *   transfer <id> | campaign -> "ok"
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import pino from 'pino';
import { NotLeaderError, RaftNode, StateMachine, observeTransportMetrics } from './raft-node';
import { PeerAddress } from './transport';
import { Entry, SnapshotMeta } from './types';

export class AppendOnlyStateMachine implements StateMachine {
  entries: { index: number; payload: string }[] = [];
  kv = new Map<string, string>();

  constructor(private readonly keepPayloads = true) {}

  apply(e: Entry): unknown {
    const payload = this.keepPayloads
      ? Buffer.from(e.data).toString('utf8')
      : `#${e.data.length}:${createHash('sha256').update(e.data).digest('hex').slice(0, 16)}`;
    this.entries.push({ index: e.index, payload });
    const eq = payload.indexOf('=');
    if (eq > 0) this.kv.set(payload.slice(0, eq), payload.slice(eq + 1));
    return this.entries.length;
  }

  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify({ entries: this.entries, kv: [...this.kv] }));
  }

  restore(data: Uint8Array, _meta: SnapshotMeta): void {
    if (data.length === 0) {
      this.entries = [];
      this.kv = new Map();
      return;
    }
    const o = JSON.parse(Buffer.from(data).toString('utf8')) as { entries: { index: number; payload: string }[]; kv: [string, string][] };
    this.entries = o.entries;
    this.kv = new Map(o.kv);
  }
}

function parseArgs(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`missing value for ${a}`);
    m.set(a.slice(2), v);
    i++;
  }
  return m;
}

export function parsePeers(s: string): Map<number, PeerAddress> {
  const peers = new Map<number, PeerAddress>();
  for (const part of s.split(',')) {
    const m = /^(\d+)=([^:]+|\[[^\]]+\]):(\d+)$/.exec(part.trim());
    if (!m) throw new Error(`bad peer "${part}" (want id=host:port)`);
    peers.set(Number(m[1]), { host: m[2].replace(/^\[|\]$/g, ''), port: Number(m[3]) });
  }
  return peers;
}

// a propose line carries up to 1 MiB of payload (NFS WRITE size); bounded per connection
const MAX_LINE = (1 << 20) + 1024;
const MAX_INFLIGHT_PER_CONN = 4096;
const MAX_CLIENTS = 256;

function serveClients(node: RaftNode, sm: AppendOnlyStateMachine, host: string, port: number, log: pino.Logger): net.Server {
  let clients = 0;
  const answer = async (line: string): Promise<string> => {
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    try {
      switch (cmd) {
        case 'propose': {
          const r = await node.propose(Buffer.from(arg, 'utf8'));
          return `ok ${r.index}`;
        }
        case 'get': {
          await node.readIndex();
          const v = sm.kv.get(arg);
          return v === undefined ? 'nil' : `ok ${v}`;
        }
        case 'read': {
          const i = await node.readIndex();
          return `ok ${i} ${sm.entries.length}`;
        }
        case 'dump':
          return [`ok ${sm.entries.length}`, ...sm.entries.map((e) => `${e.index} ${e.payload}`)].join('\n');
        case 'status': {
          const s = node.status();
          return `ok ${JSON.stringify({ id: s.id, term: s.term, role: s.roleName, leader: s.leader, commit: s.commit, applied: s.applied, lastIndex: s.lastIndex, firstIndex: s.firstIndex, leaseValidUntilMs: s.leaseValidUntilMs, storage: s.storage, conf: s.conf })}`;
        }
        case 'transfer':
          node.transferLeadership(Number(arg));
          return 'ok';
        case 'campaign':
          node.campaign();
          return 'ok';
        default:
          return 'err unknown command';
      }
    } catch (e) {
      if (e instanceof NotLeaderError) return `notleader ${e.leaderId}`;
      return `err ${(e as Error).message.replace(/\n/g, ' ')}`;
    }
  };
  const server = net.createServer((s) => {
    if (clients >= MAX_CLIENTS) {
      s.destroy();
      return;
    }
    clients++;
    s.on('close', () => clients--);
    s.on('error', () => {});
    s.setNoDelay(true);
    let buf = '';
    let chain: Promise<void> = Promise.resolve();
    let inflight = 0;
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      const scanFrom = buf.length;
      buf += chunk;
      let start = 0;
      let nl = buf.indexOf('\n', scanFrom);
      for (; nl >= 0; nl = buf.indexOf('\n', start)) {
        const line = buf.slice(start, nl).replace(/\r$/, '');
        start = nl + 1;
        if (line === '') continue;
        inflight++;
        if (inflight >= MAX_INFLIGHT_PER_CONN) s.pause();
        const p = answer(line);
        chain = chain
          .then(() => p)
          .then((out) => {
            inflight--;
            if (inflight < MAX_INFLIGHT_PER_CONN / 2) s.resume();
            if (!s.destroyed) s.write(out + '\n');
          });
      }
      if (start > 0) buf = buf.slice(start);
      if (buf.length > MAX_LINE) {
        log.warn({ remote: s.remoteAddress }, 'client line too long: connection closed');
        s.destroy();
      }
    });
  });
  server.listen(port, host);
  return server;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const need = (k: string) => {
    const v = a.get(k);
    if (v === undefined) throw new Error(`--${k} is required`);
    return v;
  };
  const log = pino({ level: a.get('log-level') ?? 'info' }, pino.destination(2));
  const id = Number(need('id'));
  const peers = parsePeers(need('peers'));
  const keep = a.get('keep-payloads') ?? 'yes';
  if (keep !== 'yes' && keep !== 'no') throw new Error('--keep-payloads: yes or no');
  const sm = new AppendOnlyStateMachine(keep === 'yes');
  const secretFile = a.get('secret-file');
  const node = await RaftNode.start({
    id,
    peers,
    dir: need('dir'),
    clusterId: a.get('cluster-id') ?? 'hanfs-raft-test',
    secret: secretFile ? fs.readFileSync(secretFile) : undefined,
    stateMachine: sm,
    tickMs: Number(a.get('tick-ms') ?? 100),
    electionTicks: Number(a.get('election-ticks') ?? 10),
    snapshotEntries: Number(a.get('snapshot-entries') ?? 10_000),
    snapshotCatchUpEntries: Number(a.get('snapshot-catchup-entries') ?? 1000),
    followerHoldMs: Number(a.get('follower-hold-ms') ?? 0),
    logger: log,
    onFatal: (e) => {
      log.fatal({ err: e.message }, 'exiting');
      setTimeout(() => process.exit(1), 50);
    },
  });
  const clientHost = a.get('client-host') ?? '127.0.0.1';
  const server = serveClients(node, sm, clientHost, Number(need('client-port')), log);
  let metricsServer: http.Server | undefined;
  const mp = a.get('metrics-port');
  if (mp) {
    metricsServer = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      observeTransportMetrics(node);
      node.metrics.registry
        .metrics()
        .then((t) => res.writeHead(200, { 'content-type': node.metrics.registry.contentType }).end(t))
        .catch((e) => res.writeHead(500).end(String(e)));
    });
    metricsServer.listen(Number(mp), clientHost);
  }
  const shutdown = async () => {
    server.close();
    metricsServer?.close();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`raft-node-main: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
