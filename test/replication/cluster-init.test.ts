/**
 * `hanfs cluster init`: explicit bootstrapping. A node configured to join ("bootstrap": "join") does
 * not form a cluster on its own; after `cluster init` it starts as a voter of the configured members
 * (here one: it leads and serves). A second init of the same directory is refused.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MountClient, RpcConnection } from '../../src/nfs/client';
import { testExport } from '../support/daemon';
import { CLI, freePorts, rmrf, run, sleep, tmpDir } from '../support/util';
import { spawn } from 'node:child_process';

describe('hanfs cluster init', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => dirs.forEach(rmrf));

  it('bootstraps an empty node as a voter of its members; refuses a second time', async () => {
    const dir = tmpDir('init');
    dirs.push(dir);
    const [nfsPort, mountPort, admin, peer, snap] = await freePorts(5);
    const cfg = {
      dataDir: path.join(dir, 'data'),
      listen: { host: '127.0.0.1', nfsPort, mountPort, portmapPort: 0 },
      admin: { host: '127.0.0.1', port: admin },
      exports: [testExport()],
      log: { level: 'warn' },
      cluster: { nodeId: 1, clusterId: 'init-test', bootstrap: 'join', members: [{ id: 1, peer: `127.0.0.1:${peer}`, snapshot: `127.0.0.1:${snap}` }] },
    };
    const file = path.join(dir, 'hanfs.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    const init = await run(process.execPath, [CLI, 'cluster', 'init', '--config', file], { timeoutMs: 20_000 });
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /bootstrapped with voters 1/);
    const again = await run(process.execPath, [CLI, 'cluster', 'init', '--config', file], { timeoutMs: 20_000 });
    assert.notEqual(again.code, 0, 'a second init is refused');
    assert.match(again.stderr, /already holds/);

    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: 'ignore' });
    try {
      let root: Uint8Array | undefined;
      for (let i = 0; i < 200 && !root; i++) {
        try {
          const mc = new MountClient(await RpcConnection.connect({ port: mountPort, timeoutMs: 1000 }));
          root = await mc.mntOrThrow('/export').finally(() => mc.close());
        } catch {
          await sleep(50);
        }
      }
      assert.ok(root, 'the initialised node leads and serves MOUNT');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
