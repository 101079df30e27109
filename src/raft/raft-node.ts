/**
 * RaftNode: the I/O driver around the pure core (core.ts). It owns the durable log storage, the TCP
 * transport and a monotonic tick clock, and runs the Ready loop:
 *
 *   ready() -> persist snapshot / entries / hard state (one group-commit fsync) -> send messages
 *           -> apply the snapshot and committed entries to the state machine -> advance()
 *
 * propose() resolves once the entry is committed AND applied on this node. Any storage failure stops
 * the node (onFatal): nothing is acknowledged that was not durably persisted.
 */
import { performance } from 'node:perf_hooks';
import pino, { Logger } from 'pino';
import { decodeConfChange } from './confchange';
import { RaftCore, RaftCoreOptions } from './core';
import { LogStorage } from './log-storage';
import { RaftMetrics } from './raft-metrics';
import { PeerAddress, Transport } from './transport';
import { ConfChange, Entry, EntryType, Message, MsgType, NodeId, Ready, Role, Snapshot } from './types';

export { NotLeaderError, ProposalFailedError, type StateMachine, type RoleChange, type RaftNodeOptions, type RaftNodeStatus } from './raft-node-api';
import { NotLeaderError, ProposalFailedError, type StateMachine, type RoleChange, type RaftNodeOptions, type RaftNodeStatus } from './raft-node-api';

interface PendingProposal {
  term: number;
  resolve: (r: { index: number; term: number; result: unknown }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingRead {
  index: number;
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const ROLE_NAMES = ['follower', 'pre-candidate', 'candidate', 'leader'];
/** default: a follower not heard from for this long no longer holds the log back (laggingFollowerFloor) */
const FOLLOWER_HOLD_MS = 120_000;

export class RaftNode {
  readonly id: NodeId;
  readonly metrics: RaftMetrics;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly leaseTicks: number;
  private readonly leaseSafetyMs: number;
  private readonly snapshotEntries: number;
  private readonly catchUp: number;
  private readonly proposalTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly sm: StateMachine;
  private readonly onFatal?: (e: Error) => void;

  private core!: RaftCore;
  private storage!: LogStorage;
  private transport!: Transport;
  private ticker: NodeJS.Timeout | undefined;
  private ticks = 0;
  private readonly tickTimes: Float64Array;
  private startMs = 0;

  private scheduled = false;
  private running = false;
  private stopped = false;
  private fatalError: Error | undefined;
  private stopping: Promise<void> | undefined;
  private proposals = new Map<number, PendingProposal>();
  private reads = new Map<number, PendingRead>();
  private waitingReads: PendingRead[] = [];
  /** read request ids: start from the wall clock so that a late answer to a request of an earlier
   * incarnation of this node cannot match a new request */
  private readSeq = Date.now() * 1000;
  /** last entry handed to the state machine */
  private applied = 0;
  /** last entry whose (possibly asynchronous) apply finished */
  private smApplied = 0;
  private snapIndex = 0;
  /** asynchronous applies not finished, and the last of them (in order) */
  private applying = 0;
  private applyTail: Promise<void> = Promise.resolve();
  private readonly onApplied?: (index: number) => void;
  private readonly onRoleChange?: (c: RoleChange) => void;
  /** when each follower was last seen active (leader; for laggingFollowerFloor) */
  private readonly followerSeenMs = new Map<NodeId, number>();
  private readonly followerHoldMs: number;
  /** leader: followers that were sent (or restored) a snapshot and are replaying the log after it,
   * with their match and when it last advanced (laggingFollowerFloor) */
  private readonly afterSnapshot = new Map<NodeId, { match: number; progressMs: number }>();
  private snapshotting = false;
  private lastTerm = 0;
  /** term of the hard state known to be on disk */
  private durableTerm = 0;
  /** the state machine is being replaced by a leader snapshot (a store restore can take minutes) */
  private restoring = false;
  private syncedHard = { term: 0, vote: 0 };
  private lastLeader = 0;
  private lastRole: Role = Role.Follower;

  private constructor(private readonly o: RaftNodeOptions) {
    this.id = o.id;
    this.log = (o.logger ?? pino({ level: 'info' })).child({ raftNode: o.id });
    this.metrics = new RaftMetrics(o.registry);
    this.tickMs = o.tickMs ?? 100;
    const et = o.electionTicks ?? 10;
    this.leaseTicks = o.leaseTicks ?? Math.max(1, Math.floor(et * 0.8));
    this.leaseSafetyMs = o.leaseSafetyMs ?? this.tickMs;
    this.snapshotEntries = o.snapshotEntries ?? 10_000;
    this.catchUp = o.snapshotCatchUpEntries ?? 1000;
    this.proposalTimeoutMs = o.proposalTimeoutMs ?? 30_000;
    this.readTimeoutMs = o.readTimeoutMs ?? 10_000;
    this.sm = o.stateMachine;
    this.onFatal = o.onFatal;
    this.onApplied = o.onApplied;
    this.followerHoldMs = o.followerHoldMs ?? FOLLOWER_HOLD_MS;
    this.onRoleChange = o.onRoleChange;
    this.tickTimes = new Float64Array(Math.max(64, et * 8));
  }

  /** Open the storage (recovering it), restore the state machine, start the transport and the clock. */
  static async start(o: RaftNodeOptions): Promise<RaftNode> {
    const n = new RaftNode(o);
    await n.init();
    return n;
  }

  private async init(): Promise<void> {
    const o = this.o;
    const peers = o.peers instanceof Map ? o.peers : new Map(Object.entries(o.peers).map(([k, v]) => [Number(k), v] as const));
    const self = peers.get(o.id);
    if (!self) throw new Error(`raft node ${o.id}: no peer address for itself`);
    const rand = o.random ?? Math.random;
    this.storage = await LogStorage.open({
      ...o.storage,
      dir: o.dir,
      logger: this.log,
      onSync: (b) => this.metrics.observeSync(b),
    });
    try {
      const st = this.storage;
      if (isEmptyStorage(st)) {
        const voters = o.bootstrapVoters ?? [...peers.keys()].sort((a, b) => a - b);
        await bootstrapStorage(st, voters);
        this.log.info({ voters }, 'raft: bootstrapped a new member');
      }
      const snap = st.snapshot();
      // (a persistent state machine restores only if it is behind the snapshot: a restore from the
      // leader that a crash interrupted; the restore replaces it, so it does not recover first — the
      // log entries its recovery would need were discarded with the snapshot)
      const behind = snap !== undefined && snap.meta.index > 0 && (!this.sm.appliedIndex || this.sm.appliedIndex() < snap.meta.index);
      if (this.sm.recover && !behind) await this.sm.recover((lo, hi) => st.entries(lo, hi, 64 << 20));
      if (snap && behind) {
        await this.sm.restore(snap.data, snap.meta);
        this.log.info({ index: snap.meta.index, term: snap.meta.term }, 'raft: state machine restored from the local snapshot');
      }
      this.snapIndex = snap?.meta.index ?? 0;
      // a persistent state machine replays from what it applied itself (never past the log's end:
      // a store restored from a fuzzy snapshot may be ahead; entries up to its index are replays)
      const own = this.sm.appliedIndex?.() ?? 0;
      this.applied = this.smApplied = Math.max(this.snapIndex, Math.min(own, st.lastIndex()));
      const coreOpts: RaftCoreOptions = { leaseTicks: this.leaseTicks, applied: this.applied };
      this.core = new RaftCore(
        {
          id: o.id,
          electionTicks: o.electionTicks ?? 10,
          heartbeatTicks: o.heartbeatTicks ?? 1,
          preVote: true,
          checkQuorum: true,
          maxInflightMsgs: o.maxInflightMsgs ?? 256,
          maxInflightBytes: o.maxInflightBytes ?? 32 << 20,
          maxMsgBytes: o.maxMsgBytes ?? 1 << 20,
          snapshotChunkBytes: o.snapshotChunkBytes ?? 1 << 20,
          random: (k) => Math.floor(rand() * k),
        },
        st,
        st.hardState(),
        coreOpts,
      );
      this.lastTerm = this.durableTerm = st.hardState().term;
      this.syncedHard = { term: st.hardState().term, vote: st.hardState().vote };
      this.transport = new Transport({
        id: o.id,
        clusterId: o.clusterId,
        secret: o.secret,
        listenHost: self.host,
        listenPort: self.port,
        peers,
        random: rand,
        logger: this.log,
        onMessage: (m) => this.onMessage(m),
        onPeerDown: (p) => {
          if (!this.stopped) this.core.reportUnreachable(p);
        },
      });
      await this.transport.start();
    } catch (e) {
      await this.storage.close();
      throw e;
    }
    this.startMs = performance.now();
    this.ticker = setInterval(() => this.tick(), this.tickMs);
    this.log.info({ peers: [...peers.keys()], applied: this.applied, lastIndex: this.storage.lastIndex(), hardState: this.storage.hardState() }, 'raft node started');
    this.schedule();
  }

  // ------------------------------------------------------------------ public API

  /** Propose a command; resolves when it is committed and applied here. */
  propose(data: Uint8Array): Promise<{ index: number; term: number; result: unknown }> {
    if (this.stopped) return Promise.reject(this.fatalError ?? new ProposalFailedError('raft node stopped'));
    const r = this.core.propose(data);
    return this.track(r);
  }

  /** Membership: add a non-voting member (its address first goes to the transport). */
  addLearner(id: NodeId, addr: PeerAddress): Promise<{ index: number; term: number; result: unknown }> {
    this.transport.addPeer(id, addr);
    return this.confChange({ type: 'addLearner', node: id });
  }

  /** Learn (or change) a member's peer address without a membership change (replicated addresses). */
  setPeerAddress(id: NodeId, addr: PeerAddress): void {
    if (id === this.id || this.stopped) return;
    this.transport.addPeer(id, addr);
  }

  promote(id: NodeId): Promise<{ index: number; term: number; result: unknown }> {
    return this.confChange({ type: 'promote', node: id });
  }

  removeMember(id: NodeId): Promise<{ index: number; term: number; result: unknown }> {
    return this.confChange({ type: 'remove', node: id });
  }

  private confChange(cc: ConfChange): Promise<{ index: number; term: number; result: unknown }> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('raft node stopped'));
    return this.track(this.core.proposeConfChange(cc));
  }

  private track(r: ReturnType<RaftCore['propose']>): Promise<{ index: number; term: number; result: unknown }> {
    if ('error' in r) return Promise.reject(new NotLeaderError(r.leader, r.error));
    this.metrics.proposals.inc();
    this.schedule();
    return new Promise((resolve, reject) => {
      const old = this.proposals.get(r.index);
      if (old) {
        // an earlier proposal at this index (from an older term of ours) was overwritten
        clearTimeout(old.timer);
        old.reject(new ProposalFailedError(`proposal at index ${r.index} was replaced (term ${old.term} -> ${r.term})`));
      }
      const p: PendingProposal = { term: r.term, resolve, reject, timer: undefined as unknown as NodeJS.Timeout };
      p.timer = setTimeout(() => {
        if (this.proposals.get(r.index) === p) this.proposals.delete(r.index);
        reject(new ProposalFailedError(`proposal at index ${r.index} not applied within ${this.proposalTimeoutMs} ms`));
      }, this.proposalTimeoutMs);
      this.proposals.set(r.index, p);
    });
  }

  /** Linearizable read barrier: resolves with a log index once this node applied through it. */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('raft node stopped'));
    const id = ++this.readSeq;
    const r = this.core.readIndex(id);
    if ('error' in r) return Promise.reject(new NotLeaderError(r.leader, r.error));
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(id);
        const k = this.waitingReads.indexOf(p);
        if (k >= 0) this.waitingReads.splice(k, 1);
        reject(new ProposalFailedError('read index timed out (leadership changed?)'));
      }, this.readTimeoutMs);
      const p: PendingRead = { index: 0, resolve, reject, timer };
      this.reads.set(id, p);
    });
  }

  /** End of the leader lease in performance.now() milliseconds, with the safety margin taken off;
   * 0 if this node holds no lease. */
  leaseValidUntilMs(): number {
    if (this.stopped) return 0;
    // a sole voter leads for good: no other node can be elected, so no lease can run out (an event
    // loop stall must not make it stop serving)
    if (this.core.isSoleVoter() && this.core.role === Role.Leader) return Number.POSITIVE_INFINITY;
    const until = this.core.leaseValidUntil();
    if (!until) return 0;
    const sentTick = until - this.leaseTicks;
    const t0 = this.tickTime(sentTick);
    if (t0 === undefined) return 0;
    return t0 + this.leaseTicks * this.tickMs - this.leaseSafetyMs;
  }

  transferLeadership(to: NodeId): void {
    const r = this.core.transferLeadership(to);
    if ('error' in r) throw new NotLeaderError(r.leader, r.error);
    this.log.info({ to }, 'raft: leadership transfer requested');
    this.schedule();
  }

  /** Start an election now (operator / tests). */
  campaign(): void {
    this.core.campaign();
    this.schedule();
  }

  status(): RaftNodeStatus {
    return { ...this.core.status(), leaseValidUntilMs: this.leaseValidUntilMs(), storage: this.storage.stats(), transport: this.transport.stats() };
  }

  isLeader(): boolean {
    return !this.stopped && this.core.status().role === Role.Leader;
  }

  /** last entry applied (an asynchronous apply counts once it finished) */
  get appliedIndex(): number {
    return this.smApplied;
  }

  get failed(): Error | undefined {
    return this.fatalError;
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    for (let i = 0; this.running && i < 2000; i++) await new Promise((r) => setTimeout(r, 5));
    await this.transport.close();
    await this.storage.close();
    this.failAll(this.fatalError ?? new ProposalFailedError('raft node stopped'));
    this.log.info({}, 'raft node stopped');
  }

  // ------------------------------------------------------------------ loop

  private tick(): void {
    if (this.stopped) return;
    this.ticks++;
    this.tickTimes[this.ticks % this.tickTimes.length] = performance.now();
    this.core.tick();
    this.schedule();
  }

  private tickTime(k: number): number | undefined {
    if (k === 0) return this.startMs;
    if (k < 0 || k > this.ticks || k <= this.ticks - this.tickTimes.length) return undefined;
    return this.tickTimes[k % this.tickTimes.length];
  }

  private onMessage(m: Message): void {
    if (this.stopped) return;
    try {
      this.core.step(m);
    } catch (e) {
      this.log.error({ err: (e as Error).message, from: m.from, type: m.type }, 'raft: step failed');
      return;
    }
    if (this.restoring && m.type === MsgType.Heartbeat && m.term === this.durableTerm && this.core.term === m.term) {
      // Restoring a store snapshot blocks this node's Ready loop (minutes for a large store), so it
      // answers nothing from there; this "busy" answer (reject: no log position, no heartbeat round
      // acknowledged, so it counts for neither the lease nor a ReadIndex) tells the leader the node
      // is alive, and the leader keeps the log after the snapshot's index for it
      // (laggingFollowerFloor)
      this.transport.send({ type: MsgType.HeartbeatResp, from: this.id, to: m.from, term: m.term, reject: true });
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      while (!this.stopped && this.core.hasReady()) {
        const rd = this.core.ready();
        await this.handleReady(rd);
        if (this.stopped) return;
        this.core.advance(rd);
        this.afterAdvance();
      }
      if (!this.stopped) await this.maybeSnapshot();
    } catch (e) {
      this.fatal(e as Error);
    } finally {
      this.running = false;
    }
    if (!this.stopped && this.core.hasReady()) this.schedule();
  }

  private async handleReady(rd: Ready): Promise<void> {
    const st = this.storage;
    if (rd.hardState && rd.hardState.term > this.lastTerm) {
      if (rd.hardState.vote === this.id) {
        this.metrics.elections.inc();
        this.log.info({ term: rd.hardState.term }, 'raft: election started');
      }
      this.lastTerm = rd.hardState.term;
    }
    // 0. a leader's appends and heartbeats of an already durable term may leave before its own
    //    fsync (they promise nothing about this node's disk; the core counts the leader's own copy
    //    only after advance()). Votes and acknowledgements wait for the fsync below.
    //    A follower's heartbeat answer leaves early too, without the log position it carries (that
    //    claims entries durable: the full answer follows the fsync): the leader's lease and ReadIndex
    //    rounds must not wait behind this node's disk (a term it acknowledges is already durable).
    const late: Message[] = [];
    for (const m of rd.messages) {
      if ((m.type === MsgType.App || m.type === MsgType.Heartbeat || m.type === MsgType.Snap) && m.term <= this.durableTerm && m.to !== this.id) {
        this.transport.send(m);
      } else {
        if (m.type === MsgType.HeartbeatResp && m.term <= this.durableTerm && m.to !== this.id && (rd.entries.length > 0 || rd.snapshot)) {
          this.transport.send({ type: m.type, from: m.from, to: m.to, term: m.term, context: m.context });
        }
        late.push(m);
      }
    }
    // 1. persist: snapshot file (durable on return), then entries, then the hard state, one fsync
    //    (started here: the write to the OS happens now, the fdatasync runs in the thread pool)
    if (rd.snapshot) {
      await st.applySnapshot(rd.snapshot);
      this.metrics.snapshots.inc({ kind: 'installed' });
    }
    if (rd.entries.length > 0) st.append(rd.entries);
    // a hard state that only moves `commit` needs no fsync of its own (etcd's MustSync): nothing sent
    // depends on it and a lower commit after a crash is re-learned from the leader; its record goes
    // to disk with the next sync
    const voteOrTerm = rd.hardState !== undefined && (rd.hardState.term !== this.syncedHard.term || rd.hardState.vote !== this.syncedHard.vote);
    if (rd.hardState) st.setHardState(rd.hardState);
    const synced = rd.snapshot || rd.entries.length > 0 || voteOrTerm ? st.sync() : undefined;
    synced?.catch(() => undefined); // (awaited below; an apply that throws first must not leave it unhandled)
    // 2. while that fsync runs: committed entries this node already had on disk (every Ready before
    //    this one was synced before advance) are applied, so a proposal answered at commit does not
    //    also wait for the sync of the entries proposed after it (under load the next batch is always
    //    there: every answer cost two fsyncs). Entries committed in this very Ready (a follower's)
    //    wait for its sync, so the store never applies, and checkpoints, past this node's durable
    //    log. Not with a snapshot: it replaces the state machine first.
    let committed = rd.committed;
    if (!rd.snapshot && committed.length > 0) {
      const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : Infinity;
      let k = 0;
      while (k < committed.length && committed[k]!.index < firstNew) this.applyEntry(committed[k++]!);
      committed = k === 0 ? committed : committed.slice(k);
    }
    if (synced) {
      await synced;
      if (rd.hardState) this.syncedHard = { term: rd.hardState.term, vote: rd.hardState.vote };
    }
    this.durableTerm = this.syncedHard.term;
    if (this.stopped) return;
    // 3. send
    for (const m of late) {
      if (m.to === this.id) this.core.step(m);
      else this.transport.send(m);
    }
    // 4. apply the rest
    if (rd.snapshot) {
      const s: Snapshot = rd.snapshot;
      // the state machine is replaced: applies still running must finish first
      await this.applyTail;
      if (this.stopped) return;
      this.restoring = true;
      try {
        await this.sm.restore(s.data, s.meta);
      } finally {
        this.restoring = false;
      }
      if (this.stopped) return;
      this.applied = this.smApplied = this.snapIndex = s.meta.index;
      this.onApplied?.(this.smApplied);
      this.log.info({ index: s.meta.index, term: s.meta.term, bytes: s.data.length }, 'raft: state machine replaced by the leader snapshot');
      for (const [idx, p] of this.proposals) {
        if (idx <= s.meta.index) {
          clearTimeout(p.timer);
          this.proposals.delete(idx);
          p.reject(new ProposalFailedError(`outcome of proposal ${idx} unknown: superseded by a snapshot`));
        }
      }
    }
    for (const e of committed) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const p = this.reads.get(rs.id);
      if (!p) continue;
      this.reads.delete(rs.id);
      p.index = rs.index;
      this.waitingReads.push(p);
    }
    if (rd.softStateChanged) this.roleChanged();
  }

  private applyEntry(e: Entry): void {
    let result: unknown;
    if (e.type === EntryType.Normal) {
      result = this.sm.apply(e);
    } else if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.log.info({ index: e.index, change: cc }, 'raft: membership change applied');
      if (cc.type === 'remove') {
        if (cc.node === this.id) this.log.warn({}, 'raft: this node was removed from the cluster');
        else this.transport.removePeer(cc.node);
      }
    }
    this.applied = e.index;
    this.metrics.commits.inc();
    const p = this.proposals.get(e.index);
    if (p) {
      clearTimeout(p.timer);
      this.proposals.delete(e.index);
    }
    const settle = (r: unknown) => {
      if (!p) return;
      if (p.term === e.term) p.resolve({ index: e.index, term: e.term, result: r });
      else p.reject(new ProposalFailedError(`proposal at index ${e.index} was replaced by an entry of term ${e.term}`));
    };
    if (result instanceof Promise) {
      this.applying++;
      const done = result.then(
        (r) => {
          this.applying--;
          this.markApplied(e.index);
          settle(r);
        },
        (err: unknown) => {
          this.applying--;
          const error = err instanceof Error ? err : new Error(String(err));
          p?.reject(error);
          this.fatal(new Error(`apply of entry ${e.index} failed: ${error.message}`));
        },
      );
      this.applyTail = done;
      return;
    }
    if (this.applying === 0) this.markApplied(e.index);
    else {
      // after the asynchronous applies before it
      const idx = e.index;
      this.applyTail = this.applyTail.then(() => this.markApplied(idx));
    }
    settle(result);
  }

  /** Entries through `index` are applied: waiting reads may go, the owner hears of it. */
  private markApplied(index: number): void {
    if (index <= this.smApplied) return;
    this.smApplied = index;
    this.releaseReads();
    this.onApplied?.(index);
  }

  private releaseReads(): void {
    if (this.waitingReads.length === 0) return;
    const rest: PendingRead[] = [];
    for (const r of this.waitingReads) {
      if (r.index <= this.smApplied) {
        clearTimeout(r.timer);
        r.resolve(r.index);
      } else rest.push(r);
    }
    this.waitingReads = rest;
  }

  private afterAdvance(): void {
    this.releaseReads();
    const s = this.core.status();
    this.metrics.term.set(s.term);
    this.metrics.role.set(s.role);
    this.metrics.commitIndex.set(s.commit);
    this.metrics.appliedIndex.set(this.smApplied);
    if (s.role === Role.Leader) {
      const now = performance.now();
      for (const p of s.progress) {
        if (p.id === this.id) continue;
        if (p.recentActive) this.followerSeenMs.set(p.id, now);
        this.metrics.peerMatchIndex.set({ peer: String(p.id) }, p.match);
        this.metrics.peerLag.set({ peer: String(p.id) }, Math.max(0, s.lastIndex - p.match));
      }
    }
  }

  private roleChanged(): void {
    const s = this.core.status();
    if (s.role !== this.lastRole || s.leader !== this.lastLeader) {
      this.log.info({ term: s.term, role: ROLE_NAMES[s.role], leader: s.leader, previousRole: ROLE_NAMES[this.lastRole] }, 'raft: role changed');
      if (s.leader !== this.lastLeader) this.metrics.leaderChanges.inc();
      if (this.lastRole === Role.Leader && s.role !== Role.Leader) {
        this.metrics.peerMatchIndex.reset();
        this.metrics.peerLag.reset();
      }
      this.lastRole = s.role;
      this.lastLeader = s.leader;
      this.onRoleChange?.({ role: s.role, term: s.term, leader: s.leader, termStartIndex: s.lastIndex });
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.snapshotting) return;
    // (a store durable only up to its checkpoint keeps the entries after it)
    const index = Math.min(this.smApplied, this.sm.compactableIndex?.() ?? this.smApplied);
    if (index - this.snapIndex >= this.snapshotEntries) {
      this.snapshotting = true;
      try {
        const snap = this.core.compact(index, this.sm.snapshot(index));
        await this.storage.saveSnapshot(snap);
        this.snapIndex = index;
        this.metrics.snapshots.inc({ kind: 'local' });
        this.log.info({ index, term: snap.meta.term, bytes: snap.data.length }, 'raft: snapshot taken');
      } finally {
        this.snapshotting = false;
      }
    }
    // compact behind the latest snapshot as far as lagging followers allow (again later, when a
    // follower that held the log back has caught up or stopped counting)
    if (this.snapIndex === 0 || this.stopped) return;
    const first = this.storage.firstIndex();
    if (this.snapIndex - this.catchUp <= first - 1) return;
    const keepFrom = Math.max(first - 1, Math.min(this.snapIndex - this.catchUp, this.laggingFollowerFloor(this.snapIndex)));
    if (keepFrom > first - 1) {
      this.storage.compact(keepFrom);
      this.log.info({ snapshot: this.snapIndex, compactedTo: keepFrom }, 'raft: log compacted');
    }
  }


  /**
   * A leader keeps the entries its live followers still need (up to a bound): a follower catching
   * up from a snapshot that took a while must find the log after that snapshot's index, or it would
   * need another snapshot — and under steady writes might never catch up; so must a follower whose
   * restore just ended, replaying the log after the snapshot. A follower that stopped answering
   * for followerHoldMs, or lags more than 10 snapshot intervals while neither restoring a snapshot
   * nor replaying the log after one (its match advancing within followerHoldMs), does not hold
   * the log back.
   */
  private laggingFollowerFloor(index: number): number {
    if (this.followerHoldMs <= 0) return index;
    const s = this.core.status();
    if (s.role !== Role.Leader) return index;
    const bound = index - this.catchUp - 10 * this.snapshotEntries;
    let floor = index;
    const now = performance.now();
    for (const p of s.progress) {
      if (p.id === this.id) continue;
      if (p.recentActive) this.followerSeenMs.set(p.id, now);
      // (a follower restoring a store snapshot answers nothing for a while: it still counts as live
      // for followerHoldMs after it was last heard from)
      const seen = this.followerSeenMs.get(p.id);
      if (seen === undefined || now - seen > this.followerHoldMs) continue;
      // a follower sent a snapshot, or restoring one (it acknowledged the snapshot before its state
      // machine was replaced), needs the log from the snapshot's index on, however many entries were
      // written meanwhile (held while it is heard from: it answers heartbeats while it restores);
      // any other follower only within `bound`
      if (p.state === 'snapshot' || p.restoring) {
        floor = Math.min(floor, Math.max(p.match, p.pendingSnapshot));
        this.afterSnapshot.set(p.id, { match: p.match, progressMs: now });
        continue;
      }
      // a follower whose restore just ended is as far behind as the writes during the restore: it
      // replays the log from its snapshot's index and keeps holding it while its match advances
      // (until it is back within `bound`, or stalls for followerHoldMs). Dropping the hold the
      // moment the restore ended made the next compaction send a second snapshot.
      const a = this.afterSnapshot.get(p.id);
      if (a) {
        if (p.match > a.match) {
          a.match = p.match;
          a.progressMs = now;
        }
        if (p.match < bound && now - a.progressMs <= this.followerHoldMs) {
          floor = Math.min(floor, p.match);
          continue;
        }
        this.afterSnapshot.delete(p.id);
      }
      floor = Math.min(floor, Math.max(p.match, bound));
    }
    return floor;
  }

  private fatal(e: Error): void {
    if (this.fatalError) return;
    this.fatalError = e;
    this.log.fatal({ err: e.message, stack: e.stack }, 'raft node stopping on an unrecoverable error');
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.failAll(e);
    void this.transport.close();
    this.onFatal?.(e);
  }

  private failAll(e: Error): void {
    for (const p of this.proposals.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.proposals.clear();
    for (const r of [...this.reads.values(), ...this.waitingReads]) {
      clearTimeout(r.timer);
      r.reject(e);
    }
    this.reads.clear();
    this.waitingReads = [];
  }
}

function isEmptyStorage(st: LogStorage): boolean {
  return !st.snapshot() && st.lastIndex() === 0 && st.hardState().term === 0;
}

async function bootstrapStorage(st: LogStorage, voters: NodeId[]): Promise<void> {
  await st.saveSnapshot({ meta: { index: 0, term: 0, conf: { voters, learners: [], votersOutgoing: [] } }, data: new Uint8Array(0) });
}

/**
 * `hanfs cluster init`: write the initial membership into an empty Raft directory (the node then
 * starts as a voter of `voters`). Refuses a directory that already holds a log or a membership.
 */
export async function bootstrapRaftDir(dir: string, voters: NodeId[]): Promise<void> {
  const st = await LogStorage.open({ dir });
  try {
    if (!isEmptyStorage(st)) throw new Error(`${dir} already holds a Raft log or membership`);
    await bootstrapStorage(st, [...voters].sort((a, b) => a - b));
  } finally {
    await st.close();
  }
}

export function observeTransportMetrics(n: RaftNode): void {
  n.metrics.observeTransport(n.status().transport);
}
