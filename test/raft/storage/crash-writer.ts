/**
 * Child process for the crash test: appends entries whose data is a function of their index, syncs
 * (group commit with several concurrent syncs in flight) and prints "acked <index>" only after the
 * sync covering <index> resolved. The parent kills it with SIGKILL at a random moment.
 *
 *   node crash-writer.js <dir> <segmentBytes>
 */
import { LogStorage } from '../../../src/raft/log-storage';
import { Entry, EntryType } from '../../../src/raft/types';

export function dataFor(index: number, term: number): Uint8Array {
  const len = 1 + ((index * 7919) % 700);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (index * 31 + term * 17 + i) & 0xff;
  return b;
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const segmentBytes = Number(process.argv[3] ?? 65536);
  const st = await LogStorage.open({ dir, segmentBytes });
  let next = st.lastIndex() + 1;
  const term = st.hardState().term + 1;
  st.setHardState({ term, vote: 1, commit: st.hardState().commit });
  await st.sync();
  process.stdout.write(`ready ${next - 1} ${term}\n`);
  const deadline = Date.now() + 20_000;
  const inflight: Promise<void>[] = [];
  while (Date.now() < deadline) {
    const batch: Entry[] = [];
    const n = 1 + (next % 5);
    for (let k = 0; k < n; k++, next++) batch.push({ index: next, term, type: EntryType.Normal, data: dataFor(next, term) });
    st.append(batch);
    const last = next - 1;
    // do not await every sync: several are in flight and share fsyncs
    inflight.push(st.sync().then(() => void process.stdout.write(`acked ${last}\n`)));
    if (inflight.length >= 4) await inflight.shift();
  }
  await Promise.all(inflight);
  await st.close();
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
