/**
 * `POST /cluster/add` with addresses every node could not read back: a peer on port 65535 without a
 * snapshot address (the default, peer port + 1, is no port). The members entry is replicated and
 * every node parses it when it applies it: a record it cannot read stopped every node (and again at
 * each restart, replaying the log). The request is refused (400) before anything is replicated; the
 * node keeps serving. The same member in a config file is refused when the file is parsed.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { ConfigError } from '../../src/config';
import { parseClusterConfig } from '../../src/replication/cluster-config';
import { startClusterNode, type RunningClusterNode } from '../../src/replication/cluster-node';
import { standaloneCluster } from '../../src/replication/cluster-config';
import { encodeEntry } from '../../src/replication/op-codec';
import { inProcessConfig } from '../support/in-process';
import { rmrf, sleep, tmpDir } from '../support/util';

function post(port: number, pathAndQuery: string): Promise<{ code: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: pathAndQuery, timeout: 20_000 }, (res) => {
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

  it('refuses a bad peer address with 400, not 500', async () => {
    const r = await post(node!.admin.port, '/cluster/add?id=2&peer=nohost:7001');
    assert.equal(r.code, 400, JSON.stringify(r.body));
  });

  it('a config file: a member on peer port 65535 needs an explicit snapshot address', () => {
    const doc = { nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:65535' }] };
    assert.throws(() => parseClusterConfig(doc), (e: unknown) => e instanceof ConfigError && /members\[0\]\.snapshot/.test(e.message));
    const ok = parseClusterConfig({ ...doc, members: [{ id: 1, peer: '127.0.0.1:65535', snapshot: '127.0.0.1:7002' }] });
    assert.equal(ok.members[0].snapshot.port, 7002);
  });
});
