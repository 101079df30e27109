/**
 * Store mode's workload layout: key i (a, b, c, d) is a VALUE_BYTES block of file `f<i/2>`, at offset 0
 * or SECOND_BLOCK (past the store's 16 KiB inline limit, so that file moves to a data file).
 */
export const STORE_KEYS = ['a', 'b', 'c', 'd'];
export const VALUE_BYTES = 32;
export const SECOND_BLOCK = 20000;
export const ROOT_CRED = { uid: 0, gid: 0, gids: [] as number[] };

export function keyFile(key: string): string {
  const i = STORE_KEYS.indexOf(key);
  if (i < 0) throw new Error(`no such key ${key}`);
  return `f${i >> 1}`;
}

export function keyOffset(key: string): number {
  return (STORE_KEYS.indexOf(key) & 1) * SECOND_BLOCK;
}
