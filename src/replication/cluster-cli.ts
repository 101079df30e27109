/**
 * `hanfs cluster status|transfer-leader|add|remove` and `hanfs verify`: clients of the nodes' admin
 * endpoints (cluster-admin.ts). The nodes are named by the config file's members (their `admin`
 * addresses) or by --admin HOST:PORT,... .
 *
 *   hanfs cluster init --config F   bootstrap this node's Raft directory (voters = the members)
 *   hanfs cluster status [--config F | --admin A,B,C] [--json]
 *   hanfs cluster transfer-leader --to N [...]
 *   hanfs cluster join --config F   (the new node's config) ask the cluster to add this node
 *   hanfs cluster add --id N --peer H:P [--snapshot H:P] [--node-admin H:P] [...]
 *   hanfs cluster remove --id N [...]
 *   hanfs verify [...]           compare a digest of every replica's store at one log index
 */
import * as http from 'node:http';
import { ConfigError, formatHostPort, loadConfigFile, parseHostPort } from '../config';
import { ADMIN_AUTH_HEADER, adminAuthHeader } from './admin-auth';
import { describeDifference, digestChecksum, firstDifference, type StoreDigest } from '../store/checksum';

interface Target {
  id?: number;
  host: string;
  port: number;
  /** the cluster secret (from --config): changes are authenticated with it (admin-auth.ts) */
  secret?: Buffer;
}

function request(t: Target, method: string, path: string, timeoutMs = 120_000): Promise<{ code: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const headers = t.secret && method !== 'GET' ? { [ADMIN_AUTH_HEADER]: adminAuthHeader(t.secret, method, path) } : undefined;
    const req = http.request({ host: t.host, port: t.port, method, path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ code: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** the flags each command takes (besides --config, --admin, --json); a mistyped one is an error, not
 * a default taken silently (`--snaphot H:P`: the member would be added with the default snapshot
 * address) */
const FLAGS: Record<string, readonly string[]> = {
  init: [],
  join: [],
  status: [],
  'transfer-leader': ['to'],
  add: ['id', 'peer', 'snapshot', 'node-admin'],
  remove: ['id'],
  verify: ['timeout-s'],
};

function parseArgs(argv: string[], command: string): Map<string, string> {
  const m = new Map<string, string>();
  const known = ['config', 'admin', ...(FLAGS[command] ?? [])];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') {
      m.set('json', '1');
      continue;
    }
    if (!a.startsWith('--')) throw new ConfigError(`unexpected argument "${a}"`);
    if (!known.includes(a.slice(2))) throw new ConfigError(`unknown flag "${a}" for ${command} (flags: ${known.map((k) => `--${k}`).join(' ')})`);
    const v = argv[++i];
    if (v === undefined) throw new ConfigError(`${a} needs a value`);
    m.set(a.slice(2), v);
  }
  return m;
}

function targets(args: Map<string, string>): Target[] {
  const admin = args.get('admin');
  if (admin) return admin.split(',').map((a) => parseHostPort('--admin', a.trim()));
  const file = args.get('config');
  if (!file) throw new ConfigError('name the nodes: --config FILE (its cluster.members[].admin) or --admin HOST:PORT,...');
  const cfg = loadConfigFile(file);
  if (!cfg.cluster) throw new ConfigError(`${file}: no cluster section`);
  const secret = cfg.cluster.secret;
  const ts = cfg.cluster.members.filter((m) => m.admin).map((m) => ({ id: m.id, host: m.admin!.host, port: m.admin!.port, secret }));
  if (ts.length === 0) throw new ConfigError(`${file}: no member has an admin address`);
  return ts;
}

async function statuses(ts: Target[]): Promise<{ t: Target; s?: Record<string, unknown>; err?: string }[]> {
  return Promise.all(
    ts.map(async (t) => {
      try {
        const r = await request(t, 'GET', '/cluster/status', 3000);
        return { t, s: r.body };
      } catch (e) {
        return { t, err: (e as Error).message };
      }
    }),
  );
}

/** answers that pass: leadership moving, a transfer or another membership change in progress */
const TRANSIENT = new Set(['not_leader', 'transferring', 'conf_change_pending', 'busy']);

/** POST to the serving leader; if leadership moves meanwhile (409 not_leader), ask the next one
 * (the membership calls are idempotent: a member already added or promoted is left as it is). */
async function postToLeader(ts: Target[], pathAndQuery: string, timeoutMs: number): Promise<{ code: number; body: Record<string, unknown> }> {
  for (let attempt = 0; ; attempt++) {
    const r = await request(await leaderOf(ts), 'POST', pathAndQuery, timeoutMs);
    if (r.code !== 409 || !TRANSIENT.has(String(r.body.error)) || attempt >= 5) return r;
    await new Promise((res) => setTimeout(res, 300));
  }
}

async function leaderOf(ts: Target[]): Promise<Target> {
  for (let i = 0; i < 50; i++) {
    for (const { t, s } of await statuses(ts)) if (s && s.role === 'leader' && s.serving) return t;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('no serving leader found');
}

function fmtStatus(rows: { t: Target; s?: Record<string, unknown>; err?: string }[]): string {
  const head = 'node  role       term  commit    applied   store     durable   lease_ms  serving  address  lag';
  const lines = [head];
  const leader = rows.find((r) => r.s?.role === 'leader')?.s;
  const lagOf = (id: unknown) => (leader?.followers as { id: number; lag: number }[] | undefined)?.find((f) => f.id === id)?.lag;
  for (const { t, s, err } of rows) {
    if (!s) {
      lines.push(`${String(t.id ?? `${t.host}:${t.port}`).padEnd(5)} DOWN (${err})`);
      continue;
    }
    const lag = s.role === 'leader' ? '-' : String(lagOf(s.node) ?? '?');
    lines.push(
      [
        String(s.node).padEnd(5),
        String(s.role).padEnd(10),
        String(s.term).padEnd(5),
        String(s.commit).padEnd(9),
        String(s.applied).padEnd(9),
        String(s.storeApplied).padEnd(9),
        String(s.storeDurable).padEnd(9),
        String(s.leaseRemainingMs).padEnd(9),
        String(s.serving ? 'yes' : 'no').padEnd(8),
        String(s.holdsServiceAddress ? 'held' : '-').padEnd(8),
        lag,
      ].join(' ') + (s.failure ? `  FAILED: ${String(s.failure)}` : ''),
    );
  }
  return lines.join('\n');
}

/** `hanfs cluster init --config F`: bootstrap this node's empty Raft directory with the configured
 * members as the voters (explicitly, instead of at first start with "bootstrap": "init"). */
async function initCommand(args: Map<string, string>): Promise<number> {
  const file = args.get('config');
  if (!file) throw new ConfigError('hanfs cluster init --config FILE');
  const cfg = loadConfigFile(file);
  if (!cfg.cluster) throw new ConfigError(`${file}: no cluster section`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { bootstrapRaftDir } = require('../raft/raft-node') as typeof import('../raft/raft-node');
  const voters = cfg.cluster.members.map((m) => m.id);
  const dir = require('node:path').join(cfg.dataDir, 'raft') as string;
  await bootstrapRaftDir(dir, voters);
  process.stdout.write(`node ${cfg.cluster.nodeId}: ${dir} bootstrapped with voters ${voters.join(', ')} (cluster ${cfg.cluster.clusterId})\n`);
  return 0;
}

/** `hanfs cluster join --config F`, run for the new node: asks the cluster (the other members' admin
 * endpoints in F) to add this node with the addresses F gives it. */
async function joinCommand(args: Map<string, string>): Promise<number> {
  const file = args.get('config');
  if (!file) throw new ConfigError('hanfs cluster join --config FILE (the new node\'s config)');
  const cfg = loadConfigFile(file);
  if (!cfg.cluster) throw new ConfigError(`${file}: no cluster section`);
  const self = cfg.cluster.members.find((m) => m.id === cfg.cluster!.nodeId)!;
  const secret = cfg.cluster.secret;
  const others = cfg.cluster.members.filter((m) => m.id !== self.id && m.admin).map((m) => ({ id: m.id, host: m.admin!.host, port: m.admin!.port, secret }));
  if (others.length === 0) throw new ConfigError(`${file}: no other member with an admin address to ask`);
  const q = new URLSearchParams({ id: String(self.id), peer: formatHostPort(self.peer), snapshot: formatHostPort(self.snapshot) });
  if (self.admin) q.set('admin', formatHostPort(self.admin));
  const r = await postToLeader(others, `/cluster/add?${q}`, 3_700_000);
  process.stdout.write(`${JSON.stringify(r.body)}\n`);
  return r.code === 200 ? 0 : 1;
}

export async function clusterCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || !(sub in FLAGS) || sub === 'verify') throw new ConfigError('hanfs cluster init|join|status|transfer-leader|add|remove (see docs/operations.md)');
  const args = parseArgs(rest, sub);
  if (sub === 'init') return initCommand(args);
  if (sub === 'join') return joinCommand(args);
  const ts = targets(args);
  switch (sub) {
    case 'status': {
      const rows = await statuses(ts);
      process.stdout.write(args.has('json') ? `${JSON.stringify(rows.map((r) => r.s ?? { down: r.err }), null, 2)}\n` : `${fmtStatus(rows)}\n`);
      return rows.some((r) => r.s?.serving) ? 0 : 1;
    }
    case 'transfer-leader': {
      const to = args.get('to');
      if (!to) throw new ConfigError('--to N');
      const r = await request(await leaderOf(ts), 'POST', `/cluster/transfer-leader?to=${encodeURIComponent(to)}`);
      process.stdout.write(`${JSON.stringify(r.body)}\n`);
      return r.code === 200 ? 0 : 1;
    }
    case 'add': {
      const q = new URLSearchParams();
      for (const k of ['id', 'peer', 'snapshot']) if (args.get(k)) q.set(k, args.get(k)!);
      if (args.get('node-admin')) q.set('admin', args.get('node-admin')!);
      const r = await postToLeader(ts, `/cluster/add?${q}`, 3_700_000);
      process.stdout.write(`${JSON.stringify(r.body)}\n`);
      return r.code === 200 ? 0 : 1;
    }
    case 'remove': {
      const r = await postToLeader(ts, `/cluster/remove?id=${encodeURIComponent(args.get('id') ?? '')}`, 120_000);
      process.stdout.write(`${JSON.stringify(r.body)}\n`);
      return r.code === 200 ? 0 : 1;
    }
    default:
      throw new ConfigError('hanfs cluster init|join|status|transfer-leader|add|remove (see docs/operations.md)');
  }
}

/** `hanfs verify`: the leader's commit index, then every replica's store digest at that index. */
export async function verifyCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, 'verify');
  const ts = targets(args);
  // a node digests its whole store (every file's bytes): minutes for a large one on a shared disk;
  // the leader answers the verify entry once it is applied there, i.e. once its own digest is done
  const waitS = Number(args.get('timeout-s') ?? 900);
  if (!(waitS > 0)) throw new ConfigError('--timeout-s: seconds, > 0');
  const until = Date.now() + waitS * 1000;
  const leader = await leaderOf(ts);
  const mark = await request(leader, 'POST', '/cluster/verify', waitS * 1000);
  if (mark.code !== 200) throw new Error(`verify entry not committed: ${String(mark.body.error)}`);
  const index = Number(mark.body.index);
  const digests = await Promise.all(
    ts.map(async (t) => {
      const name = `node ${t.id ?? `${t.host}:${t.port}`}`;
      for (;;) {
        const r = await request(t, 'GET', `/cluster/checksum?index=${index}`);
        if (r.code === 200) return { t, d: r.body as unknown as StoreDigest };
        if (r.code !== 404) throw new Error(`${name}: ${String(r.body.error)}`);
        if (Date.now() > until) throw new Error(`${name}: no digest at index ${index} within ${waitS} s (--timeout-s)`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }),
  );
  const ref = digests[0];
  let same = true;
  const lines = [`verify at log index ${index}:`];
  for (const { t, d } of digests) {
    const name = `node ${t.id ?? `${t.host}:${t.port}`}`;
    const diff = d === ref.d ? undefined : firstDifference(ref.d, d);
    if (diff) {
      same = false;
      lines.push(`  ${name}: DIFFERS from node ${ref.t.id ?? '?'} first at ${describeDifference(diff)}`);
    } else lines.push(`  ${name}: ${digestChecksum(d)} (${d.objects.length} objects)`);
  }
  lines.push(same ? 'replicas identical' : 'REPLICAS DIFFER');
  process.stdout.write(`${lines.join('\n')}\n`);
  return same ? 0 : 1;
}
