/**
 * The few NFSv3 + MOUNT v3 calls the benchmark needs, as one small interface (BenchNfs) so the
 * benchmark logic does not depend on the shape of the project's client API. The implementation
 * below runs on the project's pipelined RPC connection (src/nfs/client/rpc-connection.ts): many
 * calls in flight on one TCP connection, replies matched by xid. Arguments are encoded by hand
 * into the connection's Writer (RFC 1813 §3.3), results decoded from its Reader; only the fields
 * the benchmark looks at are kept.
 */
import type { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { RpcConnection } from '../../src/nfs/client/rpc-connection';
import { authSys, type Credential } from '../../src/nfs/client/auth';
import { PROG_NFS, PROG_MOUNT, NfsProc, MountProc, nfsStatName } from '../../src/nfs/client/constants';
import { Nfs3Client, expectOk } from '../../src/nfs/client/nfs3-client';
import { MountClient } from '../../src/nfs/client/mount-client';

export type Fh = Uint8Array;

export interface WriteResult {
  count: number;
  committed: number;
  verf: bigint;
}
export interface ReadResult {
  data: Uint8Array;
  eof: boolean;
}
export interface DirEntryPlus {
  fileid: bigint;
  name: string;
  cookie: bigint;
  size?: bigint;
  fh?: Fh;
}
export interface ReaddirplusResult {
  entries: DirEntryPlus[];
  eof: boolean;
  cookieverf: Uint8Array;
}
export interface FsInfo {
  rtmax: number;
  wtmax: number;
  dtpref: number;
}

export interface BenchNfs {
  readonly name: string;
  mount(path: string): Promise<Fh>;
  null(): Promise<void>;
  getattr(fh: Fh): Promise<{ size: bigint; fileid: bigint }>;
  fsinfo(fh: Fh): Promise<FsInfo>;
  lookup(dir: Fh, name: string): Promise<Fh | null>;
  create(dir: Fh, name: string, mode?: number): Promise<Fh>;
  mkdir(dir: Fh, name: string, mode?: number): Promise<Fh>;
  write(fh: Fh, offset: number, data: Uint8Array, stable: 0 | 1 | 2): Promise<WriteResult>;
  read(fh: Fh, offset: number, count: number): Promise<ReadResult>;
  commit(fh: Fh, offset: number, count: number): Promise<bigint>;
  readdirplus(dir: Fh, cookie: bigint, cookieverf: Uint8Array, dircount: number, maxcount: number): Promise<ReaddirplusResult>;
  close(): void;
}

export class NfsError extends Error {
  constructor(readonly proc: string, readonly stat: number) {
    super(`NFS ${proc} failed: ${nfsStatName(stat)} (${stat})`);
  }
}

// ---- XDR helpers -------------------------------------------------------------------------------

function wOpaque(w: Writer, b: Uint8Array): void {
  const len = b.length;
  const pad = (4 - (len & 3)) & 3;
  w.ensureCapacity(4 + len + pad);
  w.u32(len);
  if (len) w.buf(b, len);
  for (let i = 0; i < pad; i++) w.u8(0);
}
function wString(w: Writer, s: string): void {
  wOpaque(w, Buffer.from(s, 'utf8'));
}
function wU64(w: Writer, n: number | bigint): void {
  w.ensureCapacity(8);
  w.u64(typeof n === 'bigint' ? n : BigInt(n));
}
function wU32(w: Writer, n: number): void {
  w.ensureCapacity(4);
  w.u32(n >>> 0);
}
/** sattr3 with only the mode set */
function wSattrMode(w: Writer, mode: number): void {
  wU32(w, 1);
  wU32(w, mode);
  wU32(w, 0); // uid
  wU32(w, 0); // gid
  wU32(w, 0); // size
  wU32(w, 0); // atime DONT_CHANGE
  wU32(w, 0); // mtime DONT_CHANGE
}

function rOpaque(r: Reader): Uint8Array {
  const len = r.u32();
  const b = r.buf(len);
  r.skip((4 - (len & 3)) & 3);
  return b;
}
function rString(r: Reader): string {
  return Buffer.from(rOpaque(r)).toString('utf8');
}
const FATTR3_BYTES = 84;
/** post_op_attr; returns fattr3 size and fileid when present */
function rPostOpAttr(r: Reader): { size: bigint; fileid: bigint } | undefined {
  if (r.u32() === 0) return undefined;
  const start = r.x;
  r.skip(20);
  const size = r.u64();
  r.skip(8 + 8 + 8); // used, rdev, fsid
  const fileid = r.u64();
  r.x = start + FATTR3_BYTES;
  return { size, fileid };
}
function rWcc(r: Reader): void {
  if (r.u32() !== 0) r.skip(24);
  rPostOpAttr(r);
}
function rPostOpFh(r: Reader): Fh | undefined {
  if (r.u32() === 0) return undefined;
  return Uint8Array.prototype.slice.call(rOpaque(r));
}

// ---- implementation on the project's RpcConnection ----------------------------------------------

export interface RpcTargetOptions {
  name: string;
  host?: string;
  nfsPort: number;
  mountPort: number;
  uid?: number;
  gid?: number;
}

export class RpcBenchNfs implements BenchNfs {
  readonly name: string;
  private readonly cred: Credential;
  private constructor(private readonly nfs: RpcConnection, private readonly mnt: RpcConnection, opts: RpcTargetOptions) {
    this.name = opts.name;
    this.cred = authSys({ uid: opts.uid ?? 0, gid: opts.gid ?? 0, machine: 'hanfs-bench' });
  }

  static async connect(opts: RpcTargetOptions): Promise<RpcBenchNfs> {
    const host = opts.host ?? '127.0.0.1';
    const nfs = await RpcConnection.connect({ host, port: opts.nfsPort, timeoutMs: 120_000, maxRecordBytes: 4 * 1024 * 1024 });
    const mnt = await RpcConnection.connect({ host, port: opts.mountPort, timeoutMs: 30_000 });
    return new RpcBenchNfs(nfs, mnt, opts);
  }

  close(): void {
    this.nfs.close();
    this.mnt.close();
  }

  private call<T>(proc: number, args: ((w: Writer) => void) | null, decode: (r: Reader) => T): Promise<T> {
    return this.nfs.call(PROG_NFS, 3, proc, this.cred, args, decode);
  }

  async mount(path: string): Promise<Fh> {
    const res = await this.mnt.call(PROG_MOUNT, 3, MountProc.MNT, this.cred, (w) => wString(w, path), (r) => {
      const stat = r.u32();
      if (stat !== 0) return { stat, fh: new Uint8Array(0) };
      return { stat, fh: Uint8Array.prototype.slice.call(rOpaque(r)) as Uint8Array };
    });
    if (res.stat !== 0) throw new Error(`MOUNT ${path} on ${this.name} failed: mountstat3 ${res.stat}`);
    return res.fh;
  }

  async null(): Promise<void> {
    await this.call(NfsProc.NULL, null, () => true);
  }

  async getattr(fh: Fh): Promise<{ size: bigint; fileid: bigint }> {
    return this.call(NfsProc.GETATTR, (w) => wOpaque(w, fh), (r) => {
      const stat = r.u32();
      if (stat !== 0) throw new NfsError('GETATTR', stat);
      const start = r.x;
      r.skip(20);
      const size = r.u64();
      r.skip(24);
      const fileid = r.u64();
      r.x = start + FATTR3_BYTES;
      return { size, fileid };
    });
  }

  async fsinfo(fh: Fh): Promise<FsInfo> {
    return this.call(NfsProc.FSINFO, (w) => wOpaque(w, fh), (r) => {
      const stat = r.u32();
      rPostOpAttr(r);
      if (stat !== 0) throw new NfsError('FSINFO', stat);
      const rtmax = r.u32();
      r.u32(); // rtpref
      r.u32(); // rtmult
      const wtmax = r.u32();
      r.u32(); // wtpref
      r.u32(); // wtmult
      const dtpref = r.u32();
      return { rtmax, wtmax, dtpref };
    });
  }

  async lookup(dir: Fh, name: string): Promise<Fh | null> {
    return this.call(NfsProc.LOOKUP, (w) => { wOpaque(w, dir); wString(w, name); }, (r) => {
      const stat = r.u32();
      if (stat === 2) return null;
      if (stat !== 0) throw new NfsError('LOOKUP', stat);
      return Uint8Array.prototype.slice.call(rOpaque(r)) as Uint8Array;
    });
  }

  private async createLike(proc: number, procName: string, dir: Fh, name: string, mode: number, isCreate: boolean): Promise<Fh> {
    const fh = await this.call(proc, (w) => {
      wOpaque(w, dir);
      wString(w, name);
      if (isCreate) wU32(w, 0); // createmode3 UNCHECKED
      wSattrMode(w, mode);
    }, (r) => {
      const stat = r.u32();
      if (stat !== 0) throw new NfsError(procName, stat);
      const fh = rPostOpFh(r);
      return fh ?? null;
    });
    if (fh) return fh;
    const looked = await this.lookup(dir, name);
    if (!looked) throw new Error(`${procName} ${name}: no handle returned and LOOKUP found nothing`);
    return looked;
  }

  create(dir: Fh, name: string, mode = 0o644): Promise<Fh> {
    return this.createLike(NfsProc.CREATE, 'CREATE', dir, name, mode, true);
  }

  mkdir(dir: Fh, name: string, mode = 0o755): Promise<Fh> {
    return this.createLike(NfsProc.MKDIR, 'MKDIR', dir, name, mode, false);
  }

  write(fh: Fh, offset: number, data: Uint8Array, stable: 0 | 1 | 2): Promise<WriteResult> {
    return this.call(NfsProc.WRITE, (w) => {
      wOpaque(w, fh);
      wU64(w, offset);
      wU32(w, data.length);
      wU32(w, stable);
      wOpaque(w, data);
    }, (r) => {
      const stat = r.u32();
      rWcc(r);
      if (stat !== 0) throw new NfsError('WRITE', stat);
      const count = r.u32();
      const committed = r.u32();
      const verf = r.u64();
      return { count, committed, verf };
    });
  }

  read(fh: Fh, offset: number, count: number): Promise<ReadResult> {
    return this.call(NfsProc.READ, (w) => {
      wOpaque(w, fh);
      wU64(w, offset);
      wU32(w, count);
    }, (r) => {
      const stat = r.u32();
      rPostOpAttr(r);
      if (stat !== 0) throw new NfsError('READ', stat);
      r.u32(); // count
      const eof = r.u32() !== 0;
      const data = rOpaque(r);
      return { data, eof };
    });
  }

  commit(fh: Fh, offset: number, count: number): Promise<bigint> {
    return this.call(NfsProc.COMMIT, (w) => {
      wOpaque(w, fh);
      wU64(w, offset);
      wU32(w, count);
    }, (r) => {
      const stat = r.u32();
      rWcc(r);
      if (stat !== 0) throw new NfsError('COMMIT', stat);
      return r.u64();
    });
  }

  readdirplus(dir: Fh, cookie: bigint, cookieverf: Uint8Array, dircount: number, maxcount: number): Promise<ReaddirplusResult> {
    return this.call(NfsProc.READDIRPLUS, (w) => {
      wOpaque(w, dir);
      wU64(w, cookie);
      w.ensureCapacity(8);
      w.buf(cookieverf, 8);
      wU32(w, dircount);
      wU32(w, maxcount);
    }, (r) => {
      const stat = r.u32();
      rPostOpAttr(r);
      if (stat !== 0) throw new NfsError('READDIRPLUS', stat);
      const verf = Uint8Array.prototype.slice.call(r.buf(8)) as Uint8Array;
      const entries: DirEntryPlus[] = [];
      while (r.u32() !== 0) {
        const fileid = r.u64();
        const name = rString(r);
        const ck = r.u64();
        const attr = rPostOpAttr(r);
        const fh = rPostOpFh(r);
        entries.push({ fileid, name, cookie: ck, size: attr?.size, fh });
      }
      const eof = r.u32() !== 0;
      return { entries, eof, cookieverf: verf };
    });
  }
}

// ---- implementation on the project's typed client (src/nfs/client: Nfs3Client + MountClient) ----


const verfToBig = (v: Uint8Array): bigint => Buffer.from(v.buffer, v.byteOffset, 8).readBigUInt64BE(0);
const copy = (b: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(b) as Uint8Array;

/** The default: the project's client (json-pack codecs), so the bench measures what users of it get. */
export class ProjectBenchNfs implements BenchNfs {
  readonly name: string;
  private constructor(private readonly nfs: Nfs3Client, private readonly mnt: MountClient, opts: RpcTargetOptions) {
    this.name = opts.name;
  }

  static async connect(opts: RpcTargetOptions): Promise<ProjectBenchNfs> {
    const host = opts.host ?? '127.0.0.1';
    const cred = authSys({ uid: opts.uid ?? 0, gid: opts.gid ?? 0, machine: 'hanfs-bench' });
    const nfs = new Nfs3Client(await RpcConnection.connect({ host, port: opts.nfsPort, timeoutMs: 120_000, maxRecordBytes: 4 * 1024 * 1024 }), cred);
    const mnt = new MountClient(await RpcConnection.connect({ host, port: opts.mountPort, timeoutMs: 30_000 }), cred);
    return new ProjectBenchNfs(nfs, mnt, opts);
  }

  close(): void {
    this.nfs.close();
    this.mnt.close();
  }

  async mount(path: string): Promise<Fh> {
    const r = await this.mnt.mnt(path);
    if (r.status !== 0 || !r.fh) throw new Error(`MOUNT ${path} on ${this.name} failed: mountstat3 ${r.status}`);
    return r.fh;
  }
  async null(): Promise<void> {
    await this.nfs.null();
  }
  async getattr(fh: Fh): Promise<{ size: bigint; fileid: bigint }> {
    const a = expectOk(await this.nfs.getattr(fh), 'GETATTR').resok!.objAttributes;
    return { size: a.size, fileid: a.fileid };
  }
  async fsinfo(fh: Fh): Promise<FsInfo> {
    const r = expectOk(await this.nfs.fsinfo(fh), 'FSINFO').resok!;
    return { rtmax: r.rtmax, wtmax: r.wtmax, dtpref: r.dtpref };
  }
  async lookup(dir: Fh, name: string): Promise<Fh | null> {
    const r = await this.nfs.lookup(dir, name);
    if (r.status === 2) return null;
    return copy(expectOk(r, 'LOOKUP').resok!.object.data);
  }
  async create(dir: Fh, name: string, mode = 0o644): Promise<Fh> {
    const r = expectOk(await this.nfs.create(dir, name, 0, { mode }), 'CREATE').resok!;
    if (r.obj.handle) return copy(r.obj.handle.data);
    const fh = await this.lookup(dir, name);
    if (!fh) throw new Error(`CREATE ${name}: no handle and LOOKUP found nothing`);
    return fh;
  }
  async mkdir(dir: Fh, name: string, mode = 0o755): Promise<Fh> {
    const r = expectOk(await this.nfs.mkdir(dir, name, { mode }), 'MKDIR').resok!;
    if (r.obj.handle) return copy(r.obj.handle.data);
    const fh = await this.lookup(dir, name);
    if (!fh) throw new Error(`MKDIR ${name}: no handle and LOOKUP found nothing`);
    return fh;
  }
  async write(fh: Fh, offset: number, data: Uint8Array, stable: 0 | 1 | 2): Promise<WriteResult> {
    const r = expectOk(await this.nfs.write(fh, offset, data, stable), 'WRITE').resok!;
    return { count: r.count, committed: r.committed, verf: verfToBig(r.verf) };
  }
  async read(fh: Fh, offset: number, count: number): Promise<ReadResult> {
    const r = expectOk(await this.nfs.read(fh, offset, count), 'READ').resok!;
    return { data: r.data, eof: r.eof };
  }
  async commit(fh: Fh, offset: number, count: number): Promise<bigint> {
    return verfToBig(expectOk(await this.nfs.commit(fh, offset, count), 'COMMIT').resok!.verf);
  }
  async readdirplus(dir: Fh, cookie: bigint, cookieverf: Uint8Array, dircount: number, maxcount: number): Promise<ReaddirplusResult> {
    const r = expectOk(await this.nfs.readdirplus(dir, cookie, cookieverf, dircount, maxcount), 'READDIRPLUS').resok!;
    const entries: DirEntryPlus[] = [];
    for (let e = r.reply.entries; e; e = e.nextentry) {
      entries.push({ fileid: e.fileid, name: e.name, cookie: e.cookie, size: e.nameAttributes.attributes?.size, fh: e.nameHandle.handle ? copy(e.nameHandle.handle.data) : undefined });
    }
    return { entries, eof: r.reply.eof, cookieverf: copy(r.cookieverf) };
  }
}

export async function connectBenchNfs(kind: string, opts: RpcTargetOptions): Promise<BenchNfs> {
  if (kind === 'project') return ProjectBenchNfs.connect(opts);
  if (kind === 'raw') return RpcBenchNfs.connect(opts);
  throw new Error(`unknown client ${kind} (project | raw)`);
}
