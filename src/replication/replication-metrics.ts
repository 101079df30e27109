/**
 * Metrics of the replication layer (the Raft node's own — role, term, commit/applied index,
 * per-follower lag — are hanfs_raft_*): lease remaining, whether this node holds the service
 * address, failovers, catch-ups from snapshots, the store's durable checkpoint, duplicate-request hits.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RoleChange } from '../raft/raft-node';

export interface ReplicationGauges {
  leaseRemainingMs: number;
  storeApplied: number;
  storeDurable: number;
  requestHits: number;
}

export class ReplicationMetrics {
  readonly serviceHeld: Gauge;
  readonly failovers: Counter<'kind'>;
  readonly catchUps: Counter;
  readonly catchUpBytes: Gauge;
  private readonly roleChanges: Counter<'role'>;
  private source: (() => ReplicationGauges) | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const self = this;
    this.serviceHeld = new Gauge({ name: 'hanfs_service_address_held', help: '1 while this node holds the service address (serves NFS)', registers });
    this.failovers = new Counter({
      name: 'hanfs_failovers_total',
      help: 'took-office: this node took the service address; stepped-down: it stopped being leader',
      labelNames: ['kind'],
      registers,
    });
    this.catchUps = new Counter({ name: 'hanfs_catchup_snapshots_total', help: 'store snapshots fetched to catch this node up', registers });
    this.catchUpBytes = new Gauge({ name: 'hanfs_catchup_bytes', help: 'bytes received of the store snapshot being fetched (or last fetched)', registers });
    this.roleChanges = new Counter({ name: 'hanfs_role_changes_total', help: 'role changes of this node by new role', labelNames: ['role'], registers });
    // read from the node when scraped (one source, several gauges)
    const polled: [string, string, (g: ReplicationGauges) => number][] = [
      ['hanfs_lease_remaining_seconds', 'leader lease left (0 when not leader)', (g) => g.leaseRemainingMs / 1000],
      ['hanfs_store_applied_index', "last log index applied to this node's store", (g) => g.storeApplied],
      ['hanfs_store_durable_index', 'the store is durable (checkpointed) up to this log index; the log is compacted behind it', (g) => g.storeDurable],
      ['hanfs_replicated_drc_hits', 'retransmitted mutations answered from the replicated duplicate-request record (since start)', (g) => g.requestHits],
    ];
    for (const [name, help, pick] of polled) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const g = self.source?.();
          if (g) this.set(pick(g));
        },
      });
    }
  }

  watch(source: () => ReplicationGauges): void {
    this.source = source;
  }

  roleChanged(c: RoleChange): void {
    this.roleChanges.inc({ role: ['follower', 'pre-candidate', 'candidate', 'leader'][c.role] ?? 'unknown' });
  }
}
