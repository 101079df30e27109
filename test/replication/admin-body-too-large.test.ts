/**
 * The admin endpoint serializes its answer inside the request's promise chain: a body that cannot be
 * serialized (the checksum digest of a store of millions of files exceeds V8's string limit) is a 500
 * for that request, not an exception in a promise handler that ends the node.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClusterAdmin, type ClusterAdminOptions } from '../../src/replication/cluster-admin';

describe('admin endpoint: a body too large to serialize', function () {
  this.timeout(10_000);
  let server: http.Server | undefined;
  const crashes: unknown[] = [];
  const onCrash = (e: unknown): void => {
    crashes.push(e);
  };
  before(() => process.on('uncaughtException', onCrash));
  after(() => {
    process.off('uncaughtException', onCrash);
    server?.close();
  });

  it('GET /cluster/checksum of a digest whose JSON cannot be built answers 500; the process goes on', async () => {
    // (only what the checksum route touches; the digest's toJSON throws as JSON.stringify does past
    // the string limit)
    const digest = { toJSON: (): never => { throw new RangeError('Invalid string length'); } };
    const admin = new ClusterAdmin({ sm: { digestAt: () => digest }, raft: { appliedIndex: 7 } } as unknown as ClusterAdminOptions);
    server = http.createServer((req, res) => {
      admin.handle(req, res, new URL(req.url ?? '/', 'http://x'));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const got = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/cluster/checksum?index=7' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
    assert.equal(got.code, 500);
    assert.match(got.body, /Invalid string length/);
    assert.deepEqual(crashes, []);
  });
});
