/**
 * The cluster's admin endpoints (on the node's admin HTTP server, loopback by default):
 *
 *   GET  /cluster/status                 this node: role, term, leader, commit/applied index, the
 *                                        store's applied/durable index, lease, whether it serves,
 *                                        per-follower match and lag (leader), members, failure
 *   POST /cluster/transfer-leader?to=N   hand leadership to N (maintenance, failback)
 *   POST /cluster/add?id=N&peer=H:P[&snapshot=H:P][&admin=H:P]
 *                                        leader: replicate N's addresses, add it as a learner, wait
 *                                        until it has caught up, promote it to voter
 *   POST /cluster/remove?id=N            leader: remove N from the membership
 *   POST /cluster/verify                 leader: append a `verify` entry; every node digests its
 *                                        store at exactly that index (later entries wait meanwhile)
 *   GET  /cluster/checksum?index=I       this node's digest at the `verify` entry I
 *                                        (`hanfs verify` compares the replicas' digests)
 *
 * Answers are JSON; errors are {"error": "..."} with 4xx/5xx, "not_leader" with the leader's id.
 */
import type * as http from 'node:http';
import type { Logger } from '../log';
import { NotLeaderError, type RaftNode } from '../raft/raft-node';
import { Role } from '../raft/types';
import type { SnapshotServer } from './catch-up';
import { defaultSnapshotAddress, type ClusterConfig, type ClusterMember } from './cluster-config';
import { ConfigError, parseHostPort } from '../config';
import { isLoopback } from '../nfs/exports';
import { ADMIN_AUTH_HEADER, adminAuthValid, type AdminAuthSeen } from './admin-auth';
import type { LeaderGate } from './leader-gate';
import { encodeEntry } from './op-codec';
import { memberFromRecord, memberRecords } from './members-file';
import type { RaftOpLog } from './raft-op-log';
import type { ReplicationGauges, ReplicationMetrics } from './replication-metrics';
import type { ServiceAddress } from './service-address';
import type { StoreStateMachine } from './store-state-machine';

export interface ClusterAdminOptions {
  cluster: ClusterConfig;
  raft: RaftNode;
  gate: LeaderGate;
  sm: StoreStateMachine;
  service: ServiceAddress;
  members: Map<number, ClusterMember>;
  log: Logger;
  failure: () => string | undefined;
  snapshots: SnapshotServer;
  rmetrics: ReplicationMetrics;
  opLog: RaftOpLog;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class ClusterAdmin {
  private busy = false;
  /** admin headers accepted (each only once: admin-auth.ts) */
  private readonly authSeen: AdminAuthSeen = new Map();

  constructor(private readonly o: ClusterAdminOptions) {}

  gauges(): ReplicationGauges {
    const store = this.o.sm.store;
    return {
      leaseRemainingMs: this.o.gate.leaseRemainingMs(),
      storeApplied: store.appliedIndex,
      storeDurable: store.durableIndex,
      requestHits: store.stats.requestHits,
    };
  }

  status(): Record<string, unknown> {
    const s = this.o.raft.status();
    const store = this.o.sm.store;
    return {
      node: this.o.cluster.nodeId,
      cluster: this.o.cluster.clusterId,
      role: s.roleName,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: this.o.raft.appliedIndex,
      lastIndex: s.lastIndex,
      firstIndex: s.firstIndex,
      storeApplied: store.appliedIndex,
      storeDurable: store.durableIndex,
      // (a sole voter's lease never ends: 'unbounded')
      leaseRemainingMs: Number.isFinite(this.o.gate.leaseRemainingMs()) ? Math.round(this.o.gate.leaseRemainingMs()) : 'unbounded',
      serving: this.o.gate.serving(),
      holdsServiceAddress: this.o.service.isHeld,
      serviceTakes: this.o.service.takes,
      proposalsInFlight: this.o.opLog.inflight,
      requestHits: store.stats.requestHits,
      voters: s.conf.voters,
      learners: s.conf.learners,
      members: memberRecords(this.o.members),
      followers:
        s.role === Role.Leader
          ? s.progress.filter((p) => p.id !== s.id).map((p) => ({ id: p.id, match: p.match, lag: Math.max(0, s.lastIndex - p.match), active: p.recentActive }))
          : [],
      snapshotsServed: this.o.snapshots.served,
      failure: this.o.failure() ?? null,
    };
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): boolean {
    const route = `${req.method} ${url.pathname}`;
    const run = async (): Promise<unknown> => {
      if (req.method !== 'GET') this.authorize(req, url);
      switch (route) {
        case 'GET /cluster/status':
          return this.status();
        case 'POST /cluster/transfer-leader':
          return this.transfer(url);
        case 'POST /cluster/add':
          return this.add(url);
        case 'POST /cluster/remove':
          return this.remove(url);
        case 'POST /cluster/verify':
          return this.verifyMark();
        case 'GET /cluster/checksum':
          return this.checksum(url);
        default:
          throw new HttpError(404, `no such endpoint: ${route}`);
      }
    };
    // (the body is serialized inside the chain: a body too large to serialize, such as the digest of
    // a store of millions of files, is a 500 for this request, never an exception that ends the node)
    run()
      .then((body) => `${JSON.stringify(body)}\n`)
      .then(
        (text) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(text);
        },
        (e: unknown) => {
          const err =
            e instanceof HttpError
              ? e
              : e instanceof NotLeaderError
                ? // (a change the membership does not allow, e.g. a transfer to a non-voter or removing the
                  // sole voter, is no "not_leader": the command line would ask again, and say so)
                  e.reason === 'invalid'
                  ? new HttpError(400, `not possible in the current membership (voters ${this.o.raft.status().conf.voters.join(', ')})`)
                  : new HttpError(409, e.reason, { leader: e.leaderId })
                : new HttpError(500, (e as Error).message);
          res.writeHead(err.code, { 'content-type': 'application/json' });
          res.end(`${JSON.stringify({ error: err.message, ...err.extra })}\n`);
        },
      );
    return true;
  }

  /** changes from off loopback carry the cluster secret's HMAC (admin-auth.ts) */
  private authorize(req: http.IncomingMessage, url: URL): void {
    if (isLoopback(req.socket.remoteAddress ?? '')) return;
    const secret = this.o.cluster.secret;
    if (!secret) throw new HttpError(403, 'changes from off loopback need cluster.secretFile');
    const header = req.headers[ADMIN_AUTH_HEADER];
    if (!adminAuthValid(secret, req.method ?? '', url.pathname + url.search, typeof header === 'string' ? header : undefined, Date.now(), this.authSeen)) {
      throw new HttpError(403, 'bad or missing admin authentication');
    }
  }

  private idParam(url: URL): number {
    const id = Number(url.searchParams.get('id') ?? url.searchParams.get('to'));
    if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new HttpError(400, 'need a node id (id= or to=)');
    return id;
  }

  private requireLeader(): void {
    const s = this.o.raft.status();
    if (s.role !== Role.Leader) throw new HttpError(409, 'not_leader', { leader: s.leader });
  }

  private async transfer(url: URL): Promise<unknown> {
    const to = this.idParam(url);
    this.requireLeader();
    this.o.raft.transferLeadership(to);
    // wait (bounded) until the target leads
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const s = this.o.raft.status();
      if (s.leader === to) return { ok: true, leader: to, term: s.term };
    }
    throw new HttpError(504, `node ${to} did not take over within 5 s`);
  }

  private async exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.busy) throw new HttpError(409, 'another membership change or verify is running');
    this.busy = true;
    try {
      return await f();
    } finally {
      this.busy = false;
    }
  }

  private async add(url: URL): Promise<unknown> {
    const id = this.idParam(url);
    this.requireLeader();
    const peerArg = url.searchParams.get('peer');
    if (!peerArg) throw new HttpError(400, 'need peer=HOST:PORT');
    const snapArg = url.searchParams.get('snapshot');
    const adminArg = url.searchParams.get('admin');
    let m: ClusterMember;
    try {
      const peer = parseHostPort('peer', peerArg);
      m = {
        id,
        peer,
        snapshot: snapArg ? parseHostPort('snapshot', snapArg) : defaultSnapshotAddress(peer, 'member'),
        admin: adminArg ? parseHostPort('admin', adminArg) : undefined,
      };
    } catch (e) {
      if (e instanceof ConfigError) throw new HttpError(400, e.message);
      throw e;
    }
    if (m.peer.port === 0 || m.snapshot.port === 0) throw new HttpError(400, 'peer and snapshot need a port (not 0): the other nodes must reach them');
    return this.exclusive(async () => {
      const raft = this.o.raft;
      // every node parses the replicated records when it applies them: one it cannot read back (a
      // snapshot port of 65536, the default for peer port 65535) would stop every node, at every
      // restart too (the entry stays in the log). Refused before anything is changed or replicated.
      const records = memberRecords(new Map(this.o.members).set(id, m));
      let entry: Uint8Array;
      try {
        for (const r of records) memberFromRecord(r);
        entry = encodeEntry({ kind: 'members', members: records });
      } catch (e) {
        throw new HttpError(400, `member ${id}: ${(e as Error).message}`);
      }
      this.o.members.set(id, m);
      // 1. every node learns the address (and any later leader can reach the new member)
      await raft.propose(entry);
      // 2. a learner first: it catches up (snapshot + log) without counting for the quorum
      if (!raft.status().conf.learners.includes(id) && !raft.status().conf.voters.includes(id)) await raft.addLearner(id, m.peer);
      const t0 = Date.now();
      for (;;) {
        // (a node that lost office knows no follower's progress: the caller asks the new leader,
        // which finds the learner added and waits for it in turn)
        this.requireLeader();
        const s = raft.status();
        const p = s.progress.find((x) => x.id === id);
        if (p && s.lastIndex - p.match <= 64) break;
        if (Date.now() - t0 > 3_600_000) throw new HttpError(504, `node ${id} did not catch up within an hour`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // promote once its log matches the commit index (the leader refuses before: not_caught_up)
      for (let i = 0; !raft.status().conf.voters.includes(id); i++) {
        try {
          await raft.promote(id);
        } catch (e) {
          if (!(e instanceof NotLeaderError) || e.reason !== 'not_caught_up' || i >= 600) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const caughtUpMs = Date.now() - t0;
      this.o.log.info({ id, caughtUpMs }, 'member added');
      return { ok: true, id, caughtUpMs, voters: raft.status().conf.voters };
    });
  }

  private async remove(url: URL): Promise<unknown> {
    const id = this.idParam(url);
    this.requireLeader();
    return this.exclusive(async () => {
      const raft = this.o.raft;
      // (already out of the membership: a remove whose leader lost office between its two steps, asked
      // again of the next leader, still takes the addresses out of the replicated members)
      const conf = raft.status().conf;
      if (conf.voters.includes(id) || conf.learners.includes(id)) await raft.removeMember(id);
      this.o.members.delete(id);
      await raft.propose(encodeEntry({ kind: 'members', members: memberRecords(this.o.members) }));
      this.o.log.info({ id }, 'member removed');
      return { ok: true, id, voters: raft.status().conf.voters };
    });
  }

  /** leader: append a `verify` entry; every node digests its store at its index */
  private async verifyMark(): Promise<unknown> {
    this.requireLeader();
    const r = await this.o.raft.propose(encodeEntry({ kind: 'verify' }));
    return { index: r.index };
  }

  /** this node's digest at a `verify` entry (404 until it has applied it) */
  private checksum(url: URL): unknown {
    const index = Number(url.searchParams.get('index'));
    if (!Number.isSafeInteger(index) || index < 0) throw new HttpError(400, 'need index=N');
    const d = this.o.sm.digestAt(index);
    if (!d) throw new HttpError(404, `no digest at index ${index} (yet)`, { applied: this.o.raft.appliedIndex });
    if ('error' in d) throw new HttpError(500, d.error);
    return d;
  }
}
