/**
 * Drives the NFSv3 RpcProgram directly: requests are encoded with json-pack's Nfsv3Encoder, handed to
 * program.handle() with a fake call context, and replies decoded with its Nfsv3Decoder. The program
 * runs on a real LevelDB block store in a temp dir and the real export table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages';
import * as s from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import { openStore } from '../../../src/store';
import type { BlockStore, StoreOptions, Time } from '../../../src/store/types';
import type { ExportConfig } from '../../../src/config';
import { ExportTable } from '../../../src/nfs/exports';
import { AuthFlavor, type ProgramResult, type RpcCallContext, type RpcProgram } from '../../../src/nfs/rpc-program';
import { createNfs3Program } from '../../../src/nfs/nfs3';
import { rootHandle } from '../../../src/nfs/file-handle';
import { WriteVerifier } from '../../../src/nfs/write-verifier';
import { sattr, type SattrInit } from '../../../src/nfs/client/nfs3-client';

export { sattr };

export const P = {
  NULL: 0, GETATTR: 1, SETATTR: 2, LOOKUP: 3, ACCESS: 4, READLINK: 5, READ: 6, WRITE: 7, CREATE: 8,
  MKDIR: 9, SYMLINK: 10, MKNOD: 11, REMOVE: 12, RMDIR: 13, RENAME: 14, LINK: 15, READDIR: 16,
  READDIRPLUS: 17, FSSTAT: 18, FSINFO: 19, PATHCONF: 20, COMMIT: 21,
} as const;

export const S = {
  OK: 0, PERM: 1, NOENT: 2, IO: 5, ACCES: 13, EXIST: 17, XDEV: 18, NOTDIR: 20, ISDIR: 21, INVAL: 22,
  FBIG: 27, NOSPC: 28, ROFS: 30, MLINK: 31, NAMETOOLONG: 63, NOTEMPTY: 66, STALE: 70,
  BADHANDLE: 10001, NOT_SYNC: 10002, BAD_COOKIE: 10003, TOOSMALL: 10005, BADTYPE: 10007,
} as const;

export interface Who {
  uid: number;
  gid: number;
  gids?: number[];
  flavor?: AuthFlavor;
  address?: string;
}
export const ROOT: Who = { uid: 0, gid: 0 };
export const ALICE: Who = { uid: 1000, gid: 1000, gids: [1000, 50] };
export const BOB: Who = { uid: 1001, gid: 1001 };

export function exportConfig(over: Partial<ExportConfig> = {}): ExportConfig {
  return {
    path: '/export', id: 1, clients: ['127.0.0.0/8'], readOnly: false, rootSquash: false, allSquash: false,
    anonUid: 65534, anonGid: 65534, allowAuthNone: false, ...over,
  };
}

const T0 = 1_700_000_000;

export class Nfs3Harness {
  program!: RpcProgram;
  store!: BlockStore;
  readonly verifier = new WriteVerifier();
  readonly statuses: [string, number][] = [];
  readonly bytes = { read: 0, write: 0 };
  clock = T0;
  xid = 1;
  who: Who = ROOT;
  readonly dec = new Nfsv3Decoder();

  private constructor(
    readonly dir: string,
    readonly exports: ExportConfig[],
    private storeOpts: StoreOptions,
  ) {}

  static async open(opts: { exports?: ExportConfig[]; store?: StoreOptions } = {}): Promise<Nfs3Harness> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hanfs-nfs3-'));
    const h = new Nfs3Harness(dir, opts.exports ?? [exportConfig()], opts.store ?? {});
    await h.start();
    return h;
  }

  private async start(): Promise<void> {
    this.store = await openStore(this.dir, this.storeOpts);
    this.program = createNfs3Program({
      store: this.store,
      exports: new ExportTable(this.exports),
      verifier: this.verifier.bytes,
      storeLimits: this.storeOpts,
      onStatus: (p, st) => this.statuses.push([p, st]),
      onBytes: (d, n) => (this.bytes[d] += n),
      now: (): Time => ({ sec: ++this.clock, nsec: 0 }),
    });
  }

  async reopen(): Promise<void> {
    await this.store.close();
    await this.start();
  }

  async close(): Promise<void> {
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  root(exportId = 1): s.Nfsv3Fh {
    return new s.Nfsv3Fh(rootHandle(exportId));
  }

  ctx(proc: number, who: Who = this.who): RpcCallContext {
    const flavor = who.flavor ?? AuthFlavor.SYS;
    return {
      xid: this.xid++, prog: 100003, vers: 3, proc, flavor,
      sys: flavor === AuthFlavor.SYS ? { stamp: 1, machine: 'test', uid: who.uid, gid: who.gid, gids: who.gids ?? [] } : undefined,
      remoteAddress: who.address ?? '127.0.0.1', remotePort: 700, transport: 'tcp',
    };
  }

  /** run a raw argument buffer */
  async raw(proc: number, args: Uint8Array, who?: Who): Promise<ProgramResult> {
    return this.program.handle(this.ctx(proc, who), new Reader(args));
  }

  encodeArgs(proc: number, req: unknown): Uint8Array {
    // a fresh encoder with room for any request: json-pack's XdrEncoder.writeStr keeps the position
    // of the length word across a buffer reallocation and writes it to the wrong place when the
    // writer grows in the middle of a string (see docs/nfs3.md)
    const enc = new Nfsv3Encoder(new Writer(4 * 1024 * 1024));
    return enc.encodeMessage(req as any, proc, true);
  }

  /** encode, run, decode; fails the test unless the program answered SUCCESS */
  async call<R = any>(proc: number, req: unknown, who?: Who): Promise<R & { status: number; bodyBytes: number }> {
    const res = await this.raw(proc, this.encodeArgs(proc, req), who);
    if (res.kind !== 'success') throw new Error(`proc ${proc}: program answered ${JSON.stringify(res)}`);
    // the results as the RPC server sends them: body, then any tail parts (READ data)
    const body = res.tail ? Buffer.concat([res.body, ...res.tail]) : res.body;
    const r = new Reader(body);
    const out = this.dec.decodeMessage(r, proc, false) as any;
    if (!out) throw new Error(`proc ${proc}: reply does not decode`);
    if (r.x !== body.length) throw new Error(`proc ${proc}: ${body.length - r.x} bytes left after reply`);
    out.bodyBytes = body.length;
    return out;
  }

  // ---- typed helpers

  getattr(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3GetattrResponse>(P.GETATTR, new m.Nfsv3GetattrRequest(fh), who);
  }
  setattr(fh: s.Nfsv3Fh, attrs: SattrInit, guard?: s.Nfsv3Time, who?: Who) {
    return this.call<m.Nfsv3SetattrResponse>(P.SETATTR, new m.Nfsv3SetattrRequest(fh, sattr(attrs), new s.Nfsv3SattrGuard(!!guard, guard)), who);
  }
  lookup(dir: s.Nfsv3Fh, name: string, who?: Who) {
    return this.call<m.Nfsv3LookupResponse>(P.LOOKUP, new m.Nfsv3LookupRequest(new s.Nfsv3DirOpArgs(dir, name)), who);
  }
  access(fh: s.Nfsv3Fh, bits: number, who?: Who) {
    return this.call<m.Nfsv3AccessResponse>(P.ACCESS, new m.Nfsv3AccessRequest(fh, bits), who);
  }
  readlink(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3ReadlinkResponse>(P.READLINK, new m.Nfsv3ReadlinkRequest(fh), who);
  }
  read(fh: s.Nfsv3Fh, offset: number, count: number, who?: Who) {
    return this.call<m.Nfsv3ReadResponse>(P.READ, new m.Nfsv3ReadRequest(fh, BigInt(offset), count), who);
  }
  write(fh: s.Nfsv3Fh, offset: number | bigint, data: Uint8Array, stable = 2, who?: Who) {
    return this.call<m.Nfsv3WriteResponse>(P.WRITE, new m.Nfsv3WriteRequest(fh, BigInt(offset), data.length, stable, data), who);
  }
  create(dir: s.Nfsv3Fh, name: string, how: 'unchecked' | 'guarded' | 'exclusive' = 'guarded', attrs: SattrInit | Uint8Array = { mode: 0o644 }, who?: Who) {
    const h =
      how === 'exclusive'
        ? new s.Nfsv3CreateHow(2, undefined, attrs as Uint8Array)
        : new s.Nfsv3CreateHow(how === 'unchecked' ? 0 : 1, sattr(attrs as SattrInit));
    return this.call<m.Nfsv3CreateResponse>(P.CREATE, new m.Nfsv3CreateRequest(new s.Nfsv3DirOpArgs(dir, name), h), who);
  }
  mkdir(dir: s.Nfsv3Fh, name: string, attrs: SattrInit = { mode: 0o755 }, who?: Who) {
    return this.call<m.Nfsv3MkdirResponse>(P.MKDIR, new m.Nfsv3MkdirRequest(new s.Nfsv3DirOpArgs(dir, name), sattr(attrs)), who);
  }
  symlink(dir: s.Nfsv3Fh, name: string, target: string, who?: Who) {
    return this.call<m.Nfsv3SymlinkResponse>(P.SYMLINK, new m.Nfsv3SymlinkRequest(new s.Nfsv3DirOpArgs(dir, name), sattr({}), target), who);
  }
  mknod(dir: s.Nfsv3Fh, name: string, what: s.Nfsv3MknodData, who?: Who) {
    return this.call<m.Nfsv3MknodResponse>(P.MKNOD, new m.Nfsv3MknodRequest(new s.Nfsv3DirOpArgs(dir, name), what), who);
  }
  remove(dir: s.Nfsv3Fh, name: string, who?: Who) {
    return this.call<m.Nfsv3RemoveResponse>(P.REMOVE, new m.Nfsv3RemoveRequest(new s.Nfsv3DirOpArgs(dir, name)), who);
  }
  rmdir(dir: s.Nfsv3Fh, name: string, who?: Who) {
    return this.call<m.Nfsv3RmdirResponse>(P.RMDIR, new m.Nfsv3RmdirRequest(new s.Nfsv3DirOpArgs(dir, name)), who);
  }
  rename(fromDir: s.Nfsv3Fh, from: string, toDir: s.Nfsv3Fh, to: string, who?: Who) {
    return this.call<m.Nfsv3RenameResponse>(P.RENAME, new m.Nfsv3RenameRequest(new s.Nfsv3DirOpArgs(fromDir, from), new s.Nfsv3DirOpArgs(toDir, to)), who);
  }
  link(file: s.Nfsv3Fh, dir: s.Nfsv3Fh, name: string, who?: Who) {
    return this.call<m.Nfsv3LinkResponse>(P.LINK, new m.Nfsv3LinkRequest(file, new s.Nfsv3DirOpArgs(dir, name)), who);
  }
  readdir(dir: s.Nfsv3Fh, cookie: bigint, verf: Uint8Array, count: number, who?: Who) {
    return this.call<m.Nfsv3ReaddirResponse>(P.READDIR, new m.Nfsv3ReaddirRequest(dir, cookie, verf, count), who);
  }
  readdirplus(dir: s.Nfsv3Fh, cookie: bigint, verf: Uint8Array, dircount: number, maxcount: number, who?: Who) {
    return this.call<m.Nfsv3ReaddirplusResponse>(P.READDIRPLUS, new m.Nfsv3ReaddirplusRequest(dir, cookie, verf, dircount, maxcount), who);
  }
  fsstat(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3FsstatResponse>(P.FSSTAT, new m.Nfsv3FsstatRequest(fh), who);
  }
  fsinfo(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3FsinfoResponse>(P.FSINFO, new m.Nfsv3FsinfoRequest(fh), who);
  }
  pathconf(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3PathconfResponse>(P.PATHCONF, new m.Nfsv3PathconfRequest(fh), who);
  }
  commit(fh: s.Nfsv3Fh, who?: Who) {
    return this.call<m.Nfsv3CommitResponse>(P.COMMIT, new m.Nfsv3CommitRequest(fh, 0n, 0), who);
  }

  /** create a file (GUARDED) and return its handle; fails the test on error */
  async mkfile(dir: s.Nfsv3Fh, name: string, attrs: SattrInit = { mode: 0o644 }, who?: Who): Promise<s.Nfsv3Fh> {
    const r = await this.create(dir, name, 'guarded', attrs, who);
    if (r.status !== 0) throw new Error(`create ${name}: status ${r.status}`);
    return r.resok!.obj.handle!;
  }
  async mkdirFh(dir: s.Nfsv3Fh, name: string, attrs: SattrInit = { mode: 0o755 }, who?: Who): Promise<s.Nfsv3Fh> {
    const r = await this.mkdir(dir, name, attrs, who);
    if (r.status !== 0) throw new Error(`mkdir ${name}: status ${r.status}`);
    return r.resok!.obj.handle!;
  }

  /** all names of a directory through READDIR paging */
  async listAll(dir: s.Nfsv3Fh, count = 4096): Promise<string[]> {
    const names: string[] = [];
    let cookie = 0n;
    let verf: Uint8Array = new Uint8Array(8);
    for (let i = 0; i < 10_000; i++) {
      const r = await this.readdir(dir, cookie, verf, count);
      if (r.status !== 0) throw new Error(`readdir: status ${r.status}`);
      if (r.bodyBytes > count) throw new Error(`readdir reply ${r.bodyBytes} > count ${count}`);
      verf = r.resok!.cookieverf;
      let e = r.resok!.reply.entries;
      while (e) {
        names.push(e.name);
        cookie = e.cookie;
        e = e.nextentry;
      }
      if (r.resok!.reply.eof) return names;
    }
    throw new Error('readdir did not reach eof');
  }
}

export function entriesOf(list: { entries?: any }): any[] {
  const out: any[] = [];
  for (let e = list.entries; e; e = e.nextentry) out.push(e);
  return out;
}
