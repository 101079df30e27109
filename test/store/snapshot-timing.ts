/**
 * Times the store snapshot stream on a store of many small files (not a mocha test):
 *
 *   node dist/test/store/snapshot-timing.js [files=5000] [fileKiB=20] [runs=2] [dir]
 *
 * Builds a store of `files` files of `fileKiB` KiB (data files, not inline), then per run: send to a
 * file, restore from that file, and send piped straight into a restore (the catch-up shape, minus
 * TCP). Prints the seconds of each and the stream's checksum (the same in every run for one store).
 * The page cache holds the source's data files, so this measures the per-file overhead of both ends
 * rather than the disk. Uses the daemon's thread pool size (src/threadpool.ts).
 */
import '../../src/threadpool';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { restoreSnapshot, writeSnapshot } from '../../src/store/snapshot';
import { randomBytesSeeded, rng } from '../support/util';
import { Harness, rmDir, tmpDir } from './helpers';

async function main(): Promise<void> {
  const files = Number(process.argv[2] ?? 5000);
  const fileKiB = Number(process.argv[3] ?? 20);
  const runs = Number(process.argv[4] ?? 2);
  const base = process.argv[5] ?? tmpDir('snap-timing');
  fs.mkdirSync(base, { recursive: true });
  const h = await Harness.open(path.join(base, 'src'), { inlineMax: 0 });
  try {
    const r = rng(1);
    let t = Date.now();
    const dirs: number[] = [];
    for (let d = 0; d < 10; d++) dirs.push(await h.mkdir(1, `d${d}`));
    for (let i = 0; i < files; i++) {
      const f = await h.create(dirs[i % dirs.length], `f${i}`);
      await h.write(f, 0, randomBytesSeeded(r, fileKiB * 1024), 0);
    }
    await h.store.sync();
    console.log(`built ${files} files of ${fileKiB} KiB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    for (let run = 1; run <= runs; run++) {
      const file = path.join(base, 'snap');
      t = Date.now();
      const out = fs.createWriteStream(file);
      const w = await writeSnapshot(h.store, out);
      await new Promise<void>((resolve, reject) => {
        out.once('error', reject);
        out.end(resolve);
      });
      const send = (Date.now() - t) / 1000;
      t = Date.now();
      await restoreSnapshot(path.join(base, 'restored'), fs.createReadStream(file));
      const restore = (Date.now() - t) / 1000;
      rmDir(path.join(base, 'restored'));
      t = Date.now();
      const pipe = new PassThrough({ highWaterMark: 1024 * 1024 });
      const restoring = restoreSnapshot(path.join(base, 'piped'), pipe);
      const sent = writeSnapshot(h.store, pipe).finally(() => pipe.end());
      const [p] = await Promise.all([sent, restoring]);
      const piped = (Date.now() - t) / 1000;
      rmDir(path.join(base, 'piped'));
      const mib = w.bytes / 1024 / 1024;
      console.log(
        `run ${run}: ${mib.toFixed(1)} MiB; send to file ${send.toFixed(2)} s, restore from file ${restore.toFixed(2)} s, ` +
          `send piped into restore ${piped.toFixed(2)} s (${(mib / piped).toFixed(1)} MiB/s); checksum ${w.checksum.slice(0, 16)} ${p.checksum === w.checksum ? 'same' : 'DIFFERS'}`,
      );
    }
  } finally {
    await h.close();
    if (!process.argv[5]) rmDir(base);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
