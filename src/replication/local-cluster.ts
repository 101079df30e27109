/**
 * `hanfs local-cluster` (what `npm start` runs): the embedded default, a 3-node cluster on loopback.
 * Three node processes (`hanfs serve --config data/nodeN/hanfs.json`), data under ./data/node1..3,
 * the service address 127.0.0.1:2049 (MOUNT 20048) held by whichever node leads. Killing any one
 * node process leaves the mount working. Ctrl-C stops all three.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { libnfsUrl, mountCommand } from '../nfs/mount-command';

export interface LocalClusterLayout {
  dataDir: string;
  nodes: number;
  nfsPort: number;
  mountPort: number;
  /** node i (1-based) uses peerBase + 10*i (peer) and +1 (snapshot), adminBase + i */
  peerBase: number;
  adminBase: number;
  logLevel: string;
}

export const LOCAL_DEFAULTS: LocalClusterLayout = {
  dataDir: './data',
  nodes: 3,
  nfsPort: 2049,
  mountPort: 20048,
  peerBase: 17100,
  adminBase: 9470,
  logLevel: 'info',
};

/** Write data/nodeN/hanfs.json for every node (kept if present: ids and ports must not change). */
export function writeLocalConfigs(l: LocalClusterLayout): string[] {
  const members = [];
  for (let i = 1; i <= l.nodes; i++) {
    members.push({ id: i, peer: `127.0.0.1:${l.peerBase + 10 * i}`, snapshot: `127.0.0.1:${l.peerBase + 10 * i + 1}`, admin: `127.0.0.1:${l.adminBase + i}` });
  }
  const files: string[] = [];
  for (let i = 1; i <= l.nodes; i++) {
    const dir = path.resolve(l.dataDir, `node${i}`);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'hanfs.json');
    if (!fs.existsSync(file)) {
      const cfg = {
        dataDir: dir,
        listen: { host: '127.0.0.1', nfsPort: l.nfsPort, mountPort: l.mountPort, portmapPort: 0 },
        admin: { host: '127.0.0.1', port: l.adminBase + i },
        // the embedded default: like /tmp, so local users can write at once (root is squashed)
        storeRoot: { mode: '1777' },
        log: { level: l.logLevel },
        cluster: { nodeId: i, clusterId: 'hanfs-local', members },
      };
      fs.writeFileSync(file, `${JSON.stringify(cfg, null, 2)}\n`);
    }
    files.push(file);
  }
  return files;
}

export async function localCluster(cli: string, l: LocalClusterLayout = LOCAL_DEFAULTS): Promise<number> {
  const files = writeLocalConfigs(l);
  const children: ChildProcess[] = [];
  for (const f of files) {
    // each node in a process group of its own: Ctrl-C (SIGINT to the terminal's foreground group)
    // reaches this process only, which stops every node with one SIGTERM. A node that got the
    // terminal's SIGINT and then this one's SIGTERM took the second signal as "exit at once"
    // (cli.ts) and skipped its graceful stop.
    // (and with an IPC channel: should this process die without stopping them, SIGKILL included, the
    // channel closes and each node stops by itself, as on SIGTERM: no orphan keeps the ports)
    const c = spawn(process.execPath, [cli, 'serve', '--config', f], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
    children.push(c);
  }
  const admins = files.map((_, i) => `127.0.0.1:${l.adminBase + i + 1}`).join(',');
  process.stderr.write(
    `hanfs local cluster: ${l.nodes} node processes (pids ${children.map((c) => c.pid).join(', ')}), data in ${path.resolve(l.dataDir)}/node1..${l.nodes}\n` +
      `  mount:  ${mountCommand('127.0.0.1', l.nfsPort, l.mountPort, '/export', { cluster: true })}\n` +
      `  libnfs: ${libnfsUrl('127.0.0.1', l.nfsPort, l.mountPort, '/export')}\n` +
      `  status: node ${cli} cluster status --admin ${admins}\n` +
      `  (kill any one node process: the mount keeps working)\n`,
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    };
    // (SIGHUP too: the nodes, in groups of their own, do not get the terminal's hangup)
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, stop);
    let left = children.length;
    let failed = false;
    for (const c of children) {
      c.on('exit', (code) => {
        // (a node that stopped on its own, or failed to stop cleanly, fails the command)
        if (code !== 0 || !stopping) failed = true;
        if (--left === 0) resolve(failed ? 1 : 0);
      });
    }
  });
}
