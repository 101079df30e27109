/** MOUNT v3 client (RFC 1813 appendix I) over its own TCP connection. */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { MountEncoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountEncoder';
import { MountDecoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountDecoder';
import * as MM from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages';
import { RpcConnection, type RpcConnectionOptions, type RpcReply } from './rpc-connection';
import { AUTH_ROOT, type Credential } from './auth';
import { MountProc, MountStat, PROG_MOUNT } from './constants';

export interface ExportEntry {
  dir: string;
  groups: string[];
}
export interface MountEntry {
  hostname: string;
  directory: string;
}
export interface MntResult {
  status: number;
  fh?: Uint8Array;
  authFlavors?: number[];
}

export class MountClient {
  private readonly enc: MountEncoder;
  private readonly dec = new MountDecoder();

  constructor(readonly conn: RpcConnection, readonly cred: Credential = AUTH_ROOT) {
    this.enc = new MountEncoder(conn.writer);
  }

  static async connect(opts: RpcConnectionOptions & { cred?: Credential }): Promise<MountClient> {
    return new MountClient(await RpcConnection.connect(opts), opts.cred);
  }

  as(cred: Credential): MountClient {
    return new MountClient(this.conn, cred);
  }

  close(): void {
    this.conn.close();
  }

  callRaw(proc: number, args: Uint8Array, cred: Credential = this.cred): Promise<RpcReply> {
    return this.conn.callRaw(PROG_MOUNT, 3, proc, args, cred);
  }

  private run<T>(proc: number, req: unknown, decode?: (r: Reader) => T): Promise<T> {
    const enc = this.enc;
    const dec = this.dec;
    return this.conn.call(
      PROG_MOUNT,
      3,
      proc,
      this.cred,
      req === null ? null : () => enc.writeMessage(req as any, proc as any, true),
      decode ?? ((r: Reader) => dec.decodeMessage(r, proc as any, false) as T),
    );
  }

  null(): Promise<true> {
    return this.run(MountProc.NULL, null, () => true as const);
  }

  async mnt(path: string): Promise<MntResult> {
    const r = await this.run<MM.MountMntResponse>(MountProc.MNT, new MM.MountMntRequest(path));
    if (r.status !== MountStat.OK || !r.mountinfo) return { status: r.status };
    const fhr = r.mountinfo.fhandle.data;
    return { status: r.status, fh: Uint8Array.prototype.slice.call(fhr.buf(fhr.size())), authFlavors: r.mountinfo.authFlavors };
  }

  /** MNT that throws unless MNT3_OK; returns the root handle. */
  async mntOrThrow(path: string): Promise<Uint8Array> {
    const r = await this.mnt(path);
    if (r.status !== MountStat.OK) throw new Error(`MNT ${path}: status ${r.status}`);
    return r.fh!;
  }

  umnt(path: string): Promise<true> {
    return this.run(MountProc.UMNT, new MM.MountUmntRequest(path), () => true as const);
  }

  umntall(): Promise<true> {
    return this.run(MountProc.UMNTALL, null, () => true as const);
  }

  async dump(): Promise<MountEntry[]> {
    const r = await this.run<MM.MountDumpResponse>(MountProc.DUMP, null);
    const out: MountEntry[] = [];
    for (let b = r.mountlist; b; b = b.next) out.push({ hostname: b.hostname, directory: b.directory });
    return out;
  }

  async export(): Promise<ExportEntry[]> {
    const r = await this.run<MM.MountExportResponse>(MountProc.EXPORT, null);
    const out: ExportEntry[] = [];
    for (let e = r.exports; e; e = e.next) {
      const groups: string[] = [];
      for (let g = e.groups; g; g = g.next) groups.push(g.name);
      out.push({ dir: e.dir, groups });
    }
    return out;
  }
}
