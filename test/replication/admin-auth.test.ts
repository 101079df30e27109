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

  it('accepts a header once: the same header again (a replay within the window) is refused', () => {
    const seen = new Map<string, number>();
    const h = adminAuthHeader(secret, 'POST', '/cluster/verify', now);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/verify', h, now, seen), true);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/verify', h, now + 1000, seen), false);
    // the same request made again in the same second carries another nonce: accepted
    const h2 = adminAuthHeader(secret, 'POST', '/cluster/verify', now);
    assert.notEqual(h2, h);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/verify', h2, now, seen), true);
    // a refused header is not remembered; expired ones are forgotten
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/remove?id=1', h, now, seen), false);
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/verify', adminAuthHeader(secret, 'POST', '/cluster/verify', now + 400_000), now + 400_000, seen), true);
    assert.equal(seen.size, 1);
  });

  it('refuses a header whose nonce was changed (the MAC covers it)', () => {
    const h = adminAuthHeader(secret, 'POST', '/cluster/verify', now);
    const [s, nonce, m] = h.split(':');
    const other = `${s}:${nonce.replace(/^./, (c) => (c === '0' ? '1' : '0'))}:${m}`;
    assert.equal(adminAuthValid(secret, 'POST', '/cluster/verify', other, now, new Map()), false);
  });
});
