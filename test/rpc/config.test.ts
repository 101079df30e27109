import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, defaultConfig, loadConfigFile, parseConfig, parseFlags, resolveConfig } from '../../src/config';

describe('configuration', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hanfs-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults are loopback-only and root-squashed', () => {
    const c = defaultConfig();
    assert.equal(c.listen.host, '127.0.0.1');
    assert.equal(c.admin.host, '127.0.0.1');
    assert.equal(c.listen.portmapPort, 0);
    assert.deepEqual(c.exports[0].clients, ['127.0.0.0/8', '::1/128']);
    assert.equal(c.exports[0].rootSquash, true);
    assert.equal(c.exports[0].allowAuthNone, false);
    assert.equal(c.exports[0].path, '/export');
  });

  it('merges a partial document over the defaults', () => {
    const c = parseConfig({ listen: { nfsPort: 12049 }, exports: [{ path: '/data', clients: ['10.0.0.0/8'], readOnly: true }] });
    assert.equal(c.listen.nfsPort, 12049);
    assert.equal(c.listen.host, '127.0.0.1');
    assert.equal(c.exports[0].id, 1);
    assert.equal(c.exports[0].readOnly, true);
    assert.equal(c.exports[0].rootSquash, true);
    assert.equal(c.limits.maxRecordBytes, defaultConfig().limits.maxRecordBytes);
    assert.equal(c.limits.maxConnectionsPerClient, 64);
    assert.equal(c.limits.maxReplyBytesPerConnection, 8 * 1024 * 1024);
    const l = parseConfig({ limits: { maxConnectionsPerClient: 8, maxReplyBytesPerConnection: 65536 } }).limits;
    assert.equal(l.maxConnectionsPerClient, 8);
    assert.equal(l.maxReplyBytesPerConnection, 65536);
  });

  const bad: [string, unknown, RegExp][] = [
    ['unknown top-level key', { listn: {} }, /config: unknown key "listn"/],
    ['unknown nested key', { listen: { nfs_port: 1 } }, /listen: unknown key "nfs_port"/],
    ['unknown export key', { exports: [{ path: '/a', squash: true }] }, /exports\[0\]: unknown key "squash"/],
    ['port out of range', { listen: { nfsPort: 70000 } }, /listen.nfsPort: expected an integer in \[0, 65535\]/],
    ['port not an integer', { admin: { port: '9464' } }, /admin.port/],
    ['host not an IP', { listen: { host: 'example.com' } }, /listen.host: expected an IP address/],
    ['bad CIDR', { exports: [{ path: '/a', clients: ['10.0.0.0/33'] }] }, /exports\[0\].clients\[0\]: bad prefix length/],
    ['not a network', { exports: [{ path: '/a', clients: ['everyone'] }] }, /not an IP network/],
    ['empty client list', { exports: [{ path: '/a', clients: [] }] }, /non-empty array/],
    ['relative path', { exports: [{ path: 'export' }] }, /must be absolute/],
    ['dot-dot path', { exports: [{ path: '/a/../b' }] }, /must not contain/],
    ['missing path', { exports: [{ id: 3 }] }, /"path" is required/],
    ['duplicate id', { exports: [{ path: '/a', id: 2 }, { path: '/b', id: 2 }] }, /duplicate id 2/],
    ['duplicate path', { exports: [{ path: '/a' }, { path: '/a/' }] }, /duplicate path/],
    ['no exports', { exports: [] }, /at least one export/],
    ['bad log level', { log: { level: 'loud' } }, /log.level: expected one of/],
    ['tiny record limit', { limits: { maxRecordBytes: 100 } }, /limits.maxRecordBytes/],
    // FSINFO invites 1 MiB WRITEs: a record limit below one would close every full-size WRITE's connection
    ['record limit below a full-size WRITE', { limits: { maxRecordBytes: 65536 } }, /limits.maxRecordBytes/],
    ['unknown limit', { limits: { maxFoo: 1 } }, /limits: unknown key "maxFoo"/],
    ['zero connections per client', { limits: { maxConnectionsPerClient: 0 } }, /limits.maxConnectionsPerClient/],
    ['tiny reply budget per connection', { limits: { maxReplyBytesPerConnection: 1000 } }, /limits.maxReplyBytesPerConnection/],
    ['not an object', [1, 2], /expected a JSON object/],
    // a listener that binds at start on the service address's port: the node would lead and never serve
    ['admin on the NFS port', { admin: { port: 2049 } }, /listen.nfsPort and admin.port both use port 2049/],
    ['admin on a wildcard, the MOUNT port', { listen: { host: '10.0.0.1' }, admin: { host: '0.0.0.0', port: 20048 } }, /listen.mountPort and admin.port/],
    [
      'the peer link on the MOUNT port',
      { cluster: { nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:20048', snapshot: '127.0.0.1:7002' }] } },
      /listen.mountPort and this node's cluster peer address both use port 20048/,
    ],
    [
      'the snapshot server on the admin port',
      { cluster: { nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:9463' }] } },
      /admin.port and this node's cluster snapshot address both use port 9464/,
    ],
  ];
  for (const [name, doc, re] of bad) {
    it(`rejects: ${name}`, () => {
      assert.throws(() => parseConfig(doc), (err: unknown) => err instanceof ConfigError && re.test((err as Error).message));
    });
  }

  it('the same port on addresses that do not overlap is fine; flags are checked too', () => {
    parseConfig({ listen: { host: '10.0.0.1', nfsPort: 2049 }, admin: { host: '127.0.0.1', port: 2049 } });
    parseConfig({ listen: { host: '::1', nfsPort: 2049 }, admin: { host: '0.0.0.0', port: 2049 } });
    // another member's addresses are not this node's
    parseConfig({ cluster: { nodeId: 1, clusterId: 'c', members: [{ id: 1, peer: '127.0.0.1:7001' }, { id: 2, peer: '127.0.0.1:2049' }] } });
    assert.throws(() => resolveConfig(parseFlags(['--admin', '127.0.0.1:20048'])), /listen.mountPort and admin.port/);
  });

  it('fresh store root: 1777 in the embedded default, 0755 root-owned with a file, or as configured', () => {
    assert.deepEqual(defaultConfig().storeRoot, { mode: 0o1777, uid: 0, gid: 0 });
    assert.deepEqual(parseConfig({}).storeRoot, { mode: 0o755, uid: 0, gid: 0 });
    assert.deepEqual(parseConfig({ storeRoot: { mode: '2775', gid: 100 } }).storeRoot, { mode: 0o2775, uid: 0, gid: 100 });
    assert.throws(() => parseConfig({ storeRoot: { mode: 493 } }), /storeRoot.mode: expected an octal string/);
    assert.throws(() => parseConfig({ storeRoot: { mode: '0855' } }), /storeRoot.mode/);
    assert.throws(() => parseConfig({ storeRoot: { owner: 1 } }), /storeRoot: unknown key "owner"/);
  });

  it('loads a file and reports bad JSON with the file name', () => {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ dataDir: '/var/lib/hanfs', log: { level: 'debug' } }));
    assert.equal(loadConfigFile(good).dataDir, '/var/lib/hanfs');
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "dataDir": ');
    assert.throws(() => loadConfigFile(broken), /broken.json is not valid JSON/);
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, '{ "exprots": [] }');
    assert.throws(() => loadConfigFile(unknown), /unknown.json: config: unknown key "exprots"/);
    assert.throws(() => loadConfigFile(join(dir, 'missing.json')), /cannot read config file/);
  });

  it('hanfs.example.json is valid', () => {
    const c = loadConfigFile(join(__dirname, '..', '..', '..', 'hanfs.example.json'));
    assert.ok(c.exports.length >= 1);
  });

  it('flags override the file; --export replaces the export list', () => {
    const f = join(dir, 'f.json');
    writeFileSync(f, JSON.stringify({ listen: { nfsPort: 3049 }, exports: [{ path: '/a', clients: ['10.0.0.0/8'] }] }));
    const r = resolveConfig(
      parseFlags(['--config', f, '--data-dir', '/tmp/d', '--listen', '::1', '--mount-port=4048', '--portmap-port', '111', '--admin', '[::1]:9999', '--export', '/x', '--export', '/y', '--log-level', 'warn']),
    );
    assert.equal(r.config.dataDir, '/tmp/d');
    assert.equal(r.config.listen.host, '::1');
    assert.equal(r.config.listen.nfsPort, 3049);
    assert.equal(r.config.listen.mountPort, 4048);
    assert.equal(r.config.listen.portmapPort, 111);
    assert.deepEqual(r.config.admin, { host: '::1', port: 9999 });
    assert.deepEqual(r.config.exports.map((e) => [e.path, e.id, e.clients]), [
      ['/x', 1, ['127.0.0.0/8', '::1/128']],
      ['/y', 2, ['127.0.0.0/8', '::1/128']],
    ]);
    assert.equal(r.config.log.level, 'warn');
    assert.deepEqual(r.explicitPorts, { nfs: true, mount: true, admin: true });
    assert.deepEqual(resolveConfig(parseFlags([])).explicitPorts, { nfs: false, mount: false, admin: false });
  });

  it('rejects unknown flags and bad flag values', () => {
    assert.throws(() => parseFlags(['--nfsport', '1']), /unknown flag "--nfsport"/);
    assert.throws(() => parseFlags(['--nfs-port', 'abc']), /--nfs-port: expected a port number/);
    assert.throws(() => parseFlags(['--admin', 'localhost']), /--admin: expected HOST:PORT/);
    assert.throws(() => parseFlags(['--export', 'rel']), /must be absolute/);
    assert.throws(() => parseFlags(['--data-dir']), /needs a value/);
  });
});
