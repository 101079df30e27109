/**
 * The client commands hanfs prints at start-up: the Linux mount command and the libnfs URL of an
 * export (a wildcard listen address is printed as loopback).
 */
import { isIPv6 } from 'node:net';

function hostForClients(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/** The options a cluster's clients mount with: `hard` retries through a failover and never fails
 * I/O; `timeo=30,retrans=2` sends a request again after 3 s when it was lost without the connection
 * closing (the leader's machine lost power, the address moved), where TCP mounts otherwise wait 60 s. */
export const CLUSTER_MOUNT_OPTIONS = 'hard,timeo=30,retrans=2';

/** The Linux mount command; `cluster`: with CLUSTER_MOUNT_OPTIONS. */
export function mountCommand(host: string, nfsPort: number, mountPort: number, path: string, opts: { cluster?: boolean } = {}): string {
  const h = hostForClients(host);
  const target = isIPv6(h) ? `[${h}]:${path}` : `${h}:${path}`;
  return `mount -t nfs -o vers=3,proto=tcp,port=${nfsPort},mountport=${mountPort},nolock${opts.cluster ? `,${CLUSTER_MOUNT_OPTIONS}` : ''} ${target} /mnt`;
}

export function libnfsUrl(host: string, nfsPort: number, mountPort: number, path: string): string {
  const h = hostForClients(host);
  const hp = isIPv6(h) ? `[${h}]` : h;
  return `nfs://${hp}${path}?version=3&nfsport=${nfsPort}&mountport=${mountPort}`;
}
