/**
 * Child process of the crash test: `node crash-child.js <dataDir> <maxIndex> [logwal]`. Opens the
 * store, resumes the deterministic op log at appliedIndex + 1 with up to 8 ops in flight, and prints
 * "ACK <index>" for every op whose apply() resolved as stable (every op except UNSTABLE writes).
 * With `logwal` the store runs with logWal (the op log is the write-ahead log): it first redoes the
 * ops after its durable checkpoint, and an ACK only means applied (the log would hold the op).
 * Stops by itself at maxIndex or after 60 s; the parent normally SIGKILLs it long before.
 */
import { openStore } from '../../src/store/block-store';
import { crashOp } from './crash-workload';

async function main(): Promise<void> {
  const [dir, maxArg, mode] = process.argv.slice(2);
  const max = Number(maxArg ?? 100000);
  const logWal = mode === 'logwal';
  const store = await openStore(dir, logWal ? { logWal, checkpointIntervalMs: 100 } : {});
  if (store.needsRedo) {
    for (let i = store.durableIndex + 1; i <= store.appliedIndex; i++) await store.redo(i, crashOp(i));
    await store.finishRedo();
  }
  process.stdout.write(`START ${store.appliedIndex}\n`);
  const deadline = Date.now() + 60_000;
  let next = store.appliedIndex + 1;
  const inflight = new Set<Promise<void>>();
  let rounds = 0;
  while (next <= max && Date.now() < deadline) {
    while (inflight.size < 8 && next <= max) {
      const i = next++;
      const op = crashOp(i);
      const p: Promise<void> = store.apply(i, op).then((r) => {
        inflight.delete(p);
        if (r.status !== 0) throw new Error(`op ${i} ${op.kind} failed with ${r.status}`);
        if (!(op.kind === 'write' && op.stable === 0)) process.stdout.write(`ACK ${i}\n`);
      });
      inflight.add(p);
    }
    await Promise.race(inflight);
    // let timers and I/O completions run, as ops arriving over the network would: with logWal an
    // apply does no I/O, and a loop of promise reactions alone would starve the store's writer
    // (its LevelDB writes complete, but their callbacks never run until backpressure)
    if (++rounds % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(inflight);
  await store.close();
  process.stdout.write('DONE\n');
}

main().catch((e) => {
  process.stderr.write(`crash-child: ${e?.stack ?? e}\n`);
  process.exit(1);
});
