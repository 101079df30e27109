import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { openStore } from '../../src/store/block-store';
import { fsck } from '../../src/store/fsck';
import { crashOp, expected, fileId, stepOf } from './crash-workload';
import { rmDir, tmpDir } from './helpers';

const CHILD = path.join(__dirname, 'crash-child.js');
const MIN_ACKS = 5;

/** Run the child until it has acknowledged MIN_ACKS ops, then SIGKILL it after a random delay (the
 * count, not the delay, guarantees progress: a loaded machine may ack few ops in 100 ms). */
function runAndKill(dir: string, killAfterMs: number, logWal = false): Promise<{ acked: number[]; start: number }> {
  return new Promise((resolve, reject) => {
    const args = [CHILD, dir, '100000', ...(logWal ? ['logwal'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: number[] = [];
    let start = -1;
    let buf = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('ACK ')) acked.push(Number(line.slice(4)));
        else if (line.startsWith('START ')) start = Number(line.slice(6));
        if (!timer && acked.length >= MIN_ACKS) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited ${code} ${signal}: ${err}`));
      else resolve({ acked, start });
    });
  });
}

/** The store must hold exactly the state of the op prefix it reports as applied; without logWal every
 * acknowledged op must be in it. With logWal, the ops after the durable checkpoint are redone first
 * (an acknowledged op may be missing: the log holds it). */
let redone = 0;

async function verify(dir: string, acked: number[], logWal = false): Promise<number> {
  const store = await openStore(dir, { logWal });
  try {
    const applied = store.appliedIndex;
    const maxAck = acked.length ? Math.max(...acked) : 0;
    if (logWal) {
      assert.ok(store.durableIndex <= applied);
      redone += applied - store.durableIndex;
      for (let i = store.durableIndex + 1; i <= applied; i++) await store.redo(i, crashOp(i));
      await store.finishRedo();
      assert.equal(store.durableIndex, applied);
    } else {
      assert.ok(applied >= maxAck, `applied ${applied} behind acknowledged ${maxAck}`);
    }
    const steps = stepOf(applied + 1).s + 1;
    for (let s = 0; s < steps; s++) {
      const want = expected(s, applied);
      const attr = await store.getattr(fileId(s));
      if (!want) {
        assert.equal(attr, undefined, `file of step ${s} must not exist at ${applied}`);
        continue;
      }
      assert.ok(attr, `file of step ${s} missing at ${applied}`);
      const l = await store.lookup(want.dir, want.name);
      assert.equal(l.obj?.fileid, fileId(s), `step ${s}: ${want.name} in ${want.dir}`);
      assert.equal(attr.size, want.data.length, `step ${s} size`);
      const r = await store.read(fileId(s), 0, want.data.length);
      assert.ok(Buffer.from(r.data!).equals(want.data), `step ${s} content`);
    }
    return applied;
  } finally {
    await store.close();
  }
}

describe('store: crash safety (SIGKILL during FILE_SYNC workload)', function () {
  this.timeout(180000);
  let dir: string;
  before(() => {
    dir = tmpDir('crash');
  });
  after(() => rmDir(dir));

  it('every acknowledged op survives repeated SIGKILLs; fsck is clean', async () => {
    const allAcked: number[] = [];
    let lastApplied = 0;
    const kills = 6;
    for (let k = 0; k < kills; k++) {
      const { acked, start } = await runAndKill(dir, 100 + Math.floor(Math.random() * 700));
      assert.ok(acked.length > 0, 'child acknowledged ops');
      assert.ok(start >= lastApplied, 'child resumed at or after the last verified position');
      allAcked.push(...acked);
      // verify after every other kill, so that the child also starts from a crashed store
      if (k % 2 === 1 || k === kills - 1) lastApplied = await verify(dir, allAcked);
    }
    assert.ok(lastApplied > 20, `made progress: ${lastApplied}`);
    const rep = await fsck(dir);
    assert.deepEqual(rep.problems, []);
    assert.ok(rep.regularFiles > 5);
  });

  it('logWal: after repeated SIGKILLs, redo of the ops after the durable checkpoint gives the state of the applied prefix; fsck is clean', async () => {
    const wdir = tmpDir('crash-wal');
    try {
      let lastApplied = 0;
      const kills = 6;
      for (let k = 0; k < kills; k++) {
        const { acked, start } = await runAndKill(wdir, 100 + Math.floor(Math.random() * 700), true);
        assert.ok(acked.length > 0, 'child acknowledged ops');
        assert.ok(start >= lastApplied, 'child resumed at or after the last verified position');
        if (k % 2 === 1 || k === kills - 1) lastApplied = await verify(wdir, acked, true);
      }
      assert.ok(lastApplied > 20, `made progress: ${lastApplied}`);
      assert.ok(redone > 0, 'some verification had ops to redo');
      const rep = await fsck(wdir);
      assert.deepEqual(rep.problems, []);
    } finally {
      rmDir(wdir);
    }
  });
});
