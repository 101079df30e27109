/**
 * The node driver: one simulated server. It owns a core instance, the simulated storage and the KV
 * state machine, and follows the Ready rules: persist (hard state, entries, snapshot), wait for the
 * fsync (which completes after a random delay), then send the messages, apply what is committed,
 * serve ReadIndex reads, and advance. A crash drops the core and everything volatile; a restart
 * builds a new core from the durable storage.
 *
 * `bug` deliberately breaks the driver so tests can show the checkers notice.
 */
import { ConfChange, ConfState, EntryType, Message, RaftConfig, Ready, Role } from '../../../src/raft/types';
import { createCore, CoreStatus, decodeConfChange, SimCore, SNAPSHOT_RETAINS_SUFFIX } from './core-adapter';
import { hashBytes } from './hash';
import { encodeCommand, KvCommand, KvStateMachine, requestId } from './kv';
import { Prng } from './prng';
import { SimStorage, StorageListener } from './storage';

export type BugMode =
  | 'none'
  /** send the Ready's messages before its writes are durable */
  | 'send-before-persist'
  /** apply entries as soon as they are appended, before they are committed */
  | 'apply-uncommitted'
  /** acknowledge a write to the client as soon as the leader accepted the proposal */
  | 'ack-before-commit'
  /** store mode: one replica (n2) skips applying its third store op */
  | 'store-skip-op'
  /** store mode: ops are applied without their request key (no duplicate-request record: a resent
   * request that was committed twice executes twice) */
  | 'store-no-dedup'
  /** store mode: at start-up, recover (redo) the store before checking it against the durable Raft
   * snapshot — RaftNode.init's order before F4 was fixed */
  | 'store-recover-first';

export const BUG_MODES: BugMode[] = ['none', 'send-before-persist', 'apply-uncommitted', 'ack-before-commit', 'store-skip-op', 'store-no-dedup', 'store-recover-first'];

export type ClientRequest =
  | { kind: 'write'; client: number; seq: number; cmd: KvCommand }
  | { kind: 'read'; client: number; seq: number; key: string };

export type ClientReply =
  | { kind: 'ok'; client: number; seq: number; from: number; value?: string | null; fileid?: number }
  | { kind: 'notLeader'; client: number; seq: number; from: number; hint: number };

/** what a node needs from the simulator */
export interface NodeHost {
  readonly rng: Prng;
  readonly bug: BugMode;
  now(): number;
  after(delay: number, label: string, fn: () => void): void;
  trace(line: string): void;
  send(m: Message): void;
  reply(r: ClientReply): void;
  raftConfig(id: number): RaftConfig;
  readonly leaseReads: boolean;
  /** followers accept reads too (ReadIndex forwarded to the leader) */
  readonly followerReads: boolean;
  fsyncDelay(): number;
  /** applied index distance between local snapshots (Infinity: never) */
  snapshotEvery(): number;
  storageListener: StorageListener;
  // checkers' hooks
  observeStatus(node: number, st: CoreStatus): void;
  observeReady(node: SimNode, rd: Ready, st: CoreStatus): void;
  observeApply(node: number, index: number, term: number, dataHash: number, chain: number, applierTerm: number, voters: number[][]): void;
  observeSnapshotInstalled(node: number, index: number, chain: number): void;
  confApplied(node: number, cc: ConfChange): void;
  acked(req: ClientRequest & { kind: 'write' }): void;
  violation(kind: string, msg: string): never;
  /** store mode: run `fn` after the current event, serially with every other deferred function (the
   * event loop awaits them in order before it takes the next event, so the run stays a function of
   * the seed) */
  defer?(fn: () => Promise<void>): void;
}

export class SimNode {
  storage: SimStorage;
  core: SimCore | undefined;
  sm: KvStateMachine;
  alive = false;
  /** bumped at every crash; events of an earlier life are ignored */
  epoch = 0;
  private inflight: Ready | undefined;
  /** a Ready's applies are running asynchronously (store mode): no further Ready until they are done */
  protected busy = false;
  protected pendingWrites = new Map<string, ClientRequest & { kind: 'write' }>();
  private readCtx = 0;
  protected pendingReads = new Map<number, ClientRequest & { kind: 'read' }>();
  protected readWaits: { index: number; req: ClientRequest & { kind: 'read' } }[] = [];
  private lastRole: Role = Role.Follower;
  /** the last entry applied ahead of its Ready's fsync (applyDurableCommitted) */
  private earlyApplied = 0;
  /** ticks per nominal tick, e.g. 0.95 */
  tickPeriod: number;
  crashes = 0;
  snapshotsMade = 0;
  snapshotsInstalled = 0;

  constructor(
    readonly id: number,
    protected readonly host: NodeHost,
    readonly bootConf: ConfState,
    tickPeriod: number,
  ) {
    this.tickPeriod = tickPeriod;
    this.storage = new SimStorage(id, bootConf, host.storageListener, SNAPSHOT_RETAINS_SUFFIX);
    this.sm = new KvStateMachine(bootConf);
  }

  /** a start is under way (store mode: the store is being opened) */
  get isStarting(): boolean {
    return false;
  }

  /** start (first boot or restart) from the durable storage */
  start(): void {
    const snap = this.storage.snapshot();
    this.sm = snap && snap.meta.index > 0 ? this.smFromSnapshot(snap.data) : new KvStateMachine(snap?.meta.conf ?? this.bootConf);
    this.core = this.guard(() =>
      createCore(this.host.raftConfig(this.id), this.storage, { hardState: this.storage.hardState(), applied: this.startApplied(), leaseReads: this.host.leaseReads }),
    );
    this.alive = true;
    this.inflight = undefined;
    this.busy = false;
    this.lastRole = Role.Follower;
    this.earlyApplied = 0;
    this.host.trace(`n${this.id} start ${this.storage.durableSummary()} applied ${this.sm.appliedIndex}`);
    this.pump();
  }

  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    this.epoch++;
    this.crashes++;
    const what = this.storage.crash(this.host.rng, true);
    this.core = undefined;
    this.inflight = undefined;
    this.busy = false;
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.readWaits = [];
    this.host.trace(`n${this.id} crash ${what} -> ${this.storage.durableSummary()}`);
  }

  status(): CoreStatus | undefined {
    return this.core && this.alive ? this.guard(() => this.core!.status()) : undefined;
  }

  isLeader(): boolean {
    return this.status()?.role === Role.Leader;
  }

  tick(): void {
    if (!this.alive) return;
    this.guard(() => this.core!.tick());
    this.pump();
  }

  receive(m: Message): void {
    if (!this.alive) return;
    this.guard(() => this.core!.step(m));
    this.pump();
  }

  clientRequest(req: ClientRequest): void {
    if (!this.alive) return;
    const st = this.status()!;
    if (st.role !== Role.Leader && !(req.kind === 'read' && this.host.followerReads && st.role === Role.Follower && st.leader)) {
      this.host.reply({ kind: 'notLeader', client: req.client, seq: req.seq, from: this.id, hint: st.leader });
      return;
    }
    if (req.kind === 'write') {
      const ok = this.guard(() => this.core!.propose(this.encodeWrite(req)));
      if (!ok) {
        this.host.reply({ kind: 'notLeader', client: req.client, seq: req.seq, from: this.id, hint: 0 });
      } else if (this.host.bug === 'ack-before-commit') {
        this.host.acked(req);
        this.host.reply({ kind: 'ok', client: req.client, seq: req.seq, from: this.id });
      } else {
        this.pendingWrites.set(requestId(req.client, req.seq), req);
      }
    } else {
      const ctx = ++this.readCtx;
      const ok = this.guard(() => this.core!.readIndex(ctx));
      if (!ok) {
        this.host.reply({ kind: 'notLeader', client: req.client, seq: req.seq, from: this.id, hint: st.role === Role.Leader ? 0 : st.leader });
      } else {
        this.pendingReads.set(ctx, req);
      }
    }
    this.pump();
  }

  transferLeadership(to: number): boolean {
    if (!this.alive) return false;
    const ok = this.guard(() => this.core!.transferLeadership(to));
    this.pump();
    return ok;
  }

  proposeConfChange(cc: ConfChange): boolean {
    if (!this.alive) return false;
    const ok = this.guard(() => this.core!.proposeConfChange(cc));
    this.pump();
    return ok;
  }

  /** handle Readies until the core has none, or one waits for its fsync */
  pump(): void {
    while (this.alive && !this.inflight && !this.busy) {
      const core = this.core!;
      const st = this.guard(() => core.status());
      this.host.observeStatus(this.id, st);
      if (st.role !== this.lastRole) {
        // read requests in the core are dropped when leadership changes: forget them (clients retry)
        this.pendingReads.clear();
        this.lastRole = st.role;
      }
      if (!this.guard(() => core.hasReady())) return;
      const rd = this.guard(() => core.ready());
      this.host.observeReady(this, rd, st);
      if (rd.snapshot) this.storage.write({ k: 'snap', snap: rd.snapshot });
      if (rd.entries.length > 0) this.storage.write({ k: 'ents', ents: rd.entries });
      if (rd.hardState) this.storage.write({ k: 'hs', hs: rd.hardState });
      if (this.host.bug === 'send-before-persist') {
        for (const m of rd.messages) this.host.send(m);
      }
      if (this.host.bug === 'apply-uncommitted') this.applyUncommitted(rd);
      else if (!this.asyncApply && !rd.snapshot) this.applyDurableCommitted(rd);
      if (!this.storage.hasPending()) {
        this.complete(rd);
        continue;
      }
      this.inflight = rd;
      const epoch = this.epoch;
      this.host.after(this.host.fsyncDelay(), `n${this.id} fsync`, () => {
        if (this.epoch !== epoch || this.inflight !== rd) return;
        this.inflight = undefined;
        this.complete(rd);
        this.pump();
      });
      return;
    }
  }

  /** the entry data of a client write */
  protected encodeWrite(req: ClientRequest & { kind: 'write' }): Uint8Array {
    return encodeCommand(req.cmd);
  }

  /** the Ready's writes are durable: send, apply, advance */
  private complete(rd: Ready): void {
    this.storage.sync();
    if (this.host.bug !== 'send-before-persist') {
      for (const m of rd.messages) this.host.send(m);
    }
    if (this.asyncApply) {
      // store mode: the applies are asynchronous; the node handles no other Ready meanwhile
      this.busy = true;
      const epoch = this.epoch;
      this.host.defer!(async () => {
        if (this.epoch !== epoch) return;
        await this.completeAsync(rd);
        if (this.epoch !== epoch) return;
        this.busy = false;
        this.pump();
      });
      return;
    }
    if (rd.snapshot) {
      const s = rd.snapshot;
      if (s.meta.index > this.sm.appliedIndex || this.host.bug !== 'apply-uncommitted') {
        this.sm = s.data.length > 0 ? KvStateMachine.restore(s.data) : new KvStateMachine(s.meta.conf);
        if (this.sm.appliedIndex !== s.meta.index) {
          this.host.violation('snapshot', `n${this.id} snapshot meta index ${s.meta.index} but its state is at ${this.sm.appliedIndex}`);
        }
        this.snapshotsInstalled++;
        this.host.trace(`n${this.id} install snapshot ${s.meta.index}/${s.meta.term}`);
        this.host.observeSnapshotInstalled(this.id, s.meta.index, this.sm.chain);
      }
    }
    const term = this.guard(() => this.core!.status().term);
    for (const e of rd.committed) {
      if (e.index <= this.sm.appliedIndex && this.host.bug === 'apply-uncommitted') continue;
      if (e.index <= this.earlyApplied) continue; // applied before this Ready's fsync
      if (e.index !== this.sm.appliedIndex + 1) {
        this.host.violation('apply-order', `n${this.id} committed entry ${e.index} handed out after applied ${this.sm.appliedIndex}`);
      }
      this.applyEntry(e.index, e.term, e.type, e.data, term, true);
    }
    for (const rs of rd.readStates) {
      const req = this.pendingReads.get(rs.id);
      if (!req) continue;
      this.pendingReads.delete(rs.id);
      this.readWaits.push({ index: rs.index, req });
    }
    this.serveReads();
    this.guard(() => this.core!.advance(rd));
    this.maybeSnapshot();
  }

  /** the applied index the core starts from (the state machine's, restored from the snapshot) */
  protected startApplied(): number {
    return this.sm.appliedIndex;
  }

  /** the harness state machine kept in a snapshot's data */
  protected smFromSnapshot(data: Uint8Array): KvStateMachine {
    return KvStateMachine.restore(data);
  }

  /** store mode (StoreSimNode): Readies complete through completeAsync, run by host.defer */
  protected get asyncApply(): boolean {
    return false;
  }

  /** store mode (StoreSimNode): install, apply, serve reads and advance, asynchronously */
  protected completeAsync(_rd: Ready): Promise<void> {
    throw new Error('completeAsync: not a store node');
  }

  private applyEntry(index: number, term: number, type: EntryType, data: Uint8Array, applierTerm: number, committed: boolean): void {
    const sm = this.sm;
    // the voters that may have decided this entry's commit: the membership before it, or the one
    // before the last change (a change commits together with the entries after it, counted by the
    // old membership; single-server changes make the two majorities overlap)
    const voters = [sm.conf.voters, sm.prevVoters];
    if (type === EntryType.Normal) {
      const res = sm.applyNormal(index, term, data);
      if (res) {
        const id = requestId(res.cmd.client, res.cmd.seq);
        const req = this.pendingWrites.get(id);
        if (req) {
          this.pendingWrites.delete(id);
          this.host.acked(req);
          this.host.reply({ kind: 'ok', client: req.client, seq: req.seq, from: this.id });
        }
      }
    } else if (type === EntryType.ConfChange) {
      this.applyConfEntry(index, term, data, committed);
    } else {
      sm.applyNoop(index, term, data);
    }
    this.host.observeApply(this.id, index, term, hashBytes(data) + type, sm.chain, applierTerm, voters);
  }

  protected applyConfEntry(index: number, term: number, data: Uint8Array, committed: boolean): void {
    const cc = this.guard(() => decodeConfChange(data));
    this.sm.applyConf(index, term, data, cc);
    if (committed) {
      this.guard(() => this.core!.applyConfChange(cc));
      this.host.confApplied(this.id, cc);
    }
  }

  /**
   * As RaftNode does: committed entries this node already has on disk (each earlier Ready was synced
   * before advance) are applied before this Ready's own fsync; those that arrive in this Ready wait
   * for it.
   */
  private applyDurableCommitted(rd: Ready): void {
    const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : Infinity;
    const term = this.guard(() => this.core!.status().term);
    for (const e of rd.committed) {
      if (e.index >= firstNew) break;
      if (e.index !== this.sm.appliedIndex + 1) {
        this.host.violation('apply-order', `n${this.id} committed entry ${e.index} handed out after applied ${this.sm.appliedIndex}`);
      }
      this.applyEntry(e.index, e.term, e.type, e.data, term, true);
      this.earlyApplied = e.index;
    }
  }

  private applyUncommitted(rd: Ready): void {
    for (const e of rd.entries) {
      if (e.index !== this.sm.appliedIndex + 1 || e.type === EntryType.ConfChange) continue;
      this.applyEntry(e.index, e.term, e.type, e.data, this.status()!.term, false);
    }
  }

  private serveReads(): void {
    if (this.readWaits.length === 0) return;
    const keep: typeof this.readWaits = [];
    for (const w of this.readWaits) {
      if (this.sm.appliedIndex >= w.index) {
        this.host.reply({ kind: 'ok', client: w.req.client, seq: w.req.seq, from: this.id, value: this.sm.get(w.req.key) });
      } else {
        keep.push(w);
      }
    }
    this.readWaits = keep;
  }

  private maybeSnapshot(): void {
    const every = this.host.snapshotEvery();
    const applied = this.sm.appliedIndex;
    if (!Number.isFinite(every) || applied - this.storage.snapshotIndex() < every) return;
    if (this.host.bug === 'apply-uncommitted') return; // the state machine runs ahead of the core's applied index
    if (this.storage.hasPending() || this.storage.term(applied) !== this.sm.appliedTerm) return;
    const snap = this.guard(() => this.core!.compact(applied, this.sm.serialize(), this.sm.conf, this.sm.appliedTerm));
    const c = snap.meta.conf;
    const mine = this.sm.conf;
    if (snap.meta.index !== applied || snap.meta.term !== this.sm.appliedTerm || c.voters.join() !== mine.voters.join() ||
        c.learners.join() !== mine.learners.join() || c.votersOutgoing.length !== 0) {
      this.host.violation('snapshot', `n${this.id} compact(${applied}) gave meta ${JSON.stringify(snap.meta)}; ` +
        `the state machine is at ${applied}/${this.sm.appliedTerm} with voters [${mine.voters}] learners [${mine.learners}]`);
    }
    this.storage.createSnapshot(snap);
    this.snapshotsMade++;
    this.host.trace(`n${this.id} snapshot at ${applied}`);
  }

  /** run a call into the core; an exception from it is a finding */
  protected guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof SimViolation) throw e;
      const msg = e instanceof Error ? `${e.message}\n${e.stack?.split('\n').slice(1, 6).join('\n')}` : String(e);
      this.host.violation('core-exception', `n${this.id}: ${msg}`);
    }
  }
}

export class SimViolation extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
  }
}
