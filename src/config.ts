/**
 * hanfs configuration: one JSON file (see docs/configuration.md and hanfs.example.json) plus flags.
 * Secure defaults: everything listens on loopback, exports admit loopback clients only.
 */
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
  /** a connection that sends a partial record and stalls is closed after this long (ms) */
  idleRecordTimeoutMs: number;
  /** idle connection timeout (ms) */
  idleConnectionTimeoutMs: number;
  /** bytes of UNSTABLE write data buffered before it is flushed (bytes) */
  maxDirtyBytes: number;
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
  limits: Limits;
  log: { level: string };
}
