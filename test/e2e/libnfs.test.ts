/** Real libnfs clients (nfs-cp, nfs-ls, nfs-cat from libnfs-utils) against the real daemon, and
 * against a 3-node cluster's service address (test/support/target.ts; HANFS_E2E_TARGETS). */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectOk } from '../../src/nfs/client';
import { createFile, mkdir, openSession, type Session } from '../support/nfs';
import { e2eTargets, startTarget, type NfsTarget } from '../support/target';
import { commandExists, run, sha256, sha256File, tmpDir, rmrf } from '../support/util';

for (const kind of e2eTargets()) describe(`libnfs clients (nfs-cp, nfs-ls, nfs-cat) [${kind}]`, function () {
  this.timeout(120_000);
  let d: NfsTarget;
  let s: Session;
  let local: string;

  before(async function () {
    for (const c of ['nfs-cp', 'nfs-ls', 'nfs-cat']) {
      if (!commandExists(c)) throw new Error(`${c} missing: run scripts/install-test-deps.sh`);
    }
    d = await startTarget(kind);
    s = await openSession(d);
    local = tmpDir('libnfs');
  });
  after(async () => {
    s?.close();
    await d?.stop();
    if (local) rmrf(local);
  });

  it('the server prints a libnfs URL that nfs-ls accepts', async function () {
    const printed = d.printedLibnfsUrl();
    assert.ok(printed, `no nfs:// URL in the start-up output:\n${d.output().slice(0, 2000)}`);
    const r = await run('nfs-ls', [printed!], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `nfs-ls ${printed}: ${r.stderr}`);
  });

  it('nfs-cp a random 8 MiB file in and out: same sha256; the TS client reads the same bytes', async () => {
    const src = path.join(local, 'in.bin');
    const data = crypto.randomBytes(8 * 1024 * 1024 + 12345);
    fs.writeFileSync(src, data);
    const url = d.url('/export/copied.bin');
    const up = await run('nfs-cp', [src, url], { timeoutMs: 90_000 });
    assert.equal(up.code, 0, `nfs-cp in: ${up.stdout}${up.stderr}`);
    const fh = await s.nfs.walk(s.root, 'copied.bin');
    const a = expectOk(await s.nfs.getattr(fh)).resok!.objAttributes;
    assert.equal(a.size, BigInt(data.length));
    assert.equal(sha256(await s.nfs.readAll(fh, data.length)), sha256(data), 'bytes seen by the TS client');
    const dst = path.join(local, 'out.bin');
    const down = await run('nfs-cp', [url, dst], { timeoutMs: 90_000 });
    assert.equal(down.code, 0, `nfs-cp out: ${down.stdout}${down.stderr}`);
    assert.equal(await sha256File(dst), sha256(data));
  });

  it('nfs-ls lists a directory with known names, sizes and a subdirectory', async () => {
    const dir = s.root;
    const names = ['alpha', 'beta.txt', 'gamma with space', 'δέλτα', 'x'.repeat(200)];
    for (const [i, n] of names.entries()) await createFile(s.nfs, dir, n, Buffer.alloc(i * 100, 'a'));
    const sub = await mkdir(s.nfs, dir, 'subdir');
    await createFile(s.nfs, sub, 'inside-subdir', Buffer.from('x'));
    const r = await run('nfs-ls', [d.url('/export')], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    const byName = new Map<string, string>();
    for (const line of lines) {
      const m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s(.*)$/.exec(line.trim());
      assert.ok(m, `unparsed nfs-ls line: ${line}`);
      byName.set(m![6].trim(), line);
    }
    for (const [i, n] of names.entries()) {
      assert.ok(byName.has(n), `nfs-ls lacks "${n}":\n${r.stdout}`);
      assert.match(byName.get(n)!, new RegExp(`^-\\S+\\s+1\\s+\\d+\\s+\\d+\\s+${i * 100}\\s`));
    }
    assert.match(byName.get('subdir') ?? '', /^d/);
    const rec = await run('nfs-ls', ['-R', d.url('/export')], { timeoutMs: 30_000 });
    assert.equal(rec.code, 0, rec.stderr);
    assert.ok(rec.stdout.includes('inside-subdir'), `nfs-ls -R did not descend:\n${rec.stdout}`);
  });

  it('nfs-ls of a URL below the export (MNT of a subdirectory path, as knfsd and Ganesha allow)', async () => {
    await mkdir(s.nfs, s.root, 'deeper').catch(() => undefined);
    await createFile(s.nfs, await s.nfs.walk(s.root, 'deeper'), 'leaf', Buffer.from('y'));
    const r = await run('nfs-ls', [d.url('/export/deeper')], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `nfs-ls ${d.url('/export/deeper')}: ${r.stderr}`);
    assert.match(r.stdout, /leaf/);
  });

  it('nfs-cat prints a file', async () => {
    const text = 'hello from hanfs\n'.repeat(1000);
    await createFile(s.nfs, s.root, 'cat.txt', Buffer.from(text));
    const r = await run('nfs-cat', [d.url('/export/cat.txt')], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, text);
  });

  it('nfs-ls of an export the client network may not mount fails', async function () {
    const d2 = await startTarget(kind, { exports: [{ path: '/export', id: 1, clients: ['192.0.2.0/24'], readOnly: false, rootSquash: true, allSquash: false, anonUid: 65534, anonGid: 65534, allowAuthNone: false }] });
    try {
      const r = await run('nfs-ls', [d2.url('/export')], { timeoutMs: 30_000 });
      assert.notEqual(r.code, 0, `nfs-ls succeeded on a denied export:\n${r.stdout}`);
    } finally {
      await d2.stop();
    }
  });
});
