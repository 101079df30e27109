/**
 * MOUNT protocol (program 100005), version 3 (RFC 1813 Appendix I) and the parts of versions 1 and 2
 * that clients probe (NULL, DUMP, UMNT, UMNTALL, EXPORT; their MNT would need NFSv2 handles and v2
 * PATHCONF is about NFSv2, so those answer PROC_UNAVAIL). MNT gives the handle of the export's root,
 * or of a directory below it, to clients whose address the export admits. The mount list (DUMP) is
 * informational, in memory, bounded.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import type { ProgramResult, RpcCallContext, RpcProgram } from './rpc-program';
import { XdrOut, xdrString } from './rpc-server';
import { normalizePath, type Export, type ExportTable } from './exports';
import type { Logger } from '../log';

export const MOUNT_PROG = 100005;
export const MNTPATHLEN = 1024;
export const MNTNAMLEN = 255;
export const FHSIZE3 = 64;

export const enum MountStat {
  OK = 0,
  PERM = 1,
  NOENT = 2,
  IO = 5,
  ACCES = 13,
  NOTDIR = 20,
  INVAL = 22,
  NAMETOOLONG = 63,
  NOTSUPP = 10004,
  SERVERFAULT = 10006,
}

const PROCS = ['NULL', 'MNT', 'DUMP', 'UMNT', 'UMNTALL', 'EXPORT'];

export interface MountDeps {
  exports: ExportTable;
  /** the NFSv3 file handle of an export's root directory */
  rootHandle(exportId: number): Uint8Array;
  /**
   * MNT below an export root (as knfsd and Ganesha allow): walk `names` from the export root, each a
   * directory; answer a mountstat3 (NOENT, NOTDIR, ACCES, ...) or the handle. Absent: only export
   * roots can be mounted.
   */
  resolvePath?(exportId: number, names: string[]): Promise<{ status: number; handle?: Uint8Array }>;
  log: Logger;
  /** most entries kept in the mount list (oldest are forgotten first); default 1024 */
  maxMountEntries?: number;
}

export class MountProgram implements RpcProgram {
  readonly prog = MOUNT_PROG;
  readonly versions = [1, 2, 3];
  readonly name = 'mount';
  /** "host\0path" -> entry, in insertion order */
  private readonly mounts = new Map<string, { host: string; path: string; exportId: number }>();
  private readonly maxEntries: number;

  constructor(private readonly deps: MountDeps) {
    this.maxEntries = deps.maxMountEntries ?? 1024;
  }

  procName(_vers: number, proc: number): string {
    return PROCS[proc] ?? 'unknown';
  }

  /** The export a MNT path falls in (its root or below it, longest match), and the names below. */
  private locate(path: string): { exp: Export; names: string[] } | undefined {
    const p = normalizePath(path);
    const exact = this.deps.exports.byPath(p);
    if (exact) return { exp: exact, names: [] };
    let best: Export | undefined;
    for (const e of this.deps.exports.all()) {
      const prefix = e.path === '/' ? '/' : `${e.path}/`;
      if (p.startsWith(prefix) && (!best || e.path.length > best.path.length)) best = e;
    }
    if (!best) return undefined;
    return { exp: best, names: p.slice(best.path.length).split('/').filter((c) => c.length > 0) };
  }

  async handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult> {
    const out = new XdrOut(128);
    const table = this.deps.exports;
    const host = ctx.remoteAddress;
    switch (ctx.proc) {
      case 0:
        return ok(out);
      case 1: {
        // MNT(dirpath) -> mountres3
        if (ctx.vers !== 3) return { kind: 'proc_unavail' };
        const path = xdrString(args, MNTPATHLEN);
        const where = this.locate(path);
        if (!where) {
          this.deps.log.info({ client: host, path }, 'MNT refused: no such export');
          return ok(out.u32(MountStat.NOENT));
        }
        const { exp, names } = where;
        if (!table.clientAllowed(exp, host)) {
          this.deps.log.warn({ client: host, path: exp.path }, 'MNT refused: client not in the export\'s networks');
          return ok(out.u32(MountStat.ACCES));
        }
        let fh: Uint8Array;
        try {
          if (names.length === 0) {
            fh = this.deps.rootHandle(exp.id);
          } else {
            if (names.some((n) => n === '.' || n === '..')) return ok(out.u32(MountStat.INVAL));
            if (names.some((n) => Buffer.byteLength(n) > MNTNAMLEN)) return ok(out.u32(MountStat.NAMETOOLONG));
            if (!this.deps.resolvePath) return ok(out.u32(MountStat.NOENT));
            const r = await this.deps.resolvePath(exp.id, names);
            if (r.status !== MountStat.OK || !r.handle) {
              this.deps.log.info({ client: host, path, status: r.status }, 'MNT refused: path below the export');
              return ok(out.u32(r.status === MountStat.OK ? MountStat.SERVERFAULT : r.status));
            }
            fh = r.handle;
          }
        } catch (err) {
          this.deps.log.error({ err, export: exp.id, path }, 'MNT: no handle');
          return ok(out.u32(MountStat.SERVERFAULT));
        }
        if (fh.length > FHSIZE3) {
          this.deps.log.error({ export: exp.id, length: fh.length }, 'MNT: handle longer than FHSIZE3');
          return ok(out.u32(MountStat.SERVERFAULT));
        }
        out.u32(MountStat.OK).opaque(fh);
        const flavors = exp.config.allowAuthNone ? [1, 0] : [1];
        out.u32(flavors.length);
        for (const f of flavors) out.u32(f);
        const mounted = names.length === 0 ? exp.path : `${exp.path === '/' ? '' : exp.path}/${names.join('/')}`;
        this.remember(host, mounted, exp.id);
        this.deps.log.info({ client: host, path: mounted }, 'mounted');
        return ok(out);
      }
      case 2: {
        // DUMP -> mountlist: entries for the exports this caller may see
        for (const m of this.mounts.values()) {
          const exp = table.byId(m.exportId);
          if (!exp || !table.clientAllowed(exp, host)) continue;
          out.bool(true).string(m.host.slice(0, MNTNAMLEN)).string(m.path);
        }
        return ok(out.bool(false));
      }
      case 3: {
        // UMNT(dirpath) -> void
        const path = xdrString(args, MNTPATHLEN);
        if (this.mounts.delete(key(host, normalizePath(path)))) {
          this.deps.log.info({ client: host, path }, 'unmounted');
        }
        return ok(out);
      }
      case 4: {
        // UMNTALL -> void
        for (const [k, m] of this.mounts) if (m.host === host) this.mounts.delete(k);
        this.deps.log.info({ client: host }, 'unmounted all');
        return ok(out);
      }
      case 5: {
        // EXPORT -> exports: the exports this caller may mount, groups = their client networks
        for (const exp of table.all()) {
          if (!table.clientAllowed(exp, host)) continue;
          out.bool(true).string(exp.path);
          for (const g of exp.clients) out.bool(true).string(g);
          out.bool(false);
        }
        return ok(out.bool(false));
      }
      default:
        return { kind: 'proc_unavail' };
    }
  }

  private remember(host: string, path: string, exportId: number): void {
    const k = key(host, path);
    this.mounts.delete(k);
    this.mounts.set(k, { host, path, exportId });
    while (this.mounts.size > this.maxEntries) {
      const oldest = this.mounts.keys().next().value as string;
      this.mounts.delete(oldest);
    }
  }
}

function key(host: string, path: string): string {
  return `${host}\0${path}`;
}

function ok(out: XdrOut): ProgramResult {
  return { kind: 'success', body: out.bytes() };
}
