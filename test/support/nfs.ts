/** Test-side helpers around the TS NFS client. */
import * as assert from 'node:assert/strict';
import {
  MountClient,
  Nfs3Client,
  authSys,
  expectOk,
  nfsStatName,
  type Credential,
  type Fh,
} from '../../src/nfs/client';

export interface Session {
  mount: MountClient;
  nfs: Nfs3Client;
  root: Fh;
  close(): void;
}

/** MNT and an NFS connection on a daemon's or a cluster's service ports */
export async function openSession(d: { nfsPort: number; mountPort: number }, exportPath = '/export', cred?: Credential, timeoutMs = 30_000): Promise<Session> {
  const mount = await MountClient.connect({ port: d.mountPort, timeoutMs });
  const root = await mount.mntOrThrow(exportPath);
  const nfs = await Nfs3Client.connect({ port: d.nfsPort, timeoutMs, cred });
  return {
    mount,
    nfs,
    root,
    close() {
      mount.close();
      nfs.close();
    },
  };
}

export function assertStatus(res: { status: number }, expected: number, what = ''): void {
  assert.equal(
    res.status,
    expected,
    `${what}: expected NFS3ERR_${nfsStatName(expected)} (${expected}), got ${nfsStatName(res.status)} (${res.status})`,
  );
}

export async function createFile(nfs: Nfs3Client, dir: Fh, name: string, data?: Uint8Array, mode = 0o644): Promise<Fh> {
  const r = expectOk(await nfs.create(dir, name, 0, { mode }), `CREATE ${name}`);
  const fh = r.resok!.obj.handle?.data ?? expectOk(await nfs.lookup(dir, name), `LOOKUP ${name}`).resok!.object.data;
  if (data && data.length) await nfs.writeAll(fh, data);
  return fh;
}

export async function mkdir(nfs: Nfs3Client, dir: Fh, name: string, mode = 0o755): Promise<Fh> {
  const r = expectOk(await nfs.mkdir(dir, name, { mode }), `MKDIR ${name}`);
  return r.resok!.obj.handle?.data ?? expectOk(await nfs.lookup(dir, name), `LOOKUP ${name}`).resok!.object.data;
}

export const USER = authSys({ uid: 1000, gid: 1000, gids: [1000] });
export const OTHER_USER = authSys({ uid: 1001, gid: 1001, gids: [1001] });

/** Run `fn` over items with at most `depth` in flight. */
export async function pipelined<T>(items: number, depth: number, fn: (i: number) => Promise<T>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(depth, items) }, worker));
}

/** Parse Prometheus text into [name{labels}, value] samples. */
export function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const lm of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
