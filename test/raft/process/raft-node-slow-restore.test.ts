/**
 * A follower that restores a leader snapshot for longer than followerHoldMs (a big store streams and
 * restores for minutes) while writes go on: the leader must keep the log after the snapshot's index
 * for it, or the follower finds that log compacted when its restore ends, needs another snapshot,
 * and under steady writes never catches up (seen with a 2.4 GiB store in the catch-up bench). The
 * restoring node answers heartbeats while its Ready loop waits for the restore; the leader holds the
 * log for a follower in snapshot state however many entries were written meanwhile.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { AppendOnlyStateMachine } from '../../../src/raft/raft-node-main';
import { RaftNode } from '../../../src/raft/raft-node';
import type { SnapshotMeta } from '../../../src/raft/types';
import { freePorts, leaderOf, sleep, startLocalNode } from './cluster';

const RESTORE_MS = 2500;
const HOLD_MS = 600;

/** restores take RESTORE_MS (counted) */
class SlowRestore extends AppendOnlyStateMachine {
  restores = 0;
  override async restore(data: Uint8Array, meta: SnapshotMeta): Promise<void> {
    this.restores++;
    await sleep(RESTORE_MS);
    super.restore(data, meta);
  }
}

describe('RaftNode: a follower restoring a snapshot longer than followerHoldMs, writes going on', function () {
  this.timeout(60_000);
  let root = '';
  const nodes = new Map<number, RaftNode>();

  afterEach(async () => {
    for (const n of nodes.values()) await n.stop();
    nodes.clear();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('catches up with one snapshot: the leader holds the log while the follower restores and while it replays the log after it', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-slow-restore-'));
    const ports = await freePorts(3);
    const sms = new Map<number, AppendOnlyStateMachine>();
    const start = async (id: number, sm: AppendOnlyStateMachine) => {
      const n = await startLocalNode({
        root,
        ports,
        id,
        clusterId: 'slow-restore',
        stateMachine: sm,
        // snapshot and compact every 20 entries, keep nothing behind for slow followers, and let a
        // follower unheard of for HOLD_MS (much less than a restore) stop holding the log
        snapshotEntries: 20,
        snapshotCatchUpEntries: 0,
        followerHoldMs: HOLD_MS,
        logger: process.env.SR_LOG ? pino({ level: 'debug', base: { n: id } }, pino.destination({ dest: `/tmp/sr-${id}.log`, append: true, sync: true })) : pino({ level: 'silent' }),
      });
      nodes.set(id, n);
      sms.set(id, sm);
      return n;
    };
    for (const id of [1, 2]) await start(id, new AppendOnlyStateMachine());
    await start(3, new AppendOnlyStateMachine());
    const leader = () => leaderOf(nodes);
    // node 3 must be the one that falls behind: make sure another node leads
    let l = await leader();
    if (l.id === 3) {
      l.transferLeadership(1);
      for (let i = 0; i < 200 && !nodes.get(1)!.isLeader(); i++) await sleep(10);
      l = await leader();
    }
    for (let i = 0; i < 10; i++) await l.propose(Buffer.from(`a${i}=${i}`));

    // node 3 goes away; the log is compacted far past it
    await nodes.get(3)!.stop();
    nodes.delete(3);
    for (let i = 0; i < 120; i++) await l.propose(Buffer.from(`b${i}=${i}`));
    await sleep(HOLD_MS * 2);
    for (let i = 0; i < 40; i++) await l.propose(Buffer.from(`c${i}=${i}`));
    assert.ok(l.status().firstIndex > 50, `the leader compacted its log (first index ${l.status().firstIndex})`);

    // it comes back with a slow restore while a writer goes on: many more entries than 10 snapshot
    // intervals are written during one restore
    const slow = new SlowRestore();
    const n3 = await start(3, slow);
    let stop = false;
    let written = 0;
    const writer = (async () => {
      while (!stop) {
        await l.propose(Buffer.from(`w${written}=${written}`));
        written++;
        await sleep(5);
      }
    })();
    const until = Date.now() + 30_000;
    while (Date.now() < until && (slow.restores === 0 || n3.status().applied < l.status().commit - 5)) await sleep(50);
    await sleep(300);
    stop = true;
    await writer;
    const final = l.status().commit;
    for (let i = 0; i < 200 && n3.status().applied < final; i++) await sleep(20);

    assert.ok(written > 10 * 20, `${written} entries written while node 3 caught up (more than 10 snapshot intervals)`);
    // (before the hold: 12 restores in this test, one after the other, as long as the writer ran;
    // with the hold only while restoring, now and then a second one, sent by the compaction right
    // after the first restore ended)
    assert.equal(slow.restores, 1, `node 3 restored ${slow.restores} snapshots (the log after the first must have been kept)`);
    assert.equal(n3.status().applied, final, 'node 3 caught up');
    assert.deepEqual([...slow.kv].sort(), [...sms.get(l.id)!.kv].sort(), 'node 3 holds what the leader holds');
  });
});
