/**
 * The deterministic simulation: a cluster of node drivers over a simulated network and simulated
 * disks, a client workload, a fault schedule (message loss, duplication, reordering, delays,
 * asymmetric partitions that heal, crashes with torn unsynced writes, per-node clock skew),
 * membership changes and snapshots, all drawn from one seeded PRNG. Time is simulated: TICK units
 * make one nominal Raft tick. Same seed and options => the same run, event for event.
 *
 * After the main phase the network heals, crashed nodes restart and clients stop issuing; once the
 * cluster settles (bounded), the end checks run: acknowledged writes executed exactly once on every
 * live member, identical state machines, and linearizability of the client history.
 *
 * Store mode (`store: true`, see store-node.ts): every node's state machine is the real replicated
 * block store; `runSimulationStore` runs the same loop but awaits, after each event, the store work
 * the event started (deferred functions, serially), and the end checks compare the stores' digests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LevelBlockStore } from '../../../src/store/block-store';
import { describeDifference, digestChecksum, firstDifference } from '../../../src/store/checksum';
import type { Time } from '../../../src/store/types';
import { StoreNodeHost, StoreSimNode } from './store-node';
import { STORE_KEYS } from './store-keys';
import { ConfChange, ConfState, Message, MsgType, RaftConfig, Ready, Role } from '../../../src/raft/types';
import { Checkers } from './checkers';
import { ClientHost, ClientParams, SimClient } from './client';
import { CoreStatus } from './core-adapter';
import { EventQueue } from './events';
import { TraceHasher } from './hash';
import { requestId } from './kv';
import { checkOperations, KvOperation, kvModel } from './linearizability';
import { BugMode, ClientReply, ClientRequest, NodeHost, SimNode, SimViolation } from './node';
import { decodeMessage, encodeMessage } from '../../../src/raft/message-codec';
import { Prng } from './prng';
import { StorageError } from './storage';

export const TICK = 100;
/** a run with more pending events than this is stopped (memory bound) */
const MAX_QUEUE = 200_000;

export interface SimOptions {
  seed: number;
  /** initial voters: 3 or 5 */
  nodes: number;
  /** length of the faulty main phase, in nominal ticks */
  ticks: number;
  /** bound on the settle phase, in nominal ticks */
  settleTicks?: number;
  bug?: BugMode;
  /** called with every trace line */
  log?: (line: string) => void;
  /** how many trace lines to keep for a failure report */
  tail?: number;
  /** search bound of the linearizability checker per key */
  linearizabilitySteps?: number;
  /** fault intensity multiplier (bug-injection tests turn it up) */
  faultScale?: number;
  /** a node added to the cluster boots with the bootstrap membership snapshot of the initial voters
   * instead of empty storage (the documented way, docs/raft.md "Joining node"); see Findings F1 */
  joinBootstrap?: boolean;
  /** check that acks and votes leave only once what they promise is durable (default true) */
  promiseChecks?: boolean;
  /** pass every peer message through the wire codec (src/raft/message-codec.ts) and check it comes
   * back equal (default true; transparent to the run: the same seed gives the same trace) */
  codec?: boolean;
  /** override parameters drawn from the seed (experiments; part of the replay command) */
  set?: Partial<SimParams>;
  /** store mode: the real block store is every node's state machine (run with runSimulationStore) */
  store?: boolean;
  /** store mode: parent directory of the run's store directories (default /dev/shm, else the OS temp dir) */
  storeDir?: string;
}

/** knobs drawn from the seed (swarm testing: each seed gets its own mix of faults) */
export interface SimParams {
  loss: number;
  dup: number;
  delayMax: number;
  longDelayP: number;
  longDelayMax: number;
  fsyncMax: number;
  skew: number;
  partitionP: number;
  partitionMax: number;
  crashP: number;
  downMax: number;
  crashMajorityOk: boolean;
  membership: boolean;
  membershipEvery: number;
  snapshotEvery: number;
  clients: number;
  keys: number;
  heartbeatTicks: number;
  electionTicks: number;
  /** the random part of the election timeout (RaftConfig.electionJitterTicks) */
  electionJitterTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxInflightMsgs: number;
  maxMsgBytes: number;
  snapshotChunkBytes: number;
  leaseReads: boolean;
  followerReads: boolean;
  transferP: number;
  /** links deliver in order (TCP-like); otherwise messages on one link may overtake each other */
  fifo: boolean;
  /** store mode: applied-index distance between a node's store checkpoints (each followed by a digest) */
  checkpointEvery?: number;
  /** store mode: probability that a node's store writer writes its held batches after a Ready (a
   * crash loses the rest) */
  storeFlushP?: number;
}

export interface SimStats {
  events: number;
  simTicks: number;
  ops: number;
  acked: number;
  gaveUp: number;
  leaders: number;
  maxTerm: number;
  committed: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  snapshotsMade: number;
  snapshotsInstalled: number;
  messages: number;
  linearizability: string;
  settledAfterTicks: number;
  /** store mode: store digests compared (at checkpoints and at the end), redo recoveries */
  digests: number;
  redos: number;
  /** store mode: unwritten writer writes (LevelDB batches of one or more ops) lost by crashes */
  lostBatches: number;
}

export interface SimResult {
  seed: number;
  nodes: number;
  ticks: number;
  bug: BugMode;
  ok: boolean;
  violation?: { kind: string; message: string };
  traceHash: string;
  lastEvents: string[];
  params: SimParams;
  stats: SimStats;
  replay: string;
}

export function replayCommand(o: { seed: number; nodes: number; ticks: number; bug?: BugMode; faultScale?: number; joinBootstrap?: boolean; settleTicks?: number; promiseChecks?: boolean; codec?: boolean; set?: Partial<SimParams>; store?: boolean }): string {
  return (
    `npm run sim -- ${o.store ? '--store ' : ''}--seed ${o.seed} --seeds 1 --nodes ${o.nodes} --steps ${o.ticks}` +
    (o.joinBootstrap ? ' --join-bootstrap' : '') +
    (o.promiseChecks === false ? ' --no-promise-checks' : '') +
    (o.codec === false ? ' --no-codec' : '') +
    Object.entries(o.set ?? {}).map(([k, v]) => ` --set ${k}=${v}`).join('') +
    (o.settleTicks !== undefined && o.settleTicks !== 300 ? ` --settle ${o.settleTicks}` : '') +
    (o.bug && o.bug !== 'none' ? ` --bug ${o.bug}` : '') +
    (o.faultScale && o.faultScale !== 1 ? ` --faults ${o.faultScale}` : '') +
    ' --verbose'
  );
}

export function runSimulation(opts: SimOptions): SimResult {
  if (opts.store) throw new Error('store mode: use runSimulationStore');
  return new Simulation(opts).run();
}

/** store mode: the real block store as every node's state machine (asynchronous applies) */
export function runSimulationStore(opts: SimOptions): Promise<SimResult> {
  return new Simulation({ ...opts, store: true }).runStore();
}

function drawParams(rng: Prng, scale: number): SimParams {
  const p: SimParams = {
    loss: rng.pick([0, 0, 0.01, 0.05, 0.15]),
    dup: rng.pick([0, 0.02, 0.1]),
    delayMax: rng.pick([2, 10, 40, 120]),
    longDelayP: rng.pick([0, 0.005, 0.03]),
    longDelayMax: rng.pick([3, 10, 30]) * TICK,
    fsyncMax: rng.pick([1, 10, 40, 150]),
    skew: rng.pick([0, 0.02, 0.1, 0.25]),
    partitionP: rng.pick([0, 0.01, 0.03, 0.08]),
    partitionMax: rng.pick([5, 20, 60]),
    crashP: rng.pick([0, 0.005, 0.02, 0.05]),
    downMax: rng.pick([2, 10, 40]),
    crashMajorityOk: rng.chance(0.25),
    membership: rng.chance(0.5),
    membershipEvery: rng.pick([20, 60, 150]),
    snapshotEvery: rng.pick([5, 20, 60, Infinity]),
    clients: rng.range(1, 5),
    keys: rng.range(1, 4),
    heartbeatTicks: rng.pick([1, 2, 3]),
    electionTicks: 10,
    preVote: rng.chance(0.7),
    checkQuorum: rng.chance(0.7),
    maxInflightMsgs: rng.pick([1, 4, 64]),
    maxMsgBytes: rng.pick([40, 300, 1 << 20]),
    snapshotChunkBytes: rng.pick([64, 1024, 1 << 20]),
    leaseReads: false,
    followerReads: rng.chance(0.3),
    transferP: rng.pick([0, 0, 0.01, 0.04]),
    fifo: rng.chance(0.5),
    electionJitterTicks: 10,
  };
  // lease reads are safe only while clocks run within the core's drift bound (25%): see RaftCoreOptions
  p.leaseReads = p.checkQuorum && p.skew <= 0.1 && rng.chance(0.4);
  if (scale !== 1) {
    p.loss = Math.min(0.2, p.loss * scale);
    p.partitionP = Math.min(0.5, p.partitionP * scale);
    p.crashP = Math.min(0.5, Math.max(p.crashP, 0.005) * scale);
    p.fsyncMax = Math.max(p.fsyncMax, Math.round(100 * scale));
    p.crashMajorityOk = true;
  }
  // (drawn last, so that a seed's other parameters are as they were before it existed)
  p.electionJitterTicks = rng.pick([10, 5]); // etcd's [et, 2 et), and RaftNode's default [et, 1.5 et)
  return p;
}

class Simulation implements NodeHost, ClientHost, StoreNodeHost {
  readonly rng: Prng;
  readonly bug: BugMode;
  private readonly queue = new EventQueue();
  private time = 0;
  private counter = 0;
  private events = 0;
  private readonly p: SimParams;
  private readonly nodes = new Map<number, SimNode>();
  private readonly decommissioned = new Set<number>();
  private readonly removing = new Set<number>();
  private readonly clients: SimClient[] = [];
  private readonly history: KvOperation[] = [];
  private readonly ackedIds = new Set<string>();
  private readonly checkers = new Checkers();
  readonly storageListener = this.checkers;
  private readonly blocked = new Map<string, number>();
  /** FIFO links: last delivery time per link */
  private readonly linkClock = new Map<string, number>();
  private partitionGen = 0;
  private readonly hasher = new TraceHasher();
  private readonly tail: string[] = [];
  private readonly tailMax: number;
  private phase: 'main' | 'settle' | 'done' = 'main';
  private nextNodeId: number;
  private readonly maxNodeId: number;
  private nextClientId = 1;
  private nextMembership = 0;
  private confChanges = 0;
  private partitions = 0;
  private messages = 0;
  private settledAfter = -1;
  private linResult = 'not run';
  private readonly endMain: number;
  private readonly endSettle: number;
  private readonly initialConf: ConfState;
  /** store mode: work deferred by the nodes, run serially after the current event */
  private readonly deferred: (() => Promise<void>)[] = [];
  private storeBase = '';
  private readonly openStores = new Set<LevelBlockStore>();
  /** store mode: digest seen at each store applied index (the first node that reported it) */
  private readonly digestAt = new Map<number, { node: number; sum: string }>();
  private digests = 0;

  constructor(private readonly o: SimOptions) {
    this.rng = new Prng(o.seed);
    this.bug = o.bug ?? 'none';
    this.tailMax = o.tail ?? 60;
    const drawn = drawParams(this.rng, o.faultScale ?? 1);
    if (o.store) {
      // a store snapshot stream is ~20 KB: in 64-byte chunks a transfer outlasts the snapshot interval
      // (the KV mode covers tiny chunks)
      drawn.snapshotChunkBytes = Math.max(drawn.snapshotChunkBytes, 4096);
      drawn.checkpointEvery = this.rng.pick([3, 10, 40]);
      drawn.storeFlushP = this.rng.pick([1, 0.5, 0.1]);
    }
    this.p = { ...drawn, ...(o.set ?? {}) };
    const ids = Array.from({ length: o.nodes }, (_, i) => i + 1);
    this.initialConf = { voters: ids, learners: [], votersOutgoing: [] };
    this.nextNodeId = o.nodes + 1;
    this.maxNodeId = o.nodes + 4;
    this.endMain = o.ticks * TICK;
    this.endSettle = this.endMain + (o.settleTicks ?? 300) * TICK;
  }

  // ---------------- host interfaces ----------------
  defer(fn: () => Promise<void>): void {
    this.deferred.push(fn);
  }
  storeDir(node: number): string {
    return path.join(this.storeBase, `n${node}`);
  }
  checkpointEvery(): number {
    return this.p.checkpointEvery ?? Infinity;
  }
  observeDigest(node: number, index: number, sum: string): void {
    this.digests++;
    const seen = this.digestAt.get(index);
    if (!seen) this.digestAt.set(index, { node, sum });
    else if (seen.sum !== sum) {
      this.violation('store-divergence', `n${node}'s store at applied index ${index} has digest ${sum.slice(0, 16)}, n${seen.node}'s had ${seen.sum.slice(0, 16)}`);
    }
    this.trace(`n${node} store checkpoint at ${index}: digest ${sum.slice(0, 12)}`);
  }
  crashDuringRestore(node: number): boolean {
    const n = this.nodes.get(node);
    if (!n || this.phase !== 'main' || this.p.crashP === 0 || !this.rng.chance(0.3)) return false;
    this.trace(`n${node} crashes while restoring its store from a snapshot`);
    n.crash();
    this.after(this.rng.range(1, this.p.downMax) * TICK, `restart n${node}`, () => this.restart(n));
    return true;
  }
  flushWriter(): boolean {
    return this.rng.chance(this.p.storeFlushP ?? 1);
  }
  storeOpened(s: LevelBlockStore): void {
    this.openStores.add(s);
  }
  storeClosed(s: LevelBlockStore): void {
    this.openStores.delete(s);
  }
  opTime(): Time {
    return { sec: 1_000_000 + Math.floor(this.time / TICK), nsec: (this.time % TICK) * 10_000 };
  }
  now(): number {
    return this.time;
  }
  clock(): number {
    return ++this.counter;
  }
  after(delay: number, label: string, fn: () => void): void {
    this.at(this.time + Math.max(0, Math.round(delay)), label, fn);
  }
  private at(time: number, label: string, fn: () => void): void {
    this.queue.push(time, () => {
      this.trace(label);
      fn();
    });
  }
  trace(line: string): void {
    const l = `${this.time} ${line}`;
    this.hasher.add(l);
    this.tail.push(l);
    if (this.tail.length > this.tailMax * 2) this.tail.splice(0, this.tail.length - this.tailMax);
    this.o.log?.(l);
  }
  violation(kind: string, msg: string): never {
    throw new SimViolation(kind, msg);
  }
  raftConfig(id: number): RaftConfig {
    return {
      id,
      electionTicks: this.p.electionTicks,
      electionJitterTicks: this.p.electionJitterTicks,
      heartbeatTicks: this.p.heartbeatTicks,
      preVote: this.p.preVote,
      checkQuorum: this.p.checkQuorum,
      maxInflightMsgs: this.p.maxInflightMsgs,
      maxInflightBytes: 1 << 20,
      maxMsgBytes: this.p.maxMsgBytes,
      snapshotChunkBytes: this.p.snapshotChunkBytes,
      random: (n: number) => this.rng.int(n),
    };
  }
  get leaseReads(): boolean {
    return this.p.leaseReads;
  }
  get followerReads(): boolean {
    return this.p.followerReads;
  }
  fsyncDelay(): number {
    return this.rng.range(1, this.p.fsyncMax);
  }
  snapshotEvery(): number {
    return this.p.snapshotEvery;
  }
  observeStatus(node: number, st: CoreStatus): void {
    this.checkers.observeStatus(node, st);
  }
  observeReady(node: SimNode, rd: Ready, st: CoreStatus): void {
    this.checkers.observeReady(node.id, rd, st, () => node.storage.writtenTerms());
  }
  observeApply(node: number, index: number, term: number, dataHash: number, chain: number, applierTerm: number, confs: number[][]): void {
    if (this.checkers.isNewCommit(index)) {
      // DRBD protocol C: committed means durable on a majority of the voters
      const has = (v: number) => {
        const st = this.nodes.get(v)?.storage;
        return st !== undefined && (st.snapshotIndex() >= index || st.term(index) === term);
      };
      if (!confs.some((voters) => voters.filter(has).length * 2 > voters.length)) {
        this.violation(
          'commit-durability',
          `n${node} applied ${index}/${term}, first anywhere, but only [${confs[0].filter(has)}] of voters [${confs[0]}] ` +
            `(before the last change [${confs[1]}]) have it on disk`,
        );
      }
    }
    this.checkers.observeApply(node, index, term, dataHash, chain, applierTerm);
  }
  observeSnapshotInstalled(node: number, index: number, chain: number): void {
    this.checkers.observeSnapshotInstalled(node, index, chain);
  }
  confApplied(node: number, cc: ConfChange): void {
    this.trace(`n${node} applied conf ${cc.type} n${cc.node}`);
    if (cc.type === 'remove' && !this.removing.has(cc.node)) {
      this.removing.add(cc.node);
      this.confChanges++;
      // the operator stops the removed server a while later
      this.after(this.rng.range(1, 20) * TICK, `decommission n${cc.node}`, () => this.decommission(cc.node));
    } else if (cc.type !== 'remove') {
      this.confChanges++;
    }
  }
  acked(req: ClientRequest & { kind: 'write' }): void {
    this.ackedIds.add(requestId(req.client, req.seq));
  }

  send(m: Message): void {
    this.messages++;
    if (this.o.promiseChecks !== false) this.checkPromise(m);
    if (!this.nodes.has(m.to)) return;
    if (this.isBlocked(m.from, m.to)) return;
    if (this.rng.chance(this.p.loss)) return;
    const copies = this.rng.chance(this.p.dup) ? 2 : 1;
    if (this.o.codec !== false) m = this.throughCodec(m);
    for (let k = 0; k < copies; k++) {
      const msg = k === 0 ? m : { ...m };
      let t = this.time + this.netDelay();
      if (this.p.fifo) {
        const link = `${m.from}>${m.to}`;
        t = Math.max(t, this.linkClock.get(link) ?? 0);
        this.linkClock.set(link, t);
      }
      this.at(t, describe(msg), () => this.nodes.get(msg.to)?.receive(msg));
    }
  }

  /** what the receiving node would get over the real transport */
  private throughCodec(m: Message): Message {
    let d: Message;
    try {
      d = decodeMessage(encodeMessage(m));
    } catch (e) {
      this.violation('codec', `${describe(m)} does not round-trip: ${e instanceof Error ? e.message : String(e)}`);
    }
    const diff = messageDiff(m, d);
    if (diff) this.violation('codec', `${describe(m)} comes back different from the wire codec: ${diff}`);
    return d;
  }

  /**
   * A message that promises something about the sender's disk must find it durable when it leaves:
   * an AppResp acknowledging index i, a HeartbeatResp reporting the last (index, term), a granted vote
   * (the vote for the candidate in that term, or a higher term, on disk).
   */
  private checkPromise(m: Message): void {
    const n = this.nodes.get(m.from);
    if (!n) return;
    const st = n.storage;
    if ((m.type === MsgType.AppResp || m.type === MsgType.HeartbeatResp) && !m.reject && m.index !== undefined) {
      if (st.lastIndex() < m.index) {
        this.violation('durability', `n${m.from} sent ${describe(m)} but its durable log ends at ${st.lastIndex()}`);
      }
      if (m.type === MsgType.HeartbeatResp && m.logTerm !== undefined && st.term(m.index) !== m.logTerm) {
        this.violation('durability', `n${m.from} sent ${describe(m)} but its durable entry ${m.index} has term ${st.term(m.index)}`);
      }
    }
    if (m.type === MsgType.VoteResp && !m.reject) {
      const hs = st.hardState();
      // a durable higher term also keeps the promise: this node can no longer vote in m.term
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
        this.violation('durability', `n${m.from} granted its vote (${describe(m)}) but its durable hard state is term ${hs.term} vote ${hs.vote}`);
      }
    }
  }

  reply(r: ClientReply): void {
    if (this.rng.chance(this.p.loss)) return;
    this.after(this.netDelay(), `reply n${r.from}>c${r.client} ${r.kind} ${r.seq}`, () => {
      for (const c of this.clients) if (c.id === r.client) c.onReply(r);
    });
  }

  sendRequest(to: number, req: ClientRequest): void {
    if (this.rng.chance(this.p.loss)) return;
    this.after(this.netDelay(), `request c${req.client}>n${to} ${req.kind} ${req.seq}`, () => this.nodes.get(to)?.clientRequest(req));
  }

  directory(): number[] {
    const out: number[] = [];
    for (const id of this.nodes.keys()) if (!this.decommissioned.has(id)) out.push(id);
    return out;
  }

  newClientId(): number {
    return this.nextClientId++;
  }

  issuing(): boolean {
    return this.phase === 'main';
  }

  // ---------------- the run ----------------
  run(): SimResult {
    let violation: { kind: string; message: string } | undefined;
    try {
      this.setup();
      while (this.phase !== 'done') {
        const ev = this.queue.pop();
        if (!ev) break;
        this.time = ev.time;
        this.events++;
        ev.run();
        if (this.queue.size > MAX_QUEUE) {
          this.violation('runaway', `more than ${MAX_QUEUE} events pending (a message storm?): ${this.describeCluster()}`);
        }
      }
      if (this.phase !== 'done') this.violation('harness', 'event queue ran dry');
      this.finalChecks();
    } catch (e) {
      violation = this.caught(e);
    }
    return this.result(violation);
  }

  /** store mode: the same loop, awaiting the deferred store work after every event */
  async runStore(): Promise<SimResult> {
    let violation: { kind: string; message: string } | undefined;
    const parent = this.o.storeDir ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
    this.storeBase = fs.mkdtempSync(path.join(parent, `hanfs-sim-${this.o.seed}-`));
    try {
      this.setup();
      await this.drain();
      while (this.phase !== 'done') {
        const ev = this.queue.pop();
        if (!ev) break;
        this.time = ev.time;
        this.events++;
        ev.run();
        await this.drain();
        if (this.queue.size > MAX_QUEUE) {
          this.violation('runaway', `more than ${MAX_QUEUE} events pending (a message storm?): ${this.describeCluster()}`);
        }
      }
      if (this.phase !== 'done') this.violation('harness', 'event queue ran dry');
      await this.finalChecksStore();
    } catch (e) {
      violation = this.caught(e);
    }
    this.deferred.length = 0;
    for (const n of this.nodes.values()) if (n instanceof StoreSimNode) await n.closeStore().catch(() => undefined);
    for (const st of this.openStores) await st.close().catch(() => undefined);
    this.openStores.clear();
    fs.rmSync(this.storeBase, { recursive: true, force: true });
    return this.result(violation);
  }

  private async drain(): Promise<void> {
    while (this.deferred.length > 0) await this.deferred.shift()!();
  }

  private caught(e: unknown): { kind: string; message: string } {
    let violation: { kind: string; message: string };
    if (e instanceof SimViolation) violation = { kind: e.kind, message: e.message };
    else if (e instanceof StorageError) violation = { kind: 'storage', message: e.message };
    else violation = { kind: 'exception', message: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
    this.trace(`VIOLATION ${violation.kind}: ${violation.message.split('\n')[0]}`);
    if (violation.kind !== 'liveness') {
      try {
        violation.message += `\ncluster:${this.describeCluster()}`;
      } catch {
        // a core that threw may not answer status()
      }
    }
    return violation;
  }

  private result(violation: { kind: string; message: string } | undefined): SimResult {
    const cs = this.checkers.stats();
    let snapshotsMade = 0, snapshotsInstalled = 0, crashes = 0, redos = 0, lostBatches = 0;
    for (const n of this.nodes.values()) {
      snapshotsMade += n.snapshotsMade;
      snapshotsInstalled += n.snapshotsInstalled;
      crashes += n.crashes;
      if (n instanceof StoreSimNode) {
        redos += n.redos;
        lostBatches += n.lostBatches;
      }
    }
    return {
      seed: this.o.seed,
      nodes: this.o.nodes,
      ticks: this.o.ticks,
      bug: this.bug,
      ok: !violation,
      violation,
      traceHash: this.hasher.value,
      lastEvents: this.tail.slice(-this.tailMax),
      params: this.p,
      stats: {
        events: this.events,
        simTicks: Math.round(this.time / TICK),
        ops: this.history.length,
        acked: this.ackedIds.size,
        gaveUp: this.clients.reduce((a, c) => a + c.gaveUp, 0),
        leaders: cs.leaders,
        maxTerm: cs.terms,
        committed: cs.committed,
        crashes,
        partitions: this.partitions,
        confChanges: this.confChanges,
        snapshotsMade,
        snapshotsInstalled,
        messages: this.messages,
        linearizability: this.linResult,
        settledAfterTicks: this.settledAfter,
        digests: this.digests,
        redos,
        lostBatches,
      },
      replay: replayCommand({ ...this.o }),
    };
  }

  private setup(): void {
    this.trace(`seed ${this.o.seed} nodes ${this.o.nodes} ticks ${this.o.ticks} bug ${this.bug} params ${JSON.stringify(this.p)}`);
    for (const id of this.initialConf.voters) this.addNode(id, this.initialConf);
    const keys = STORE_KEYS.slice(0, this.p.keys);
    const cp: ClientParams = {
      keys,
      // store mode: keys are file blocks, registers (an NFS WRITE overwrites; there is no atomic append)
      pPut: this.o.store ? 0.55 : 0.3,
      pAppend: this.o.store ? 0 : 0.35,
      store: this.o.store,
      thinkMax: 3 * TICK,
      timeout: 8 * TICK,
      maxAttempts: 10,
      readsAnywhere: this.p.followerReads,
    };
    for (let i = 0; i < this.p.clients; i++) {
      const c = new SimClient(this.newClientId(), this, cp, this.history);
      this.clients.push(c);
      this.after(this.rng.range(5, 25) * TICK, `c${c.id} start`, () => c.start());
    }
    this.nextMembership = this.p.membershipEvery * TICK;
    this.after(TICK, 'chaos', () => this.chaos());
    this.after(this.endMain, 'heal', () => this.heal());
  }

  private addNode(id: number, conf: ConfState): SimNode {
    const period = Math.round(TICK * (1 + (this.rng.float() * 2 - 1) * this.p.skew));
    const n = this.o.store ? new StoreSimNode(id, this, conf, period) : new SimNode(id, this, conf, period);
    this.nodes.set(id, n);
    n.start();
    this.scheduleTick(n);
    return n;
  }

  private scheduleTick(n: SimNode): void {
    const epoch = n.epoch;
    this.after(n.tickPeriod, `n${n.id} tick`, () => {
      if (n.epoch !== epoch || !n.alive) return;
      n.tick();
      this.scheduleTick(n);
    });
  }

  private netDelay(): number {
    if (this.p.longDelayP > 0 && this.rng.chance(this.p.longDelayP)) return this.rng.range(1, this.p.longDelayMax);
    return this.rng.range(1, this.p.delayMax);
  }

  // ---------------- faults ----------------
  private isBlocked(from: number, to: number): boolean {
    return this.blocked.size > 0 && (this.blocked.get(`${from}>${to}`) ?? 0) > 0;
  }

  private chaos(): void {
    if (this.phase !== 'main') return;
    const p = this.p;
    const live = [...this.nodes.values()].filter((n) => !this.decommissioned.has(n.id));
    if (this.rng.chance(p.partitionP)) this.partition(live.map((n) => n.id));
    if (this.rng.chance(p.crashP)) {
      const up = live.filter((n) => n.alive);
      const down = live.length - up.length;
      const f = Math.floor((live.length - 1) / 2);
      if (up.length > 0 && (down < f || p.crashMajorityOk)) {
        // half the time pick a node with writes not yet fsynced: the crash then loses (or tears) them
        const unsynced = up.filter((n) => n.storage.hasPending());
        const victim = unsynced.length > 0 && this.rng.chance(0.5) ? this.rng.pick(unsynced) : this.rng.pick(up);
        victim.crash();
        this.after(this.rng.range(1, p.downMax) * TICK, `restart n${victim.id}`, () => this.restart(victim));
      }
    }
    if (this.rng.chance(p.transferP)) {
      const l = this.leader();
      if (l) {
        const to = this.rng.pick(l.sm.conf.voters.filter((v) => v !== l.id).concat([l.id]));
        const ok = l.transferLeadership(to);
        this.trace(`admin n${l.id} transfer leadership to n${to}: ${ok ? 'accepted' : 'refused'}`);
      }
    }
    if (p.membership && this.time >= this.nextMembership) {
      this.nextMembership = this.time + p.membershipEvery * TICK;
      this.membership();
    }
    this.after(TICK, 'chaos', () => this.chaos());
  }

  private restart(n: SimNode): void {
    if (n.alive || n.isStarting || this.decommissioned.has(n.id)) return;
    n.start();
    this.scheduleTick(n);
  }

  private partition(ids: number[]): void {
    if (ids.length < 2) return;
    const pairs: string[] = [];
    const kind = this.rng.int(4);
    const x = this.rng.pick(ids);
    let what: string;
    if (kind === 0) {
      for (const y of ids) if (y !== x) pairs.push(`${x}>${y}`, `${y}>${x}`);
      what = `isolate n${x}`;
    } else if (kind === 1) {
      const side = new Set(this.rng.shuffle(ids).slice(0, this.rng.range(1, ids.length - 1)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) pairs.push(`${a}>${b}`);
      what = `split {${[...side].sort().join(',')}}`;
    } else if (kind === 2) {
      const out = this.rng.chance(0.5);
      for (const y of ids) if (y !== x) pairs.push(out ? `${x}>${y}` : `${y}>${x}`);
      what = out ? `n${x} cannot send` : `n${x} cannot receive`;
    } else {
      const y = this.rng.pick(ids.filter((i) => i !== x));
      pairs.push(`${x}>${y}`);
      what = `link n${x}>n${y} down`;
    }
    for (const k of pairs) this.blocked.set(k, (this.blocked.get(k) ?? 0) + 1);
    this.partitions++;
    this.trace(`partition ${what}`);
    const gen = this.partitionGen;
    this.after(this.rng.range(1, this.p.partitionMax) * TICK, `heal ${what}`, () => {
      if (gen !== this.partitionGen) return;
      for (const k of pairs) {
        const c = (this.blocked.get(k) ?? 0) - 1;
        if (c > 0) this.blocked.set(k, c);
        else this.blocked.delete(k);
      }
    });
  }

  private decommission(id: number): void {
    const n = this.nodes.get(id);
    if (!n || this.decommissioned.has(id)) return;
    n.crash();
    this.decommissioned.add(id);
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (!n.alive) continue;
      const st = n.status()!;
      if (st.role === Role.Leader && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private membership(): void {
    const l = this.leader();
    if (!l) return;
    const conf = l.sm.conf;
    let cc: ConfChange | undefined;
    const learner = conf.learners.find((id) => !this.removing.has(id));
    if (learner !== undefined) {
      const ln = this.nodes.get(learner);
      if (ln && ln.alive && ln.sm.appliedIndex + 3 >= l.sm.appliedIndex) cc = { type: 'promote', node: learner };
    } else if (conf.voters.length <= this.o.nodes && this.nextNodeId <= this.maxNodeId) {
      cc = { type: 'addLearner', node: this.nextNodeId };
    } else if (conf.voters.length > this.o.nodes) {
      cc = { type: 'remove', node: this.rng.pick(conf.voters) };
    }
    if (!cc) return;
    const ok = l.proposeConfChange(cc);
    this.trace(`admin n${l.id} propose ${cc.type} n${cc.node}: ${ok ? 'accepted' : 'refused'}`);
    if (ok && cc.type === 'addLearner' && !this.nodes.has(cc.node)) {
      this.nextNodeId++;
      this.addNode(cc.node, this.o.joinBootstrap ? this.initialConf : { voters: [], learners: [], votersOutgoing: [] });
    }
  }

  // ---------------- settle and end checks ----------------
  private heal(): void {
    this.phase = 'settle';
    this.partitionGen++;
    this.blocked.clear();
    this.p.loss = 0;
    this.p.dup = 0;
    this.p.longDelayP = 0;
    for (const n of this.nodes.values()) this.restart(n);
    this.trace('heal all: network whole, crashed nodes restarted, clients finish');
    this.after(TICK, 'settle check', () => this.settleCheck());
  }

  private settleCheck(): void {
    if (this.converged()) {
      this.settledAfter = Math.round((this.time - this.endMain) / TICK);
      this.phase = 'done';
      return;
    }
    if (this.time >= this.endSettle) {
      this.violation('liveness', `cluster did not settle within ${(this.endSettle - this.endMain) / TICK} ticks after healing: ${this.describeCluster()}`);
    }
    this.after(TICK, 'settle check', () => this.settleCheck());
  }

  private members(l: SimNode): number[] {
    return [...l.sm.conf.voters, ...l.sm.conf.learners];
  }

  private converged(): boolean {
    if (!this.clients.every((c) => c.idle)) return false;
    const l = this.leader();
    if (!l) return false;
    const st = l.status()!;
    if (st.commit !== l.storage.lastIndex() || l.sm.appliedIndex !== st.commit) return false;
    for (const id of this.members(l)) {
      const n = this.nodes.get(id);
      if (!n || !n.alive || n.sm.appliedIndex !== st.commit) return false;
    }
    return true;
  }

  private describeCluster(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      const st = n.status();
      parts.push(
        `n${n.id}${this.decommissioned.has(n.id) ? '(decommissioned)' : ''}: ` +
          (st ? n.core!.debug() : 'down') +
          `; sm applied ${n.sm.appliedIndex} conf v[${n.sm.conf.voters}] l[${n.sm.conf.learners}]; disk ${n.storage.durableSummary()}`,
      );
    }
    const busy = this.clients.filter((c) => !c.idle).length;
    return '\n  ' + parts.join('\n  ') + `\n  clients busy ${busy}`;
  }

  private finalChecks(): void {
    const l = this.leader()!;
    const members = this.members(l).map((id) => this.nodes.get(id)!);
    // every acknowledged write executed exactly once on every live member
    const ref = l.sm;
    for (const n of members) {
      const counts = new Map<string, number>();
      for (const id of n.sm.executed) counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const [id, c] of counts) {
        if (c > 1) this.violation('exactly-once', `n${n.id} executed request ${id} ${c} times`);
      }
      for (const id of this.ackedIds) {
        if (!counts.has(id)) this.violation('lost-ack', `acknowledged write ${id} is not in n${n.id}'s state machine (applied ${n.sm.appliedIndex})`);
      }
      if (n.sm.chain !== ref.chain || n.sm.executed.length !== ref.executed.length) {
        this.violation('state-machine-safety', `n${n.id} and leader n${l.id} have different state at applied index ${n.sm.appliedIndex}`);
      }
      for (const [k, v] of ref.kv) {
        if (n.sm.kv.get(k) !== v) this.violation('state-machine-safety', `n${n.id} key ${k} = ${n.sm.kv.get(k)} but leader has ${v}`);
      }
    }
    this.trace(`settled after ${this.settledAfter} ticks: ${this.ackedIds.size} acked writes on ${members.length} members`);
    this.checkHistory();
  }

  /**
   * Store mode's end checks: the Raft-level histories agree; every live member's store has the same
   * digest at the same applied index; every acknowledged write was executed (once) by every member and
   * its duplicate-request record is in every store; the final content of every key, read from the
   * leader's store, is appended to the client history (a read after everything), which must be
   * linearizable: an acknowledged write that was lost, or a write that took effect twice, shows there.
   */
  private async finalChecksStore(): Promise<void> {
    const l = this.leader()! as StoreSimNode;
    const members = this.members(l).map((id) => this.nodes.get(id)! as StoreSimNode);
    const ref = await l.storeDigest();
    const refSum = digestChecksum(ref);
    for (const n of members) {
      if (n.sm.chain !== l.sm.chain) {
        this.violation('state-machine-safety', `n${n.id} and leader n${l.id} have different histories at applied index ${n.sm.appliedIndex}`);
      }
      if (n === l) continue;
      const d = await n.storeDigest();
      this.digests++;
      if (n.store!.appliedIndex !== l.store!.appliedIndex || digestChecksum(d) !== refSum) {
        const diff = firstDifference(ref, d);
        this.violation(
          'store-divergence',
          `n${n.id}'s store (applied ${n.store!.appliedIndex}) differs from leader n${l.id}'s (applied ${l.store!.appliedIndex}): ` +
            (diff ? describeDifference(diff) : 'digests differ'),
        );
      }
    }
    for (const id of this.ackedIds) {
      for (const n of members) {
        if (!n.executedAt.has(id)) this.violation('lost-ack', `acknowledged write ${id} was never executed by n${n.id}'s store`);
        if (this.bug !== 'store-no-dedup' && n.store!.lookupRequest(Buffer.from(id, 'latin1')) === undefined) {
          this.violation('lost-ack', `acknowledged write ${id} has no duplicate-request record in n${n.id}'s store`);
        }
      }
    }
    for (const key of STORE_KEYS.slice(0, this.p.keys)) {
      const value = await l.readKey(key);
      this.history.push({ client: 0, input: { kind: 'get', key }, output: value, call: this.clock(), ret: this.clock() });
      this.trace(`final ${key} = ${JSON.stringify(value)}`);
    }
    this.trace(`settled after ${this.settledAfter} ticks: ${this.ackedIds.size} acked writes on ${members.length} members, store digest ${refSum.slice(0, 12)} at ${l.store!.appliedIndex}`);
    this.checkHistory();
  }

  private checkHistory(): void {
    const r = checkOperations(kvModel, this.history, { maxSteps: this.o.linearizabilitySteps ?? 500_000 });
    if (r.result === 'illegal') {
      this.linResult = 'illegal';
      this.violation(
        'linearizability',
        `history of key partition ${r.partition} is not linearizable (${r.ops.length} ops); longest linearizable prefix:\n  ` +
          r.longestPrefix.join('\n  ') + `\nall ops:\n  ` + r.ops.join('\n  '),
      );
    }
    this.linResult = r.result;
    this.trace(`linearizability ${r.result} over ${this.history.length} ops`);
  }
}

const MSG_NAMES: Record<number, string> = {
  [MsgType.PreVote]: 'PreVote', [MsgType.PreVoteResp]: 'PreVoteResp', [MsgType.Vote]: 'Vote',
  [MsgType.VoteResp]: 'VoteResp', [MsgType.App]: 'App', [MsgType.AppResp]: 'AppResp',
  [MsgType.Heartbeat]: 'Heartbeat', [MsgType.HeartbeatResp]: 'HeartbeatResp', [MsgType.Snap]: 'Snap',
  [MsgType.SnapResp]: 'SnapResp', [MsgType.TimeoutNow]: 'TimeoutNow', [MsgType.ReadIndex]: 'ReadIndex',
  [MsgType.ReadIndexResp]: 'ReadIndexResp', [MsgType.Propose]: 'Propose',
};

export function describe(m: Message): string {
  let s = `${m.from}>${m.to} ${MSG_NAMES[m.type] ?? m.type} t${m.term}`;
  if (m.index !== undefined) s += ` i${m.index}`;
  if (m.logTerm !== undefined) s += ` lt${m.logTerm}`;
  if (m.entries && m.entries.length) s += ` n${m.entries.length}`;
  if (m.commit !== undefined) s += ` c${m.commit}`;
  if (m.reject) s += ' R';
  if (m.context !== undefined) s += ` x${m.context}`;
  if (m.snapshot) s += ` snap${m.snapshot.meta.index}@${m.snapshot.offset}${m.snapshot.done ? 'D' : ''}`;
  return s;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** first difference between a message and its decoded copy, or undefined */
function messageDiff(a: Message, b: Message): string | undefined {
  for (const k of ['type', 'from', 'to', 'term', 'index', 'logTerm', 'commit', 'reject', 'context'] as const) {
    if (a[k] !== b[k]) return `${k}: ${String(a[k])} became ${String(b[k])}`;
  }
  if ((a.entries === undefined) !== (b.entries === undefined)) return 'entries presence';
  if (a.entries && b.entries) {
    if (a.entries.length !== b.entries.length) return `entries: ${a.entries.length} became ${b.entries.length}`;
    for (let i = 0; i < a.entries.length; i++) {
      const x = a.entries[i], y = b.entries[i];
      if (x.index !== y.index || x.term !== y.term || x.type !== y.type || !bytesEqual(x.data, y.data)) return `entry ${x.index}`;
    }
  }
  if ((a.snapshot === undefined) !== (b.snapshot === undefined)) return 'snapshot presence';
  if (a.snapshot && b.snapshot) {
    const x = a.snapshot, y = b.snapshot;
    if (x.offset !== y.offset || x.done !== y.done || !bytesEqual(x.data, y.data)) return 'snapshot chunk';
    if (x.meta.index !== y.meta.index || x.meta.term !== y.meta.term || JSON.stringify(x.meta.conf) !== JSON.stringify(y.meta.conf)) {
      return `snapshot meta ${JSON.stringify(x.meta)} became ${JSON.stringify(y.meta)}`;
    }
  }
  return undefined;
}
