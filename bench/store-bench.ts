/**
 * Block store benchmark: `node dist/bench/store-bench.js [dir]` (default: a temp dir under $TMPDIR;
 * point it at the file system you want to measure).
 *
 * 1. group commit: 2000 sequences of CREATE + 4 KiB FILE_SYNC WRITE with 1 and with 16 concurrent
 *    callers; ops/s and fsyncs per op (data fdatasyncs + directory fsyncs + LevelDB sync writes).
 * 2. sequential write of 1 GiB (size via STORE_BENCH_GIB) in 1 MiB UNSTABLE writes + one COMMIT
 *    (sync), as a Linux NFS client streams a large file; and 256 MiB in 1 MiB FILE_SYNC writes.
 * 3. metadata: 20000 pipelined creates in one directory, then listing it in pages of 1000.
 */
import { mkdtempSync, rmSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type LevelBlockStore } from '../src/store/block-store';
import type { StoreOp } from '../src/store/types';

const CRED = { uid: 0, gid: 0, gids: [] };
let clock = 1_700_000_000;
const t = () => ({ sec: clock++, nsec: 0 });

function fsyncs(s: LevelBlockStore): number {
  return s.stats.dataFsyncs + s.stats.dirFsyncs + s.stats.dbSyncs;
}

async function groupCommit(base: string, callers: number, sequences: number): Promise<void> {
  const dir = mkdtempSync(path.join(base, 'gc-'));
  const s = await openStore(dir);
  let idx = s.appliedIndex;
  const apply = (op: StoreOp) => s.apply(++idx, op);
  const data = Buffer.alloc(4096, 7);
  let next = 0;
  const f0 = fsyncs(s);
  const g0 = s.stats.groupCommits;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (;;) {
        const n = next++;
        if (n >= sequences) return;
        const c = await apply({ kind: 'create', dir: 1, name: `f${n}`, mode: 'guarded', attrs: { mode: 0o644 }, time: t(), cred: CRED });
        if (c.status !== 0) throw new Error(`create ${c.status}`);
        const w = await apply({ kind: 'write', file: c.obj!.fileid, offset: 0, data, stable: 2, time: t(), cred: CRED });
        if (w.status !== 0) throw new Error(`write ${w.status}`);
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const ops = sequences * 2;
  const f = fsyncs(s) - f0;
  console.log(
    `group commit, ${String(callers).padStart(2)} caller(s): ${sequences} create+4KiB FILE_SYNC write in ${secs.toFixed(2)} s = ` +
      `${(ops / secs).toFixed(0)} ops/s, ${(sequences / secs).toFixed(0)} files/s; fsyncs/op ${(f / ops).toFixed(3)} ` +
      `(data ${s.stats.dataFsyncs}, dir ${s.stats.dirFsyncs}, leveldb ${s.stats.dbSyncs}, group commits ${s.stats.groupCommits - g0})`,
  );
  await s.close();
  rmSync(dir, { recursive: true, force: true });
}

async function sequential(base: string, bytes: number, stable: 0 | 2): Promise<void> {
  const dir = mkdtempSync(path.join(base, 'seq-'));
  const s = await openStore(dir);
  let idx = s.appliedIndex;
  const c = await s.apply(++idx, { kind: 'create', dir: 1, name: 'big', mode: 'guarded', attrs: {}, time: t(), cred: CRED });
  const file = c.obj!.fileid;
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const t0 = process.hrtime.bigint();
  // keep a window of writes in flight, as an NFS client with many outstanding WRITEs does
  const inflight: Promise<unknown>[] = [];
  for (let off = 0; off < bytes; off += chunk.length) {
    inflight.push(s.apply(++idx, { kind: 'write', file, offset: off, data: chunk, stable, time: t(), cred: CRED }));
    if (inflight.length >= 16) await inflight.shift();
  }
  await Promise.all(inflight);
  await s.sync(file);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `sequential ${(bytes / 2 ** 20).toFixed(0)} MiB in 1 MiB ${stable ? 'FILE_SYNC' : 'UNSTABLE'} writes${stable ? '' : ' + COMMIT'}: ` +
      `${secs.toFixed(2)} s = ${(bytes / 2 ** 20 / secs).toFixed(0)} MiB/s (fsyncs ${fsyncs(s)}, group commits ${s.stats.groupCommits})`,
  );
  await s.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The ceiling: the same bytes written with plain pwrite() into one file, then one fdatasync. */
async function rawBaseline(base: string, bytes: number): Promise<void> {
  const file = path.join(mkdtempSync(path.join(base, 'raw-')), 'data');
  const fh = await fsp.open(file, 'w');
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const t0 = process.hrtime.bigint();
  for (let off = 0; off < bytes; off += chunk.length) await fh.write(chunk, 0, chunk.length, off);
  await fh.datasync();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await fh.close();
  rmSync(path.dirname(file), { recursive: true, force: true });
  console.log(`baseline: plain pwrite of ${(bytes / 2 ** 20).toFixed(0)} MiB + fdatasync: ${secs.toFixed(2)} s = ${(bytes / 2 ** 20 / secs).toFixed(0)} MiB/s`);
}

async function metadata(base: string, n: number): Promise<void> {
  const dir = mkdtempSync(path.join(base, 'md-'));
  const s = await openStore(dir);
  let idx = s.appliedIndex;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1000) {
    const ps = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      ps.push(s.apply(++idx, { kind: 'create', dir: 1, name: `entry-${j}`, mode: 'unchecked', attrs: {}, time: t(), cred: CRED }));
    }
    await Promise.all(ps);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const t1 = process.hrtime.bigint();
  let cookie = 0;
  let verf: string | undefined;
  let count = 0;
  for (;;) {
    const r = await s.readdir(1, cookie, verf, 1000);
    count += r.entries.length;
    if (r.eof) break;
    cookie = r.entries[r.entries.length - 1].cookie;
    verf = r.cookieverf;
  }
  const lsecs = Number(process.hrtime.bigint() - t1) / 1e9;
  console.log(
    `metadata: ${n} pipelined creates ${(n / secs).toFixed(0)}/s (group commits ${s.stats.groupCommits}); ` +
      `readdir of ${count} entries in pages of 1000: ${(lsecs * 1000).toFixed(0)} ms = ${(count / lsecs).toFixed(0)} entries/s`,
  );
  await s.close();
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const base = process.argv[2] ?? mkdtempSync(path.join(os.tmpdir(), 'hanfs-store-bench-'));
  const gib = Number(process.env.STORE_BENCH_GIB ?? 1);
  console.log(`store bench in ${base} (node ${process.version}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)})`);
  await groupCommit(base, 1, 2000);
  await groupCommit(base, 16, 2000);
  await rawBaseline(base, gib * 2 ** 30);
  await sequential(base, gib * 2 ** 30, 0);
  await sequential(base, 2 ** 28, 2);
  await metadata(base, 20000);
  if (!process.argv[2]) rmSync(base, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
