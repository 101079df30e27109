/**
 * The key-value state machine the simulation replicates, and its command codec. Commands carry a
 * client id and a per-client sequence number; the state machine executes each (client, seq) at most
 * once (a session table), so a client may resend a request to a new leader without doubling it.
 * It also records, in order, which request ids it executed (`executed`), which the end-of-run checker
 * compares against the acknowledged requests.
 */
import { ConfChange, ConfState } from '../../../src/raft/types';
import { hashBytes, hashString } from './hash';

/** 'create' only in store mode: the client creates the file that holds its key (NFS CREATE) */
export type WriteOp = 'put' | 'append' | 'create';

export interface KvCommand {
  op: WriteOp;
  client: number;
  seq: number;
  key: string;
  value: string;
  /** store mode, put: the file id of the key's file (from the client's CREATE) */
  file?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: KvCommand): Uint8Array {
  return enc.encode(`${c.op === 'put' ? 'P' : c.op === 'append' ? 'A' : 'C'}|${c.client}|${c.seq}|${c.key}|${c.value}`);
}

export function decodeCommand(data: Uint8Array): KvCommand | undefined {
  if (data.length === 0) return undefined;
  const s = dec.decode(data);
  const p = s.split('|');
  if (p.length !== 5 || (p[0] !== 'P' && p[0] !== 'A')) return undefined;
  return { op: p[0] === 'P' ? 'put' : 'append', client: Number(p[1]), seq: Number(p[2]), key: p[3], value: p[4] };
}

export function requestId(client: number, seq: number): string {
  return `${client}:${seq}`;
}

export interface ApplyResult {
  cmd: KvCommand;
  /** true if this (client, seq) was executed before and this entry was a resend */
  duplicate: boolean;
}

export function cloneConf(c: ConfState): ConfState {
  return { voters: c.voters.slice(), learners: c.learners.slice(), votersOutgoing: c.votersOutgoing.slice() };
}

export function applyConfChangeTo(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.node);
  const learners = conf.learners.filter((v) => v !== cc.node);
  if (cc.type === 'addLearner') {
    if (conf.voters.includes(cc.node)) voters.push(cc.node);
    else learners.push(cc.node);
  } else if (cc.type === 'promote') {
    voters.push(cc.node);
  }
  voters.sort((a, b) => a - b);
  learners.sort((a, b) => a - b);
  return { voters, learners, votersOutgoing: [] };
}

export class KvStateMachine {
  appliedIndex = 0;
  appliedTerm = 0;
  /** chained hash of every entry applied so far: equal chains at equal index mean equal histories */
  chain = 0;
  readonly kv = new Map<string, string>();
  /** client id -> highest seq executed */
  readonly sessions = new Map<number, number>();
  /** request ids in execution order */
  executed: string[] = [];
  conf: ConfState;
  /** voters before the last membership change applied (for the commit-durability checker) */
  prevVoters: number[];

  constructor(conf: ConfState) {
    this.conf = cloneConf(conf);
    this.prevVoters = this.conf.voters;
  }

  /** Advance the applied index over an entry; returns the new chain hash. */
  private step(index: number, term: number, data: Uint8Array): void {
    if (index !== this.appliedIndex + 1) {
      throw new Error(`state machine: apply index ${index} after ${this.appliedIndex}`);
    }
    this.appliedIndex = index;
    this.appliedTerm = term;
    this.chain = hashString(`${this.chain}|${index}|${term}|${hashBytes(data)}`);
  }

  applyNoop(index: number, term: number, data: Uint8Array): void {
    this.step(index, term, data);
  }

  applyConf(index: number, term: number, data: Uint8Array, cc: ConfChange | undefined): void {
    this.step(index, term, data);
    if (cc) {
      this.prevVoters = this.conf.voters;
      this.conf = applyConfChangeTo(this.conf, cc);
    }
  }

  /** apply a Normal entry; undefined if its data is not a KV command (e.g. an empty proposal) */
  applyNormal(index: number, term: number, data: Uint8Array): ApplyResult | undefined {
    this.step(index, term, data);
    const cmd = decodeCommand(data);
    if (!cmd) return undefined;
    const last = this.sessions.get(cmd.client) ?? 0;
    if (cmd.seq <= last) return { cmd, duplicate: true };
    this.sessions.set(cmd.client, cmd.seq);
    this.executed.push(requestId(cmd.client, cmd.seq));
    if (cmd.op === 'put') this.kv.set(cmd.key, cmd.value);
    else this.kv.set(cmd.key, (this.kv.get(cmd.key) ?? '') + cmd.value);
    return { cmd, duplicate: false };
  }

  get(key: string): string | null {
    return this.kv.get(key) ?? null;
  }

  serialize(): Uint8Array {
    return enc.encode(
      JSON.stringify({
        i: this.appliedIndex,
        t: this.appliedTerm,
        h: this.chain,
        kv: [...this.kv.entries()],
        s: [...this.sessions.entries()],
        e: this.executed,
        c: this.conf,
      }),
    );
  }

  static restore(data: Uint8Array): KvStateMachine {
    const o = JSON.parse(dec.decode(data)) as {
      i: number; t: number; h: number; kv: [string, string][]; s: [number, number][]; e: string[]; c: ConfState;
    };
    const sm = new KvStateMachine(o.c);
    sm.appliedIndex = o.i;
    sm.appliedTerm = o.t;
    sm.chain = o.h;
    for (const [k, v] of o.kv) sm.kv.set(k, v);
    for (const [c, s] of o.s) sm.sessions.set(c, s);
    sm.executed = o.e;
    return sm;
  }
}
