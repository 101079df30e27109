/**
 * Prometheus metrics of one Raft node (prom-client). Each RaftNode owns one RaftMetrics on a registry
 * it is given (default: a registry of its own, so several nodes in one process do not collide).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SyncBatchInfo } from './log-storage';
import type { TransportStats } from './transport';

export class RaftMetrics {
  readonly registry: Registry;
  readonly term: Gauge;
  readonly role: Gauge;
  readonly commitIndex: Gauge;
  readonly appliedIndex: Gauge;
  readonly applyingBytes: Gauge;
  readonly peerMatchIndex: Gauge<'peer'>;
  readonly peerLag: Gauge<'peer'>;
  readonly fsyncSeconds: Histogram;
  readonly syncBatchEntries: Histogram;
  readonly proposals: Counter;
  readonly commits: Counter;
  readonly elections: Counter;
  readonly leaderChanges: Counter;
  readonly snapshots: Counter<'kind'>;
  readonly transportDropped: Gauge<'peer' | 'lane'>;
  readonly transportSent: Gauge<'peer' | 'lane'>;

  constructor(registry?: Registry) {
    const r = (this.registry = registry ?? new Registry());
    const registers = [r];
    this.term = new Gauge({ name: 'hanfs_raft_term', help: 'current Raft term', registers });
    this.role = new Gauge({ name: 'hanfs_raft_role', help: 'Raft role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader', registers });
    this.commitIndex = new Gauge({ name: 'hanfs_raft_commit_index', help: 'highest log index known committed', registers });
    this.appliedIndex = new Gauge({ name: 'hanfs_raft_applied_index', help: 'highest log index applied to the state machine', registers });
    this.applyingBytes = new Gauge({
      name: 'hanfs_raft_applying_bytes',
      help: 'entry bytes handed to the state machine whose apply has not finished (capped by maxApplyingBytes)',
      registers,
    });
    this.peerMatchIndex = new Gauge({ name: 'hanfs_raft_peer_match_index', help: 'leader: highest index known replicated on the peer', labelNames: ['peer'], registers });
    this.peerLag = new Gauge({ name: 'hanfs_raft_peer_lag', help: 'leader: entries the peer is behind the leader last index', labelNames: ['peer'], registers });
    this.fsyncSeconds = new Histogram({
      name: 'hanfs_raft_fsync_seconds',
      help: 'time of one group-commit fsync of the Raft log',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.syncBatchEntries = new Histogram({
      name: 'hanfs_raft_sync_batch_entries',
      help: 'log entries made durable by one group-commit fsync',
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.proposals = new Counter({ name: 'hanfs_raft_proposals_total', help: 'proposals accepted by this node as leader', registers });
    this.commits = new Counter({ name: 'hanfs_raft_commits_total', help: 'log entries applied after commit', registers });
    this.elections = new Counter({ name: 'hanfs_raft_elections_total', help: 'elections this node started (became candidate)', registers });
    this.leaderChanges = new Counter({ name: 'hanfs_raft_leader_changes_total', help: 'changes of the known leader', registers });
    this.snapshots = new Counter({ name: 'hanfs_raft_snapshots_total', help: 'snapshots taken (local) or installed (from the leader)', labelNames: ['kind'], registers });
    this.transportDropped = new Gauge({ name: 'hanfs_raft_transport_dropped_messages', help: 'messages dropped because a peer send queue was full', labelNames: ['peer', 'lane'], registers });
    this.transportSent = new Gauge({ name: 'hanfs_raft_transport_sent_messages', help: 'messages written to a peer connection', labelNames: ['peer', 'lane'], registers });
  }

  observeSync(b: SyncBatchInfo): void {
    this.fsyncSeconds.observe(b.seconds);
    this.syncBatchEntries.observe(b.entries);
  }

  observeTransport(s: TransportStats): void {
    for (const [peer, l] of Object.entries(s.peers)) {
      this.transportDropped.set({ peer, lane: 'control' }, l.control.dropped);
      this.transportDropped.set({ peer, lane: 'bulk' }, l.bulk.dropped);
      this.transportSent.set({ peer, lane: 'control' }, l.control.sent);
      this.transportSent.set({ peer, lane: 'bulk' }, l.bulk.sent);
    }
  }
}
