/**
 * ServiceAddress: bound only while the node serves with lease to spare, released before the lease
 * runs out, bind retried until the address is free; LeaderGate: serving needs leader + own first
 * entry applied + a valid lease.
 */
import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import { silentLogger } from '../../src/log';
import { LeaderGate } from '../../src/replication/leader-gate';
import { ServiceAddress } from '../../src/replication/service-address';
import { Role } from '../../src/raft/types';
import { sleep } from '../support/util';

describe('replication: leader gate and service address', () => {
  it('the gate opens only for a caught-up leader with a valid lease', () => {
    let lease = 0;
    let applied = 0;
    const gate = new LeaderGate({ leaseValidUntilMs: () => lease, get appliedIndex() { return applied; }, readIndex: async () => applied });
    assert.equal(gate.serving(), false);
    gate.roleChanged({ role: Role.Leader, term: 5, leader: 1, termStartIndex: 10 });
    lease = performance.now() + 1000;
    applied = 9;
    assert.equal(gate.serving(), false, 'its first entry of the term is not applied yet');
    applied = 10;
    assert.equal(gate.serving(), true);
    lease = performance.now() - 1;
    assert.equal(gate.serving(), false, 'lease ran out');
    lease = performance.now() + 1000;
    gate.roleChanged({ role: Role.Follower, term: 6, leader: 2, termStartIndex: 12 });
    assert.equal(gate.serving(), false, 'not leader');
  });

  it('binds while serving, retries a taken address, releases before the lease runs out', async () => {
    let serving = true;
    let leaseEnd = performance.now() + 10_000;
    let free = false;
    const events: string[] = [];
    const sa = new ServiceAddress({
      log: silentLogger(),
      serving: () => serving,
      leaseRemainingMs: () => Math.max(0, leaseEnd - performance.now()),
      releaseMarginMs: 100,
      checkMs: 5,
      onTakeOffice: () => events.push('office'),
      binding: {
        bind: async () => {
          if (!free) throw Object.assign(new Error('EADDRINUSE'), { code: 'EADDRINUSE' });
          events.push('bind');
        },
        unbind: async () => {
          events.push('unbind');
        },
      },
    });
    sa.start();
    try {
      await sleep(50);
      assert.equal(sa.isHeld, false, 'the address is taken by someone else: not held');
      free = true;
      for (let i = 0; i < 100 && !sa.isHeld; i++) await sleep(5);
      assert.equal(sa.isHeld, true, 'bound once free');
      // the lease is about to run out: released while some of it is left
      leaseEnd = performance.now() + 150;
      for (let i = 0; i < 100 && sa.isHeld; i++) await sleep(5);
      assert.equal(sa.isHeld, false);
      assert.ok(leaseEnd - performance.now() > 0, 'released before the lease ended');
      leaseEnd = performance.now() + 10_000;
      for (let i = 0; i < 100 && !sa.isHeld; i++) await sleep(5);
      assert.equal(sa.isHeld, true, 'taken again with a fresh lease');
      serving = false;
      for (let i = 0; i < 100 && sa.isHeld; i++) await sleep(5);
      assert.equal(sa.isHeld, false, 'released when no longer serving');
      assert.equal(events.filter((e) => e === 'bind').length, 2);
      assert.equal(events.filter((e) => e === 'unbind').length, 2);
    } finally {
      await sa.stop();
    }
  });
});
