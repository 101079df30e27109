/**
 * In-memory test network for scenario tests of the Raft core: every node is a RaftCore over a
 * MemoryStorage; Ready processing persists into the storage, queues messages and applies committed
 * entries to a trivial state machine (the list of applied payloads). Messages are delivered
 * explicitly, in order; partitions and filters drop them. Fully deterministic (seeded random).
 */
import { RaftCore, RaftCoreOptions } from '../../../src/raft/core';
import { MemoryStorage } from '../../../src/raft/memory-storage';
import {
  ConfState,
  Entry,
  EntryType,
  Message,
  MsgType,
  NodeId,
  RaftConfig,
  ReadState,
  Ready,
  Role,
  Snapshot,
} from '../../../src/raft/types';

export function lcg(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return n <= 0 ? 0 : s % n;
  };
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export interface TestNode {
  id: NodeId;
  core: RaftCore;
  storage: MemoryStorage;
  /** state machine: payloads of applied Normal entries, in order */
  sm: string[];
  appliedIndex: number;
  readStates: ReadState[];
  snapshotsInstalled: number;
  down: boolean;
}

export interface NetOptions {
  cfg?: Partial<RaftConfig>;
  core?: RaftCoreOptions;
  seed?: number;
}

export function defaultConfig(id: NodeId, seed: number, over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: true,
    checkQuorum: true,
    maxInflightMsgs: 256,
    maxInflightBytes: 1 << 30,
    maxMsgBytes: 1 << 20,
    snapshotChunkBytes: 1 << 20,
    random: lcg(seed * 7919 + id),
    ...over,
  };
}

export class TestNetwork {
  readonly nodes = new Map<NodeId, TestNode>();
  /** messages sent and not yet delivered, in send order */
  inflight: Message[] = [];
  /** every message ever sent (after Ready persistence), for assertions */
  readonly sent: Message[] = [];
  private cuts = new Set<string>();
  /** return true to drop a message */
  dropIf: ((m: Message) => boolean) | undefined;
  /** return true to hold a message in `held` instead of delivering it */
  holdIf: ((m: Message) => boolean) | undefined;
  held: Message[] = [];
  /** every entry applied by any node: index -> "term/type/data"; a disagreement is a safety violation */
  readonly appliedAt = new Map<number, string>();
  /** term -> leader seen (election safety) */
  readonly leaderOfTerm = new Map<number, NodeId>();

  constructor(ids: NodeId[], readonly opts: NetOptions = {}) {
    const conf: ConfState = { voters: [...ids], learners: [], votersOutgoing: [] };
    for (const id of ids) this.addNode(id, conf);
  }

  /** add a node; `conf` is its bootstrap membership (empty for a node joining via addLearner) */
  addNode(id: NodeId, conf: ConfState = { voters: [], learners: [], votersOutgoing: [] }, storage?: MemoryStorage): TestNode {
    const st = storage ?? new MemoryStorage(conf);
    const core = new RaftCore(defaultConfig(id, this.opts.seed ?? 1, this.opts.cfg), st, st.hardState, this.opts.core);
    const n: TestNode = { id, core, storage: st, sm: [], appliedIndex: 0, readStates: [], snapshotsInstalled: 0, down: false };
    this.nodes.set(id, n);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** process every Ready of node `id`: persist, queue messages, apply, advance */
  processReady(id: NodeId): boolean {
    const n = this.node(id);
    if (n.down) return false;
    let any = false;
    while (n.core.hasReady()) {
      any = true;
      const rd = n.core.ready();
      this.persistAndApply(n, rd);
      n.core.advance(rd);
    }
    return any;
  }

  private persistAndApply(n: TestNode, rd: Ready): void {
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    for (const m of rd.messages) {
      this.sent.push(m);
      this.inflight.push(m);
    }
    if (rd.snapshot) {
      n.sm = decodeSm(rd.snapshot.data);
      n.appliedIndex = rd.snapshot.meta.index;
      n.snapshotsInstalled++;
    }
    for (const e of rd.committed) {
      if (e.index !== n.appliedIndex + 1) throw new Error(`node ${n.id}: apply gap ${n.appliedIndex} -> ${e.index}`);
      n.appliedIndex = e.index;
      const key = `${e.term}/${e.type}/${dec(e.data)}`;
      const seen = this.appliedAt.get(e.index);
      if (seen === undefined) this.appliedAt.set(e.index, key);
      else if (seen !== key) throw new Error(`SAFETY: node ${n.id} applied ${key} at ${e.index}, another applied ${seen}`);
      if (e.type === EntryType.Normal) n.sm.push(dec(e.data));
    }
    n.readStates.push(...rd.readStates);
  }

  /** election safety: at most one leader per term */
  checkLeaders(): void {
    for (const n of this.nodes.values()) {
      if (n.core.role !== Role.Leader) continue;
      const t = n.core.term;
      const prev = this.leaderOfTerm.get(t);
      if (prev === undefined) this.leaderOfTerm.set(t, n.id);
      else if (prev !== n.id) throw new Error(`SAFETY: two leaders in term ${t}: ${prev} and ${n.id}`);
    }
  }

  readyAll(): boolean {
    this.checkLeaders();
    let any = false;
    for (const id of this.nodes.keys()) any = this.processReady(id) || any;
    return any;
  }

  private dropped(m: Message): boolean {
    const to = this.nodes.get(m.to);
    if (!to || to.down) return true;
    const from = this.nodes.get(m.from);
    if (from?.down) return true;
    if (this.cuts.has(`${m.from}>${m.to}`)) return true;
    if (this.dropIf && this.dropIf(m)) return true;
    return false;
  }

  /** deliver one message now (bypassing the queue) */
  deliver(m: Message): void {
    if (this.dropped(m)) return;
    this.node(m.to).core.step(m);
  }

  /** process Readys and deliver messages until quiet (bounded) */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.readyAll();
      if (this.inflight.length === 0) return;
      const batch = this.inflight;
      this.inflight = [];
      for (const m of batch) {
        if (this.holdIf && this.holdIf(m)) {
          this.held.push(m);
          continue;
        }
        this.deliver(m);
      }
    }
    throw new Error('network did not stabilize');
  }

  /** release held messages into the queue */
  release(filter: (m: Message) => boolean = () => true): void {
    const keep: Message[] = [];
    for (const m of this.held) (filter(m) ? this.inflight : keep).push(m);
    this.held = keep;
  }

  tick(ids: NodeId[] = [...this.nodes.keys()], n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) {
        const nd = this.node(id);
        if (!nd.down) nd.core.tick();
      }
    }
  }

  /** tick everyone once and stabilize, n times */
  run(n: number, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      this.tick(ids);
      this.stabilize();
    }
  }

  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}>${b}`);
    this.cuts.add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) if (o !== id) this.cut(id, o);
  }

  /** split into groups; nodes in different groups cannot talk */
  partition(...groups: NodeId[][]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]!) for (const b of groups[j]!) this.cuts.add(`${a}>${b}`);
      }
    }
  }

  heal(): void {
    this.cuts.clear();
  }

  crash(id: NodeId): void {
    this.node(id).down = true;
  }

  /** restart from durable storage (unstable state lost) */
  restart(id: NodeId): TestNode {
    const old = this.node(id);
    const st = old.storage;
    const core = new RaftCore(defaultConfig(id, (this.opts.seed ?? 1) + 17, this.opts.cfg), st, st.hardState, {
      ...this.opts.core,
      applied: st.snapshot().meta.index,
    });
    const n: TestNode = {
      id,
      core,
      storage: st,
      sm: decodeSm(st.snapshot().data),
      appliedIndex: st.snapshot().meta.index,
      readStates: [],
      snapshotsInstalled: old.snapshotsInstalled,
      down: false,
    };
    this.nodes.set(id, n);
    return n;
  }

  leaders(): NodeId[] {
    const out: NodeId[] = [];
    for (const n of this.nodes.values()) if (!n.down && n.core.role === Role.Leader) out.push(n.id);
    return out;
  }

  /** the unique leader of the highest term, or throws */
  leader(): NodeId {
    let best: TestNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.down || n.core.role !== Role.Leader) continue;
      if (!best || n.core.term > best.core.term) best = n;
    }
    if (!best) throw new Error('no leader');
    return best.id;
  }

  /** tick until some node is leader (bounded) */
  electLeader(maxTicks = 200): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      this.tick();
      this.stabilize();
      const ls = this.leaders();
      if (ls.length > 0) return this.leader();
    }
    throw new Error('no leader elected');
  }

  /** propose on the leader and stabilize */
  propose(data: string, on?: NodeId): number {
    const id = on ?? this.leader();
    const r = this.core(id).propose(enc(data));
    if (!('index' in r)) throw new Error(`propose refused: ${r.error}`);
    this.stabilize();
    return r.index;
  }

  /** log entries of a node as [index, term] pairs, from storage + unstable */
  logTerms(id: NodeId): number[] {
    const c = this.core(id);
    const out: number[] = [];
    for (let i = c.log.firstIndex(); i <= c.log.lastIndex(); i++) out.push(c.log.term(i)!);
    return out;
  }

  /** snapshot of a node's state machine, for compaction */
  snapshotData(id: NodeId): Uint8Array {
    return encodeSm(this.node(id).sm);
  }

  /** compact node `id`'s log at its applied index */
  compact(id: NodeId): Snapshot {
    const n = this.node(id);
    const s = n.core.compact(n.appliedIndex, encodeSm(n.sm));
    n.storage.compact(s);
    return s;
  }
}

export function encodeSm(sm: string[]): Uint8Array {
  return enc(JSON.stringify(sm));
}

export function decodeSm(b: Uint8Array): string[] {
  if (b.byteLength === 0) return [];
  return JSON.parse(dec(b)) as string[];
}

/** a MemoryStorage pre-loaded with entries of the given terms (indices 1..n) */
export function storageWithLog(conf: ConfState, terms: number[], hardTerm?: number): MemoryStorage {
  const st = new MemoryStorage(conf);
  const ents: Entry[] = terms.map((t, i) => ({ term: t, index: i + 1, type: EntryType.Normal, data: enc(`t${t}i${i + 1}`) }));
  st.append(ents);
  st.setHardState({ term: hardTerm ?? (terms.length ? terms[terms.length - 1]! : 0), vote: 0, commit: 0 });
  return st;
}

export function isApp(m: Message): boolean {
  return m.type === MsgType.App;
}
