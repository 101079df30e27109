/**
 * Linearizability checker for client histories (Wing & Gong's search with Lowe's memoisation, as in
 * Knossos and Porcupine): find an order of the operations that respects real time (an operation that
 * returned before another was invoked comes first) and that a sequential model accepts.
 *
 * P-compositionality: a history of a KV store is linearizable iff each key's sub-history is, so the
 * search runs per key. Operations that never returned (the client gave up: it may or may not have
 * taken effect) have return time +Infinity and an unknown output; such an operation may be linearized
 * anywhere after its invocation (at the very end, where it changes nothing observed).
 */
import { hashString } from './hash';

export interface Operation<I, O> {
  /** client (process) that issued it, for reports */
  client: number;
  input: I;
  /** undefined: unknown (the operation did not return) */
  output: O | undefined;
  /** invocation and return times; ret = Infinity if it never returned */
  call: number;
  ret: number;
}

export interface Model<S, I, O> {
  init(): S;
  /** apply input to state; ok false if `output` (when known) is impossible */
  step(state: S, input: I, output: O | undefined): { ok: boolean; state: S };
  /** a canonical string of a state, for the memo */
  key(state: S): string;
  /** split a history into independent sub-histories (P-compositionality) */
  partition?(ops: Operation<I, O>[]): Operation<I, O>[][];
  describe?(op: Operation<I, O>): string;
}

export type CheckResult =
  | { result: 'ok' }
  | { result: 'illegal'; partition: number; ops: string[]; longestPrefix: string[] }
  | { result: 'unknown'; reason: string };

export interface CheckOptions {
  /** upper bound on search steps per partition (bounds the time); exceeded gives 'unknown' */
  maxSteps?: number;
}

interface Node {
  op: number;
  isCall: boolean;
  time: number;
  match: Node | undefined; // call -> its return
  prev: Node | undefined;
  next: Node | undefined;
}

export function checkOperations<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], opts: CheckOptions = {}): CheckResult {
  const parts = model.partition ? model.partition(ops) : [ops];
  let unknown: CheckResult | undefined;
  for (let p = 0; p < parts.length; p++) {
    const r = checkSingle(model, parts[p], opts.maxSteps ?? 5_000_000);
    if (r === 'unknown') unknown = { result: 'unknown', reason: `partition ${p}: search exceeded ${opts.maxSteps ?? 5_000_000} steps` };
    else if (r !== true) {
      const d = model.describe ?? ((o: Operation<I, O>) => JSON.stringify(o));
      return {
        result: 'illegal',
        partition: p,
        ops: parts[p].map(d),
        longestPrefix: r.map((i) => d(parts[p][i])),
      };
    }
  }
  return unknown ?? { result: 'ok' };
}

/** true, 'unknown', or the longest linearizable prefix found (op indices) when illegal */
function checkSingle<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], maxSteps: number): true | 'unknown' | number[] {
  const n = ops.length;
  if (n === 0) return true;
  // build the event list: calls and returns sorted by time; at equal time calls first (only a return
  // strictly before a call orders two operations, so calls-first adds no constraint)
  const events: Node[] = [];
  for (let i = 0; i < n; i++) {
    const o = ops[i];
    if (!(o.ret >= o.call)) throw new RangeError(`operation ${i} returns (${o.ret}) before its call (${o.call})`);
    const call: Node = { op: i, isCall: true, time: o.call, match: undefined, prev: undefined, next: undefined };
    const ret: Node = { op: i, isCall: false, time: o.ret, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Node = { op: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }

  const words = (n + 31) >>> 5;
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const stack: { node: Node; state: S }[] = [];
  let state = model.init();
  let longest: number[] = [];
  let steps = 0;

  const lift = (c: Node): void => {
    c.prev!.next = c.next;
    if (c.next) c.next.prev = c.prev;
    const r = c.match!;
    r.prev!.next = r.next;
    if (r.next) r.next.prev = r.prev;
  };
  const unlift = (c: Node): void => {
    const r = c.match!;
    r.prev!.next = r;
    if (r.next) r.next.prev = r;
    c.prev!.next = c;
    if (c.next) c.next.prev = c;
  };
  const bitsKey = (): string => {
    let s = '';
    for (let w = 0; w < words; w++) s += linearized[w].toString(36) + ',';
    return s;
  };

  let entry = head.next;
  while (head.next) {
    if (++steps > maxSteps) return 'unknown';
    if (!entry) return 'unknown'; // cannot happen: a return node always ends the scan
    if (entry.isCall) {
      const o = ops[entry.op];
      const r = model.step(state, o.input, o.output);
      if (r.ok) {
        linearized[entry.op >>> 5] |= 1 << (entry.op & 31);
        const key = bitsKey() + '|' + model.key(r.state);
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ node: entry, state });
          state = r.state;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((s) => s.node.op);
          entry = head.next;
          continue;
        }
        linearized[entry.op >>> 5] &= ~(1 << (entry.op & 31));
      }
      entry = entry.next;
    } else {
      // a return whose call could not be linearized before it: backtrack
      if (stack.length === 0) return longest;
      const top = stack.pop()!;
      state = top.state;
      linearized[top.node.op >>> 5] &= ~(1 << (top.node.op & 31));
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The KV model of the simulation: per key a string value; put sets, append concatenates, get reads.

export type KvInput = { kind: 'put' | 'append'; key: string; value: string } | { kind: 'get'; key: string };
/** get: the value read (null if absent); put/append: null */
export type KvOutput = string | null;
export type KvOperation = Operation<KvInput, KvOutput>;

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.kind) {
      case 'put':
        return { ok: true, state: input.value };
      case 'append':
        return { ok: true, state: (state ?? '') + input.value };
      case 'get':
        return { ok: output === undefined || output === state, state };
    }
  },
  // a 53-bit hash and the length stand for the value in the memo (values grow with every append)
  key: (s) => (s === null ? '-' : `${s.length}:${hashString(s)}`),
  partition(ops) {
    // A write that never returned and whose (unique) value no read ever saw can be linearized at the
    // very end, where it changes nothing observed: drop it (it would only blow up the search).
    const outputs: string[] = [];
    for (const o of ops) if (o.input.kind === 'get' && typeof o.output === 'string') outputs.push(o.output);
    const observed = (v: string) => outputs.some((out) => out.includes(v));
    const byKey = new Map<string, KvOperation[]>();
    for (const o of ops) {
      if (o.ret === Infinity && o.input.kind !== 'get' && !observed(o.input.value)) continue;
      let a = byKey.get(o.input.key);
      if (!a) byKey.set(o.input.key, (a = []));
      a.push(o);
    }
    return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
  },
  describe(o) {
    const i = o.input;
    const what = i.kind === 'get' ? `get(${i.key}) -> ${o.output === undefined ? '?' : JSON.stringify(o.output)}` : `${i.kind}(${i.key}, ${JSON.stringify(i.value)})`;
    return `c${o.client} ${what} [${o.call}, ${o.ret === Infinity ? 'never' : o.ret}]`;
  },
};
