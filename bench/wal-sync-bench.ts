/**
 * Serial WAL latency: N appends of 4 KiB, each followed by sync(); mean / p50 / p99 sync() ms.
 *   node dist/bench/wal-sync-bench.js [dir] [n=2000]
 * Two cases: (a) the first segment of a brand-new log (never preallocated), (b) steady state: a
 * segment entered by a roll (segmentBytes 16 MiB; the first segment is filled past its roll, after
 * giving a background preparation of the next segment time to finish).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogStorage } from '../src/raft/log-storage';
import { EntryType } from '../src/raft/types';

async function measure(st: LogStorage, first: number, n: number): Promise<{ mean: number; p50: number; p99: number; max: number }> {
  const data = Buffer.alloc(4096, 0xa5);
  const t: number[] = [];
  for (let k = 0; k < n; k++) {
    st.append([{ index: first + k, term: 1, type: EntryType.Normal, data }]);
    const t0 = process.hrtime.bigint();
    await st.sync();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const s = [...t].sort((a, b) => a - b);
  return { mean: t.reduce((a, b) => a + b, 0) / n, p50: s[Math.floor(n * 0.5)], p99: s[Math.floor(n * 0.99)], max: s[n - 1] };
}

const fmt = (r: { mean: number; p50: number; p99: number; max: number }) =>
  `mean ${r.mean.toFixed(3)} ms  p50 ${r.p50.toFixed(3)}  p99 ${r.p99.toFixed(3)}  max ${r.max.toFixed(1)}`;

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), 'hanfs-walbench-'));
  const n = Number(process.argv[3] ?? 2000);
  try {
    // (a) first segment of a new log
    let st = await LogStorage.open({ dir: path.join(root, 'a') });
    console.log(`(a) first segment, ${n} x 4 KiB append+sync: ${fmt(await measure(st, 1, n))}`);
    await st.close();

    // (b) a segment entered by a roll
    const segmentBytes = 16 << 20;
    st = await LogStorage.open({ dir: path.join(root, 'b'), segmentBytes });
    const mib = Buffer.alloc(1 << 20, 0x5a);
    let i = 1;
    for (let k = 0; k < 9; k++) st.append([{ index: i++, term: 1, type: EntryType.Normal, data: mib }]);
    await st.sync();
    const t0 = Date.now();
    const ready = () => (st.stats() as unknown as { nextSegmentReady?: boolean }).nextSegmentReady;
    while (Date.now() - t0 < 10_000 && ready() === false) await new Promise((r) => setTimeout(r, 20));
    if (ready() === undefined) await new Promise((r) => setTimeout(r, 2000)); // code without preallocation: same pause
    console.log(`    next segment prepared after ${Date.now() - t0} ms (${ready() === undefined ? 'no preallocation in this build' : ready()})`);
    for (let k = 0; k < 8; k++) st.append([{ index: i++, term: 1, type: EntryType.Normal, data: mib }]);
    await st.sync();
    const segs = fs.readdirSync(path.join(root, 'b')).filter((f) => f.endsWith('.seg')).sort();
    const cur = path.join(root, 'b', segs.at(-1)!);
    console.log(`    rolled: ${segs.length} segments, current file ${fs.statSync(cur).size} bytes`);
    console.log(`(b) rolled segment, ${n} x 4 KiB append+sync: ${fmt(await measure(st, i, n))}`);
    await st.close();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

void main();
