/**
 * RaftNode start-up with a persistent state machine that is behind the local snapshot: the leader's
 * snapshot was made durable (the log before it discarded), then the node crashed before the state
 * machine's restore finished. Found by the store-mode simulation (docs/simulation.md, F4): start-up
 * called `recover` first, which needs the log entries after the store's own checkpoint — discarded
 * by the snapshot — so the node could never start again.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { LogStorage } from '../../../src/raft/log-storage';
import { RaftNode, type StateMachine } from '../../../src/raft/raft-node';
import { EntryType, type Entry, type SnapshotMeta } from '../../../src/raft/types';
import { freePorts } from './cluster';

/** a store that applied up to 5 but checkpointed only up to 2 (recover needs entries 3..5) */
class BehindStore implements StateMachine {
  applied = 5;
  durable = 2;
  restored: number[] = [];
  recovered = 0;
  apply(e: Entry): unknown {
    this.applied = e.index;
    return undefined;
  }
  appliedIndex(): number {
    return this.applied;
  }
  async recover(read: (lo: number, hi: number) => Entry[]): Promise<void> {
    if (this.durable >= this.applied) return;
    read(this.durable + 1, this.applied + 1);
    this.recovered++;
  }
  snapshot(): Uint8Array {
    return Buffer.from('descriptor');
  }
  restore(_data: Uint8Array, meta: SnapshotMeta): void {
    this.restored.push(meta.index);
    this.applied = this.durable = meta.index;
  }
}

describe('RaftNode start-up behind the local snapshot (an interrupted restore)', function () {
  this.timeout(20_000);
  let root = '';
  let node: RaftNode | undefined;
  afterEach(async () => {
    await node?.stop();
    node = undefined;
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('restores from the snapshot instead of recovering from log entries the snapshot discarded', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raftnode-restore-'));
    const dir = path.join(root, 'n1');
    const conf = { voters: [1], learners: [], votersOutgoing: [] };
    const st = await LogStorage.open({ dir });
    await st.saveSnapshot({ meta: { index: 0, term: 0, conf }, data: new Uint8Array(0) });
    st.append(Array.from({ length: 5 }, (_, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: Buffer.from(`e${i + 1}`) })));
    st.setHardState({ term: 1, vote: 1, commit: 5 });
    await st.sync();
    // the leader's snapshot at 20 arrives and is made durable: entries up to 20 are gone
    await st.applySnapshot({ meta: { index: 20, term: 1, conf }, data: Buffer.from('descriptor') });
    st.setHardState({ term: 1, vote: 1, commit: 20 });
    await st.sync();
    await st.close();
    // ... and the node crashed before its store was replaced
    const sm = new BehindStore();
    const [port] = await freePorts(1);
    node = await RaftNode.start({
      id: 1,
      peers: { 1: { host: '127.0.0.1', port } },
      dir,
      clusterId: 'restore-test',
      secret: 'k',
      stateMachine: sm,
      logger: pino({ level: 'silent' }),
    });
    assert.deepEqual(sm.restored, [20], 'the state machine was restored from the local snapshot');
    assert.equal(node.appliedIndex, 20);
  });
});
