#!/usr/bin/env node
/**
 * hanfs command line: `hanfs serve [flags]`, `hanfs fsck --data-dir DIR`, `hanfs version`.
 */
import './threadpool';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseFlags, resolveConfig } from './config';
import { standaloneCluster } from './replication/cluster-config';

const USAGE = `usage:
  hanfs serve [--config FILE] [--data-dir DIR] [--listen HOST] [--nfs-port N] [--mount-port N]
              [--portmap-port N] [--admin HOST:PORT] [--export PATH]... [--log-level LEVEL]
  hanfs local-cluster            a 3-node cluster on loopback, data in ./data/node1..3 (npm start)
  hanfs cluster init --config FILE | join --config FILE (run for a new node: ask the cluster to add it)
  hanfs cluster status|transfer-leader --to N|add --id N --peer H:P|remove --id N
                [--config FILE | --admin H:P,...] [--json]
  hanfs verify [--config FILE | --admin H:P,...] [--timeout-s 900]   compare every replica's store at one log index
  hanfs fsck --data-dir DIR | --config FILE
  hanfs version

A config file with a "cluster" section runs one node of a cluster (docs/operations.md).

Without --config: a single-node cluster, data in ./data, export /export to loopback clients only,
NFS on 127.0.0.1:2049, MOUNT on 127.0.0.1:20048 (bound once the node leads, retried while taken),
metrics on 127.0.0.1:9464.
See docs/configuration.md.`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function serve(argv: string[]): Promise<number> {
  const { config } = resolveConfig(parseFlags(argv));
  // a single node is a cluster of one voter: the same code path (docs/operations.md)
  config.cluster ??= standaloneCluster();
  return waitForSignals(await serveClusterNode(config));
}

async function serveClusterNode(config: import('./config').HanfsConfig): Promise<{ log: import('./log').Logger; stop(): Promise<void> }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startClusterNode } = require('./replication/cluster-node') as typeof import('./replication/cluster-node');
  const node = await startClusterNode(config);
  process.stderr.write(
    `hanfs ${version()} cluster ${node.cluster.clusterId} node ${node.cluster.nodeId}: data in ${config.dataDir}, ` +
      `admin http://${node.admin.host}:${node.admin.port}/cluster/status\n` +
      `  mount (whichever node leads serves it):  ${node.mountCommand}\n` +
      `  libnfs: ${node.libnfsUrl}\n`,
  );
  return node;
}

function waitForSignals(server: { log: import('./log').Logger; stop(): Promise<void> }): Promise<number> {
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (signalled) {
        server.log.warn({ signal: sig }, 'second signal: exiting at once');
        process.exit(1);
      }
      signalled = true;
      server.log.info({ signal: sig }, 'signal received');
      server.stop().then(
        () => resolve(0),
        (err) => {
          server.log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // started by `hanfs local-cluster` (an IPC channel, a process group of its own): its end closing
    // means that process is gone, however it ended; stop as on SIGTERM rather than live on as an orphan
    if (process.channel) {
      process.channel.unref();
      process.once('disconnect', () => {
        if (!signalled) onSignal('SIGTERM');
      });
    }
  });
}

async function fsckCommand(argv: string[]): Promise<number> {
  const { config } = resolveConfig(parseFlags(argv));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fsck, formatFsckReport } = require('./store/fsck') as typeof import('./store/fsck');
  // a node keeps its store in DATA_DIR/store (its Raft log in DATA_DIR/raft); a bare store dir works too
  const nodePath = require('node:path') as typeof import('node:path');
  const fsm = require('node:fs') as typeof import('node:fs');
  const dir = fsm.existsSync(nodePath.join(config.dataDir, 'store')) ? nodePath.join(config.dataDir, 'store') : config.dataDir;
  const report = await fsck(dir);
  process.stdout.write(`fsck ${dir}\n${formatFsckReport(report)}\n`);
  return report.ok ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'fsck':
      return fsckCommand(rest);
    case 'local-cluster': {
      if (rest.length > 0) {
        process.stderr.write(`hanfs local-cluster takes no arguments\n${USAGE}\n`);
        return 2;
      }
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { localCluster } = require('./replication/local-cluster') as typeof import('./replication/local-cluster');
      return localCluster(__filename);
    }
    case 'cluster': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { clusterCommand } = require('./replication/cluster-cli') as typeof import('./replication/cluster-cli');
      return clusterCommand(rest);
    }
    case 'verify': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { verifyCommand } = require('./replication/cluster-cli') as typeof import('./replication/cluster-cli');
      return verifyCommand(rest);
    }
    case 'version':
    case '--version':
      process.stdout.write(`hanfs ${version()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`${cmd ? `unknown command "${cmd}"\n` : ''}${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // let pino flush; nothing else should be keeping the loop alive after shutdown
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`hanfs: ${err.message}\n`);
    else process.stderr.write(`hanfs: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
