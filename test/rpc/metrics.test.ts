import { strict as assert } from 'node:assert';
import { HanfsMetrics } from '../../src/metrics';

describe('metrics', () => {
  it('hanfs_nfs_errors_total counts failed NFS replies by status, never NFS3_OK', async () => {
    const m = new HanfsMetrics({ defaultMetrics: false });
    m.nfsError('GETATTR', 0);
    m.nfsError('LOOKUP', 0);
    m.nfsError('LOOKUP', 2);
    m.nfsError('LOOKUP', 2);
    const text = await m.registry.metrics();
    assert.match(text, /hanfs_nfs_errors_total\{proc="LOOKUP",status="2"\} 2/);
    assert.doesNotMatch(text, /hanfs_nfs_errors_total\{[^}]*status="0"\}/);
  });

  it('call counts, calls in flight and data bytes are published on every scrape, each counted once', async () => {
    const m = new HanfsMetrics({ defaultMetrics: false });
    m.callStarted('nfs');
    m.callStarted('nfs');
    m.callFinished('nfs', 'READ', 0.001, 'SUCCESS');
    m.bytesRead(1000);
    m.bytesWritten(7);
    let text = await m.registry.metrics();
    assert.match(text, /hanfs_rpc_requests_total\{program="nfs",proc="READ"\} 1\n/);
    assert.match(text, /hanfs_rpc_inflight\{program="nfs"\} 1\n/);
    assert.match(text, /hanfs_nfs_bytes_read_total 1000\n/);
    assert.match(text, /hanfs_nfs_bytes_written_total 7\n/);
    assert.match(text, /hanfs_rpc_duration_seconds_count\{program="nfs",proc="READ"\} 1\n/);
    // a second scrape with nothing new shows the same totals
    text = await m.registry.metrics();
    assert.match(text, /hanfs_rpc_requests_total\{program="nfs",proc="READ"\} 1\n/);
    assert.match(text, /hanfs_nfs_bytes_read_total 1000\n/);
    m.callFinished('nfs', 'READ', 0.002, 'SUCCESS');
    m.callFinished('mount', 'MNT', 0.002, 'SUCCESS');
    m.bytesRead(24);
    text = await m.registry.metrics();
    assert.match(text, /hanfs_rpc_requests_total\{program="nfs",proc="READ"\} 2\n/);
    assert.match(text, /hanfs_rpc_requests_total\{program="mount",proc="MNT"\} 1\n/);
    assert.match(text, /hanfs_rpc_inflight\{program="nfs"\} 0\n/);
    assert.match(text, /hanfs_nfs_bytes_read_total 1024\n/);
  });
});
