import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultConfig, type HanfsConfig } from '../../src/config';
import { startServer, mountCommand, libnfsUrl, type RunningServer } from '../../src/server';
import { silentLogger } from '../../src/log';
import { HanfsMetrics } from '../../src/metrics';
import { RawTcpClient, callMsg, xdrStr } from './helpers';

const run = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'src', 'cli.js');

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function testConfig(dataDir: string): HanfsConfig {
  const c = defaultConfig();
  c.dataDir = dataDir;
  c.listen.nfsPort = 0;
  c.listen.mountPort = 0;
  c.admin.port = 0;
  c.log.level = 'silent';
  return c;
}

describe('daemon wiring (store + NFS3 + MOUNT + admin)', function () {
  this.timeout(30_000);
  let dir: string;
  let srv: RunningServer | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-server-'));
  });
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves MOUNT and NFS, /metrics and /healthz, and stops cleanly', async () => {
    srv = await startServer(testConfig(join(dir, 'data')), { parts: { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) } });
    assert.equal(srv.verifier.length, 8);
    assert.equal(srv.mountCommand, `mount -t nfs -o vers=3,proto=tcp,port=${srv.nfs.port},mountport=${srv.mount.tcp.port},nolock 127.0.0.1:/export /mnt`);
    assert.equal(srv.libnfsUrl, `nfs://127.0.0.1/export?version=3&nfsport=${srv.nfs.port}&mountport=${srv.mount.tcp.port}`);
    const c = await RawTcpClient.connect(srv.mount.tcp.port);
    const mnt = await c.call(callMsg(1, 100005, 3, 1, xdrStr('/export')));
    assert.equal(mnt.kind === 'accepted' && mnt.body.readUInt32BE(0), 0);
    c.close();
    // a real NFS client (libnfs) lists the export
    let listed = true;
    try {
      await run('nfs-ls', [srv.libnfsUrl], { timeout: 15_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') listed = false;
      else throw err;
    }
    if (listed) {
      const m = await get(srv.admin.port, '/metrics');
      assert.match(m.body, /hanfs_rpc_requests_total\{program="nfs",proc="FSINFO"\} [1-9]/);
      assert.match(m.body, /hanfs_rpc_requests_total\{program="nfs",proc="READDIRPLUS"\} [1-9]/);
    }
    const h = await get(srv.admin.port, '/healthz');
    assert.deepEqual(h, { status: 200, body: 'ok\n' });
    const m = await get(srv.admin.port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /hanfs_rpc_requests_total\{program="mount",proc="MNT"\} [12]/);
    assert.match(m.body, /# TYPE hanfs_nfs_bytes_written_total counter/);
    assert.equal((await get(srv.admin.port, '/nope')).status, 404);
    const nfsPort = srv.nfs.port;
    await srv.stop();
    srv = undefined;
    await assert.rejects(RawTcpClient.connect(nfsPort));
  });

  it('carries 1 MiB WRITE/READ records: libnfs copies 8 MiB in and out unchanged (root squashed, 1777 root)', async function () {
    srv = await startServer(testConfig(join(dir, 'data')), { parts: { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) } });
    const src = join(dir, 'in.bin');
    const back = join(dir, 'out.bin');
    const data = Buffer.alloc(8 * 1024 * 1024 + 12345);
    for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(src, data);
    const [base, query] = srv.libnfsUrl.split('?');
    try {
      await run('nfs-cp', [src, `${base}/copy.bin?${query}`], { timeout: 60_000 });
      await run('nfs-cp', [`${base}/copy.bin?${query}`, back], { timeout: 60_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.skip();
      throw err;
    }
    assert.ok(readFileSync(back).equals(data));
    const m = (await get(srv.admin.port, '/metrics')).body;
    assert.match(m, new RegExp(`hanfs_nfs_bytes_written_total ${data.length}`));
    assert.match(m, new RegExp(`hanfs_nfs_bytes_read_total ${data.length}`));
  });

  it('makes a new write verifier on every start', async () => {
    const cfg = testConfig(join(dir, 'data'));
    const a = await startServer(cfg, { parts: { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) } });
    const va = Buffer.from(a.verifier);
    a.rotateVerifier();
    assert.notDeepEqual(Buffer.from(a.verifier), va, 'rotate changes the bytes the NFS program reads');
    await a.stop();
    const b = await startServer(cfg, { parts: { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) } });
    srv = b;
    assert.notDeepEqual(Buffer.from(b.verifier), va);
  });

  it('falls back to an ephemeral port when a default port is taken, but not when it was asked for', async () => {
    const first = await startServer(testConfig(join(dir, 'a')), { parts: { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) } });
    try {
      const cfg = testConfig(join(dir, 'b'));
      cfg.listen.nfsPort = first.nfs.port;
      const parts = { log: silentLogger(), metrics: new HanfsMetrics({ defaultMetrics: false }) };
      await assert.rejects(startServer(cfg, { parts, explicitPorts: { nfs: true, mount: true, admin: true } }), /EADDRINUSE/);
      srv = await startServer(cfg, { parts: { ...parts, metrics: new HanfsMetrics({ defaultMetrics: false }) }, explicitPorts: { nfs: false, mount: false, admin: false } });
      assert.notEqual(srv.nfs.port, first.nfs.port);
    } finally {
      await first.stop();
    }
  });

  it('formats mount commands and URLs for IPv6 and wildcard hosts', () => {
    assert.equal(mountCommand('::1', 2049, 20048, '/e'), 'mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=20048,nolock [::1]:/e /mnt');
    assert.equal(libnfsUrl('0.0.0.0', 2049, 20048, '/e'), 'nfs://127.0.0.1/e?version=3&nfsport=2049&mountport=20048');
  });
});

describe('hanfs command line', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('version', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'version']);
    assert.match(stdout, /^hanfs \d+\.\d+\.\d+/);
  });

  it('rejects a bad flag with exit code 2', async () => {
    await assert.rejects(run(process.execPath, [CLI, 'serve', '--nfsport', '1']), (err: { code: number; stderr: string }) => {
      return err.code === 2 && /unknown flag "--nfsport"/.test(err.stderr);
    });
  });

  it('serve prints the mount command, stops on SIGTERM with exit 0; fsck then passes', async () => {
    const data = join(dir, 'data');
    const child = spawn(process.execPath, [CLI, 'serve', '--data-dir', data, '--nfs-port', '0', '--mount-port', '0', '--admin', '127.0.0.1:0', '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.resume();
    const started = Date.now();
    while (!/libnfs: nfs:\/\//.test(err) && Date.now() - started < 20_000 && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(err, /mount.*: {2}mount -t nfs -o vers=3,proto=tcp,port=[1-9]\d*,mountport=[1-9]\d*,nolock,hard,timeo=30,retrans=2 127\.0\.0\.1:\/export \/mnt/, err);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const fsck = await run(process.execPath, [CLI, 'fsck', '--data-dir', data]);
    assert.match(fsck.stdout, /clean/);
  });
});
