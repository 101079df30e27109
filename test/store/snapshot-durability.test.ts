/**
 * A restored store is durable before its ready marker is written: watched with strace on a real
 * restore in a child process. Every data file is fdatasync'd (or fsync'd) through the descriptor that
 * wrote it, before that descriptor is closed; every LevelDB file and every directory of the incoming
 * store (shards, blocks, meta, the store's own) is fsync'd; all of it before the marker is created.
 * This is the rule that lets the restored store carry a clean-shutdown marker (snapshot.ts).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSnapshot } from '../../src/store/snapshot';
import { randomBytesSeeded, rng } from '../support/util';
import { Harness, rmDir, tmpDir } from './helpers';

interface Syscall {
  pid: string;
  name: string;
  args: string;
  result: string;
}

/** the calls of an `strace -f` output, "unfinished ... resumed" pairs joined, in completion order
 * (a close in the order it started) */
function parseStrace(text: string): Syscall[] {
  const pending = new Map<string, string>(); // pid/name -> args so far
  const out: Syscall[] = [];
  for (const line of text.split('\n')) {
    let m = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (m) {
      // a close gives its descriptor up when it starts: another thread's open may get the same number
      // (and be printed) before this close is printed as finished. So a close counts where it starts.
      if (m[2] === 'close') out.push({ pid: m[1], name: 'close', args: m[3], result: '0' });
      else pending.set(`${m[1]}/${m[2]}`, m[3]);
      continue;
    }
    m = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+= (.*)$/.exec(line);
    if (m) {
      if (m[2] === 'close') continue; // counted where it started
      const start = pending.get(`${m[1]}/${m[2]}`) ?? '';
      pending.delete(`${m[1]}/${m[2]}`);
      out.push({ pid: m[1], name: m[2], args: start + m[3], result: m[4] });
      continue;
    }
    m = /^(\d+)\s+(\w+)\((.*)\)\s+= (.*)$/.exec(line);
    if (m) out.push({ pid: m[1], name: m[2], args: m[3], result: m[4] });
  }
  return out;
}

describe('store: a restored snapshot is durable before its ready marker (strace)', function () {
  this.timeout(120000);
  const dirs: string[] = [];
  after(() => dirs.forEach(rmDir));

  it('every data file is synced through its own descriptor before close; LevelDB files and every directory before the marker', async () => {
    const work = tmpDir('snap-durable');
    dirs.push(work);
    const h = await Harness.open(path.join(work, 'src'), { inlineMax: 0 });
    const r = rng(5);
    try {
      const d = [await h.mkdir(1, 'a'), await h.mkdir(1, 'b')];
      for (let i = 0; i < 40; i++) {
        const f = await h.create(d[i % 2], `f${i}`);
        if (i % 10 !== 0) await h.write(f, 0, randomBytesSeeded(r, 1 + Math.floor(r() * 30000)), 0);
        if (i % 7 === 0) await h.op({ kind: 'setattr', file: f, attrs: { size: 100000 + i } }); // extended: a cut on restore
      }
      await h.store.sync();
      const out = fs.createWriteStream(path.join(work, 'snap'));
      await writeSnapshot(h.store, out);
      await new Promise<void>((resolve, reject) => {
        out.once('error', reject);
        out.end(resolve);
      });
    } finally {
      await h.close();
    }

    const target = path.join(work, 'restored');
    const incoming = target + '.incoming';
    const trace = path.join(work, 'trace');
    const snapshotJs = path.resolve(__dirname, '../../src/store/snapshot.js');
    const script = `require(${JSON.stringify(snapshotJs)}).restoreSnapshot(${JSON.stringify(target)}, require('fs').createReadStream(${JSON.stringify(path.join(work, 'snap'))})).then((r) => console.log(JSON.stringify(r)))`;
    const res = JSON.parse(
      execFileSync('strace', ['-f', '-qq', '-o', trace, '-e', 'trace=openat,open,creat,fsync,fdatasync,close', process.execPath, '-e', script]).toString(),
    ) as { dataFiles: number };
    assert.equal(res.dataFiles, 40);
    const calls = parseStrace(fs.readFileSync(trace, 'utf8'));

    // walk the calls: descriptor -> path open now; which paths were synced, and when
    const open = new Map<string, string>(); // fd -> path
    const syncedAt = new Map<string, number>(); // path -> index of its first sync
    const dataFileSyncedBeforeClose = new Map<string, boolean>();
    const unsynced = new Set<string>(); // data-file descriptors written through and not yet synced
    let marker = -1;
    calls.forEach((c, i) => {
      if (c.name === 'openat' || c.name === 'open' || c.name === 'creat') {
        const p = /"([^"]*)"/.exec(c.args)?.[1];
        const fd = /^(\d+)/.exec(c.result)?.[1];
        if (!p || !fd) return;
        open.set(fd, p);
        if (p === target + '.restore-ready' && marker < 0) marker = i;
        if (p.startsWith(path.join(incoming, 'blocks') + '/') && /O_WRONLY|O_RDWR/.test(c.args) && /O_CREAT/.test(c.args)) unsynced.add(fd);
      } else if (c.name === 'fsync' || c.name === 'fdatasync') {
        const fd = /^(\d+)/.exec(c.args)?.[1] ?? '';
        const p = open.get(fd);
        if (p && c.result.startsWith('0')) {
          if (!syncedAt.has(p)) syncedAt.set(p, i);
          if (unsynced.delete(fd)) dataFileSyncedBeforeClose.set(p, true);
        }
      } else if (c.name === 'close') {
        const fd = /^(\d+)/.exec(c.args)?.[1] ?? '';
        const p = open.get(fd);
        if (p && unsynced.delete(fd)) dataFileSyncedBeforeClose.set(p, false);
        open.delete(fd);
      }
    });
    assert.ok(marker > 0, 'the ready marker was created');

    // the restored store, by its path while it was being written
    const dataFiles: string[] = [];
    const metaFiles: string[] = [];
    const directories: string[] = [incoming];
    const walk = (rel: string): void => {
      for (const e of fs.readdirSync(path.join(target, rel), { withFileTypes: true })) {
        const r2 = path.join(rel, e.name);
        if (e.isDirectory()) {
          directories.push(path.join(incoming, r2));
          walk(r2);
        } else if (rel.startsWith('blocks')) dataFiles.push(path.join(incoming, r2));
        else if (e.name !== 'LOCK' && e.name !== 'LOG' && e.name !== 'LOG.old') metaFiles.push(path.join(incoming, r2));
      }
    };
    walk('');
    assert.equal(dataFiles.length, 40);
    assert.ok(metaFiles.length >= 3, `LevelDB files: ${metaFiles.join(', ')}`);
    for (const p of dataFiles) assert.equal(dataFileSyncedBeforeClose.get(p), true, `data file ${p} synced before its descriptor was closed`);
    for (const p of [...dataFiles, ...metaFiles, ...directories]) {
      const at = syncedAt.get(p);
      assert.ok(at !== undefined, `${p} was synced`);
      assert.ok(at < marker, `${p} was synced before the ready marker`);
    }
  });
});
