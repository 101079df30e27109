/**
 * Wiring of the daemon: open the store, build the programs (portmap, MOUNT, NFSv3), start the RPC
 * listeners and the admin endpoint, and shut everything down in order.
 */
import type { HanfsConfig } from './config';
import { libnfsUrl, mountCommand } from './nfs/mount-command';

export { libnfsUrl, mountCommand };
import { createLogger, type Logger } from './log';
import { HanfsMetrics, startAdminServer, type AdminServer } from './metrics';
import { ExportTable, type Export } from './nfs/exports';
import { MountProgram } from './nfs/mount';
import { PortmapProgram, daemonRegistrations } from './nfs/portmap';
import { withNonIdempotent, type RpcProgram } from './nfs/rpc-program';
import { RpcServer, type Listener } from './nfs/rpc-server';
import { WriteVerifier, type RotateReason } from './nfs/write-verifier';
import { handleFor, rootHandle as makeRootHandle } from './nfs/file-handle';
import { FileType, Nfs3Status, type BlockStore } from './store/types';
import type { Nfs3Deps } from './nfs/nfs3/deps';

export interface ServerParts {
  /** default: openStore from src/store/index.ts */
  openStore?: (dataDir: string) => Promise<BlockStore>;
  /** default: createNfs3Program from src/nfs/nfs3/index.ts */
  createNfs3Program?: (deps: Nfs3Deps<Export>) => RpcProgram;
  /** default: makeRootHandle from src/nfs/file-handle.ts */
  rootHandle?: (exportId: number) => Uint8Array;
  log?: Logger;
  metrics?: HanfsMetrics;
}

export interface StartOptions {
  /** ports that were not given explicitly fall back to an ephemeral port when taken */
  explicitPorts?: { nfs: boolean; mount: boolean; admin: boolean };
  parts?: ServerParts;
}

export interface RunningServer {
  readonly config: HanfsConfig;
  readonly log: Logger;
  readonly metrics: HanfsMetrics;
  readonly exports: ExportTable;
  readonly nfs: Listener;
  readonly mount: { tcp: Listener; udp: Listener };
  readonly portmap?: { tcp: Listener; udp: Listener };
  readonly admin: AdminServer;
  /** the 8-byte write verifier the NFS3 program replies with (changes in place on rotate) */
  readonly verifier: Uint8Array;
  /** pick a new write verifier: whenever UNSTABLE data acknowledged here could have been lost
   * (e.g. this node becomes the serving leader: reason 'leader'). The NFS program rotates it itself
   * when a sync or a mutation fails in the store. */
  rotateVerifier(reason?: RotateReason): void;
  readonly rpc: RpcServer;
  /** the Linux mount command and libnfs URL for the first export */
  readonly mountCommand: string;
  readonly libnfsUrl: string;
  /** stop listening, finish calls in flight, sync and close the store; idempotent */
  stop(): Promise<void>;
}

function isAddrInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'EADDRINUSE';
}

async function withFallback<T>(explicit: boolean, port: number, log: Logger, what: string, bind: (p: number) => Promise<T>): Promise<T> {
  try {
    return await bind(port);
  } catch (err) {
    if (explicit || port === 0 || !isAddrInUse(err)) throw err;
    log.warn({ port, what }, `${what} port ${port} is in use; using an ephemeral port instead`);
    return bind(0);
  }
}

/** TCP and UDP on the same port number (the port is taken from TCP when 0 was asked for). */
export async function listenBoth(
  rpc: RpcServer,
  host: string,
  port: number,
  programs: RpcProgram[],
): Promise<{ tcp: Listener; udp: Listener }> {
  for (let attempt = 0; ; attempt++) {
    const tcp = await rpc.listenTcp(host, port, programs);
    try {
      const udp = await rpc.listenUdp(host, tcp.port, programs);
      return { tcp, udp };
    } catch (err) {
      // an ephemeral TCP port whose UDP twin is taken: try another one
      if (port !== 0 || attempt >= 5 || !isAddrInUse(err)) throw err;
      await rpc.closeListener(tcp);
    }
  }
}

/** MOUNT procedures the duplicate request cache covers: MNT (1), UMNT (3), UMNTALL (4) */
export function mountNonIdempotent(_vers: number, proc: number): boolean {
  return proc === 1 || proc === 3 || proc === 4;
}

/** mountstat3 codes that equal the nfsstat3 the store returns */
const MOUNT_STATUSES = new Set<number>([Nfs3Status.NOENT, Nfs3Status.ACCES, Nfs3Status.NOTDIR, Nfs3Status.NAMETOOLONG, Nfs3Status.IO]);

/** MNT below an export root: walk the names from the store's root, each must be a directory. */
export async function resolvePath(
  store: BlockStore,
  exportId: number,
  names: string[],
): Promise<{ status: number; handle?: Uint8Array }> {
  let dir = store.rootFileId;
  let generation = 0;
  for (const name of names) {
    const r = await store.lookup(dir, name);
    if (r.status !== Nfs3Status.OK || !r.obj) {
      return { status: MOUNT_STATUSES.has(r.status) ? r.status : Nfs3Status.SERVERFAULT };
    }
    if (r.obj.type !== FileType.DIR) return { status: Nfs3Status.NOTDIR };
    dir = r.obj.fileid;
    generation = r.obj.generation;
  }
  return { status: Nfs3Status.OK, handle: handleFor(exportId, dir, generation, store.rootFileId) };
}

export async function startServer(config: HanfsConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const parts = opts.parts ?? {};
  const explicit = opts.explicitPorts ?? { nfs: true, mount: true, admin: true };
  const log = parts.log ?? createLogger(config.log.level);
  const metrics = parts.metrics ?? new HanfsMetrics();
  const exportTable = new ExportTable(config.exports);
  const verifier = new WriteVerifier();
  verifier.onRotate = (reason) => {
    metrics.verifierRotated(reason);
    log.warn({ reason, rotations: verifier.rotations }, 'write verifier rotated: clients resend uncommitted writes');
  };

  const openStore =
    parts.openStore ??
    (async (dir: string) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./store/index') as typeof import('./store/index');
      return mod.openStore(dir, { rootMode: config.storeRoot.mode, rootUid: config.storeRoot.uid, rootGid: config.storeRoot.gid });
    });
  const createNfs3 =
    parts.createNfs3Program ??
    ((deps: Nfs3Deps<Export>) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./nfs/nfs3/index') as typeof import('./nfs/nfs3/index');
      return mod.createNfs3Program(deps);
    });
  const rootHandle = parts.rootHandle ?? makeRootHandle;

  const store = await openStore(config.dataDir);
  // config.limits may carry drcMaxEntries / drcMaxBytes; the DRC's own defaults apply otherwise
  // an address no export admits may send only small records (NULL, portmap, MOUNT): it cannot fill
  // the read budget with partial 1 MiB records and stall the clients that are served
  const rpc = new RpcServer({ limits: config.limits, log, metrics, admitsLargeRecords: (a) => exportTable.admitsAnyExport(a) });
  metrics.watchDrc(rpc.drc);
  let admin: AdminServer | undefined;
  let stopping = false;
  try {
    const nfs3 = createNfs3({
      store,
      exports: exportTable,
      verifier: verifier.bytes,
      log,
      onStatus: (proc, status) => metrics.nfsError(proc, status),
      onBytes: (dir, n) => (dir === 'read' ? metrics.bytesRead(n) : metrics.bytesWritten(n)),
    });
    const mountProgram = new MountProgram({ exports: exportTable, rootHandle, resolvePath: (id, names) => resolvePath(store, id, names), log });
    const mount: RpcProgram = (mountProgram as RpcProgram).isNonIdempotent ? mountProgram : withNonIdempotent(mountProgram, mountNonIdempotent);
    const host = config.listen.host;

    const nfs = await withFallback(explicit.nfs, config.listen.nfsPort, log, 'NFS', (p) => rpc.listenTcp(host, p, [nfs3]));
    const mnt = await withFallback(explicit.mount, config.listen.mountPort, log, 'MOUNT', (p) => listenBoth(rpc, host, p, [mount]));
    let portmap: { tcp: Listener; udp: Listener } | undefined;
    if (config.listen.portmapPort !== 0) {
      const pm = new PortmapProgram();
      portmap = await listenBoth(rpc, host, config.listen.portmapPort, [pm]);
      for (const r of daemonRegistrations({ host, nfsPort: nfs.port, mountPort: mnt.tcp.port, portmapPort: portmap.tcp.port })) {
        pm.register(r);
      }
    }
    admin = await withFallback(explicit.admin, config.admin.port, log, 'admin', (p) =>
      startAdminServer(config.admin.host, p, metrics, () => !stopping),
    );

    const first = config.exports[0];
    const cmd = mountCommand(host, nfs.port, mnt.tcp.port, first.path);
    const url = libnfsUrl(host, nfs.port, mnt.tcp.port, first.path);
    log.info(
      {
        dataDir: config.dataDir,
        nfs: `${nfs.host}:${nfs.port}/tcp`,
        mount: `${mnt.tcp.host}:${mnt.tcp.port}/tcp+udp`,
        portmap: portmap ? `${portmap.tcp.host}:${portmap.tcp.port}/tcp+udp` : 'off',
        admin: `http://${admin.host}:${admin.port}/metrics`,
        exports: config.exports.map((e) => ({ path: e.path, id: e.id, clients: e.clients, readOnly: e.readOnly })),
        mountCommand: cmd,
        libnfsUrl: url,
      },
      'hanfs serving',
    );

    let stopped: Promise<void> | undefined;
    const adminServer = admin;
    const stop = (): Promise<void> => {
      stopped ??= (async () => {
        stopping = true;
        log.info('shutting down: finishing calls in flight');
        await rpc.close();
        await adminServer.close();
        try {
          await store.sync();
        } finally {
          await store.close();
        }
        log.info('shut down');
      })();
      return stopped;
    };
    return {
      config,
      log,
      metrics,
      exports: exportTable,
      nfs,
      mount: mnt,
      portmap,
      admin,
      verifier: verifier.bytes,
      rotateVerifier: (reason: RotateReason = 'manual') => verifier.rotate(reason),
      rpc,
      mountCommand: cmd,
      libnfsUrl: url,
      stop,
    };
  } catch (err) {
    stopping = true;
    await rpc.close(0).catch(() => undefined);
    if (admin) await admin.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}
