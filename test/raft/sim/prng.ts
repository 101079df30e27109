/**
 * Seeded pseudo-random numbers for the deterministic simulation: xoshiro128** (Blackman & Vigna),
 * its 128-bit state filled by splitmix32 from the seed. Everything random in a simulation run is
 * drawn from one instance of this, so a seed fixes the whole run. No Math.random, no clock.
 */

/** splitmix32 step: returns [next state, output]. */
function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  z = z ^ (z >>> 15);
  return [state, z >>> 0];
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** seed: any integer in [0, 2^53). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a safe non-negative integer: ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 0x100000000) >>> 0;
    let st = lo ^ Math.imul(hi, 0x85ebca6b);
    let out: number;
    [st, out] = splitmix32(st); this.s0 = out;
    [st, out] = splitmix32(st ^ hi); this.s1 = out;
    [st, out] = splitmix32(st); this.s2 = out;
    [st, out] = splitmix32(st); this.s3 = out;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** next 32-bit unsigned output of xoshiro128** */
  nextU32(): number {
    const s0 = this.s0, s1 = this.s1, s2 = this.s2, s3 = this.s3;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    let n2 = s2 ^ s0;
    let n3 = s3 ^ s1;
    const n1 = s1 ^ n2;
    const n0 = s0 ^ n3;
    n2 ^= t;
    n3 = rotl(n3, 11);
    this.s0 = n0 | 0; this.s1 = n1 | 0; this.s2 = n2 | 0; this.s3 = n3 | 0;
    return r;
  }

  /** uniform float in [0, 1) with 32 bits of precision */
  float(): number {
    return this.nextU32() / 0x100000000;
  }

  /** uniform integer in [0, n), n >= 1 (n up to 2^32) */
  int(n: number): number {
    if (!(n >= 1)) throw new RangeError(`int(${n})`);
    return Math.floor(this.float() * n);
  }

  /** uniform integer in [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** true with probability p */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('pick from empty');
    return xs[this.int(xs.length)];
  }

  /** Fisher-Yates, returns a new array */
  shuffle<T>(xs: readonly T[]): T[] {
    const a = xs.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a;
  }

  /** a child generator seeded from this one (for components that need their own stream) */
  fork(): Prng {
    return new Prng(this.nextU32() * 0x200000 + (this.nextU32() >>> 11));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
