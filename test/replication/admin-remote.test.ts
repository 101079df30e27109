/**
 * The admin endpoint seen from another host: a node runs in one private network namespace with its
 * admin endpoint on a veth address, a client in a second namespace reaches it over the veth pair.
 * Reads (status) need nothing; a change (POST /cluster/verify) from off loopback is refused without
 * the cluster secret's HMAC, refused with a header made for another request, accepted with the right
 * one (once: the same header again is refused), and `hanfs verify --config` (which signs) works from the other host. A node without a
 * secret refuses every change from off loopback.
 *
 * Needs root and `ip netns` (skipped, saying why, where the machine cannot make namespaces).
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { adminAuthHeader } from '../../src/replication/admin-auth';
import { testExport } from '../support/daemon';
import { CLI, commandExists, rmrf, run, sleep, tmpDir } from '../support/util';

const TAG = `${process.pid % 100000}`;
const NS_NODE = `hanfs-adm-n${TAG}`;
const NS_CLIENT = `hanfs-adm-c${TAG}`;
const NODE_ADDR = '10.213.77.1';
const CLIENT_ADDR = '10.213.77.2';
const ADMIN_PORT = 9464;

async function ip(...args: string[]): Promise<void> {
  const r = await run('ip', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** an HTTP request made from the client namespace: [status, body] */
async function fromClient(method: string, pathAndQuery: string, auth?: string): Promise<{ status: number; body: string }> {
  const script = `
    const http = require('node:http');
    const [method, p, auth] = process.argv.slice(1);
    const req = http.request({ host: '${NODE_ADDR}', port: ${ADMIN_PORT}, method, path: p, timeout: 20000,
      headers: auth ? { 'x-hanfs-auth': auth } : {} }, (res) => {
      let b = ''; res.on('data', (d) => (b += d));
      res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body: b })));
    });
    req.on('error', (e) => console.log(JSON.stringify({ status: 0, body: e.message })));
    req.end();`;
  const r = await run('ip', ['netns', 'exec', NS_CLIENT, process.execPath, '-e', script, method, pathAndQuery, auth ?? ''], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: number; body: string };
}

describe('admin endpoint from another host (two network namespaces)', function () {
  this.timeout(120_000);
  let dir = '';
  let node: ChildProcess | undefined;
  let made = false;

  before(async function () {
    if (process.getuid?.() !== 0 || !commandExists('ip')) {
      console.log('      skipped: needs root and iproute2');
      this.skip();
    }
    try {
      await ip('netns', 'add', NS_NODE);
      made = true;
      await ip('netns', 'add', NS_CLIENT);
    } catch (e) {
      console.log(`      skipped: cannot make network namespaces here (${(e as Error).message})`);
      this.skip();
    }
    const a = `ha${TAG}`;
    const b = `hb${TAG}`;
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await ip('link', 'set', a, 'netns', NS_NODE);
    await ip('link', 'set', b, 'netns', NS_CLIENT);
    await ip('-n', NS_NODE, 'addr', 'add', `${NODE_ADDR}/30`, 'dev', a);
    await ip('-n', NS_CLIENT, 'addr', 'add', `${CLIENT_ADDR}/30`, 'dev', b);
    for (const [ns, dev] of [[NS_NODE, a], [NS_CLIENT, b]]) {
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', dev, 'up');
    }
    dir = tmpDir('adm');
  });

  afterEach(async () => {
    if (node?.pid && node.exitCode === null) {
      node.kill('SIGKILL');
      await new Promise((r) => node!.once('exit', r));
    }
    node = undefined;
  });

  after(async () => {
    if (made) {
      await run('ip', ['netns', 'del', NS_NODE], { timeoutMs: 10_000 });
      await run('ip', ['netns', 'del', NS_CLIENT], { timeoutMs: 10_000 });
    }
    if (dir) rmrf(dir);
  });

  /** start a single-voter node in the node namespace, admin on the veth address; its config file */
  async function startNode(name: string, secret: Buffer | undefined): Promise<string> {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    let secretFile: string | undefined;
    if (secret) {
      secretFile = path.join(d, 'secret');
      fs.writeFileSync(secretFile, secret, { mode: 0o600 });
    }
    const cfg = {
      dataDir: path.join(d, 'data'),
      listen: { host: '127.0.0.1', nfsPort: 2049, mountPort: 20048, portmapPort: 0 },
      admin: { host: NODE_ADDR, port: ADMIN_PORT },
      exports: [testExport()],
      log: { level: 'warn' },
      cluster: {
        nodeId: 1,
        clusterId: `adm-${name}`,
        bootstrap: 'init',
        ...(secretFile ? { secretFile } : {}),
        members: [{ id: 1, peer: '127.0.0.1:7001', snapshot: '127.0.0.1:7002', admin: `${NODE_ADDR}:${ADMIN_PORT}` }],
      },
    };
    const file = path.join(d, 'hanfs.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    node = spawn('ip', ['netns', 'exec', NS_NODE, process.execPath, CLI, 'serve', '--config', file], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      const s = await fromClient('GET', '/cluster/status');
      if (s.status === 200 && (JSON.parse(s.body) as { serving?: boolean }).serving) return file;
      await sleep(100);
    }
    throw new Error('the node in the namespace never served');
  }

  it('with a secret: reads open, changes only with the HMAC of that very request; hanfs verify --config signs', async () => {
    const secret = Buffer.from('a cluster secret of 32 bytes....');
    const file = await startNode('secret', secret);

    const status = await fromClient('GET', '/cluster/status');
    assert.equal(status.status, 200, status.body);

    const none = await fromClient('POST', '/cluster/verify');
    assert.equal(none.status, 403, none.body);
    assert.match(none.body, /bad or missing admin authentication/);

    const other = await fromClient('POST', '/cluster/verify', adminAuthHeader(secret, 'POST', '/cluster/remove?id=1'));
    assert.equal(other.status, 403, 'a header made for another request is refused');

    const wrong = await fromClient('POST', '/cluster/verify', adminAuthHeader(Buffer.from('not the cluster secret, 32 bytes'), 'POST', '/cluster/verify'));
    assert.equal(wrong.status, 403, 'a header made with another secret is refused');

    const header = adminAuthHeader(secret, 'POST', '/cluster/verify');
    const ok = await fromClient('POST', '/cluster/verify', header);
    assert.equal(ok.status, 200, ok.body);
    // the same request seen on the wire and sent again: refused (each verify stalls every write)
    const replay = await fromClient('POST', '/cluster/verify', header);
    assert.equal(replay.status, 403, `a replayed header is refused: ${replay.body}`);

    // the command line from the other host: signs with the secret its config names
    const v = await run('ip', ['netns', 'exec', NS_CLIENT, process.execPath, CLI, 'verify', '--config', file], { timeoutMs: 60_000 });
    assert.equal(v.code, 0, `${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /identical/);
  });

  it('without a secret: every change from off loopback is refused', async () => {
    await startNode('nosecret', undefined);
    const status = await fromClient('GET', '/cluster/status');
    assert.equal(status.status, 200, status.body);
    const r = await fromClient('POST', '/cluster/verify', adminAuthHeader(Buffer.from('anything at all, 32 bytes long..'), 'POST', '/cluster/verify'));
    assert.equal(r.status, 403, r.body);
    assert.match(r.body, /need cluster.secretFile/);
  });
});
