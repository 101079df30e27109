/**
 * `POST /cluster/add` with addresses every node could not read back: a peer on port 65535 without a
 * snapshot address (the default, peer port + 1, is no port). The members entry is replicated and
 * every node parses it when it applies it: a record it cannot read stopped every node (and again at
 * each restart, replaying the log). The request is refused (400) before anything is replicated; the
 * node keeps serving. The same member in a config file is refused when the file is parsed.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import { ConfigError } from '../../src/config';
import { parseClusterConfig } from '../../src/replication/cluster-config';
import { startClusterNode, type RunningClusterNode } from '../../src/replication/cluster-node';
import { standaloneCluster } from '../../src/replication/cluster-config';
import { encodeEntry } from '../../src/replication/op-codec';
import { memberRecords } from '../../src/replication/members-file';
import { inProcessConfig } from '../support/in-process';
import { freePorts, rmrf, sleep, tmpDir } from '../support/util';
import { Role } from '../../src/raft/types';

function get(port: number, pathAndQuery: string): Promise<{ code: number; body: Record<string, unknown> }> {
  return post(port, pathAndQuery, 'GET');
}

function post(port: number, pathAndQuery: string, method = 'POST'): Promise<{ code: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathAndQuery, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('replication: adding a member whose addresses no node could read back', function () {
  this.timeout(30_000);
  let dir = '';
  let node: RunningClusterNode | undefined;

  before(async () => {
    dir = tmpDir('add-member');
    const config = inProcessConfig(dir);
    config.cluster = standaloneCluster();
    node = await startClusterNode(config);
    for (let i = 0; i < 200 && !node.gate.serving(); i++) await sleep(25);
    assert.ok(node.gate.serving(), 'the single node leads and serves');
  });

  after(async () => {
    await node?.stop();
    rmrf(dir);
  });

  it('refuses peer port 65535 without a snapshot address (400); the node goes on', async () => {
    const r = await post(node!.admin.port, '/cluster/add?id=2&peer=127.0.0.1:65535');
    assert.equal(r.code, 400, JSON.stringify(r.body));
    assert.match(String(r.body.error), /65536|snapshot/);
    // a members entry after it still applies, and the node did not stop
    const v = await post(node!.admin.port, '/cluster/verify');
    assert.equal(v.code, 200, JSON.stringify(v.body));
    assert.equal(node!.failure, undefined);
    assert.deepEqual(node!.raft.status().conf.voters, [1]);
    assert.equal(node!.raft.status().conf.learners.length, 0);
  });

  it('a members entry already in the log with an unreadable record (an older leader wrote it) does not stop the node', async () => {
    const bad = { id: 2, peer: '127.0.0.1:65535', snapshot: '127.0.0.1:65536', admin: '' };
    const self = { id: 1, peer: '127.0.0.1:0', snapshot: '127.0.0.1:0', admin: '' };
    await node!.raft.propose(encodeEntry({ kind: 'members', members: [self, bad] }));
    const v = await post(node!.admin.port, '/cluster/verify');
    assert.equal(v.code, 200, JSON.stringify(v.body));
    assert.equal(node!.failure, undefined);
  });

  it('a remove of a node already out of the membership still takes its addresses out of the members', async () => {
    // (what a remove leaves behind whose leader lost office after the conf change, before the members entry)
    const self = { id: 1, peer: '127.0.0.1:0', snapshot: '127.0.0.1:0', admin: '' };
    const gone = { id: 5, peer: '127.0.0.1:7051', snapshot: '127.0.0.1:7052', admin: '' };
    await node!.raft.propose(encodeEntry({ kind: 'members', members: [self, gone] }));
    const before = (await get(node!.admin.port, '/cluster/status')).body.members as { id: number }[];
    assert.ok(before.some((m) => m.id === 5));
    const r = await post(node!.admin.port, '/cluster/remove?id=5');
    assert.equal(r.code, 200, JSON.stringify(r.body));
    const after = (await get(node!.admin.port, '/cluster/status')).body.members as { id: number }[];
    assert.deepEqual(after.map((m) => m.id), [1]);
  });

  it('a change the membership does not allow is a 400 saying so, not not_leader (which the command line retries)', async () => {
    const t = await post(node!.admin.port, '/cluster/transfer-leader?to=9');
    assert.equal(t.code, 400, JSON.stringify(t.body));
    assert.match(String(t.body.error), /not possible in the current membership \(voters 1\)/);
    const r = await post(node!.admin.port, '/cluster/remove?id=1');
    assert.equal(r.code, 400, JSON.stringify(r.body));
  });

  it('refuses a bad peer address with 400, not 500', async () => {
    const r = await post(node!.admin.port, '/cluster/add?id=2&peer=nohost:7001');
    assert.equal(r.code, 400, JSON.stringify(r.body));
  });

  it('refuses port 0 (no node could reach it; the add would wait for its catch-up)', async () => {
    const r = await post(node!.admin.port, '/cluster/add?id=2&peer=127.0.0.1:0');
    assert.equal(r.code, 400, JSON.stringify(r.body));
    const r2 = await post(node!.admin.port, '/cluster/add?id=2&peer=127.0.0.1:7001&snapshot=127.0.0.1:0');
    assert.equal(r2.code, 400, JSON.stringify(r2.body));
    assert.equal(node!.raft.status().conf.learners.length, 0);
    assert.throws(
      () => parseClusterConfig({ nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:0' }, { id: 2, peer: '127.0.0.1:7001' }] }),
      /port 0 \(ephemeral\) is for a single-member cluster only/,
    );
    // a sole member may take an ephemeral port
    parseClusterConfig({ nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:0', snapshot: '127.0.0.1:0' }] });
  });

  it('a config file: a member on peer port 65535 needs an explicit snapshot address', () => {
    const doc = { nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:65535' }] };
    assert.throws(() => parseClusterConfig(doc), (e: unknown) => e instanceof ConfigError && /members\[0\]\.snapshot/.test(e.message));
    const ok = parseClusterConfig({ ...doc, members: [{ id: 1, peer: '127.0.0.1:65535', snapshot: '127.0.0.1:7002' }] });
    assert.equal(ok.members[0].snapshot.port, 7002);
  });
});

describe('replication: an add whose leader loses office while the new member catches up', function () {
  this.timeout(60_000);
  let dir = '';
  const nodes: RunningClusterNode[] = [];

  after(async () => {
    for (const n of nodes) await n.stop();
    rmrf(dir);
  });

  it('answers not_leader at once (the command line asks the new leader) instead of waiting an hour', async () => {
    dir = tmpDir('add-moved');
    const [p1, s1, p2, s2, p3, nfsPort, mountPort] = await freePorts(7);
    const members = [
      { id: 1, peer: { host: '127.0.0.1', port: p1 }, snapshot: { host: '127.0.0.1', port: s1 } },
      { id: 2, peer: { host: '127.0.0.1', port: p2 }, snapshot: { host: '127.0.0.1', port: s2 } },
    ];
    for (const id of [1, 2]) {
      const config = inProcessConfig(`${dir}/n${id}`);
      // (the service address on fixed ports: one shared by both, bound by the leader)
      config.listen.nfsPort = nfsPort;
      config.listen.mountPort = mountPort;
      config.cluster = { ...standaloneCluster(), clusterId: 'add-moved', nodeId: id, members, tickMs: 20 };
      nodes.push(await startClusterNode(config));
    }
    let leader: RunningClusterNode | undefined;
    for (let i = 0; i < 400 && !leader; i++) {
      leader = nodes.find((n) => n.gate.serving());
      if (!leader) await sleep(25);
    }
    assert.ok(leader, 'one of the two leads');
    const other = nodes.find((n) => n !== leader)!;
    // a log longer than what counts as caught up (64 entries behind)
    const records = memberRecords(new Map(members.map((m) => [m.id, m] as const)));
    for (let i = 0; i < 100; i++) await leader.raft.propose(encodeEntry({ kind: 'members', members: records }));
    // node 3 is never started: it never catches up
    const adding = post(leader.admin.port, `/cluster/add?id=3&peer=127.0.0.1:${p3}`);
    for (let i = 0; i < 200 && !leader.raft.status().conf.learners.includes(3); i++) await sleep(25);
    assert.ok(leader.raft.status().conf.learners.includes(3), 'node 3 was added as a learner');
    const t0 = Date.now();
    leader.raft.transferLeadership(other.cluster.nodeId);
    for (let i = 0; i < 200 && other.raft.status().role !== Role.Leader; i++) await sleep(25);
    assert.equal(other.raft.status().role, Role.Leader, 'the other node took over');
    const r = await Promise.race([adding, sleep(10_000).then(() => ({ code: 0, body: { error: 'still waiting after 10 s' } }))]);
    assert.equal(r.code, 409, JSON.stringify(r.body));
    assert.equal(r.body.error, 'not_leader');
    assert.ok(Date.now() - t0 < 10_000);
    // the old leader takes further changes again
    const v = await post(other.admin.port, '/cluster/verify');
    assert.equal(v.code, 200, JSON.stringify(v.body));
  });
});

describe('replication: /healthz while the node shuts down', function () {
  this.timeout(30_000);

  it('answers 503 (not 200) once stop() began', async () => {
    const dir = tmpDir('healthz-stop');
    try {
      const config = inProcessConfig(dir);
      config.cluster = standaloneCluster();
      const node = await startClusterNode(config);
      for (let i = 0; i < 200 && !node.gate.serving(); i++) await sleep(25);
      // a connection opened before, the request sent just after stop() began
      const sock = net.connect({ host: '127.0.0.1', port: node.admin.port });
      sock.on('error', () => undefined);
      await new Promise<void>((r) => sock.once('connect', () => r()));
      let reply = '';
      sock.on('data', (b: Buffer) => (reply += b.toString('latin1')));
      const stopping = node.stop();
      sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await new Promise<void>((r) => sock.once('close', () => r()));
      await stopping;
      // (or no answer at all, once the endpoint closed)
      assert.doesNotMatch(reply, /^HTTP\/1\.1 200/, reply);
    } finally {
      rmrf(dir);
    }
  });
});
