/** READDIR and READDIRPLUS: paging by byte limits, TOOSMALL, cookies and verifiers, attributes. */
import assert from 'node:assert/strict';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { Nfs3Harness, S, ALICE, BOB, entriesOf } from './support/harness';

const ZERO = new Uint8Array(8);

describe('nfs3 readdir', function () {
  this.timeout(30_000);
  let h: Nfs3Harness;
  let dir: s.Nfsv3Fh;
  const names: string[] = [];
  before(async () => {
    h = await Nfs3Harness.open();
    dir = await h.mkdirFh(h.root(), 'big', { mode: 0o755 });
    for (let i = 0; i < 160; i++) {
      // names of every length class, some multi-byte
      const name = `f${i}-${'x'.repeat(i % 37)}${i % 5 === 0 ? 'ü' : ''}`;
      names.push(name);
      await h.mkfile(dir, name);
    }
  });
  after(async () => h.close());

  it('lists every entry once, with "." and "..", under any count', async () => {
    for (const count of [200, 512, 1000, 4096, 65536]) {
      const got = await h.listAll(dir, count); // asserts every reply <= count
      assert.deepEqual([...got].sort(), ['.', '..', ...names].sort(), `count ${count}`);
    }
  });

  it('fills a page close to the limit and never beyond it', async () => {
    const r = await h.readdir(dir, 0n, ZERO, 4096);
    assert.equal(r.status, S.OK);
    assert.ok(r.bodyBytes <= 4096);
    // the next entry would not have fitted: at most one max-size entry of room is left
    assert.ok(r.bodyBytes > 4096 - (4 + 8 + 4 + 40 + 8), `only ${r.bodyBytes} bytes used`);
    assert.equal(r.resok!.reply.eof, false);
  });

  it('answers TOOSMALL when not even one entry fits', async () => {
    const r = await h.readdir(dir, 0n, ZERO, 100);
    assert.equal(r.status, S.TOOSMALL);
    assert.equal(r.resfail!.dirAttributes.attributesFollow, true);
    const p = await h.readdirplus(dir, 0n, ZERO, 100, 150);
    assert.equal(p.status, S.TOOSMALL);
    // an empty directory fits in little
    const empty = await h.mkdirFh(h.root(), 'empty');
    const e = await h.readdir(empty, 2n, (await h.readdir(empty, 0n, ZERO, 4096)).resok!.cookieverf, 4 + 88 + 8 + 8);
    assert.equal(e.status, S.OK);
    assert.equal(e.resok!.reply.eof, true);
    assert.equal(e.bodyBytes, 4 + 88 + 8 + 8);
  });

  it('passes BAD_COOKIE through for a wrong verifier or a cookie never handed out', async () => {
    const first = await h.readdir(dir, 0n, ZERO, 1024);
    const last = entriesOf(first.resok!.reply).pop();
    const bad = await h.readdir(dir, last.cookie, new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]), 1024);
    assert.equal(bad.status, S.BAD_COOKIE);
    const never = await h.readdir(dir, 1n << 40n, first.resok!.cookieverf, 1024);
    assert.equal(never.status, S.BAD_COOKIE);
    const huge = await h.readdir(dir, (1n << 64n) - 1n, first.resok!.cookieverf, 1024);
    assert.equal(huge.status, S.BAD_COOKIE);
    const ok = await h.readdir(dir, last.cookie, first.resok!.cookieverf, 1024);
    assert.equal(ok.status, S.OK);
  });

  it('READDIRPLUS returns attributes and handles that match LOOKUP, within maxcount', async () => {
    const seen = new Set<string>();
    let cookie = 0n;
    let verf: Uint8Array = ZERO;
    for (let round = 0; round < 1000; round++) {
      const r = await h.readdirplus(dir, cookie, verf, 512, 8192);
      assert.equal(r.status, S.OK);
      assert.ok(r.bodyBytes <= 8192, `${r.bodyBytes}`);
      verf = r.resok!.cookieverf;
      for (const e of entriesOf(r.resok!.reply)) {
        seen.add(e.name);
        cookie = e.cookie;
        assert.equal(e.nameAttributes.attributesFollow, true);
        assert.equal(e.nameHandle.handleFollows, true);
        assert.equal(e.nameAttributes.attributes.fileid, e.fileid);
        if (e.name !== '.' && e.name !== '..' && seen.size % 50 === 0) {
          const l = await h.lookup(dir, e.name);
          assert.deepEqual(Buffer.from(l.resok!.object.data), Buffer.from(e.nameHandle.handle.data));
        }
      }
      if (r.resok!.reply.eof) break;
    }
    assert.equal(seen.size, names.length + 2);
  });

  it('READDIR needs read permission; NOTDIR on a file', async () => {
    const closed = await h.mkdirFh(h.root(), 'closed', { mode: 0o711, uid: 1000, gid: 1000 });
    const r = await h.readdir(closed, 0n, ZERO, 4096, BOB);
    assert.equal(r.status, S.ACCES);
    assert.equal((await h.readdir(closed, 0n, ZERO, 4096, ALICE)).status, S.OK);
    const f = (await h.lookup(dir, names[0])).resok!.object;
    assert.equal((await h.readdir(f, 0n, ZERO, 4096)).status, S.NOTDIR);
    assert.equal((await h.readdirplus(f, 0n, ZERO, 4096, 4096)).status, S.NOTDIR);
  });
});
