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
});
