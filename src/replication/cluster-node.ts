/**
 * One node of a hanfs cluster: its block store (the log is its write-ahead log), the Raft node that
 * orders every mutation, the NFS and MOUNT programs, the service address that only the serving
 * leader holds, the snapshot server that catches other replicas up, and the admin endpoint
 * (metrics, `hanfs cluster ...`, `hanfs verify`).
 *
 *   client ──► service address (leader only) ──► NFS program ──► RaftOpLog.propose
 *        ──► Raft: append + fsync on a majority ──► every node: StoreStateMachine.apply(index, op)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HanfsConfig } from '../config';
import { createLogger, type Logger } from '../log';
import { HanfsMetrics, startAdminServer, type AdminServer } from '../metrics';
import { ExportTable } from '../nfs/exports';
import { rootHandle as makeRootHandle } from '../nfs/file-handle';
import { MountProgram } from '../nfs/mount';
import { PortmapProgram, daemonRegistrations } from '../nfs/portmap';
import { createNfs3Program } from '../nfs/nfs3/index';
import { withNonIdempotent, type RpcProgram } from '../nfs/rpc-program';
import { RpcServer } from '../nfs/rpc-server';
import { WriteVerifier } from '../nfs/write-verifier';
import { RaftNode, type RoleChange } from '../raft/raft-node';
import { Role } from '../raft/types';
import { libnfsUrl, mountCommand } from '../nfs/mount-command';
import { listenBoth, mountNonIdempotent, resolvePath } from '../server';
import { openStore, type LevelBlockStore } from '../store/index';
import { finishInterruptedRestore } from '../store/snapshot';
import type { StoreOptions } from '../store/types';
import { ClusterAdmin } from './cluster-admin';
import { loadMembers, memberFromRecord, memberRecords, saveMembers } from './members-file';
import type { ClusterConfig, ClusterMember } from './cluster-config';
import { fetchStoreSnapshot, SnapshotServer } from './catch-up';
import { ReplicationMetrics } from './replication-metrics';
import { LeaderGate } from './leader-gate';
import { encodeEntry, type ClusterConfigRecord } from './op-codec';
import { RaftOpLog } from './raft-op-log';
import { ServiceAddress } from './service-address';
import { StoreHandle } from './store-handle';
import { StoreStateMachine } from './store-state-machine';
import { termVerifier } from './term-verifier';

export interface RunningClusterNode {
  readonly config: HanfsConfig;
  readonly cluster: ClusterConfig;
  readonly log: Logger;
  readonly metrics: HanfsMetrics;
  readonly raft: RaftNode;
  readonly gate: LeaderGate;
  readonly service: ServiceAddress;
  readonly sm: StoreStateMachine;
  readonly admin: AdminServer;
  readonly verifier: Uint8Array;
  readonly mountCommand: string;
  readonly libnfsUrl: string;
  /** why this node stopped serving for good (a local fault), if it did */
  readonly failure: string | undefined;
  stop(): Promise<void>;
}

/** the settings that decide op results: every replica must have the same (the store's limits as
 * opened, the root directory's owner and mode of a fresh store, the exports' ids and paths) */
export function replicatedSettings(config: HanfsConfig, store: LevelBlockStore): ClusterConfigRecord {
  return {
    rootMode: config.storeRoot.mode,
    rootUid: config.storeRoot.uid,
    rootGid: config.storeRoot.gid,
    ...store.limits,
    exports: config.exports.map((e) => ({ id: e.id, path: e.path })).sort((a, b) => a.id - b.id),
  };
}

function storeOptionsOf(config: HanfsConfig): StoreOptions & { logWal: boolean } {
  return { rootMode: config.storeRoot.mode, rootUid: config.storeRoot.uid, rootGid: config.storeRoot.gid, logWal: true };
}

function sameSettings(a: ClusterConfigRecord, b: ClusterConfigRecord): string | undefined {
  for (const k of ['rootMode', 'rootUid', 'rootGid', 'maxFileSize', 'capacityBytes', 'maxFiles', 'maxLinks'] as const) {
    if (a[k] !== b[k]) return `${k}: leader has ${b[k]}, this node ${a[k]}`;
  }
  const ea = JSON.stringify(a.exports);
  const eb = JSON.stringify(b.exports);
  if (ea !== eb) return `exports: leader has ${eb}, this node ${ea}`;
  return undefined;
}

export function peerMap(members: ClusterMember[]): Map<number, { host: string; port: number }> {
  return new Map(members.map((m) => [m.id, { host: m.peer.host, port: m.peer.port }]));
}

export async function startClusterNode(config: HanfsConfig, opts: { log?: Logger; metrics?: HanfsMetrics } = {}): Promise<RunningClusterNode> {
  const cluster = config.cluster;
  if (!cluster) throw new Error('startClusterNode: no cluster section in the config');
  const log = (opts.log ?? createLogger(config.log.level)).child({ node: cluster.nodeId });
  const metrics = opts.metrics ?? new HanfsMetrics();
  const rmetrics = new ReplicationMetrics(metrics.registry);
  const exportTable = new ExportTable(config.exports);
  const storeDir = path.join(config.dataDir, 'store');
  const raftDir = path.join(config.dataDir, 'raft');
  const self = cluster.members.find((m) => m.id === cluster.nodeId)!;
  // the members' addresses as last replicated (members.json), else as configured
  const membersFile = path.join(config.dataDir, 'members.json');
  const members = new Map((loadMembers(membersFile) ?? cluster.members).map((m) => [m.id, m] as const));
  if (!members.has(cluster.nodeId)) members.set(cluster.nodeId, self);

  let failure: string | undefined;
  if (fs.existsSync(path.join(config.dataDir, 'meta')) && !fs.existsSync(storeDir)) {
    throw new Error(
      `${config.dataDir} holds a store of the single-node layout (hanfs 0.1): a node keeps its store in ${storeDir} and its Raft log ` +
        `in ${raftDir}; start with an empty data dir and copy the files over NFS`,
    );
  }
  // a catch-up restore that a crash interrupted is finished forward or rolled back first
  const restored = await finishInterruptedRestore(storeDir);
  if (restored !== 'none') log.warn({ restored }, 'an interrupted store restore was finished');
  const store = await openStore(storeDir, storeOptionsOf(config));
  const settings = replicatedSettings(config, store);
  const verifier = new WriteVerifier();
  verifier.onRotate = (reason) => metrics.verifierRotated(reason);

  // eslint-disable-next-line prefer-const
  let raft: RaftNode;
  const gate = new LeaderGate(
    {
      leaseValidUntilMs: () => raft?.leaseValidUntilMs() ?? 0,
      get appliedIndex() {
        return raft?.appliedIndex ?? 0;
      },
      readIndex: () => raft.readIndex(),
    },
    () => failure !== undefined,
  );
  const sm = new StoreStateMachine(store, {
    nodeId: cluster.nodeId,
    onConfig: (c, index) => {
      const diff = sameSettings(settings, c);
      if (diff) throw new Error(`replicated settings differ at log index ${index} (${diff}): this node must not serve or apply`);
    },
    members: () => memberRecords(members),
    onMembers: (records) => {
      // (a record no node can read back, e.g. snapshot port 65536 that an older leader replicated:
      // that member keeps the addresses known before; throwing here stopped every node applying it)
      const parsed: ClusterMember[] = [];
      for (const r of records) {
        try {
          parsed.push(memberFromRecord(r));
        } catch (e) {
          const known = members.get(r.id);
          log.error({ member: r, err: (e as Error).message }, 'replicated member addresses unreadable: kept the ones known before');
          if (known) parsed.push(known);
        }
      }
      members.clear();
      for (const m of parsed) {
        members.set(m.id, m);
        raft?.setPeerAddress(m.id, { host: m.peer.host, port: m.peer.port });
      }
      saveMembers(membersFile, memberRecords(members));
    },
    fetchStore: async (d, meta) => {
      rmetrics.catchUps.inc();
      const old = sm.store;
      await old.close();
      const fresh = await fetchStoreSnapshot({
        dataDir: storeDir,
        // followers first: streaming a whole store costs CPU and disk, better not the serving leader's
        // (d.node, the node that sent the descriptor, is the leader); any member at or past the
        // snapshot's index will do
        sources: [...[...members.keys()].filter((id) => id !== d.node), d.node]
          .filter((id, i, a) => id !== cluster.nodeId && a.indexOf(id) === i)
          .map((id) => members.get(id)!)
          .filter(Boolean),
        minIndex: meta.index,
        clusterId: cluster.clusterId,
        secret: cluster.secret,
        log,
        onProgress: (bytes) => rmetrics.catchUpBytes.set(bytes),
        open: () => openStore(storeDir, storeOptionsOf(config)),
      });
      return fresh;
    },
  });
  const storeRef = new StoreHandle(() => sm.store);

  let service: ServiceAddress | undefined;
  const onRoleChange = (c: RoleChange) => {
    const wasLeader = gate.isLeader;
    gate.roleChanged(c);
    rmetrics.roleChanged(c);
    log.info({ role: ['follower', 'pre-candidate', 'candidate', 'leader'][c.role], term: c.term, leader: c.leader }, 'role changed');
    if (c.role === Role.Leader && !wasLeader) {
      // every new leader states the settings that decide results (a replica that differs stops) and
      // the members' addresses (so that every node can reach every member when it leads)
      raft.propose(encodeEntry({ kind: 'config', config: settings })).catch((e: Error) => log.debug({ err: e.message }, 'settings entry not committed'));
      raft.propose(encodeEntry({ kind: 'members', members: memberRecords(members) })).catch((e: Error) => log.debug({ err: e.message }, 'members entry not committed'));
    }
    if (wasLeader && c.role !== Role.Leader) rmetrics.failovers.inc({ kind: 'stepped-down' });
    service?.poke();
  };

  raft = await RaftNode.start({
    id: cluster.nodeId,
    peers: peerMap([...members.values()]),
    dir: raftDir,
    clusterId: cluster.clusterId,
    secret: cluster.secret,
    stateMachine: sm,
    tickMs: cluster.tickMs,
    electionTicks: cluster.electionTicks,
    snapshotEntries: cluster.snapshotEntries,
    snapshotCatchUpEntries: cluster.catchUpEntries,
    followerHoldMs: cluster.followerHoldMs,
    bootstrapVoters: cluster.bootstrap === 'join' ? [] : cluster.members.map((m) => m.id).sort((a, b) => a - b),
    logger: log,
    registry: metrics.registry,
    onRoleChange,
    onApplied: () => {
      if (service && !service.isHeld && gate.isLeader) service.poke();
    },
    onFatal: (e) => {
      failure = e.message;
      log.fatal({ err: e.message }, 'node stopped applying and serving: a local fault; the other replicas go on');
      void service?.stop();
    },
  });

  // a single voter need not wait out an election timeout
  const voters = raft.status().conf.voters;
  if (voters.length === 1 && voters[0] === cluster.nodeId) raft.campaign();

  const opLog = new RaftOpLog(raft, gate);
  const nfs3 = createNfs3Program({
    store: storeRef,
    exports: exportTable,
    verifier: verifier.bytes,
    opLog,
    gate,
    requestKeys: true,
    // FSINFO maxfilesize and PATHCONF linkmax as the store enforces them
    storeLimits: store.limits,
    log,
    onStatus: (proc, status) => metrics.nfsError(proc, status),
    onBytes: (dir, n) => (dir === 'read' ? metrics.bytesRead(n) : metrics.bytesWritten(n)),
  });
  const mountProgram = new MountProgram({
    exports: exportTable,
    rootHandle: makeRootHandle,
    resolvePath: (id, names) => resolvePath(storeRef, id, names),
    log,
  });
  const mountBase: RpcProgram = (mountProgram as RpcProgram).isNonIdempotent ? mountProgram : withNonIdempotent(mountProgram, mountNonIdempotent);
  // MOUNT answers only while this node serves, like NFS
  const mount: RpcProgram = {
    prog: mountBase.prog,
    versions: mountBase.versions,
    name: mountBase.name,
    procName: (v, p) => mountBase.procName(v, p),
    isNonIdempotent: (v, p) => mountBase.isNonIdempotent?.(v, p) ?? false,
    // (and its answer leaves only while it still serves)
    handle: async (ctx, args) => {
      if (!gate.serving()) return { kind: 'drop' as const };
      const r = await mountBase.handle(ctx, args);
      return gate.serving() ? r : { kind: 'drop' as const };
    },
  };
  const host = config.listen.host;

  let rpc: RpcServer | undefined;
  /** the ports the service address was last bound on (differ from the config only for port 0) */
  let bound = { nfs: config.listen.nfsPort, mount: config.listen.mountPort };
  service = new ServiceAddress({
    log,
    serving: () => gate.serving(),
    leaseRemainingMs: () => gate.leaseRemainingMs(),
    releaseMarginMs: 2 * cluster.tickMs,
    checkMs: Math.max(5, Math.floor(cluster.tickMs / 2)),
    onTakeOffice: () => {
      verifier.bytes.set(termVerifier(cluster.clusterId, gate.currentTerm));
    },
    onChange: (held) => {
      rmetrics.serviceHeld.set(held ? 1 : 0);
      if (held) rmetrics.failovers.inc({ kind: 'took-office' });
    },
    binding: {
      bind: async () => {
        // (small records only from addresses no export admits: see RpcServerOptions.admitsLargeRecords)
        const r = new RpcServer({ limits: config.limits, log, metrics, admitsLargeRecords: (a) => exportTable.admitsAnyExport(a) });
        try {
          const nfs = await r.listenTcp(host, bound.nfs, [nfs3]);
          const mnt = await listenBoth(r, host, bound.mount, [mount]);
          // (port 0, a single node's tests: keep the ports it got, so clients find it again)
          bound = { nfs: nfs.port, mount: mnt.tcp.port };
          if (config.listen.portmapPort !== 0) {
            // the portmapper moves with the service address too (it names the service's ports)
            const pm = new PortmapProgram();
            const pmap = await listenBoth(r, host, config.listen.portmapPort, [pm]);
            for (const reg of daemonRegistrations({ host, nfsPort: nfs.port, mountPort: mnt.tcp.port, portmapPort: pmap.tcp.port })) pm.register(reg);
          }
        } catch (e) {
          await r.close(0).catch(() => undefined);
          throw e;
        }
        metrics.watchDrc(r.drc);
        rpc = r;
      },
      unbind: async () => {
        const r = rpc;
        rpc = undefined;
        if (r) await r.close(0);
      },
    },
  });

  const snapshots = new SnapshotServer({
    host: self.snapshot.host,
    port: self.snapshot.port,
    clusterId: cluster.clusterId,
    secret: cluster.secret,
    store: () => sm.store,
    log,
  });
  await snapshots.start();

  const clusterAdmin = new ClusterAdmin({ cluster, raft, gate, sm, service, members, log, failure: () => failure, snapshots, rmetrics, opLog });
  // /healthz: 503 once the node failed or is shutting down (docs/configuration.md)
  let stopping = false;
  const admin = await startAdminServer(config.admin.host, config.admin.port, metrics, () => failure === undefined && !stopping, (req, res, url) =>
    clusterAdmin.handle(req, res, url),
  );
  rmetrics.watch(() => clusterAdmin.gauges());
  service.start();
  service.poke();

  const first = config.exports[0];
  // an ephemeral service port (port 0) is known once bound: a sole voter binds at once
  if (bound.nfs === 0 || bound.mount === 0) {
    for (let i = 0; i < 400 && !service.isHeld; i++) await new Promise((r) => setTimeout(r, 25));
  }
  const cmd = mountCommand(host, bound.nfs, bound.mount, first.path, { cluster: true });
  const url = libnfsUrl(host, bound.nfs, bound.mount, first.path);
  log.info(
    {
      dataDir: config.dataDir,
      serviceAddress: `${host}:${config.listen.nfsPort}`,
      peer: `${self.peer.host}:${self.peer.port}`,
      admin: `http://${admin.host}:${admin.port}`,
      members: cluster.members.map((m) => m.id),
    },
    'hanfs cluster node started',
  );

  let stopped: Promise<void> | undefined;
  return {
    config,
    cluster,
    log,
    metrics,
    raft,
    gate,
    service,
    sm,
    admin,
    verifier: verifier.bytes,
    mountCommand: cmd,
    libnfsUrl: url,
    get failure() {
      return failure;
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        await service!.stop();
        await raft.stop();
        await snapshots.stop();
        await admin.close();
        await (sm.store as LevelBlockStore).close().catch(() => undefined);
        log.info('cluster node stopped');
      })()),
  };
}
