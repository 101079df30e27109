/**
 * Small non-cryptographic hashes for the simulation's checkers and trace: cyrb53 (53-bit, over strings
 * and bytes) and a combiner for chained hashes. Good enough to tell entries apart; not for security.
 */

const M1 = 2654435761;
const M2 = 1597334677;

export function hashString(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, M1);
    h2 = Math.imul(h2 ^ ch, M2);
  }
  return finish(h1, h2);
}

export function hashBytes(b: Uint8Array, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < b.length; i++) {
    const ch = b[i];
    h1 = Math.imul(h1 ^ ch, M1);
    h2 = Math.imul(h2 ^ ch, M2);
  }
  return finish(h1 ^ b.length, h2);
}

function finish(h1: number, h2: number): number {
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** hash of (a, b, c...) numbers, order-sensitive */
export function combine(...xs: number[]): number {
  return hashString(xs.join(','), 7);
}

/** Incremental hash of a sequence of strings (the event trace). */
export class TraceHasher {
  private h = 0;
  private n = 0;
  add(line: string): void {
    this.h = hashString(line, (this.h % 0x7fffffff) ^ this.n);
    this.n++;
  }
  get value(): string {
    return this.h.toString(16).padStart(14, '0') + ':' + this.n;
  }
}
