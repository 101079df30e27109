/**
 * Catch-up and membership with real node processes: a follower that was down while the log was
 * compacted past it catches up from a streamed store snapshot; a brand-new node joins (`hanfs cluster
 * add`), catches up while a writer goes on, becomes a voter; `hanfs verify` finds every replica
 * identical.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateMode, expectOk, StableHow } from '../../src/nfs/client';
import { FailoverClient, TestCluster } from '../support/cluster';
import { CLI, freePorts, run, sleep } from '../support/util';

async function writeFiles(cl: FailoverClient, prefix: string, n: number, size = 8192): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await cl.call((nfs) => nfs.create(cl.root, `${prefix}-${i}`, CreateMode.UNCHECKED, { mode: 0o644 }));
    expectOk(r, 'create');
    const fh = r.resok!.obj.handle!.data;
    expectOk(await cl.call((nfs) => nfs.write(fh, 0, Buffer.alloc(size, i & 0xff), StableHow.FILE_SYNC)), 'write');
  }
}

describe('cluster: catch-up from a store snapshot, and a new member', function () {
  this.timeout(300_000);
  let c: TestCluster;

  before(async () => {
    // compact the log often and keep nothing behind the snapshot: a lagging node needs the store
    // (a follower unheard of for 3 s no longer holds the log back: the first test's stopped follower)
    c = await TestCluster.start({ logLevel: 'info', snapshotEntries: 100, catchUpEntries: 0, followerHoldMs: 3000 });
    await c.servingLeader();
  });

  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed) console.log(c?.logs());
    await c?.destroy(failed);
  });

  it('a follower down while the log was compacted past it is caught up from a streamed store snapshot', async () => {
    const cl = await FailoverClient.connect(c);
    const leader = await c.servingLeader();
    const down = c.nodes.find((n) => n.id !== leader)!;
    await c.kill(down.id, 'SIGKILL');
    await writeFiles(cl, 'while-down', 300);
    // the leader compacts behind its store's durable checkpoint (about a second)
    const until = Date.now() + 30_000;
    for (;;) {
      const s = await c.status(leader);
      const first = (s as unknown as { firstIndex: number }).firstIndex;
      // (the stopped follower had applied a handful of entries: 200 is well past them)
      if (first > 200) break;
      assert.ok(Date.now() < until, `the leader compacted its log (first index ${first})`);
      await sleep(200);
    }
    c.spawn(down);
    const st = await c.status(leader);
    await c.waitApplied(st!.commit, 60_000);
    const log = fs.readFileSync(down.logFile, 'utf8');
    assert.match(log, /store restored from a snapshot/, 'the follower fetched a store snapshot');
    await c.expectIdentical();
    cl.close();
  });

  it('a new node joins (`hanfs cluster join`) while a writer runs, catches up, becomes a voter; replicas identical', async () => {
    const cl = await FailoverClient.connect(c);
    // node 4: its own config (bootstrap "join"), members as the cluster knows them plus itself
    const [peer, snap, admin] = await freePorts(3);
    const cfg1 = JSON.parse(fs.readFileSync(c.node(1).configPath, 'utf8')) as Record<string, any>;
    const dir = path.join(c.workDir, 'node4');
    fs.mkdirSync(dir, { recursive: true });
    const me = { id: 4, peer: `127.0.0.1:${peer}`, snapshot: `127.0.0.1:${snap}`, admin: `127.0.0.1:${admin}` };
    const cfg = {
      ...cfg1,
      dataDir: path.join(dir, 'data'),
      admin: { host: '127.0.0.1', port: admin },
      cluster: { ...cfg1.cluster, nodeId: 4, bootstrap: 'join', members: [...cfg1.cluster.members, me] },
    };
    const node4 = c.addNode(4, dir, cfg, admin);
    c.spawn(node4);
    let stop = false;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        await writeFiles(cl, `during-join-${i}`, 1, 4096);
        written++;
      }
    })();
    // `join`, run for the new node, asks the members its config names to add it
    const add = await run(process.execPath, [CLI, 'cluster', 'join', '--config', node4.configPath], { timeoutMs: 240_000 });
    stop = true;
    await writer;
    assert.equal(add.code, 0, `cluster add: ${add.stdout}${add.stderr}`);
    assert.match(add.stdout, /"voters":\[1,2,3,4\]/);
    assert.ok(written > 0, 'the writer went on during the join');
    const verified = await c.expectIdentical();
    assert.match(verified, /node 127\.0\.0\.1:\d+: [0-9a-f]{64}/);
    assert.equal((verified.match(/: [0-9a-f]{64} \(/g) ?? []).length, 4, 'four replicas compared');
    cl.close();
  });
});
