/**
 * Fencing by lease: a leader that hangs (SIGSTOP: a long GC pause, a frozen VM) loses its lease while
 * the others elect a new leader. When it wakes it must not answer anything (not even calls that were
 * waiting in its socket), must release the service address, and clients must carry on with the new
 * leader. The write verifier tells who answered: it is derived from (cluster, term), so an answer with
 * the old term's verifier after the hang would be an answer from the deposed leader.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { CreateMode, expectOk, StableHow } from '../../src/nfs/client';
import { termVerifier } from '../../src/replication/term-verifier';
import { FailoverClient, TestCluster } from '../support/cluster';
import { sleep } from '../support/util';

describe('cluster: a hung leader is fenced by its lease', function () {
  this.timeout(180_000);
  let c: TestCluster;

  before(async () => {
    c = await TestCluster.start({ logLevel: 'info' });
    await c.servingLeader();
  });

  after(async function () {
    const failed = this.currentTest?.state === 'failed';
    if (failed) console.log(c?.logs());
    for (const n of c?.nodes ?? []) if (n.pid && n.running) try { process.kill(n.pid, 'SIGCONT'); } catch { /* gone */ }
    await c?.destroy(failed);
  });

  it('SIGSTOP of the leader: after it wakes it answers nothing, releases the address, and the new leader serves', async () => {
    const cl = await FailoverClient.connect(c);
    const r = await cl.call((nfs) => nfs.create(cl.root, 'fenced', CreateMode.UNCHECKED, { mode: 0o644 }));
    expectOk(r, 'create');
    const fh = r.resok!.obj.handle!.data;
    const w1 = expectOk(await cl.call((nfs) => nfs.write(fh, 0, Buffer.from('one'), StableHow.FILE_SYNC)), 'write');
    const old = await c.servingLeader();
    const oldTerm = (await c.status(old))!.term;
    assert.deepEqual(Buffer.from(w1.resok!.verf), Buffer.from(termVerifier('test-cluster', oldTerm)), 'verifier of the serving term');

    process.kill(c.node(old).pid!, 'SIGSTOP');
    // a COMMIT (answered from the leader's state alone, no log round) and a write sent to the hung
    // leader wait in its socket
    const pendingCommit = cl.call((nfs) => nfs.commit(fh), 120_000);
    const pending = cl.call((nfs) => nfs.write(fh, 0, Buffer.from('two'), StableHow.FILE_SYNC), 120_000);
    // the others elect a new leader (it cannot take the address while the hung process holds it)
    let next = 0;
    for (let i = 0; i < 100 && !next; i++) {
      await sleep(100);
      for (const n of c.nodes) {
        if (n.id === old) continue;
        const s = await c.status(n.id, 500);
        if (s?.role === 'leader' && s.term > oldTerm) next = n.id;
      }
    }
    assert.ok(next, 'a new leader was elected while the old one hung');
    await sleep(500);
    process.kill(c.node(old).pid!, 'SIGCONT');

    const w2 = expectOk(await pending, 'write after the hang');
    const cm = expectOk(await pendingCommit, 'commit after the hang');
    const newTerm = (await c.status(next))!.term;
    assert.ok(newTerm > oldTerm);
    assert.deepEqual(Buffer.from(cm.resok!.verf), Buffer.from(termVerifier('test-cluster', newTerm)), 'the COMMIT was answered by the new leader');
    assert.notDeepEqual(Buffer.from(w2.resok!.verf), Buffer.from(w1.resok!.verf), 'the write was not answered by the deposed leader');
    assert.deepEqual(Buffer.from(w2.resok!.verf), Buffer.from(termVerifier('test-cluster', newTerm)), "answered under the new leader's term");
    assert.equal(await c.servingLeader(), next, 'the new leader serves');
    const st = await c.status(old);
    assert.equal(st?.holdsServiceAddress, false, 'the old leader released the address');
    assert.equal(st?.serving, false);
    const back = expectOk(await cl.call((nfs) => nfs.read(fh, 0, 16)), 'read');
    assert.equal(Buffer.from(back.resok!.data).toString(), 'two');
    // (the node's log reaches the file through a pipe: give it a moment)
    let log = '';
    for (let i = 0; i < 50 && !/service address released/.test(log); i++) {
      await sleep(100);
      log = fs.readFileSync(c.node(old).logFile, 'utf8');
    }
    assert.match(log, /service address released/);
    cl.close();
  });
});
