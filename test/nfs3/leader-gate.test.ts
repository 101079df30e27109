/**
 * The NFS program behind a cluster's leader gate: a call is answered only while the node serves,
 * also when the node stopped serving (lease or leadership lost) while the call ran.
 */
import assert from 'node:assert/strict';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { ExportTable } from '../../src/nfs/exports';
import { createNfs3Program } from '../../src/nfs/nfs3';
import { StoreHandle } from '../../src/replication/store-handle';
import type { Attr, FileId } from '../../src/store/types';
import { Nfs3Harness, P } from './support/harness';

describe('nfs3 program behind the leader gate', function () {
  this.timeout(20_000);
  let h: Nfs3Harness;
  beforeEach(async () => {
    h = await Nfs3Harness.open();
  });
  afterEach(async () => h.close());

  it('a call during which the lease ran out gets no answer', async () => {
    let serving = true;
    let lapseInRead = false;
    // the store the program reads: the lease runs out while a read is under way (a slow disk, an
    // event-loop stall that kept the service address from being released in time)
    class Slow extends StoreHandle {
      override async getattr(file: FileId): Promise<Attr | undefined> {
        const a = await super.getattr(file);
        if (lapseInRead) serving = false;
        return a;
      }
    }
    const program = createNfs3Program({
      store: new Slow(() => h.store),
      exports: new ExportTable(h.exports),
      verifier: h.verifier.bytes,
      gate: { serving: () => serving },
    });
    const call = () => program.handle(h.ctx(P.GETATTR), new Reader(h.encodeArgs(P.GETATTR, new m.Nfsv3GetattrRequest(h.root()))));
    // serving throughout: answered
    assert.equal((await call()).kind, 'success');
    // not serving when the call arrives: dropped
    serving = false;
    assert.equal((await call()).kind, 'drop');
    // serving when it arrives, not any more when its answer is ready: dropped
    serving = true;
    lapseInRead = true;
    assert.equal((await call()).kind, 'drop');
    assert.equal(serving, false);
  });
});
