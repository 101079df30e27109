/**
 * Names of the segment files in a Raft log directory: `<seq, 16 digits>.seg`, and `next.tmp` for
 * the next segment while it is being preallocated.
 */
import * as fs from 'node:fs';

const SEG_RE = /^(\d{16})\.seg$/;

export const segName = (seq: number): string => `${String(seq).padStart(16, '0')}.seg`;

/** the next segment while it is being preallocated; not a segment name */
export const NEXT_TMP = 'next.tmp';

/** The sequence numbers of the segment files in `dir`, ascending. */
export function listSegmentSeqs(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .map((n) => SEG_RE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}
