/**
 * Typed NFSv3 client (RFC 1813): one method per procedure, results are json-pack's decoded
 * response objects (status + resok/resfail). RPC-level failures (not SUCCESS) reject with RpcError.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import type { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder';
import * as S from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import * as M from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import { RpcConnection, type RpcConnectionOptions, type RpcReply } from './rpc-connection';
import { AUTH_ROOT, type Credential } from './auth';
import { CreateMode, FType, NfsProc, NfsStat, PROG_NFS, StableHow, TimeHow, nfsStatName } from './constants';

export type Fh = Uint8Array;

export interface SattrInit {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint | number;
  /** 'server' = SET_TO_SERVER_TIME, or a client time */
  atime?: 'server' | { seconds: number; nseconds: number };
  mtime?: 'server' | { seconds: number; nseconds: number };
}

const NO_SATTR = sattr({});
export const ZERO_VERF = new Uint8Array(8);

export function sattr(a: SattrInit): S.Nfsv3Sattr {
  const t = (v: SattrInit['atime']) =>
    v === undefined ? [TimeHow.DONT_CHANGE, undefined] as const
      : v === 'server' ? [TimeHow.SERVER, undefined] as const
      : [TimeHow.CLIENT, new S.Nfsv3Time(v.seconds, v.nseconds)] as const;
  const [ah, at] = t(a.atime);
  const [mh, mt] = t(a.mtime);
  return new S.Nfsv3Sattr(
    new S.Nfsv3SetMode(a.mode !== undefined, a.mode),
    new S.Nfsv3SetUid(a.uid !== undefined, a.uid),
    new S.Nfsv3SetGid(a.gid !== undefined, a.gid),
    new S.Nfsv3SetSize(a.size !== undefined, a.size === undefined ? undefined : BigInt(a.size)),
    new S.Nfsv3SetAtime(ah as any, at),
    new S.Nfsv3SetMtime(mh as any, mt),
  );
}

/** Thrown by the `*OrThrow` helpers when an NFS status is not NFS3_OK. */
export class NfsStatusError extends Error {
  constructor(readonly status: number, readonly op: string) {
    super(`${op}: NFS3ERR_${nfsStatName(status)} (${status})`);
  }
}

export function expectOk<T extends { status: number }>(res: T, op = 'nfs'): T {
  if (res.status !== NfsStat.OK) throw new NfsStatusError(res.status, op);
  return res;
}

export interface DirEntry {
  name: string;
  fileid: bigint;
  cookie: bigint;
  fh?: Fh;
  attrs?: S.Nfsv3Fattr;
}

export class Nfs3Client {
  private readonly enc: Nfsv3Encoder;
  private readonly dec = new Nfsv3Decoder();
  readonly vers = 3;

  constructor(readonly conn: RpcConnection, readonly cred: Credential = AUTH_ROOT) {
    this.enc = new Nfsv3Encoder(conn.writer);
  }

  static async connect(opts: RpcConnectionOptions & { cred?: Credential }): Promise<Nfs3Client> {
    return new Nfs3Client(await RpcConnection.connect(opts), opts.cred);
  }

  /** Same connection, other credential. */
  as(cred: Credential): Nfs3Client {
    return new Nfs3Client(this.conn, cred);
  }

  close(): void {
    this.conn.close();
  }

  callRaw(proc: number, args: Uint8Array, cred: Credential = this.cred): Promise<RpcReply> {
    return this.conn.callRaw(PROG_NFS, 3, proc, args, cred);
  }

  private run<T>(proc: number, req: unknown): Promise<T> {
    const enc = this.enc;
    const dec = this.dec;
    return this.conn.call(
      PROG_NFS,
      3,
      proc,
      this.cred,
      req === null ? null : (_w: Writer) => enc.writeMessage(req as any, proc as any, true),
      (r: Reader) => dec.decodeMessage(r, proc as any, false) as T,
    );
  }

  null(): Promise<true> {
    return this.conn.call(PROG_NFS, 3, NfsProc.NULL, this.cred, null, () => true as const);
  }
  getattr(fh: Fh): Promise<M.Nfsv3GetattrResponse> {
    return this.run(NfsProc.GETATTR, new M.Nfsv3GetattrRequest(new S.Nfsv3Fh(fh)));
  }
  setattr(fh: Fh, attrs: SattrInit, guardCtime?: { seconds: number; nseconds: number }): Promise<M.Nfsv3SetattrResponse> {
    const guard = guardCtime
      ? new S.Nfsv3SattrGuard(true, new S.Nfsv3Time(guardCtime.seconds, guardCtime.nseconds))
      : new S.Nfsv3SattrGuard(false);
    return this.run(NfsProc.SETATTR, new M.Nfsv3SetattrRequest(new S.Nfsv3Fh(fh), sattr(attrs), guard));
  }
  lookup(dir: Fh, name: string): Promise<M.Nfsv3LookupResponse> {
    return this.run(NfsProc.LOOKUP, new M.Nfsv3LookupRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name)));
  }
  access(fh: Fh, access: number): Promise<M.Nfsv3AccessResponse> {
    return this.run(NfsProc.ACCESS, new M.Nfsv3AccessRequest(new S.Nfsv3Fh(fh), access));
  }
  readlink(fh: Fh): Promise<M.Nfsv3ReadlinkResponse> {
    return this.run(NfsProc.READLINK, new M.Nfsv3ReadlinkRequest(new S.Nfsv3Fh(fh)));
  }
  read(fh: Fh, offset: bigint | number, count: number): Promise<M.Nfsv3ReadResponse> {
    return this.run(NfsProc.READ, new M.Nfsv3ReadRequest(new S.Nfsv3Fh(fh), BigInt(offset), count));
  }
  write(fh: Fh, offset: bigint | number, data: Uint8Array, stable: number = StableHow.FILE_SYNC, count = data.length): Promise<M.Nfsv3WriteResponse> {
    return this.run(NfsProc.WRITE, new M.Nfsv3WriteRequest(new S.Nfsv3Fh(fh), BigInt(offset), count, stable, data));
  }
  create(dir: Fh, name: string, mode: number = CreateMode.UNCHECKED, attrs: SattrInit = { mode: 0o644 }, verf?: Uint8Array): Promise<M.Nfsv3CreateResponse> {
    const how = mode === CreateMode.EXCLUSIVE
      ? new S.Nfsv3CreateHow(mode as any, undefined, verf ?? ZERO_VERF)
      : new S.Nfsv3CreateHow(mode as any, sattr(attrs));
    return this.run(NfsProc.CREATE, new M.Nfsv3CreateRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name), how));
  }
  mkdir(dir: Fh, name: string, attrs: SattrInit = { mode: 0o755 }): Promise<M.Nfsv3MkdirResponse> {
    return this.run(NfsProc.MKDIR, new M.Nfsv3MkdirRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name), sattr(attrs)));
  }
  symlink(dir: Fh, name: string, target: string, attrs: SattrInit = {}): Promise<M.Nfsv3SymlinkResponse> {
    return this.run(NfsProc.SYMLINK, new M.Nfsv3SymlinkRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name), sattr(attrs), target));
  }
  mknod(dir: Fh, name: string, type: number, attrs: SattrInit = { mode: 0o644 }, spec: { major: number; minor: number } = { major: 0, minor: 0 }): Promise<M.Nfsv3MknodResponse> {
    const sa = sattr(attrs);
    let what: S.Nfsv3MknodData;
    const dev = new S.Nfsv3DeviceData(sa, new S.Nfsv3SpecData(spec.major, spec.minor));
    if (type === FType.CHR) what = new S.Nfsv3MknodData(type as any, dev);
    else if (type === FType.BLK) what = new S.Nfsv3MknodData(type as any, undefined, dev);
    else if (type === FType.SOCK) what = new S.Nfsv3MknodData(type as any, undefined, undefined, sa);
    else if (type === FType.FIFO) what = new S.Nfsv3MknodData(type as any, undefined, undefined, undefined, sa);
    else what = new S.Nfsv3MknodData(type as any);
    return this.run(NfsProc.MKNOD, new M.Nfsv3MknodRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name), what));
  }
  remove(dir: Fh, name: string): Promise<M.Nfsv3RemoveResponse> {
    return this.run(NfsProc.REMOVE, new M.Nfsv3RemoveRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name)));
  }
  rmdir(dir: Fh, name: string): Promise<M.Nfsv3RmdirResponse> {
    return this.run(NfsProc.RMDIR, new M.Nfsv3RmdirRequest(new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name)));
  }
  rename(fromDir: Fh, fromName: string, toDir: Fh, toName: string): Promise<M.Nfsv3RenameResponse> {
    return this.run(NfsProc.RENAME, new M.Nfsv3RenameRequest(
      new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(fromDir), fromName),
      new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(toDir), toName),
    ));
  }
  link(file: Fh, dir: Fh, name: string): Promise<M.Nfsv3LinkResponse> {
    return this.run(NfsProc.LINK, new M.Nfsv3LinkRequest(new S.Nfsv3Fh(file), new S.Nfsv3DirOpArgs(new S.Nfsv3Fh(dir), name)));
  }
  readdir(dir: Fh, cookie: bigint = 0n, cookieverf: Uint8Array = ZERO_VERF, count = 8192): Promise<M.Nfsv3ReaddirResponse> {
    return this.run(NfsProc.READDIR, new M.Nfsv3ReaddirRequest(new S.Nfsv3Fh(dir), cookie, cookieverf, count));
  }
  readdirplus(dir: Fh, cookie: bigint = 0n, cookieverf: Uint8Array = ZERO_VERF, dircount = 8192, maxcount = 32768): Promise<M.Nfsv3ReaddirplusResponse> {
    return this.run(NfsProc.READDIRPLUS, new M.Nfsv3ReaddirplusRequest(new S.Nfsv3Fh(dir), cookie, cookieverf, dircount, maxcount));
  }
  fsstat(fh: Fh): Promise<M.Nfsv3FsstatResponse> {
    return this.run(NfsProc.FSSTAT, new M.Nfsv3FsstatRequest(new S.Nfsv3Fh(fh)));
  }
  fsinfo(fh: Fh): Promise<M.Nfsv3FsinfoResponse> {
    return this.run(NfsProc.FSINFO, new M.Nfsv3FsinfoRequest(new S.Nfsv3Fh(fh)));
  }
  pathconf(fh: Fh): Promise<M.Nfsv3PathconfResponse> {
    return this.run(NfsProc.PATHCONF, new M.Nfsv3PathconfRequest(new S.Nfsv3Fh(fh)));
  }
  commit(fh: Fh, offset: bigint | number = 0n, count = 0): Promise<M.Nfsv3CommitResponse> {
    return this.run(NfsProc.COMMIT, new M.Nfsv3CommitRequest(new S.Nfsv3Fh(fh), BigInt(offset), count));
  }

  // ---- conveniences built on the procedures ----

  /** LOOKUP each component of a relative path ("a/b/c"), throwing NfsStatusError on failure. */
  async walk(root: Fh, path: string): Promise<Fh> {
    let fh = root;
    for (const part of path.split('/').filter(Boolean)) {
      const r = expectOk(await this.lookup(fh, part), `LOOKUP ${part}`);
      fh = r.resok!.object.data;
    }
    return fh;
  }

  /** List a whole directory with READDIR (or READDIRPLUS), following cookies until eof. */
  async listAll(dir: Fh, opts: { plus?: boolean; count?: number; maxPages?: number } = {}): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    let cookie = 0n;
    let verf: Uint8Array = ZERO_VERF;
    const maxPages = opts.maxPages ?? 1_000_000;
    for (let page = 0; page < maxPages; page++) {
      if (opts.plus) {
        const r = expectOk(await this.readdirplus(dir, cookie, verf, opts.count ?? 8192, (opts.count ?? 8192) * 4), 'READDIRPLUS');
        verf = Uint8Array.prototype.slice.call(r.resok!.cookieverf);
        let e = r.resok!.reply.entries;
        while (e) {
          out.push({ name: e.name, fileid: e.fileid, cookie: e.cookie, fh: e.nameHandle.handle?.data, attrs: e.nameAttributes.attributes });
          cookie = e.cookie;
          e = e.nextentry;
        }
        if (r.resok!.reply.eof) return out;
      } else {
        const r = expectOk(await this.readdir(dir, cookie, verf, opts.count ?? 8192), 'READDIR');
        verf = Uint8Array.prototype.slice.call(r.resok!.cookieverf);
        let e = r.resok!.reply.entries;
        while (e) {
          out.push({ name: e.name, fileid: e.fileid, cookie: e.cookie });
          cookie = e.cookie;
          e = e.nextentry;
        }
        if (r.resok!.reply.eof) return out;
      }
    }
    throw new Error(`directory listing did not reach eof in ${maxPages} pages`);
  }

  /** Read a whole file with pipelined READs of `chunk` bytes. */
  async readAll(fh: Fh, size: number, chunk = 65536, depth = 8): Promise<Buffer> {
    const out = Buffer.alloc(size);
    let next = 0;
    const worker = async () => {
      while (next < size) {
        const off = next;
        next += chunk;
        const r = expectOk(await this.read(fh, off, Math.min(chunk, size - off)), 'READ');
        out.set(r.resok!.data, off);
        if (r.resok!.data.length !== Math.min(chunk, size - off)) throw new Error(`short read at ${off}: ${r.resok!.data.length}`);
      }
    };
    await Promise.all(Array.from({ length: depth }, worker));
    return out;
  }

  /** Write a whole buffer with pipelined WRITEs; returns the write verifiers seen. */
  async writeAll(fh: Fh, data: Uint8Array, stable: number = StableHow.FILE_SYNC, chunk = 65536, depth = 8): Promise<Uint8Array[]> {
    const verfs: Uint8Array[] = [];
    let next = 0;
    const worker = async () => {
      while (next < data.length) {
        const off = next;
        next += chunk;
        const piece = data.subarray(off, Math.min(off + chunk, data.length));
        const r = expectOk(await this.write(fh, off, piece, stable), 'WRITE');
        if (r.resok!.count !== piece.length) throw new Error(`short write at ${off}: ${r.resok!.count}`);
        verfs.push(r.resok!.verf);
      }
    };
    await Promise.all(Array.from({ length: depth }, worker));
    return verfs;
  }
}

export { NO_SATTR };
