/**
 * hanfs configuration: one JSON file (see docs/configuration.md and hanfs.example.json) plus flags.
 * Secure defaults: everything listens on loopback, exports admit loopback clients only.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { RW_MAX } from './nfs/nfs3/core';
import { parseClusterConfig, type ClusterConfig } from './replication/cluster-config';

export interface ExportConfig {
  /** export path clients mount, e.g. "/export" */
  path: string;
  /** small integer, part of every file handle; must not change for the life of the export */
  id: number;
  /** client networks in CIDR ("127.0.0.0/8", "10.1.0.0/16", "::1/128"); default loopback only */
  clients: string[];
  readOnly: boolean;
  /** root_squash (default true): uid 0 becomes anonUid/anonGid */
  rootSquash: boolean;
  /** all_squash: every uid becomes anon */
  allSquash: boolean;
  anonUid: number;
  anonGid: number;
  /** allow AUTH_NONE (mapped to anon); default false */
  allowAuthNone: boolean;
}

export interface Limits {
  /** largest RPC record accepted, checked before allocating (bytes) */
  maxRecordBytes: number;
  /** concurrent calls per connection */
  maxInflightPerConnection: number;
  maxConnections: number;
  /** TCP connections open from one client address; further ones are closed at once */
  maxConnectionsPerClient: number;
  /** a connection that sends a partial record and stalls is closed after this long (ms) */
  idleRecordTimeoutMs: number;
  /** idle connection timeout (ms) */
  idleConnectionTimeoutMs: number;
  /** entries of the duplicate request cache (completed + in progress); 0 = cache nothing */
  drcMaxEntries: number;
  /** bytes of the duplicate request cache (cached replies + per-entry overhead) */
  drcMaxBytes: number;
  /** bytes held across all TCP connections (partial records, complete records queued or being
   * processed); above it no connection is read until that drops (bytes) */
  maxBufferedBytes: number;
  /** bytes of replies a connection may have waiting to be written out; above it the connection is
   * neither read nor starts calls until its client reads, and is closed if nothing of it is written
   * out for idleRecordTimeoutMs (bytes) */
  maxReplyBytesPerConnection: number;
  /** bytes of replies waiting to be written out over all TCP connections; above it the connection
   * with the largest backlog is closed (bytes) */
  maxReplyBytesTotal: number;
}

export interface HanfsConfig {
  dataDir: string;
  listen: {
    host: string;
    nfsPort: number;
    mountPort: number;
    /** portmapper/rpcbind on 111; 0 disables (default 0 for the embedded default, 111 in systemd) */
    portmapPort: number;
  };
  admin: { host: string; port: number };
  exports: ExportConfig[];
  /** owner and permissions of the root directory of a store created fresh (ignored afterwards) */
  storeRoot: { mode: number; uid: number; gid: number };
  limits: Limits;
  log: { level: string };
  /** absent: a single node with its own local op log (no Raft); see src/replication/cluster-config.ts */
  cluster?: ClusterConfig;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const DEFAULT_CLIENTS = ['127.0.0.0/8', '::1/128'];

export function defaultExport(path = '/export', id = 1): ExportConfig {
  return {
    path,
    id,
    clients: [...DEFAULT_CLIENTS],
    readOnly: false,
    rootSquash: true,
    allSquash: false,
    anonUid: 65534,
    anonGid: 65534,
    allowAuthNone: false,
  };
}

/** the smallest `limits.maxRecordBytes`: a WRITE call of RW_MAX bytes with the largest RPC header
 * (AUTH_SYS credential and verifier of 400 bytes each) and its arguments */
export const MIN_RECORD_BYTES = RW_MAX + 4096;

export const DEFAULT_LIMITS: Limits = {
  // 1 MiB of WRITE/READ data plus room for the RPC and NFS headers
  maxRecordBytes: 1024 * 1024 + 64 * 1024,
  maxInflightPerConnection: 128,
  maxConnections: 1024,
  maxConnectionsPerClient: 64,
  idleRecordTimeoutMs: 30_000,
  idleConnectionTimeoutMs: 360_000,
  drcMaxEntries: 4096,
  drcMaxBytes: 8 * 1024 * 1024,
  maxBufferedBytes: 256 * 1024 * 1024,
  maxReplyBytesPerConnection: 8 * 1024 * 1024,
  maxReplyBytesTotal: 256 * 1024 * 1024,
};

/** Root directory of a fresh store when a config file is used: root-owned 0755, like a new disk. */
export const FILE_STORE_ROOT = { mode: 0o755, uid: 0, gid: 0 };
/** ... and in the embedded default: 1777 (like /tmp), so that local users can write at once over
 * the loopback-only export although root is squashed. */
export const EMBEDDED_STORE_ROOT = { mode: 0o1777, uid: 0, gid: 0 };

/** The embedded default: no config file needed, nothing reachable from other machines. */
export function defaultConfig(): HanfsConfig {
  return {
    dataDir: './data',
    listen: { host: '127.0.0.1', nfsPort: 2049, mountPort: 20048, portmapPort: 0 },
    admin: { host: '127.0.0.1', port: 9464 },
    exports: [defaultExport()],
    storeRoot: { ...EMBEDDED_STORE_ROOT },
    limits: { ...DEFAULT_LIMITS },
    log: { level: 'info' },
  };
}

// ---------------------------------------------------------------------------------------------
// validation

type Json = unknown;

export function isObj(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function checkKeys(v: Record<string, Json>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      throw new ConfigError(`${where}: unknown key "${k}" (allowed: ${allowed.join(', ')})`);
    }
  }
}

export function int(v: Json, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${where}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(v: Json, where: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function str(v: Json, where: string): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new ConfigError(`${where}: expected a non-empty string, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function host(v: Json, where: string): string {
  const h = str(v, where);
  if (isIP(h) === 0) {
    throw new ConfigError(`${where}: expected an IP address (e.g. "127.0.0.1", "0.0.0.0", "::"), got "${h}"`);
  }
  return h;
}

function cidr(v: Json, where: string): string {
  const s = str(v, where);
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const fam = isIP(addr);
  if (fam === 0) throw new ConfigError(`${where}: "${s}" is not an IP network in CIDR notation`);
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    const max = fam === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw new ConfigError(`${where}: bad prefix length in "${s}" (0..${max})`);
    }
  }
  return s;
}

export function validateExportPath(p: Json, where: string): string {
  const s = str(p, where);
  if (!s.startsWith('/')) throw new ConfigError(`${where}: export path must be absolute, got "${s}"`);
  if (s.length > 1024) throw new ConfigError(`${where}: export path longer than 1024 bytes`);
  if (s.split('/').some((c) => c === '..' || c === '.')) {
    throw new ConfigError(`${where}: export path must not contain "." or ".." components`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f]/.test(s)) throw new ConfigError(`${where}: export path contains control characters`);
  return s;
}

const EXPORT_KEYS = ['path', 'id', 'clients', 'readOnly', 'rootSquash', 'allSquash', 'anonUid', 'anonGid', 'allowAuthNone'];

function parseExport(v: Json, index: number): ExportConfig {
  const where = `exports[${index}]`;
  if (!isObj(v)) throw new ConfigError(`${where}: expected an object`);
  checkKeys(v, EXPORT_KEYS, where);
  if (v.path === undefined) throw new ConfigError(`${where}: "path" is required`);
  const e = defaultExport(validateExportPath(v.path, `${where}.path`), index + 1);
  if (v.id !== undefined) e.id = int(v.id, `${where}.id`, 1, 65535);
  if (v.clients !== undefined) {
    if (!Array.isArray(v.clients) || v.clients.length === 0) {
      throw new ConfigError(`${where}.clients: expected a non-empty array of CIDR networks`);
    }
    e.clients = v.clients.map((c, i) => cidr(c, `${where}.clients[${i}]`));
  }
  if (v.readOnly !== undefined) e.readOnly = bool(v.readOnly, `${where}.readOnly`);
  if (v.rootSquash !== undefined) e.rootSquash = bool(v.rootSquash, `${where}.rootSquash`);
  if (v.allSquash !== undefined) e.allSquash = bool(v.allSquash, `${where}.allSquash`);
  if (v.anonUid !== undefined) e.anonUid = int(v.anonUid, `${where}.anonUid`, 0, 0xffffffff);
  if (v.anonGid !== undefined) e.anonGid = int(v.anonGid, `${where}.anonGid`, 0, 0xffffffff);
  if (v.allowAuthNone !== undefined) e.allowAuthNone = bool(v.allowAuthNone, `${where}.allowAuthNone`);
  return e;
}

function checkExports(list: ExportConfig[]): void {
  if (list.length === 0) throw new ConfigError('exports: at least one export is required');
  if (list.length > 256) throw new ConfigError('exports: at most 256 exports');
  const ids = new Set<number>();
  const paths = new Set<string>();
  for (const e of list) {
    const p = e.path.length > 1 ? e.path.replace(/\/+$/, '') : e.path;
    if (ids.has(e.id)) throw new ConfigError(`exports: duplicate id ${e.id}`);
    if (paths.has(p)) throw new ConfigError(`exports: duplicate path "${p}"`);
    ids.add(e.id);
    paths.add(p);
  }
}

/** Merge a parsed JSON document over the defaults, rejecting unknown keys and bad values. */
export function parseConfig(doc: Json, base: HanfsConfig = defaultConfig()): HanfsConfig {
  if (!isObj(doc)) throw new ConfigError('config: expected a JSON object');
  checkKeys(doc, ['dataDir', 'listen', 'admin', 'exports', 'storeRoot', 'limits', 'log', 'cluster'], 'config');
  const cfg: HanfsConfig = structuredClone(base);
  // a config file means a deliberate deployment: the fresh root is root-owned 0755 unless it says
  cfg.storeRoot = { ...FILE_STORE_ROOT };
  if (doc.storeRoot !== undefined) {
    const r = doc.storeRoot;
    if (!isObj(r)) throw new ConfigError('storeRoot: expected an object');
    checkKeys(r, ['mode', 'uid', 'gid'], 'storeRoot');
    if (r.mode !== undefined) {
      if (typeof r.mode !== 'string' || !/^0?[0-7]{3,4}$/.test(r.mode)) {
        throw new ConfigError(`storeRoot.mode: expected an octal string such as "0755" or "1777", got ${JSON.stringify(r.mode)}`);
      }
      cfg.storeRoot.mode = parseInt(r.mode, 8);
    }
    if (r.uid !== undefined) cfg.storeRoot.uid = int(r.uid, 'storeRoot.uid', 0, 0xffffffff);
    if (r.gid !== undefined) cfg.storeRoot.gid = int(r.gid, 'storeRoot.gid', 0, 0xffffffff);
  }
  if (doc.dataDir !== undefined) cfg.dataDir = str(doc.dataDir, 'dataDir');
  if (doc.listen !== undefined) {
    const l = doc.listen;
    if (!isObj(l)) throw new ConfigError('listen: expected an object');
    checkKeys(l, ['host', 'nfsPort', 'mountPort', 'portmapPort'], 'listen');
    if (l.host !== undefined) cfg.listen.host = host(l.host, 'listen.host');
    if (l.nfsPort !== undefined) cfg.listen.nfsPort = int(l.nfsPort, 'listen.nfsPort', 0, 65535);
    if (l.mountPort !== undefined) cfg.listen.mountPort = int(l.mountPort, 'listen.mountPort', 0, 65535);
    if (l.portmapPort !== undefined) cfg.listen.portmapPort = int(l.portmapPort, 'listen.portmapPort', 0, 65535);
  }
  if (doc.admin !== undefined) {
    const a = doc.admin;
    if (!isObj(a)) throw new ConfigError('admin: expected an object');
    checkKeys(a, ['host', 'port'], 'admin');
    if (a.host !== undefined) cfg.admin.host = host(a.host, 'admin.host');
    if (a.port !== undefined) cfg.admin.port = int(a.port, 'admin.port', 0, 65535);
  }
  if (doc.exports !== undefined) {
    if (!Array.isArray(doc.exports)) throw new ConfigError('exports: expected an array');
    cfg.exports = doc.exports.map((e, i) => parseExport(e, i));
  }
  if (doc.limits !== undefined) {
    const l = doc.limits;
    if (!isObj(l)) throw new ConfigError('limits: expected an object');
    checkKeys(l, Object.keys(DEFAULT_LIMITS), 'limits');
    const lim = cfg.limits;
    // FSINFO invites READs and WRITEs of RW_MAX bytes: a smaller record limit would close the
    // connection on every full-size WRITE, and the client would resend it forever
    if (l.maxRecordBytes !== undefined) lim.maxRecordBytes = int(l.maxRecordBytes, 'limits.maxRecordBytes', MIN_RECORD_BYTES, 0x7fffffff);
    if (l.maxInflightPerConnection !== undefined) {
      lim.maxInflightPerConnection = int(l.maxInflightPerConnection, 'limits.maxInflightPerConnection', 1, 65536);
    }
    if (l.maxConnections !== undefined) lim.maxConnections = int(l.maxConnections, 'limits.maxConnections', 1, 1_000_000);
    if (l.maxConnectionsPerClient !== undefined) {
      lim.maxConnectionsPerClient = int(l.maxConnectionsPerClient, 'limits.maxConnectionsPerClient', 1, 1_000_000);
    }
    if (l.idleRecordTimeoutMs !== undefined) {
      lim.idleRecordTimeoutMs = int(l.idleRecordTimeoutMs, 'limits.idleRecordTimeoutMs', 10, 3_600_000);
    }
    if (l.idleConnectionTimeoutMs !== undefined) {
      lim.idleConnectionTimeoutMs = int(l.idleConnectionTimeoutMs, 'limits.idleConnectionTimeoutMs', 10, 86_400_000);
    }
    if (l.drcMaxEntries !== undefined) lim.drcMaxEntries = int(l.drcMaxEntries, 'limits.drcMaxEntries', 0, 1_000_000);
    if (l.drcMaxBytes !== undefined) lim.drcMaxBytes = int(l.drcMaxBytes, 'limits.drcMaxBytes', 0, 1024 * 1024 * 1024);
    if (l.maxBufferedBytes !== undefined) {
      lim.maxBufferedBytes = int(l.maxBufferedBytes, 'limits.maxBufferedBytes', 65536, Number.MAX_SAFE_INTEGER);
    }
    if (l.maxReplyBytesPerConnection !== undefined) {
      lim.maxReplyBytesPerConnection = int(
        l.maxReplyBytesPerConnection,
        'limits.maxReplyBytesPerConnection',
        65536,
        Number.MAX_SAFE_INTEGER,
      );
    }
    if (l.maxReplyBytesTotal !== undefined) {
      lim.maxReplyBytesTotal = int(l.maxReplyBytesTotal, 'limits.maxReplyBytesTotal', 65536, Number.MAX_SAFE_INTEGER);
    }
  }
  if (cfg.limits.maxReplyBytesTotal < cfg.limits.maxRecordBytes) {
    // one large reply (an NFS READ) must fit, or its own connection would be closed for it
    throw new ConfigError(
      `limits.maxReplyBytesTotal (${cfg.limits.maxReplyBytesTotal}) must be at least limits.maxRecordBytes (${cfg.limits.maxRecordBytes})`,
    );
  }
  if (cfg.limits.maxBufferedBytes < cfg.limits.maxRecordBytes) {
    throw new ConfigError(
      `limits.maxBufferedBytes (${cfg.limits.maxBufferedBytes}) must be at least limits.maxRecordBytes (${cfg.limits.maxRecordBytes})`,
    );
  }
  if (doc.log !== undefined) {
    const l = doc.log;
    if (!isObj(l)) throw new ConfigError('log: expected an object');
    checkKeys(l, ['level'], 'log');
    if (l.level !== undefined) {
      const level = str(l.level, 'log.level');
      if (!(LOG_LEVELS as readonly string[]).includes(level)) {
        throw new ConfigError(`log.level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
      }
      cfg.log.level = level;
    }
  }
  checkExports(cfg.exports);
  if (doc.cluster !== undefined) cfg.cluster = parseClusterConfig(doc.cluster);
  checkPorts(cfg);
  return cfg;
}

/** may sockets bound on these two addresses take the same port? (a wildcard overlaps its family;
 * "::" overlaps everything: Node listens dual-stack) */
function overlap(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true;
  return (a === '0.0.0.0' && isIP(b) === 4) || (b === '0.0.0.0' && isIP(a) === 4);
}

/**
 * This node's listeners must not share a port on overlapping addresses: the admin endpoint, the peer
 * link and the snapshot server bind at start, the service address (NFS, MOUNT, portmap) only once
 * the node leads, and then retries for as long as another listener holds the port: a leader that
 * never serves, which no election replaces.
 */
function checkPorts(cfg: HanfsConfig): void {
  const self = cfg.cluster?.members.find((m) => m.id === cfg.cluster?.nodeId);
  const uses: [string, string, number][] = [
    ['listen.nfsPort', cfg.listen.host, cfg.listen.nfsPort],
    ['listen.mountPort', cfg.listen.host, cfg.listen.mountPort],
    ['listen.portmapPort', cfg.listen.host, cfg.listen.portmapPort],
    ['admin.port', cfg.admin.host, cfg.admin.port],
  ];
  if (self) uses.push(['this node\'s cluster peer address', self.peer.host, self.peer.port], ['this node\'s cluster snapshot address', self.snapshot.host, self.snapshot.port]);
  for (let i = 0; i < uses.length; i++) {
    for (let j = i + 1; j < uses.length; j++) {
      const [a, ha, pa] = uses[i];
      const [b, hb, pb] = uses[j];
      if (pa !== 0 && pa === pb && overlap(ha, hb)) throw new ConfigError(`${a} and ${b} both use port ${pa} (on ${ha} and ${hb})`);
    }
  }
}

export function loadConfigFile(path: string, base?: HanfsConfig): HanfsConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let doc: Json;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    return parseConfig(doc, base);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// flags

export interface ConfigFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  nfsPort?: number;
  mountPort?: number;
  portmapPort?: number;
  admin?: { host: string; port: number };
  exports?: string[];
  logLevel?: string;
}

export interface ResolvedConfig {
  config: HanfsConfig;
  /** which ports were given explicitly (config file or flag); others may fall back when taken */
  explicitPorts: { nfs: boolean; mount: boolean; admin: boolean };
}

const VALUE_FLAGS = ['--config', '--data-dir', '--listen', '--nfs-port', '--mount-port', '--portmap-port', '--admin', '--export', '--log-level'];

function portFlag(name: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new ConfigError(`${name}: expected a port number 0..65535, got "${v}"`);
  return Number(v);
}

/** Parse "host:port", "[v6]:port" or ":port". */
export function parseHostPort(name: string, v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
  if (!m) throw new ConfigError(`${name}: expected HOST:PORT, got "${v}"`);
  const h = m[1] ?? (m[2] || '127.0.0.1');
  return { host: host(h, name), port: portFlag(name, m[3]) };
}

/** "host:port", "[v6]:port": what parseHostPort reads back. */
export function formatHostPort(a: { host: string; port: number }): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** Parse `serve`/`fsck` flags (argv without the command); throws ConfigError on unknown flags. */
export function parseFlags(argv: readonly string[]): ConfigFlags {
  const f: ConfigFlags = {};
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (!VALUE_FLAGS.includes(arg)) throw new ConfigError(`unknown flag "${argv[i]}" (flags: ${VALUE_FLAGS.join(' ')})`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new ConfigError(`${arg} needs a value`);
      value = argv[++i];
    }
    switch (arg) {
      case '--config':
        f.config = value;
        break;
      case '--data-dir':
        f.dataDir = str(value, arg);
        break;
      case '--listen':
        f.listen = host(value, arg);
        break;
      case '--nfs-port':
        f.nfsPort = portFlag(arg, value);
        break;
      case '--mount-port':
        f.mountPort = portFlag(arg, value);
        break;
      case '--portmap-port':
        f.portmapPort = portFlag(arg, value);
        break;
      case '--admin':
        f.admin = parseHostPort(arg, value);
        break;
      case '--export':
        (f.exports ??= []).push(validateExportPath(value, arg));
        break;
      case '--log-level':
        if (!(LOG_LEVELS as readonly string[]).includes(value)) {
          throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}`);
        }
        f.logLevel = value;
        break;
    }
  }
  return f;
}

/**
 * Defaults, then the config file (if --config), then flags. `--export PATH` (repeatable) replaces the
 * export list with exports of those paths, ids 1.., default options (loopback clients only).
 */
export function resolveConfig(flags: ConfigFlags): ResolvedConfig {
  let cfg = defaultConfig();
  let fileDoc: Record<string, unknown> | undefined;
  if (flags.config !== undefined) {
    cfg = loadConfigFile(flags.config, cfg);
    try {
      fileDoc = JSON.parse(readFileSync(flags.config, 'utf8')) as Record<string, unknown>;
    } catch {
      fileDoc = undefined;
    }
  }
  const fileListen = (fileDoc?.listen ?? {}) as Record<string, unknown>;
  const fileAdmin = (fileDoc?.admin ?? {}) as Record<string, unknown>;
  const explicitPorts = {
    nfs: flags.nfsPort !== undefined || fileListen.nfsPort !== undefined,
    mount: flags.mountPort !== undefined || fileListen.mountPort !== undefined,
    admin: flags.admin !== undefined || fileAdmin.port !== undefined,
  };
  if (flags.dataDir !== undefined) cfg.dataDir = flags.dataDir;
  if (flags.listen !== undefined) cfg.listen.host = flags.listen;
  if (flags.nfsPort !== undefined) cfg.listen.nfsPort = flags.nfsPort;
  if (flags.mountPort !== undefined) cfg.listen.mountPort = flags.mountPort;
  if (flags.portmapPort !== undefined) cfg.listen.portmapPort = flags.portmapPort;
  if (flags.admin !== undefined) cfg.admin = flags.admin;
  if (flags.logLevel !== undefined) cfg.log.level = flags.logLevel;
  if (flags.exports !== undefined) {
    cfg.exports = flags.exports.map((p, i) => defaultExport(p, i + 1));
    checkExports(cfg.exports);
  }
  checkPorts(cfg);
  return { config: cfg, explicitPorts };
}
