/**
 * RaftNode: the I/O driver around the pure core (core.ts). It owns the durable log storage, the TCP
 * transport and a monotonic tick clock, and runs the Ready loop:
 *
 *   ready() -> persist snapshot / entries / hard state (one group-commit fsync) -> send messages
 *           -> apply the snapshot and committed entries to the state machine -> advance()
 *
 * propose() resolves once the entry is committed AND applied on this node. Any storage failure stops
 * the node (onFatal): nothing is acknowledged that was not durably persisted.
 *
 * The Ready loop, the public API and the node's life cycle live here; its collaborators by concern:
 * raft-node-startup.ts (bootstrap, state machine recovery at start-up), tick-clock.ts (ticks and the
 * lease in milliseconds), pending-requests.ts (what propose() and readIndex() wait for),
 * state-machine-applier.ts (applying committed entries, asynchronous applies), log-compactor.ts
 * (snapshots and log compaction) with follower-log-hold.ts (the log prefix a leader keeps for
 * lagging followers) and role-change-notifier.ts; the API types are in raft-node-api.ts.
 */
import { performance } from 'node:perf_hooks';
import pino, { Logger } from 'pino';
import { decodeConfChange } from './confchange';
import { RaftCore, RaftCoreOptions } from './core';
import { FOLLOWER_HOLD_MS, FollowerLogHold } from './follower-log-hold';
import { LogCompactor } from './log-compactor';
import { LogStorage } from './log-storage';
import { PendingProposals, PendingReads, ProposalResult } from './pending-requests';
import { RaftMetrics } from './raft-metrics';
import { bootstrapStorage, isEmptyStorage, recoverStateMachine } from './raft-node-startup';
import { RoleChangeNotifier } from './role-change-notifier';
import { StateMachineApplier } from './state-machine-applier';
import { TickClock } from './tick-clock';
import { PeerAddress, Transport } from './transport';
import { ConfChange, Entry, Message, MsgType, NodeId, Ready, Role, Snapshot } from './types';

export { bootstrapRaftDir } from './raft-node-startup';
export { NotLeaderError, ProposalFailedError, type StateMachine, type RoleChange, type RaftNodeOptions, type RaftNodeStatus } from './raft-node-api';
import { NotLeaderError, ProposalFailedError, type StateMachine, type RaftNodeOptions, type RaftNodeStatus } from './raft-node-api';

/**
 * Entry bytes sent to one follower and not yet acknowledged (default of maxInflightBytes). A byte in
 * the window can be held more than once on the leader (the entries read back from the log, their encoded
 * frame in the peer's send queue, the socket's buffer), and a follower catching up after a store
 * snapshot keeps its window full for as long as it lags. With 32 MiB the leader of the 100 000-file
 * catch-up bench (4th node joining, bench/catchup-bench.ts) peaked at 454 MB RSS during the join
 * (248 MB just before it); with 8 MiB, 259 MB (224 MB before it). One run each, same machine; which
 * copy dominates was not traced. The fill itself peaked at 219-254 MB in both. 8 MiB is still 8
 * messages of maxMsgBytes in flight.
 */
export const MAX_INFLIGHT_BYTES = 8 << 20;

export class RaftNode {
  readonly id: NodeId;
  readonly metrics: RaftMetrics;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly leaseTicks: number;
  private readonly snapshotEntries: number;
  private readonly catchUp: number;
  private readonly sm: StateMachine;
  private readonly onFatal?: (e: Error) => void;

  private core!: RaftCore;
  private storage!: LogStorage;
  private transport!: Transport;
  private ticker: NodeJS.Timeout | undefined;
  private readonly clock: TickClock;

  private scheduled = false;
  private running = false;
  private stopped = false;
  private fatalError: Error | undefined;
  private stopping: Promise<void> | undefined;
  private readonly proposals: PendingProposals;
  private readonly reads: PendingReads;
  private applier!: StateMachineApplier;
  private compactor!: LogCompactor;
  /** leader: the log prefix its followers still need (compaction) */
  private readonly hold: FollowerLogHold;
  private readonly onApplied?: (index: number) => void;
  private readonly roles: RoleChangeNotifier;
  private lastTerm = 0;
  /** term of the hard state known to be on disk */
  private durableTerm = 0;
  /** the state machine is being replaced by a leader snapshot (a store restore can take minutes) */
  private restoring = false;
  private syncedHard = { term: 0, vote: 0 };

  private constructor(private readonly o: RaftNodeOptions) {
    this.id = o.id;
    this.log = (o.logger ?? pino({ level: 'info' })).child({ raftNode: o.id });
    this.metrics = new RaftMetrics(o.registry);
    this.tickMs = o.tickMs ?? 100;
    const et = o.electionTicks ?? 10;
    this.leaseTicks = o.leaseTicks ?? Math.max(1, Math.floor(et * 0.8));
    this.snapshotEntries = o.snapshotEntries ?? 10_000;
    this.catchUp = o.snapshotCatchUpEntries ?? 1000;
    this.proposals = new PendingProposals(o.proposalTimeoutMs ?? 30_000);
    this.reads = new PendingReads(o.readTimeoutMs ?? 10_000);
    this.sm = o.stateMachine;
    this.onFatal = o.onFatal;
    this.onApplied = o.onApplied;
    this.hold = new FollowerLogHold({
      selfId: o.id,
      followerHoldMs: o.followerHoldMs ?? FOLLOWER_HOLD_MS,
      catchUpEntries: this.catchUp,
      snapshotEntries: this.snapshotEntries,
    });
    this.roles = new RoleChangeNotifier(this.log, this.metrics, o.onRoleChange);
    this.clock = new TickClock({ tickMs: this.tickMs, leaseTicks: this.leaseTicks, leaseSafetyMs: o.leaseSafetyMs ?? this.tickMs, remember: Math.max(64, et * 8) });
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
      const { snapIndex, applied } = await recoverStateMachine(st, this.sm, this.log);
      this.applier = new StateMachineApplier(
        {
          stateMachine: this.sm,
          proposals: this.proposals,
          metrics: this.metrics,
          readEntries: (lo, hi, maxBytes) => this.storage.entries(lo, hi, maxBytes),
          wake: () => this.schedule(),
          applyConfChange: (e) => this.applyConfChange(e),
          applied: (index) => {
            this.reads.release(index);
            this.onApplied?.(index);
          },
          failed: (e) => this.fatal(e),
        },
        applied,
        o.maxApplyingBytes,
      );
      const coreOpts: RaftCoreOptions = { leaseTicks: this.leaseTicks, applied };
      this.core = new RaftCore(
        {
          id: o.id,
          electionTicks: o.electionTicks ?? 10,
          electionJitterTicks: o.electionJitterTicks ?? Math.max(1, Math.ceil((o.electionTicks ?? 10) / 2)),
          heartbeatTicks: o.heartbeatTicks ?? 1,
          preVote: true,
          checkQuorum: true,
          maxInflightMsgs: o.maxInflightMsgs ?? 256,
          maxInflightBytes: o.maxInflightBytes ?? MAX_INFLIGHT_BYTES,
          maxMsgBytes: o.maxMsgBytes ?? 1 << 20,
          snapshotChunkBytes: o.snapshotChunkBytes ?? 1 << 20,
          random: (k) => Math.floor(rand() * k),
        },
        st,
        st.hardState(),
        coreOpts,
      );
      this.compactor = new LogCompactor({
        core: this.core,
        storage: st,
        stateMachine: this.sm,
        metrics: this.metrics,
        logger: this.log,
        hold: this.hold,
        snapshotEntries: this.snapshotEntries,
        catchUpEntries: this.catchUp,
        snapIndex,
        appliedIndex: () => this.applier.appliedIndex,
        stopped: () => this.stopped,
      });
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
    this.clock.start();
    this.ticker = setInterval(() => this.tick(), this.tickMs);
    this.log.info({ peers: [...peers.keys()], applied: this.applier.handedIndex, lastIndex: this.storage.lastIndex(), hardState: this.storage.hardState() }, 'raft node started');
    this.schedule();
  }

  // ------------------------------------------------------------------ public API

  /** Propose a command; resolves when it is committed and applied here. */
  propose(data: Uint8Array): Promise<ProposalResult> {
    if (this.stopped) return Promise.reject(this.fatalError ?? new ProposalFailedError('raft node stopped'));
    const r = this.core.propose(data);
    return this.track(r);
  }

  /** Membership: add a non-voting member (its address first goes to the transport). */
  addLearner(id: NodeId, addr: PeerAddress): Promise<ProposalResult> {
    this.transport.addPeer(id, addr);
    return this.confChange({ type: 'addLearner', node: id });
  }

  /** Learn (or change) a member's peer address without a membership change (replicated addresses). */
  setPeerAddress(id: NodeId, addr: PeerAddress): void {
    if (id === this.id || this.stopped) return;
    this.transport.addPeer(id, addr);
  }

  promote(id: NodeId): Promise<ProposalResult> {
    return this.confChange({ type: 'promote', node: id });
  }

  removeMember(id: NodeId): Promise<ProposalResult> {
    return this.confChange({ type: 'remove', node: id });
  }

  private confChange(cc: ConfChange): Promise<ProposalResult> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('raft node stopped'));
    return this.track(this.core.proposeConfChange(cc));
  }

  private track(r: ReturnType<RaftCore['propose']>): Promise<ProposalResult> {
    if ('error' in r) return Promise.reject(new NotLeaderError(r.leader, r.error));
    this.metrics.proposals.inc();
    this.schedule();
    return this.proposals.track(r.index, r.term);
  }

  /** Linearizable read barrier: resolves with a log index once this node applied through it. */
  readIndex(): Promise<number> {
    if (this.stopped) return Promise.reject(new ProposalFailedError('raft node stopped'));
    const id = this.reads.nextId();
    const r = this.core.readIndex(id);
    if ('error' in r) return Promise.reject(new NotLeaderError(r.leader, r.error));
    this.schedule();
    return this.reads.track(id);
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
    return this.clock.leaseEndMs(until);
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
    return this.applier.appliedIndex;
  }

  /** entry bytes handed to the state machine whose apply has not finished (at most about
   * maxApplyingBytes: committed entries beyond it wait in the log) */
  get applyingBytes(): number {
    return this.applier.applyingBytes;
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
    this.clock.tick();
    this.core.tick();
    this.schedule();
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
      // (follower-log-hold.ts)
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
      // committed entries left in the log while the state machine was at its cap
      this.applier.resume();
      while (!this.stopped && this.core.hasReady()) {
        const rd = this.core.ready();
        await this.handleReady(rd);
        if (this.stopped) return;
        this.core.advance(rd);
        this.afterAdvance();
        this.applier.resume();
      }
      if (!this.stopped) await this.compactor.maybeSnapshot();
    } catch (e) {
      this.fatal(e as Error);
    } finally {
      this.running = false;
    }
    if (!this.stopped && (this.core.hasReady() || this.applier.canResume)) this.schedule();
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
      while (k < committed.length && committed[k]!.index < firstNew) this.applier.offer(committed[k++]!);
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
      await this.applier.tail;
      if (this.stopped) return;
      this.restoring = true;
      try {
        await this.sm.restore(s.data, s.meta);
      } finally {
        this.restoring = false;
      }
      if (this.stopped) return;
      this.applier.replacedBySnapshot(s.meta.index);
      this.compactor.snapshotRestored(s.meta.index);
      this.onApplied?.(this.applier.appliedIndex);
      this.log.info({ index: s.meta.index, term: s.meta.term, bytes: s.data.length }, 'raft: state machine replaced by the leader snapshot');
      this.proposals.supersede(s.meta.index);
    }
    // (handed over now, or, with the state machine at its cap (maxApplyingBytes), read back from the
    // log once its applies finish: the loop never waits for the state machine)
    for (const e of committed) this.applier.offer(e);
    this.reads.answered(rd.readStates);
    if (rd.softStateChanged) this.roles.check(this.core.status());
  }

  /** a ConfChange entry is applied: a removed member's address leaves the transport */
  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    this.log.info({ index: e.index, change: cc }, 'raft: membership change applied');
    if (cc.type === 'remove') {
      if (cc.node === this.id) this.log.warn({}, 'raft: this node was removed from the cluster');
      else this.transport.removePeer(cc.node);
    }
  }

  private afterAdvance(): void {
    this.reads.release(this.applier.appliedIndex);
    const s = this.core.status();
    this.metrics.term.set(s.term);
    this.metrics.role.set(s.role);
    this.metrics.commitIndex.set(s.commit);
    this.metrics.appliedIndex.set(this.applier.appliedIndex);
    if (s.role === Role.Leader) {
      const now = performance.now();
      for (const p of s.progress) {
        if (p.id === this.id) continue;
        this.hold.noteActive(p, now);
        this.metrics.peerMatchIndex.set({ peer: String(p.id) }, p.match);
        this.metrics.peerLag.set({ peer: String(p.id) }, Math.max(0, s.lastIndex - p.match));
      }
    }
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
    this.proposals.failAll(e);
    this.reads.failAll(e);
  }
}

export function observeTransportMetrics(n: RaftNode): void {
  n.metrics.observeTransport(n.status().transport);
}
