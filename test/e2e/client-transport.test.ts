/**
 * The TS client's own transport against a scripted TCP server on loopback: record marking across
 * fragments and TCP segments, xid matching of out-of-order replies, per-call timeouts, the reply
 * size cap, and connection loss. (The protocol itself is tested against the daemon in client.test.)
 */
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import {
  RecordDecoder,
  RecordTooLargeError,
  RpcConnection,
  RpcConnectionClosedError,
  RpcTimeoutError,
} from '../../src/nfs/client';
import { u32 } from '../support/rpc-raw';
import { sleep } from '../support/util';

type Handler = (sock: net.Socket, call: { xid: number; proc: number; body: Buffer }) => void;

async function scriptedServer(handler: Handler): Promise<{ port: number; close: () => void }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    const rd = new RecordDecoder({ maxRecordBytes: 1 << 20 });
    sock.on('data', (d) => {
      let records: Uint8Array[];
      try {
        records = rd.push(d);
      } catch {
        return sock.destroy();
      }
      for (const r of records) {
        const rec = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
        handler(sock, { xid: rec.readUInt32BE(0), proc: rec.readUInt32BE(20), body: rec });
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

/** accepted SUCCESS reply with `results` */
function reply(xid: number, results: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([u32(xid), u32(1), u32(0), u32(0), u32(0), u32(0), results]);
}

describe('TS client transport (scripted server on loopback)', function () {
  this.timeout(30_000);

  it('RecordDecoder: records split byte by byte, multi-fragment records, empty fragments', () => {
    const got: string[] = [];
    const rd = new RecordDecoder({ maxRecordBytes: 1000 });
    const push = (chunk: Buffer) => {
      for (const r of rd.push(chunk)) got.push(Buffer.from(r).toString());
    };
    const stream = Buffer.concat([
      u32(0x80000005), Buffer.from('hello'),
      u32(3), Buffer.from('abc'), u32(0), u32(0x80000002), Buffer.from('de'),
      u32(0x80000000),
    ]);
    for (const b of stream) push(Buffer.from([b]));
    push(stream);
    assert.deepEqual(got, ['hello', 'abcde', '', 'hello', 'abcde', '']);
    const errs: Error[] = [];
    /** push that collects the error instead of throwing; no record may come out */
    const refused = (d: RecordDecoder, chunk: Buffer) => {
      try {
        assert.deepEqual(d.push(chunk), [], 'no record expected');
      } catch (e) {
        errs.push(e as Error);
      }
    };
    refused(new RecordDecoder({ maxRecordBytes: 100 }), Buffer.concat([u32(60), Buffer.alloc(60), u32(0x80000000 | 60)]));
    assert.ok(errs[0] instanceof RecordTooLargeError, 'fragments adding up past the cap are refused before allocation');
    refused(new RecordDecoder({ maxRecordBytes: 1 << 20 }), u32(0xffffffff));
    assert.ok(errs[1] instanceof RecordTooLargeError);
    assert.equal(errs.length, 2);
  });

  it('matches out-of-order replies by xid, split into fragments and segments', async () => {
    const pending: { sock: net.Socket; xid: number; proc: number }[] = [];
    const srv = await scriptedServer((sock, c) => {
      pending.push({ sock, xid: c.xid, proc: c.proc });
      if (pending.length === 50) {
        // answer in reverse order, each reply as two fragments, written in 3-byte pieces
        const out: Buffer[] = [];
        for (const p of pending.reverse()) {
          const body = reply(p.xid, u32(p.proc));
          out.push(u32(10), body.subarray(0, 10), u32(0x80000000 | (body.length - 10)), body.subarray(10));
        }
        const all = Buffer.concat(out);
        (async () => {
          for (let i = 0; i < all.length; i += 3) {
            sock.write(all.subarray(i, i + 3));
            if (i % 300 === 0) await sleep(0);
          }
        })();
      }
    });
    const c = await RpcConnection.connect({ port: srv.port, timeoutMs: 10_000 });
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => c.call(1, 1, i, { flavor: 0, body: new Uint8Array(0) }, null, (r) => r.u32())),
      );
      assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => i));
      assert.equal(c.inFlight, 0);
    } finally {
      c.close();
      srv.close();
    }
  });

  it('times out an unanswered call without disturbing the others', async () => {
    const srv = await scriptedServer((sock, c) => {
      if (c.proc !== 7) sock.write(Buffer.concat([u32(0x80000000 | 24), reply(c.xid)]));
    });
    const c = await RpcConnection.connect({ port: srv.port, timeoutMs: 300 });
    try {
      const lost = c.callRaw(1, 1, 7);
      const ok = await c.callRaw(1, 1, 1);
      assert.equal(ok.kind === 'accepted' && ok.acceptStat, 0);
      await assert.rejects(lost, RpcTimeoutError);
      const again = await c.callRaw(1, 1, 2);
      assert.equal(again.kind, 'accepted');
    } finally {
      c.close();
      srv.close();
    }
  });

  it('a reply over the size cap, or a dropped connection, fails the calls in flight', async () => {
    const srv = await scriptedServer((sock, c) => {
      if (c.proc === 1) sock.write(u32(0x80000000 | (64 * 1024 * 1024)));
      else sock.destroy();
    });
    const c1 = await RpcConnection.connect({ port: srv.port, timeoutMs: 5000, maxRecordBytes: 1 << 20 });
    await assert.rejects(c1.callRaw(1, 1, 1), RecordTooLargeError);
    assert.ok(c1.closed);
    const c2 = await RpcConnection.connect({ port: srv.port, timeoutMs: 5000 });
    await assert.rejects(c2.callRaw(1, 1, 2), RpcConnectionClosedError);
    await assert.rejects(c2.callRaw(1, 1, 3), RpcConnectionClosedError, 'calls after the close fail at once');
    srv.close();
  });
});
