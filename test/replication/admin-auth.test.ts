/** Admin changes from off loopback: the cluster secret's HMAC over time, method, path and query. */
import { strict as assert } from 'node:assert';
import { adminAuthHeader, adminAuthValid } from '../../src/replication/admin-auth';

describe('replication: admin authentication', () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  const now = 1_800_000_000_000;

  it('accepts the header made with the secret for the same request, within 5 minutes', () => {
    const h = adminAuthHeader(secret, 'POST', '/cluster/remove?id=3', now);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=3', h, now + 60_000), true);
  });

  it('refuses another secret, another request, a stale or malformed header, none', () => {
    const h = adminAuthHeader(secret, 'POST', '/cluster/remove?id=3', now);
    assert.equal(adminAuthValid(Buffer.from('another secret of 32 bytes......'), 'POST', '/cluster/remove?id=3', h, now), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=2', h, now), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/transfer-leader?to=3', h, now), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=3', h, now + 301_000), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=3', 'x' + h, now), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=3', undefined, now), false);
  });
});
