/**
 * Large READs read into pooled buffers that are reused once their reply has been written to the
 * socket: over a real TCP connection with many 1 MiB READs in flight, every reply carries exactly its
 * own bytes (a buffer reused too early would show another READ's data), and the pool really is reused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcessConfig } from '../support/in-process';
import { startServer, type RunningServer } from '../../src/server';
import { silentLogger } from '../../src/log';
import { HanfsMetrics } from '../../src/metrics';
import { openStore, type LevelBlockStore } from '../../src/store/block-store';
import { POOLED_READ_BYTES } from '../../src/store/data-files';
import { rootHandle } from '../../src/nfs/file-handle';
import { Nfs3Client } from '../../src/nfs/client/nfs3-client';
import { RpcConnection } from '../../src/nfs/client/rpc-connection';

const MiB = 1024 * 1024;

/** 1 MiB block `i`: every 4-byte word holds i and its own offset, so any mix-up shows */
function block(i: number): Buffer {
  const b = Buffer.allocUnsafe(MiB);
  for (let o = 0; o < MiB; o += 8) {
    b.writeUInt32BE(i, o);
    b.writeUInt32BE(o, o + 4);
  }
  return b;
}

describe('nfs3: pooled READ buffers over TCP', function () {
  this.timeout(120_000);
  let dir: string;
  let srv: RunningServer | undefined;
  let client: Nfs3Client | undefined;

  afterEach(async () => {
    client?.close();
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1 MiB READs whose replies back up in one socket keep their bytes while another connection reads; buffers are reused', async () => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-readbuf-'));
    const c = inProcessConfig(dir);
    // let all 16 replies of the stalled connection queue up in the server (not only 8 MiB of them)
    c.limits.maxReplyBytesPerConnection = 64 * MiB;
    let store: LevelBlockStore | undefined;
    srv = await startServer(c, {
      parts: {
        log: silentLogger(),
        metrics: new HanfsMetrics({ defaultMetrics: false }),
        openStore: async (d) => (store = await openStore(d, { rootMode: 0o1777 })),
      },
    });
    client = new Nfs3Client(await RpcConnection.connect({ port: srv.nfs.port, maxRecordBytes: 4 * MiB, timeoutMs: 60_000 }));
    const cr = await client.create(rootHandle(1), 'big');
    assert.equal(cr.status, 0);
    const fh = cr.resok!.obj.handle!.data;
    const blocks = 24;
    for (let i = 0; i < blocks; i++) assert.equal((await client.write(fh, i * MiB, block(i), 0)).status, 0);
    const before = { ...store!.data.poolStats };
    // Connection A asks for 16 blocks and does not read its replies: they back up in the server's
    // socket, written out long after their READs finished. Meanwhile connection B keeps reading (its
    // READs take pooled buffers). A buffer given back before its reply was written would be filled
    // by one of B's READs, and A would then receive B's bytes.
    const b = new Nfs3Client(await RpcConnection.connect({ port: srv.nfs.port, maxRecordBytes: 4 * MiB, timeoutMs: 60_000 }));
    let reads = 0;
    try {
      for (let round = 0; round < 3; round++) {
        const sock = client.conn.socket;
        sock.pause();
        const held = Array.from({ length: 16 }, (_, j) => client!.read(fh, j * MiB, MiB).then((r) => ({ i: j, r })));
        await new Promise((res) => setTimeout(res, 300));
        let next = 0;
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            for (;;) {
              const k = next++;
              if (k >= 32) return;
              const i = 16 + (k % (blocks - 16));
              const r = await b.read(fh, i * MiB, MiB);
              assert.equal(r.status, 0);
              assert.ok(Buffer.from(r.resok!.data).equals(block(i)), `B: READ of block ${i} got other bytes`);
            }
          }),
        );
        sock.resume();
        for (const { i, r } of await Promise.all(held)) {
          assert.equal(r.status, 0);
          assert.ok(Buffer.from(r.resok!.data).equals(block(i)), `A: READ of block ${i} got other bytes`);
        }
        reads += 16 + 32;
      }
    } finally {
      b.close();
    }
    const st = store!.data.poolStats;
    assert.equal(st.lent - before.lent, reads, 'every 1 MiB READ used the pool');
    assert.equal(st.recycled - before.recycled, reads, 'every buffer came back once its reply was written');
    assert.ok(st.allocated <= 32, `buffers allocated: ${st.allocated} for ${reads} READs (at most 20 in flight)`);
    assert.equal(POOLED_READ_BYTES, MiB);
  });
});
