/**
 * Three real node processes (raft-node-main) with real storage and TCP on 127.0.0.1. Clients propose
 * continuously; the leader is killed with SIGKILL five times and restarted. Afterwards every
 * acknowledged entry must be present, at its acknowledged index and in the same order, on every node.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cluster, LineClient, sleep } from './cluster';

describe('raft: real node processes (raft-node-main) on 127.0.0.1', function () {
  this.timeout(180_000);
  let root = '';
  let cluster: Cluster | undefined;

  after(async () => {
    await cluster?.stopAll();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('leader SIGKILLed and restarted 5 times: no acknowledged entry lost, one order on every node', async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raft-proc-'));
    // small snapshot interval: snapshots, compaction and snapshot installs happen during the test
    const c = (cluster = new Cluster(root, 3, ['--tick-ms', '50', '--election-ticks', '10', '--snapshot-entries', '200', '--snapshot-catchup-entries', '20', '--log-level', 'info']));
    await c.init();
    for (const n of c.nodes) c.start(n.id);
    await c.waitLeader(20_000);

    const acked: { payload: string; index: number }[] = [];
    let believedLeader = 1;
    let stop = false;
    let errors = 0;
    const clients = new Map<number, LineClient>();
    const clientFor = async (id: number): Promise<LineClient> => {
      let cl = clients.get(id);
      if (!cl) {
        cl = await LineClient.connect(c.nodes[id - 1].clientPort, 1000);
        clients.set(id, cl);
      }
      return cl;
    };
    const worker = async (w: number) => {
      let seq = 0;
      const deadline = Date.now() + 150_000;
      while (!stop && Date.now() < deadline) {
        const target = believedLeader;
        const payload = `w${w}-${seq++}`;
        try {
          const cl = await clientFor(target);
          const ans = await cl.one(`propose ${payload}`, 4000);
          if (ans.startsWith('ok ')) acked.push({ payload, index: Number(ans.slice(3)) });
          else if (ans.startsWith('notleader ')) {
            const l = Number(ans.slice(10));
            if (l > 0 && l !== target) believedLeader = l;
            else {
              believedLeader = (target % 3) + 1;
              await sleep(30);
            }
          } else {
            errors++;
            await sleep(30);
          }
        } catch {
          errors++;
          clients.get(target)?.close();
          clients.delete(target);
          if (believedLeader === target) believedLeader = (target % 3) + 1;
          await sleep(30);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);

    const kills: { leader: number; ackedBefore: number }[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        const want = acked.length + 60;
        const end = Date.now() + 20_000;
        while (acked.length < want && Date.now() < end) await sleep(20);
        assert.ok(acked.length >= want, `round ${round}: progress stalled at ${acked.length} acks`);
        const leader = await c.waitLeader(20_000);
        kills.push({ leader, ackedBefore: acked.length });
        await c.kill(leader, 'SIGKILL');
        await sleep(200 + Math.floor(Math.random() * 300));
        c.start(leader);
      }
      const want = acked.length + 60;
      const end = Date.now() + 20_000;
      while (acked.length < want && Date.now() < end) await sleep(20);
      assert.ok(acked.length >= want, 'progress after the last restart');
    } finally {
      stop = true;
      await Promise.all(workers);
      for (const cl of clients.values()) cl.close();
    }

    // wait until every node applied everything the leader committed
    const leader = await c.waitLeader(20_000);
    const lc = await LineClient.connect(c.nodes[leader - 1].clientPort);
    const readIdx = Number((await lc.one('read', 10_000)).split(' ')[1]);
    lc.close();
    const end = Date.now() + 30_000;
    for (;;) {
      const st = await Promise.all(c.nodes.map((n) => c.status(n.id)));
      if (st.every((s) => s && s.applied >= readIdx)) break;
      if (Date.now() > end) throw new Error(`nodes did not catch up to ${readIdx}: ${JSON.stringify(st.map((s) => s?.applied))}`);
      await sleep(100);
    }
    const dumps = await Promise.all(c.nodes.map((n) => c.dump(n.id)));
    const [d1] = dumps;
    // one order on every node (compare the common prefix up to the read index: all nodes applied it)
    const upTo = (d: { index: number }[]) => d.filter((e) => e.index <= readIdx);
    for (let k = 1; k < dumps.length; k++) assert.deepEqual(upTo(dumps[k]), upTo(d1), `node ${k + 1} applied a different sequence`);
    for (let k = 1; k < d1.length; k++) assert.ok(d1[k].index > d1[k - 1].index, 'indexes ascend');
    const byIndex = new Map(d1.map((e) => [e.index, e.payload]));
    const seen = new Set<string>();
    for (const e of d1) {
      assert.ok(!seen.has(e.payload), `payload ${e.payload} applied twice`);
      seen.add(e.payload);
    }
    for (const a of acked) assert.equal(byIndex.get(a.index), a.payload, `acknowledged ${a.payload} at ${a.index} missing or different`);
    console.log(`      ${kills.length} leader kills (${kills.map((k) => k.leader).join(',')}); ${acked.length} acknowledged proposals, ${d1.length} applied entries, ${errors} client retries; all 3 nodes identical through index ${readIdx}`);
    assert.equal(kills.length, 5);
  });

  it('a follower that was down while the log was compacted catches up through a snapshot', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raft-snap-'));
    const c = new Cluster(dir, 3, ['--tick-ms', '50', '--election-ticks', '10', '--snapshot-entries', '100', '--snapshot-catchup-entries', '10']);
    try {
      await c.init();
      for (const n of c.nodes) c.start(n.id);
      const leader = await c.waitLeader(20_000);
      const down = [1, 2, 3].find((i) => i !== leader)!;
      await c.kill(down, 'SIGKILL');
      const cl = await LineClient.connect(c.nodes[leader - 1].clientPort);
      const acked: { payload: string; index: number }[] = [];
      for (let b = 0; b < 30; b++) {
        const answers = await Promise.all(Array.from({ length: 10 }, (_, k) => cl.one(`propose s${b * 10 + k}`, 10_000)));
        answers.forEach((a, k) => {
          assert.match(a, /^ok \d+$/);
          acked.push({ payload: `s${b * 10 + k}`, index: Number(a.slice(3)) });
        });
      }
      const readIdx = Number((await cl.one('read', 10_000)).split(' ')[1]);
      cl.close();
      c.start(down);
      const end = Date.now() + 30_000;
      for (;;) {
        const s = await c.status(down);
        if (s && s.applied >= readIdx) break;
        if (Date.now() > end) throw new Error(`node ${down} did not catch up`);
        await sleep(100);
      }
      const log = fs.readFileSync(path.join(dir, `node-${down}.log`), 'utf8');
      assert.match(log, /state machine replaced by the leader snapshot/);
      const [dl, dd] = [await c.dump(leader), await c.dump(down)];
      const upTo = (d: { index: number }[]) => d.filter((e) => e.index <= readIdx);
      assert.deepEqual(upTo(dd), upTo(dl));
      const byIndex = new Map(dd.map((e) => [e.index, e.payload]));
      for (const a of acked) assert.equal(byIndex.get(a.index), a.payload);
    } finally {
      await c.stopAll();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('client port: a single-node cluster answers; an overlong line closes the connection', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hanfs-raft-one-'));
    const c = new Cluster(dir, 1, ['--tick-ms', '20']);
    try {
      await c.init();
      c.start(1);
      await c.waitLeader(10_000);
      const cl = await LineClient.connect(c.nodes[0].clientPort);
      assert.match(await cl.one('propose k=v'), /^ok \d+$/);
      assert.equal(await cl.one('get k'), 'ok v');
      assert.equal(await cl.one('get missing'), 'nil');
      assert.equal(await cl.one('bogus'), 'err unknown command');
      cl.close();
      const s = net.connect({ host: '127.0.0.1', port: c.nodes[0].clientPort });
      s.on('error', () => {});
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.resume();
      s.write(Buffer.alloc(2 * 1024 * 1024, 0x41)); // 2 MiB without a newline
      await closed;
      assert.ok(c.running(1), 'the node is still running');
    } finally {
      await c.stopAll();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
