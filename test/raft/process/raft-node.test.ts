/**
 * RaftNode (the I/O driver) in one process: three nodes with real log storage on disk and real TCP on
 * 127.0.0.1, driven by their own clocks.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { AppendOnlyStateMachine } from '../../../src/raft/raft-node-main';
import { NotLeaderError, RaftNode, RaftNodeOptions } from '../../../src/raft/raft-node';
import { freePorts, sleep } from './cluster';

describe('RaftNode driver (3 nodes in-process, real disk and TCP)', function () {
  this.timeout(60_000);
  let root = '';
  let ports: number[] = [];
  const nodes = new Map<number, RaftNode>();
  const sms = new Map<number, AppendOnlyStateMachine>();
  const fatals: Error[] = [];
  let failFsyncOf = 0;

  async function startNode(id: number, extra: Partial<RaftNodeOptions> = {}): Promise<RaftNode> {
    const sm = new AppendOnlyStateMachine();
    const n = await RaftNode.start({
      id,
      peers: { 1: { host: '127.0.0.1', port: ports[0] }, 2: { host: '127.0.0.1', port: ports[1] }, 3: { host: '127.0.0.1', port: ports[2] } },
      dir: path.join(root, `n${id}`),
      clusterId: 'driver-test',
      secret: 'k',
      stateMachine: sm,
      tickMs: 20,
      electionTicks: 10,
      logger: pino({ level: 'silent' }),
      onFatal: (e) => fatals.push(e),
      storage: {
        io: {
          fdatasync: (fd, cb) => {
            if (failFsyncOf === id) setImmediate(() => cb(Object.assign(new Error('EIO: injected'), { code: 'EIO' })));
            else fs.fdatasync(fd, cb);
          },
        },
      },
      ...extra,
    });
    nodes.set(id, n);
    sms.set(id, sm);
    return n;
  }

  async function leader(timeoutMs = 10_000): Promise<RaftNode> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      for (const n of nodes.values()) if (n.isLeader()) return n;
      await sleep(10);
    }
    throw new Error('no leader');
  }

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raftnode-'));
    ports = await freePorts(3);
    for (const id of [1, 2, 3]) await startNode(id);
  });

  after(async () => {
    for (const n of nodes.values()) await n.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('propose resolves once committed and applied; followers answer NotLeader with the leader id', async () => {
    const l = await leader();
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => l.propose(Buffer.from(`k${i}=v${i}`))));
    for (let i = 1; i < results.length; i++) assert.ok(results[i].index > results[i - 1].index);
    const lsm = sms.get(l.id)!;
    assert.equal(lsm.kv.get('k5'), 'v5', 'applied on the leader when propose resolved');
    const f = [...nodes.values()].find((n) => n !== l)!;
    await assert.rejects(f.propose(Buffer.from('x')), (e: unknown) => e instanceof NotLeaderError && e.leaderId === l.id);
  });

  it('readIndex on leader and follower waits until the read index is applied', async () => {
    const l = await leader();
    const { index } = await l.propose(Buffer.from('r=1'));
    for (const n of nodes.values()) {
      const ri = await n.readIndex();
      assert.ok(ri >= index, `read index ${ri} >= ${index}`);
      assert.ok(n.appliedIndex >= ri);
      assert.equal(sms.get(n.id)!.kv.get('r'), '1');
    }
  });

  it('leader lease in milliseconds: in the near future on the leader, 0 on followers', async () => {
    const l = await leader();
    let until = 0;
    for (let i = 0; i < 100 && until === 0; i++) {
      until = l.leaseValidUntilMs();
      await sleep(10);
    }
    const now = performance.now();
    assert.ok(until > now, `lease ${until} ends after now ${now}`);
    assert.ok(until <= now + 8 * 20, 'lease no longer than leaseTicks x tickMs');
    for (const n of nodes.values()) if (n !== l) assert.equal(n.leaseValidUntilMs(), 0);
  });

  it('transfers leadership', async () => {
    const l = await leader();
    const to = [1, 2, 3].find((i) => i !== l.id)!;
    l.transferLeadership(to);
    const end = Date.now() + 5000;
    while (!nodes.get(to)!.isLeader() && Date.now() < end) await sleep(10);
    assert.ok(nodes.get(to)!.isLeader(), `node ${to} became leader`);
    await nodes.get(to)!.propose(Buffer.from('after=transfer'));
  });

  it('exports the Prometheus metrics', async () => {
    const l = await leader();
    await l.propose(Buffer.from('m=1'));
    const text = await l.metrics.registry.metrics();
    for (const name of [
      'hanfs_raft_term',
      'hanfs_raft_role 3',
      'hanfs_raft_commit_index',
      'hanfs_raft_applied_index',
      'hanfs_raft_peer_match_index{peer=',
      'hanfs_raft_peer_lag{peer=',
      'hanfs_raft_fsync_seconds_bucket',
      'hanfs_raft_proposals_total',
      'hanfs_raft_commits_total',
      'hanfs_raft_elections_total',
    ]) {
      assert.ok(text.includes(name), `metrics contain ${name}`);
    }
    assert.match(text, /hanfs_raft_fsync_seconds_count [1-9]/);
  });

  it('restarts from disk with the same applied sequence', async () => {
    const l = await leader();
    await l.propose(Buffer.from('before=restart'));
    for (const n of nodes.values()) await n.readIndex().catch(() => 0);
    await sleep(200);
    const before = sms.get(1)!.entries.map((e) => `${e.index}:${e.payload}`);
    for (const n of nodes.values()) await n.stop();
    nodes.clear();
    for (const id of [1, 2, 3]) await startNode(id);
    const l2 = await leader();
    await l2.propose(Buffer.from('after=restart'));
    await nodes.get(1)!.readIndex();
    const after = sms.get(1)!.entries.map((e) => `${e.index}:${e.payload}`);
    assert.deepEqual(after.slice(0, before.length), before);
    assert.equal(sms.get(1)!.kv.get('after'), 'restart');
  });

  it('an fsync failure stops the node: its pending proposals reject, the others carry on', async () => {
    const l = await leader();
    failFsyncOf = l.id;
    await assert.rejects(l.propose(Buffer.from('doomed=1')));
    assert.ok(l.failed, 'node marked failed');
    assert.ok(fatals.length >= 1);
    await assert.rejects(l.propose(Buffer.from('x')));
    await l.stop();
    nodes.delete(l.id);
    const l2 = await leader(10_000);
    assert.notEqual(l2.id, l.id);
    await l2.propose(Buffer.from('survivors=ok'));
    failFsyncOf = 0;
  });
});

describe('RaftNode membership changes (real disk and TCP)', function () {
  this.timeout(60_000);
  let root = '';
  const nodes = new Map<number, RaftNode>();
  const sms = new Map<number, AppendOnlyStateMachine>();

  after(async () => {
    for (const n of nodes.values()) await n.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('adds a learner, promotes it to voter and removes it again', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raftmember-'));
    const ports = await freePorts(4);
    const peers = Object.fromEntries(ports.map((p, i) => [i + 1, { host: '127.0.0.1', port: p }]));
    const start = async (id: number, bootstrapVoters: number[]) => {
      const sm = new AppendOnlyStateMachine();
      const n = await RaftNode.start({
        id,
        peers,
        bootstrapVoters,
        dir: path.join(root, `n${id}`),
        clusterId: 'member-test',
        stateMachine: sm,
        tickMs: 20,
        electionTicks: 10,
        logger: pino({ level: 'silent' }),
      });
      nodes.set(id, n);
      sms.set(id, sm);
    };
    for (const id of [1, 2, 3]) await start(id, [1, 2, 3]);
    let leader: RaftNode | undefined;
    for (let i = 0; i < 500 && !leader; i++) {
      leader = [...nodes.values()].find((n) => n.isLeader());
      if (!leader) await sleep(10);
    }
    assert.ok(leader, 'a leader');
    for (let i = 0; i < 20; i++) await leader.propose(Buffer.from(`pre${i}=x`));
    await start(4, []);
    await leader.addLearner(4, peers[4]);
    assert.deepEqual(leader.status().conf.learners, [4]);
    // the learner receives the log
    const end = Date.now() + 10_000;
    while (sms.get(4)!.kv.get('pre19') !== 'x' && Date.now() < end) await sleep(20);
    assert.equal(sms.get(4)!.kv.get('pre19'), 'x', 'learner caught up');
    let promoted = false;
    for (let i = 0; i < 100 && !promoted; i++) {
      try {
        await leader.promote(4);
        promoted = true;
      } catch {
        await sleep(50); // not_caught_up until its match reaches the commit index
      }
    }
    assert.ok(promoted);
    assert.deepEqual([...leader.status().conf.voters].sort(), [1, 2, 3, 4]);
    const { index } = await leader.propose(Buffer.from('with=four'));
    assert.ok((await nodes.get(4)!.readIndex()) >= index);
    assert.equal(sms.get(4)!.kv.get('with'), 'four');
    await leader.removeMember(4);
    assert.deepEqual([...leader.status().conf.voters].sort(), [1, 2, 3]);
    await leader.propose(Buffer.from('after=remove'));
  });
});
