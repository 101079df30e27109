/**
 * RaftNode answers a proposal at commit without waiting for the fsync of the entries proposed after
 * it: committed entries already on the node's disk are applied while the next Ready's fsync runs.
 * (Before, they were applied after it: under load every answer waited for two fsyncs.) And the other
 * side of the rule: an entry is never applied before its own fsync.
 *
 * One voter on real disk and TCP; its log's fdatasync can be held (StorageIo injection).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { AppendOnlyStateMachine } from '../../../src/raft/raft-node-main';
import { RaftNode } from '../../../src/raft/raft-node';
import { freePorts, sleep } from './cluster';

describe('RaftNode: applying committed entries during the next fsync', function () {
  this.timeout(30_000);
  let root = '';
  let node: RaftNode | undefined;
  /** fdatasync callbacks held back while `holding` */
  let holding = false;
  const held: (() => void)[] = [];
  const heldCount = (): number => held.length;

  afterEach(async () => {
    holding = false;
    for (const f of held.splice(0)) f();
    await node?.stop();
    node = undefined;
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('answers an entry committed before a Ready while that Ready fsyncs the next one, never an entry before its own fsync', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-apply-sync-'));
    const [port] = await freePorts(1);
    const sm = new AppendOnlyStateMachine();
    node = await RaftNode.start({
      id: 1,
      peers: { 1: { host: '127.0.0.1', port } },
      dir: path.join(root, 'n1'),
      clusterId: 'apply-during-sync',
      secret: 'k',
      stateMachine: sm,
      tickMs: 20,
      electionTicks: 10,
      logger: pino({ level: 'silent' }),
      storage: {
        io: {
          fdatasync: (fd, cb) => {
            if (holding) held.push(() => fs.fdatasync(fd, cb));
            else fs.fdatasync(fd, cb);
          },
        },
      },
    });
    for (let i = 0; i < 500 && !node.isLeader(); i++) await sleep(10);
    assert.ok(node.isLeader(), 'the single voter leads');
    await node.propose(Buffer.from('a=1'));

    // B's fsync is held: B is not committed, not applied, not answered
    holding = true;
    let bDone = false;
    const b = node.propose(Buffer.from('b=2')).then((r) => ((bDone = true), r));
    for (let i = 0; i < 200 && heldCount() === 0; i++) await sleep(5);
    assert.equal(heldCount(), 1, "B's fsync started and is held");
    await sleep(100);
    assert.equal(bDone, false, 'B is not answered before its own fsync');
    assert.ok(!sm.kv.has('b'), 'B is not applied before its own fsync');

    // C is proposed meanwhile; B's fsync completes: B commits, and the next Ready carries B
    // (committed) and C (to persist), whose fsync is held in turn
    let cDone = false;
    const c = node.propose(Buffer.from('c=3')).then((r) => ((cDone = true), r));
    held.shift()!();
    for (let i = 0; i < 200 && heldCount() === 0; i++) await sleep(5);
    assert.equal(heldCount(), 1, "C's fsync started and is held");
    // B is answered while C's fsync is still held
    const bWithin = await Promise.race([b.then(() => true), sleep(2000).then(() => false)]);
    assert.ok(bWithin, "B is answered while the fsync of C (proposed after it) is still running");
    assert.ok(sm.kv.has('b'), 'B is applied');
    assert.equal(cDone, false, 'C is not answered before its own fsync');
    assert.ok(!sm.kv.has('c'), 'C is not applied before its own fsync');

    holding = false;
    for (const f of held.splice(0)) f();
    const rc = await c;
    assert.ok(rc.index > (await b).index, 'C follows B');
    assert.ok(sm.kv.has('c'), 'C is applied once its fsync is done');
  });
});
