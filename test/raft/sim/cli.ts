/**
 * Run the deterministic Raft simulation over a range of seeds.
 *
 *   npm run sim -- --seeds N --seed S [--nodes 3|5] [--steps K] [--verbose] [--bug MODE] [--faults X]
 *                  [--twice] [--stop-on-failure] [--settle T] [--join-bootstrap] [--no-promise-checks] [--no-codec] [--quiet]
 *                  [--set param=value]...   (override a parameter drawn from the seed, e.g. --set loss=0)
 *                  [--store]   (the real block store as every node's state machine: store-node.ts)
 *
 * Without --nodes, seeds alternate 3- and 5-node clusters (even seeds 3, odd seeds 5). On a failure it
 * prints the seed, the violated invariant, the last events and the command that replays it exactly.
 * --twice runs each seed twice and compares the trace hashes (determinism). Exit status 1 on failure.
 */
import { BUG_MODES, BugMode } from './node';
import { runSimulation, runSimulationStore, SimOptions, SimParams, SimResult } from './simulator';

interface Args {
  seeds: number;
  seed: number;
  nodes?: number;
  steps: number;
  settle: number;
  verbose: boolean;
  bug: BugMode;
  faults: number;
  twice: boolean;
  stopOnFailure: boolean;
  quiet: boolean;
  joinBootstrap: boolean;
  promiseChecks: boolean;
  set: Record<string, number | boolean>;
  codec: boolean;
  store: boolean;
}

function parse(argv: string[]): Args {
  const a: Args = { seeds: 100, seed: 1, steps: 1000, settle: 300, verbose: false, bug: 'none', faults: 1, twice: false, stopOnFailure: false, quiet: false, joinBootstrap: false, promiseChecks: true, set: {}, codec: true, store: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const int = (): number => {
      const n = Number(v());
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${k}: not a non-negative integer`);
      return n;
    };
    switch (k) {
      case '--seeds': a.seeds = int(); break;
      case '--seed': a.seed = int(); break;
      case '--nodes': a.nodes = int(); break;
      case '--steps': a.steps = int(); break;
      case '--settle': a.settle = int(); break;
      case '--verbose': a.verbose = true; break;
      case '--quiet': a.quiet = true; break;
      case '--twice': a.twice = true; break;
      case '--join-bootstrap': a.joinBootstrap = true; break;
      case '--no-promise-checks': a.promiseChecks = false; break;
      case '--no-codec': a.codec = false; break;
      case '--store': a.store = true; break;
      case '--set': {
        const m = /^(\w+)=(.+)$/.exec(v());
        if (!m) throw new Error('--set key=value');
        a.set[m[1]] = m[2] === 'true' ? true : m[2] === 'false' ? false : Number(m[2]);
        if (typeof a.set[m[1]] === 'number' && Number.isNaN(a.set[m[1]])) throw new Error(`--set ${m[1]}: not a number`);
        break;
      }
      case '--stop-on-failure': a.stopOnFailure = true; break;
      case '--faults': a.faults = Number(v()); break;
      case '--bug': {
        const b = v() as BugMode;
        if (!BUG_MODES.includes(b)) throw new Error(`--bug: one of ${BUG_MODES.join(', ')}`);
        a.bug = b;
        break;
      }
      case '--help':
      case '-h':
        console.log('usage: npm run sim -- --seeds N --seed S [--nodes 3|5] [--steps K] [--verbose] [--bug MODE] [--faults X] [--twice] [--stop-on-failure] [--settle T] [--quiet] [--join-bootstrap] [--no-promise-checks] [--no-codec] [--store] [--set param=value]...');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  if (a.nodes !== undefined && a.nodes < 1) throw new Error('--nodes must be >= 1');
  return a;
}

function report(r: SimResult): void {
  console.log(`\nFAIL seed ${r.seed} (${r.nodes} nodes, ${r.ticks} ticks${r.bug !== 'none' ? `, bug ${r.bug}` : ''}): ${r.violation!.kind}`);
  console.log(r.violation!.message);
  console.log(`params: ${JSON.stringify(r.params)}`);
  console.log(`last events:`);
  for (const l of r.lastEvents) console.log(`  ${l}`);
  console.log(`trace hash ${r.traceHash}`);
  console.log(`replay: ${r.replay}`);
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const t0 = process.hrtime.bigint();
  let passed = 0;
  let failed = 0;
  let events = 0;
  let ops = 0;
  let acked = 0;
  let crashes = 0;
  let partitions = 0;
  let confChanges = 0;
  let snaps = 0;
  let linUnknown = 0;
  let digests = 0;
  let redos = 0;
  let lost = 0;
  const failures: SimResult[] = [];
  const kinds = new Map<string, number>();
  for (let s = a.seed; s < a.seed + a.seeds; s++) {
    const nodes = a.nodes ?? (s % 2 === 0 ? 3 : 5);
    const opts: SimOptions = {
      store: a.store,
      seed: s, nodes, ticks: a.steps, settleTicks: a.settle, bug: a.bug, faultScale: a.faults, joinBootstrap: a.joinBootstrap, promiseChecks: a.promiseChecks, set: a.set as Partial<SimParams>, codec: a.codec,
      log: a.verbose ? (l: string) => console.log(l) : undefined,
    };
    const sim = (o: SimOptions): Promise<SimResult> => (o.store ? runSimulationStore(o) : Promise.resolve(runSimulation(o)));
    const r = await sim(opts);
    if (a.twice) {
      const r2 = await sim({ ...opts, log: undefined });
      if (r2.traceHash !== r.traceHash) {
        r.ok = false;
        r.violation = { kind: 'nondeterminism', message: `two runs of seed ${s} gave trace hashes ${r.traceHash} and ${r2.traceHash}` };
      }
    }
    events += r.stats.events;
    ops += r.stats.ops;
    acked += r.stats.acked;
    crashes += r.stats.crashes;
    partitions += r.stats.partitions;
    confChanges += r.stats.confChanges;
    snaps += r.stats.snapshotsInstalled;
    digests += r.stats.digests;
    redos += r.stats.redos;
    lost += r.stats.lostBatches;
    if (r.stats.linearizability === 'unknown') linUnknown++;
    if (r.ok) {
      passed++;
      if (a.verbose) console.log(`seed ${s}: ok, trace hash ${r.traceHash}, ${JSON.stringify(r.stats)}`);
    } else {
      failed++;
      failures.push(r);
      kinds.set(r.violation!.kind, (kinds.get(r.violation!.kind) ?? 0) + 1);
      report(r);
      if (a.stopOnFailure) break;
    }
    if (!a.quiet && !a.verbose && (s - a.seed + 1) % 100 === 0) {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(`.. ${s - a.seed + 1} seeds, ${failed} failed, ${((s - a.seed + 1) / secs).toFixed(1)} seeds/s`);
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = passed + failed;
  console.log(
    `\n${n} seeds from ${a.seed}${a.nodes ? ` (${a.nodes} nodes)` : ' (3/5 nodes alternating)'}, ${a.steps} ticks each: ` +
      `${(n / secs).toFixed(2)} seeds/s, ${Math.round(events / secs)} events/s, ${secs.toFixed(1)} s; ` +
      `${ops} client ops (${acked} acked writes), ${crashes} crashes, ${partitions} partitions, ${confChanges} conf changes, ` +
      `${snaps} snapshots installed, linearizability undecided in ${linUnknown}` +
      (a.store ? `; store mode: ${digests} store digests compared, ${redos} redo recoveries, ${lost} unwritten store writer writes lost in crashes` : ''),
  );
  if (failed > 0) {
    console.log(`failures by invariant: ${[...kinds].map(([k, c]) => `${k} ${c}`).join(', ')}`);
    console.log(`failed seeds: ${failures.map((f) => f.seed).join(' ')}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
