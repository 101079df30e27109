/**
 * The `cluster` section of the config file: this node's id, the cluster's id and members (their
 * Raft peer link, snapshot and admin addresses), the shared secret, the election timing.
 *
 *   "cluster": {
 *     "nodeId": 1, "clusterId": "prod-nfs",
 *     "members": [
 *       { "id": 1, "peer": "10.0.0.1:7001", "snapshot": "10.0.0.1:7002", "admin": "10.0.0.1:9464" }, ...
 *     ],
 *     "secretFile": "/etc/hanfs/peer-secret", "tickMs": 50, "electionTicks": 20, "bootstrap": "init"
 *   }
 *
 * `listen` (host, nfsPort, mountPort) is then the service address: only the leader binds it.
 * Secure defaults: every address defaults to loopback; a peer link on another address requires a
 * secret (the peer link carries every write of every client).
 */
import { readFileSync } from 'node:fs';
import { ConfigError, checkKeys, int, isObj, parseHostPort, str } from '../config';
import { isLoopback } from '../nfs/exports';

export interface HostPort {
  host: string;
  port: number;
}

export interface ClusterMember {
  id: number;
  /** Raft peer link (transport.ts) */
  peer: HostPort;
  /** store snapshot stream for catching up replicas (default: peer port + 1) */
  snapshot: HostPort;
  /** admin HTTP endpoint (status, metrics); used by `hanfs cluster` and `hanfs verify` */
  admin?: HostPort;
}

export interface ClusterConfig {
  nodeId: number;
  clusterId: string;
  /** the members this node knows at start: the voters of a new cluster ("init"); a joining node
   * needs only itself and a way to reach the others (their admin endpoints) */
  members: ClusterMember[];
  /** peer-link shared secret (HMAC of the hello, snapshot streams); required off loopback */
  secret?: Buffer;
  tickMs: number;
  electionTicks: number;
  /** "init": an empty node bootstraps as a voter of `members`; "join": it waits to be added */
  bootstrap: 'init' | 'join';
  /** take a Raft snapshot and compact the log after this many entries */
  snapshotEntries: number;
  /** entries kept behind a snapshot for followers that lag a little */
  catchUpEntries: number;
  /** the leader keeps the log a live follower still needs for this long after it last heard from it
   * (a follower restoring a store snapshot is silent meanwhile) */
  followerHoldMs: number;
}

export const CLUSTER_DEFAULTS = {
  tickMs: 50,
  electionTicks: 20,
  snapshotEntries: 20_000,
  catchUpEntries: 50_000,
  followerHoldMs: 120_000,
};

function hostPort(v: unknown, where: string): HostPort {
  return parseHostPort(where, str(v, where));
}

/** A member's snapshot address when none is given: the peer port + 1 on the peer host (none past
 * port 65535: every node must be able to read the replicated address back). */
export function defaultSnapshotAddress(peer: HostPort, where: string): HostPort {
  if (peer.port === 65535) throw new ConfigError(`${where}.snapshot: required when the peer port is 65535 (the default is the peer port + 1)`);
  return { host: peer.host, port: peer.port + 1 };
}

export function parseClusterConfig(doc: unknown): ClusterConfig {
  if (!isObj(doc)) throw new ConfigError('cluster: expected an object');
  checkKeys(doc, ['nodeId', 'clusterId', 'members', 'secretFile', 'tickMs', 'electionTicks', 'bootstrap', 'snapshotEntries', 'catchUpEntries', 'followerHoldMs'], 'cluster');
  const nodeId = int(doc.nodeId, 'cluster.nodeId', 1, 0xffff);
  const clusterId = str(doc.clusterId, 'cluster.clusterId');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clusterId)) throw new ConfigError('cluster.clusterId: 1-64 characters of A-Z a-z 0-9 . _ -');
  if (!Array.isArray(doc.members) || doc.members.length === 0) throw new ConfigError('cluster.members: expected a non-empty array');
  if (doc.members.length > 9) throw new ConfigError('cluster.members: at most 9 members');
  const ids = new Set<number>();
  const members = doc.members.map((m: unknown, i: number): ClusterMember => {
    const where = `cluster.members[${i}]`;
    if (!isObj(m)) throw new ConfigError(`${where}: expected an object`);
    checkKeys(m, ['id', 'peer', 'snapshot', 'admin'], where);
    const id = int(m.id, `${where}.id`, 1, 0xffff);
    if (ids.has(id)) throw new ConfigError(`${where}: duplicate id ${id}`);
    ids.add(id);
    const peer = hostPort(m.peer, `${where}.peer`);
    const snapshot = m.snapshot !== undefined ? hostPort(m.snapshot, `${where}.snapshot`) : defaultSnapshotAddress(peer, where);
    const admin = m.admin !== undefined ? hostPort(m.admin, `${where}.admin`) : undefined;
    return { id, peer, snapshot, admin };
  });
  if (!ids.has(nodeId)) throw new ConfigError(`cluster.members: no member with this node's id ${nodeId}`);
  // (port 0, an ephemeral port, is for a sole member: no other node could reach it)
  if (members.length > 1) {
    members.forEach((m, i) => {
      if (m.peer.port === 0 || m.snapshot.port === 0) throw new ConfigError(`cluster.members[${i}]: port 0 (ephemeral) is for a single-member cluster only: the others could not reach it`);
    });
  }
  let secret: Buffer | undefined;
  if (doc.secretFile !== undefined) {
    const f = str(doc.secretFile, 'cluster.secretFile');
    try {
      secret = readFileSync(f);
    } catch (e) {
      throw new ConfigError(`cluster.secretFile: cannot read ${f}: ${(e as Error).message}`);
    }
    if (secret.length < 16) throw new ConfigError('cluster.secretFile: the secret must be at least 16 bytes');
  }
  const offLoopback = members.some((m) => !isLoopback(m.peer.host) || !isLoopback(m.snapshot.host));
  if (offLoopback && !secret) {
    throw new ConfigError('cluster: a peer link off loopback needs cluster.secretFile (every client write crosses it)');
  }
  const tickMs = doc.tickMs !== undefined ? int(doc.tickMs, 'cluster.tickMs', 10, 1000) : CLUSTER_DEFAULTS.tickMs;
  const electionTicks = doc.electionTicks !== undefined ? int(doc.electionTicks, 'cluster.electionTicks', 5, 1000) : CLUSTER_DEFAULTS.electionTicks;
  const bootstrap = doc.bootstrap ?? 'init';
  if (bootstrap !== 'init' && bootstrap !== 'join') throw new ConfigError('cluster.bootstrap: "init" or "join"');
  const snapshotEntries =
    doc.snapshotEntries !== undefined ? int(doc.snapshotEntries, 'cluster.snapshotEntries', 100, 10_000_000) : CLUSTER_DEFAULTS.snapshotEntries;
  const catchUpEntries =
    doc.catchUpEntries !== undefined ? int(doc.catchUpEntries, 'cluster.catchUpEntries', 0, 10_000_000) : CLUSTER_DEFAULTS.catchUpEntries;
  const followerHoldMs =
    doc.followerHoldMs !== undefined ? int(doc.followerHoldMs, 'cluster.followerHoldMs', 0, 86_400_000) : CLUSTER_DEFAULTS.followerHoldMs;
  return { nodeId, clusterId, members, secret, tickMs, electionTicks, bootstrap, snapshotEntries, catchUpEntries, followerHoldMs };
}

/**
 * The cluster of a config without a `cluster` section: one voter (the same code path as any
 * cluster), its peer link and snapshot server on ephemeral loopback ports (nobody else connects).
 */
export function standaloneCluster(): ClusterConfig {
  return {
    nodeId: 1,
    clusterId: 'standalone',
    members: [{ id: 1, peer: { host: '127.0.0.1', port: 0 }, snapshot: { host: '127.0.0.1', port: 0 } }],
    tickMs: CLUSTER_DEFAULTS.tickMs,
    electionTicks: CLUSTER_DEFAULTS.electionTicks,
    bootstrap: 'init',
    snapshotEntries: CLUSTER_DEFAULTS.snapshotEntries,
    catchUpEntries: CLUSTER_DEFAULTS.catchUpEntries,
    followerHoldMs: CLUSTER_DEFAULTS.followerHoldMs,
  };
}
