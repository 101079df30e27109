#!/usr/bin/env node
/**
 * hanfs command line: `hanfs serve [flags]`, `hanfs fsck --data-dir DIR`, `hanfs version`.
 */
import './threadpool';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseFlags, resolveConfig } from './config';
import { startServer } from './server';

const USAGE = `usage:
  hanfs serve [--config FILE] [--data-dir DIR] [--listen HOST] [--nfs-port N] [--mount-port N]
              [--portmap-port N] [--admin HOST:PORT] [--export PATH]... [--log-level LEVEL]
  hanfs fsck --data-dir DIR | --config FILE
  hanfs version

Without --config: data in ./data, export /export to loopback clients only, NFS on 127.0.0.1:2049,
MOUNT on 127.0.0.1:20048 (ephemeral ports if those are taken), metrics on 127.0.0.1:9464.
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
  const { config, explicitPorts } = resolveConfig(parseFlags(argv));
  const server = await startServer(config, { explicitPorts });
  process.stderr.write(
    `hanfs ${version()} serving ${config.exports.map((e) => e.path).join(', ')} from ${config.dataDir}\n` +
      `  mount:  ${server.mountCommand}\n` +
      `  libnfs: ${server.libnfsUrl}\n` +
      `  metrics: http://${server.admin.host}:${server.admin.port}/metrics\n`,
  );
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
  });
}

async function fsckCommand(argv: string[]): Promise<number> {
  const { config } = resolveConfig(parseFlags(argv));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fsck, formatFsckReport } = require('./store/fsck') as typeof import('./store/fsck');
  const report = await fsck(config.dataDir);
  process.stdout.write(`fsck ${config.dataDir}\n${formatFsckReport(report)}\n`);
  return report.ok ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'fsck':
      return fsckCommand(rest);
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
