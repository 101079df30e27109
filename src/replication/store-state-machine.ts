/**
 * The replicated block store as the Raft state machine: every committed entry is decoded and applied
 * to this node's store at the entry's log index, so every replica holds the same file ids, handles,
 * cookies and attributes at the same index (invariant 2). Raft noop and membership entries never
 * reach the store: it accepts index gaps (logWal mode).
 *
 * The Raft log is the store's write-ahead log: the store applies without any fsync on the write path
 * and checkpoints in the background; the log is compacted only behind the store's durable checkpoint
 * (`compactableIndex`), so after a crash the store replays from its own applied index (and re-places
 * the data of entries after its checkpoint, `redo`).
 *
 * Snapshots are descriptors: the store itself is streamed from a node that has it (catch-up.ts), and
 * `restore` fetches it. Verification (`hanfs verify`): a `verify` entry makes every node digest its
 * store at exactly that entry's index while later entries queue up behind it (RaftNode hands over at
 * most maxApplyingBytes of them meanwhile; the rest wait in the Raft log).
 */
import { EntryType, type Entry, type SnapshotMeta } from '../raft/types';
import type { StateMachine } from '../raft/raft-node';
import type { LevelBlockStore } from '../store/block-store';
import type { OpResult } from '../store/types';
import { storeDigest, type StoreDigest } from '../store/checksum';
import { decodeEntry, type ClusterConfigRecord, type MemberRecord } from './op-codec';

export interface SnapshotDescriptor {
  /** the node whose store the snapshot is (it took it; it can stream it) */
  node: number;
  index: number;
  /** the members' addresses as that node knew them (the log entries that carried them are gone) */
  members?: MemberRecord[];
}

export function encodeDescriptor(d: SnapshotDescriptor): Uint8Array {
  return Buffer.from(JSON.stringify({ v: 1, node: d.node, index: d.index, members: d.members }));
}

export function decodeDescriptor(b: Uint8Array): SnapshotDescriptor {
  const o = JSON.parse(Buffer.from(b).toString('utf8')) as { v: number; node: number; index: number; members?: MemberRecord[] };
  if (o.v !== 1 || !Number.isSafeInteger(o.node) || !Number.isSafeInteger(o.index)) throw new Error('bad snapshot descriptor');
  if (o.members !== undefined && !Array.isArray(o.members)) throw new Error('bad snapshot descriptor');
  return { node: o.node, index: o.index, members: o.members };
}

export interface StoreStateMachineOptions {
  nodeId: number;
  /** a replicated config record was applied: throw if this node's settings differ (the node stops) */
  onConfig?: (c: ClusterConfigRecord, index: number) => void;
  /** the members' addresses, as replicated */
  onMembers?: (m: MemberRecord[], index: number) => void;
  /** the members' addresses as this node knows them now (carried in snapshot descriptors) */
  members?: () => MemberRecord[];
  /** replace the store with one streamed from another node holding at least `meta.index`; returns
   * the new store */
  fetchStore?: (d: SnapshotDescriptor, meta: SnapshotMeta) => Promise<LevelBlockStore>;
}

export class StoreStateMachine implements StateMachine {
  private readonly digests = new Map<number, (StoreDigest & { index: number }) | { error: string }>();
  /** the last `verify` digest handed over, settled once it is done (never rejects); undefined when
   * none is running or queued: every entry after it (ops and further `verify` entries alike) waits
   * for it, in order */
  private barrier: Promise<undefined> | undefined;

  constructor(
    public store: LevelBlockStore,
    private readonly o: StoreStateMachineOptions,
  ) {}

  apply(e: Entry): Promise<OpResult | undefined> | undefined {
    const cmd = decodeEntry(e.data);
    if (cmd.kind === 'config') {
      this.o.onConfig?.(cmd.config, e.index);
      return undefined;
    }
    if (cmd.kind === 'members') {
      this.o.onMembers?.(cmd.members, e.index);
      return undefined;
    }
    const index = e.index;
    if (cmd.kind === 'verify') {
      // a digest waits for the one before it (and the ops between them, queued behind that one):
      // two digests at once would each see the other's held ops applied mid-walk, and the later one
      // could release its ops before the earlier one released theirs (a skipped op: a replay)
      const prev = this.barrier;
      const done: Promise<undefined> = prev ? prev.then(() => this.verifyAt(index)) : this.verifyAt(index);
      this.barrier = done;
      void done.then(() => {
        if (this.barrier === done) this.barrier = undefined;
      });
      return done;
    }
    const barrier = this.barrier;
    if (barrier) return barrier.then(() => this.store.apply(index, cmd.op, cmd.requestKey));
    return this.store.apply(index, cmd.op, cmd.requestKey);
  }

  appliedIndex(): number {
    return this.store.appliedIndex;
  }

  /** After a crash: re-place the data of the entries after the store's durable checkpoint (a power
   * loss may have dropped those data-file writes; the log still holds them: it is compacted only
   * behind the checkpoint). */
  async recover(read: (lo: number, hi: number) => Entry[]): Promise<void> {
    const store = this.store;
    if (!store.needsRedo) return;
    const from = store.durableIndex + 1;
    const to = store.appliedIndex;
    for (let lo = from; lo <= to; ) {
      const batch = read(lo, to + 1);
      if (batch.length === 0) throw new Error(`log entries ${lo}..${to} needed to recover the store are missing`);
      for (const e of batch) {
        if (e.type === EntryType.Normal && e.data.length > 0) {
          const cmd = decodeEntry(e.data);
          if (cmd.kind === 'op') await store.redo(e.index, cmd.op);
        }
        lo = e.index + 1;
      }
    }
    await store.finishRedo();
  }

  compactableIndex(): number {
    return this.store.durableIndex;
  }

  snapshot(index: number): Uint8Array {
    return encodeDescriptor({ node: this.o.nodeId, index, members: this.o.members?.() });
  }

  async restore(data: Uint8Array, meta: SnapshotMeta): Promise<void> {
    if (!this.o.fetchStore) throw new Error('this node cannot fetch a store snapshot');
    const d = decodeDescriptor(data);
    // the addresses first: the store may have to be fetched from a member this node did not know
    if (d.members) this.o.onMembers?.(d.members, meta.index);
    // a store that already holds the snapshot's index (restored from a newer fuzzy snapshot moments
    // ago, or a follower that fell only a little behind a compaction) is kept: the entries after
    // `meta.index` that it already applied are replays (no-ops), the later ones rewrite whatever a
    // fuzzy snapshot had ahead of them. Fetching again would restart a long transfer — and under
    // writes a follower could then never catch up (each fetch outlived the leader's log again).
    if (this.store.appliedIndex >= meta.index && !this.store.needsRedo && this.store.failure === undefined) return;
    this.store = await this.o.fetchStore(d, meta);
  }

  /**
   * A `verify` entry at `index`: entries after it wait (in order) while the store, now at exactly
   * this index, is digested; then they go on. The digest is kept for `digestAt(index)`.
   */
  private async verifyAt(index: number): Promise<undefined> {
    try {
      // everything before this entry was handed to the store already (in order): wait for it
      await this.store.sync();
      const d = await storeDigest(this.store);
      this.digests.set(index, { ...d, index });
    } catch (e) {
      this.digests.set(index, { error: (e as Error).message });
    }
    while (this.digests.size > 8) this.digests.delete(this.digests.keys().next().value!);
    return undefined;
  }

  /** the digest taken at a `verify` entry, once it is done */
  digestAt(index: number): (StoreDigest & { index: number }) | { error: string } | undefined {
    return this.digests.get(index);
  }
}
