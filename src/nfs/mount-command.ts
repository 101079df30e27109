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

/** The Linux mount command; `hard`: a cluster's (retry through failovers, never fail I/O). */
export function mountCommand(host: string, nfsPort: number, mountPort: number, path: string, opts: { hard?: boolean } = {}): string {
  const h = hostForClients(host);
  const target = isIPv6(h) ? `[${h}]:${path}` : `${h}:${path}`;
  return `mount -t nfs -o vers=3,proto=tcp,port=${nfsPort},mountport=${mountPort},nolock${opts.hard ? ',hard' : ''} ${target} /mnt`;
}

export function libnfsUrl(host: string, nfsPort: number, mountPort: number, path: string): string {
  const h = hostForClients(host);
  const hp = isIPv6(h) ? `[${h}]` : h;
  return `nfs://${hp}${path}?version=3&nfsport=${nfsPort}&mountport=${mountPort}`;
}
