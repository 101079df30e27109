/**
 * A follower whose state machine stops finishing its applies (a store paused behind a `verify`
 * entry while it digests itself) while the cluster goes on writing: its RaftNode must not hand it
 * every committed entry meanwhile (each can carry up to 1 MiB of WRITE data, so a long pause under
 * writes ran the node out of memory), and must not stall its Raft loop either: it keeps appending
 * and answering, here as the only other voter of the leader's quorum. Once the applies go on, every
 * entry is applied exactly once, in order, read back from the log.
 *
 * Three voters on real disk and TCP in this process; node 2 is stopped during the pause.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AppendOnlyStateMachine } from '../../../src/raft/raft-node-main';
import type { RaftNode } from '../../../src/raft/raft-node';
import type { Entry } from '../../../src/raft/types';
import { freePorts, leaderOf, sleep, startLocalNode } from './cluster';

const CAP = 128 << 10;
const ENTRY_BYTES = 16 << 10;
const WRITES = 300;

/** applies finish in order, each only once the gate is open; counts what it holds */
class PausableApply extends AppendOnlyStateMachine {
  /** indexes handed over, in the order apply() was called */
  readonly handed: number[] = [];
  /** entry bytes handed over whose apply has not finished, and the most ever */
  outstanding = 0;
  maxOutstanding = 0;
  private gate: Promise<void> = Promise.resolve();
  private open: (() => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  pause(): void {
    this.gate = new Promise((r) => (this.open = r));
  }

  release(): void {
    this.open?.();
  }

  override apply(e: Entry): Promise<unknown> {
    this.handed.push(e.index);
    const size = e.data.byteLength;
    this.outstanding += size;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    const gate = this.gate;
    const r = this.chain
      .then(() => gate)
      .then(() => {
        this.outstanding -= size;
        return super.apply(e);
      });
    this.chain = r;
    return r;
  }
}

describe('RaftNode: backpressure on a state machine that stops finishing its applies', function () {
  this.timeout(60_000);
  let root = '';
  const nodes = new Map<number, RaftNode>();
  let paused: PausableApply | undefined;

  afterEach(async () => {
    paused?.release();
    for (const n of nodes.values()) await n.stop();
    nodes.clear();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('holds at most maxApplyingBytes of committed entries, keeps answering the leader, then applies every entry once in order', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-apply-bp-'));
    const ports = await freePorts(3);
    const sms = new Map<number, AppendOnlyStateMachine>();
    const start = async (id: number, sm: AppendOnlyStateMachine) => {
      const n = await startLocalNode({ root, ports, id, clusterId: 'apply-backpressure', stateMachine: sm, maxApplyingBytes: CAP });
      nodes.set(id, n);
      sms.set(id, sm);
      return n;
    };
    paused = new PausableApply();
    await start(1, new AppendOnlyStateMachine());
    await start(2, new AppendOnlyStateMachine());
    const n3 = await start(3, paused);
    const leader = () => leaderOf(nodes);
    // node 1 leads (node 2 is stopped below, node 3 is the paused one)
    let l = await leader();
    if (l.id !== 1) {
      l.transferLeadership(1);
      for (let i = 0; i < 300 && !nodes.get(1)!.isLeader(); i++) await sleep(10);
      l = await leader();
    }
    assert.equal(l.id, 1, 'node 1 leads');
    for (let i = 0; i < 5; i++) await l.propose(Buffer.from(`a${i}=${i}`));
    for (let i = 0; i < 200 && n3.appliedIndex < l.status().commit; i++) await sleep(10);
    assert.equal(n3.appliedIndex, l.status().commit, 'node 3 applied the first entries');

    // node 3's applies stop finishing; node 2 goes away: every commit and the lease now need node 3
    paused.pause();
    await nodes.get(2)!.stop();
    nodes.delete(2);
    const before = l.status().commit;
    let maxHeld = 0;
    let leaseLapses = 0;
    const payload = (i: number) => Buffer.concat([Buffer.from(`w${i}=${i};`), Buffer.alloc(ENTRY_BYTES, i & 0xff)]);
    for (let i = 0; i < WRITES; i += 20) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < i + 20; j++) batch.push(l.propose(payload(j)));
      await Promise.all(batch);
      maxHeld = Math.max(maxHeld, n3.applyingBytes);
      if (l.leaseValidUntilMs() <= performance.now()) leaseLapses++;
    }
    const committed = l.status().commit;
    assert.ok(committed >= before + WRITES, `the leader committed ${committed - before} entries with only the paused node 3 (${WRITES} written)`);
    // the lease rests on node 3's heartbeat answers alone: it stays valid for a while of idling
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      if (l.leaseValidUntilMs() <= performance.now()) leaseLapses++;
      maxHeld = Math.max(maxHeld, n3.applyingBytes);
    }
    assert.equal(leaseLapses, 0, "the leader's lease never lapsed while node 3's applies were paused");
    const held = n3.status();
    assert.equal(held.commit, committed, 'node 3 knows the commit index');
    assert.ok(n3.appliedIndex < before + 5, `node 3 applied nothing while paused (applied ${n3.appliedIndex}, commit ${committed})`);
    // (the cap, plus the one entry that crossed it)
    const bound = CAP + ENTRY_BYTES + 64;
    assert.ok(paused.maxOutstanding <= bound, `node 3's state machine was handed at most ${bound} bytes it had not applied (got ${paused.maxOutstanding})`);
    assert.ok(maxHeld <= bound && maxHeld > 0, `node 3's applier held at most ${bound} bytes (got ${maxHeld})`);
    assert.ok(paused.handed.length < WRITES / 2, `node 3 was handed ${paused.handed.length} of ${WRITES} entries while paused`);
    const metrics = await n3.metrics.registry.getSingleMetricAsString('hanfs_raft_applying_bytes');
    assert.match(metrics, new RegExp(`hanfs_raft_applying_bytes ${n3.applyingBytes}\\b`), 'the gauge shows the bytes held');

    // the applies go on: every entry is read back from the log and applied once, in order
    paused.release();
    for (let i = 0; i < 500 && n3.appliedIndex < committed; i++) await sleep(20);
    assert.equal(n3.appliedIndex, committed, 'node 3 applied through the commit index');
    assert.equal(n3.applyingBytes, 0, 'nothing held once applied');
    const idx = paused.handed;
    for (let k = 1; k < idx.length; k++) assert.equal(idx[k], idx[k - 1]! + 1, `entries handed over in order, once each (${idx[k - 1]} then ${idx[k]})`);
    const s1 = sms.get(1)!;
    const s3 = sms.get(3)!;
    assert.deepEqual(
      s3.entries.map((e) => e.index),
      s1.entries.map((e) => e.index),
      'node 3 applied the same entries as the leader',
    );
    assert.ok(s3.entries.every((e, k) => e.payload === s1.entries[k]!.payload), 'with the same payloads');
    assert.deepEqual([...s3.kv], [...s1.kv], 'node 3 has the state of the leader');
  });
});
