import * as assert from 'node:assert/strict';
import { checkOperations, KvInput, KvOperation, KvOutput, kvModel } from './linearizability';
import { Prng } from './prng';

function op(client: number, input: KvInput, output: KvOutput | undefined, call: number, ret: number): KvOperation {
  return { client, input, output, call, ret };
}
const put = (c: number, key: string, value: string, call: number, ret: number) => op(c, { kind: 'put', key, value }, null, call, ret);
const app = (c: number, key: string, value: string, call: number, ret: number) => op(c, { kind: 'append', key, value }, null, call, ret);
const get = (c: number, key: string, out: string | null, call: number, ret: number) => op(c, { kind: 'get', key }, out, call, ret);

function verdict(ops: KvOperation[]): string {
  return checkOperations(kvModel, ops).result;
}

describe('linearizability checker (Wing-Gong with memoisation, per-key)', () => {
  it('accepts a sequential history', () => {
    assert.equal(verdict([put(1, 'x', 'a', 1, 2), get(1, 'x', 'a', 3, 4), app(1, 'x', 'b', 5, 6), get(1, 'x', 'ab', 7, 8)]), 'ok');
  });

  it('accepts the empty history and reads of absent keys', () => {
    assert.equal(verdict([]), 'ok');
    assert.equal(verdict([get(1, 'x', null, 1, 2)]), 'ok');
  });

  it('rejects a read of a value never written', () => {
    assert.equal(verdict([put(1, 'x', 'a', 1, 2), get(2, 'x', 'zzz', 3, 4)]), 'illegal');
  });

  it('rejects a stale read after a completed write', () => {
    assert.equal(verdict([put(1, 'x', 'a', 1, 2), get(2, 'x', null, 3, 4)]), 'illegal');
  });

  it('accepts either value for a read concurrent with a write', () => {
    assert.equal(verdict([put(1, 'x', 'a', 1, 10), get(2, 'x', null, 2, 3)]), 'ok');
    assert.equal(verdict([put(1, 'x', 'a', 1, 10), get(2, 'x', 'a', 2, 3)]), 'ok');
  });

  it('rejects a new-old inversion between two reads during one write', () => {
    // put(a) done; put(b) runs long; r1 sees b and returns before r2 starts, r2 sees a: not linearizable
    assert.equal(
      verdict([put(1, 'x', 'a', 1, 2), put(1, 'x', 'b', 3, 20), get(2, 'x', 'b', 4, 5), get(3, 'x', 'a', 6, 7)]),
      'illegal',
    );
    // r1 and r2 overlapping: fine
    assert.equal(
      verdict([put(1, 'x', 'a', 1, 2), put(1, 'x', 'b', 3, 20), get(2, 'x', 'b', 4, 7), get(3, 'x', 'a', 5, 8)]),
      'ok',
    );
  });

  it('treats a write that never returned as possibly applied, at any time after its call', () => {
    assert.equal(verdict([put(1, 'x', 'a', 1, Infinity), get(2, 'x', 'a', 5, 6)]), 'ok');
    assert.equal(verdict([put(1, 'x', 'a', 1, Infinity), get(2, 'x', null, 5, 6)]), 'ok');
    // ...but not before it was invoked
    assert.equal(verdict([get(2, 'x', 'a', 1, 2), put(1, 'x', 'a', 3, Infinity)]), 'illegal');
    // and once observed it cannot be un-applied
    assert.equal(verdict([put(1, 'x', 'a', 1, Infinity), get(2, 'x', 'a', 5, 6), get(2, 'x', null, 7, 8)]), 'illegal');
  });

  it('rejects appends seen out of order or doubled', () => {
    assert.equal(verdict([app(1, 'x', 'a', 1, 2), app(1, 'x', 'b', 3, 4), get(2, 'x', 'ba', 5, 6)]), 'illegal');
    assert.equal(verdict([app(1, 'x', 'a', 1, 2), get(2, 'x', 'aa', 3, 4)]), 'illegal');
    assert.equal(verdict([app(1, 'x', 'a', 1, 5), app(2, 'x', 'b', 2, 6), get(3, 'x', 'ba', 7, 8)]), 'ok');
  });

  it('finds a violation in one key among several (P-compositionality)', () => {
    const ok = [put(1, 'x', 'a', 1, 2), put(2, 'y', 'b', 1, 2), get(3, 'x', 'a', 3, 4), get(3, 'y', 'b', 5, 6)];
    assert.equal(verdict(ok), 'ok');
    const r = checkOperations(kvModel, [...ok, get(4, 'y', null, 7, 8)]);
    assert.equal(r.result, 'illegal');
    assert.ok(r.result === 'illegal' && r.ops.some((s) => s.includes('get(y)')));
  });

  it('reports undecided (not ok) when the search bound is hit', () => {
    // many concurrent appends and a read that matches no order: the search must explore a lot
    const ops: KvOperation[] = [];
    for (let i = 0; i < 14; i++) ops.push(app(i, 'x', String.fromCharCode(97 + i), 1, 100));
    ops.push(get(99, 'x', 'impossible', 101, 102));
    const r = checkOperations(kvModel, ops, { maxSteps: 1000 });
    assert.equal(r.result, 'unknown');
  });

  /** a random history produced by a real sequential execution with jittered call/return times */
  function randomLinearizable(rng: Prng, n: number): KvOperation[] {
    const ops: KvOperation[] = [];
    const state = new Map<string, string>();
    let t = 0;
    for (let i = 0; i < n; i++) {
      const key = rng.pick(['x', 'y']);
      const lin = (t += 10); // linearization point
      const call = lin - rng.range(1, 30);
      const ret = rng.chance(0.1) ? Infinity : lin + rng.range(1, 30);
      const k = rng.int(3);
      if (k === 0) {
        state.set(key, `v${i}`);
        ops.push(put(i % 4, key, `v${i}`, call, ret));
      } else if (k === 1) {
        state.set(key, (state.get(key) ?? '') + `.${i}`);
        ops.push(app(i % 4, key, `.${i}`, call, ret));
      } else {
        if (ret === Infinity) continue;
        ops.push(get(i % 4, key, state.get(key) ?? null, call, ret));
      }
    }
    return ops;
  }

  it('accepts random histories of real executions and rejects them once a read is corrupted', () => {
    const rng = new Prng(42);
    let rejected = 0;
    for (let h = 0; h < 60; h++) {
      const ops = randomLinearizable(rng, 40);
      assert.equal(verdict(ops), 'ok', `history ${h} should be linearizable`);
      const reads = ops.filter((o) => o.input.kind === 'get');
      if (reads.length === 0) continue;
      const victim = rng.pick(reads);
      victim.output = (victim.output ?? '') + '#corrupt';
      assert.equal(verdict(ops), 'illegal', `history ${h} with a corrupted read must be rejected`);
      rejected++;
    }
    assert.ok(rejected > 40);
  });
});

describe('linearizability checker: writes that never returned', () => {
  it('drops unobserved pending writes but still judges observed ones', () => {
    const ops: KvOperation[] = [];
    // 30 abandoned appends nobody read: without pruning this search explodes
    for (let i = 0; i < 30; i++) ops.push(op(i, { kind: 'append', key: 'x', value: `<${i}>` }, undefined, i + 1, Infinity));
    ops.push(op(100, { kind: 'put', key: 'x', value: 'P' }, null, 50, 51));
    ops.push(op(101, { kind: 'get', key: 'x' }, 'P', 52, 53));
    assert.equal(checkOperations(kvModel, ops, { maxSteps: 10_000 }).result, 'ok');
    // an abandoned append that a read saw must be placed: seen before its call is illegal
    ops.push(op(102, { kind: 'get', key: 'x' }, 'P<7>', 54, 55));
    assert.equal(checkOperations(kvModel, ops, { maxSteps: 10_000 }).result, 'ok');
    ops.push(op(103, { kind: 'get', key: 'x' }, 'P', 56, 57));
    assert.equal(checkOperations(kvModel, ops, { maxSteps: 10_000 }).result, 'illegal');
  });
});
