/**
 * The export table: which paths are exported, to which client networks, and how caller credentials
 * are mapped (root_squash, all_squash, anonuid/anongid, AUTH_NONE). MOUNT uses it to answer MNT and
 * EXPORT; the NFS3 program checks every call against it (client allowed, read-only, credentials).
 */
import { BlockList, isIP } from 'node:net';
import type { ExportConfig } from '../config';
import { AuthFlavor, type RpcCallContext } from './rpc-program';
import type { Cred } from '../store/types';

export type { Cred };

export interface Export {
  readonly id: number;
  readonly path: string;
  readonly config: ExportConfig;
  readonly readOnly: boolean;
  /** the configured client networks, as written (used for MOUNT EXPORT groups) */
  readonly clients: readonly string[];
}

interface ExportEntry extends Export {
  readonly acl: BlockList;
  /** verdicts of `acl` by peer address as the socket reported it (see ACL_CACHE_MAX) */
  readonly verdicts: Map<string, boolean>;
}

/**
 * Peer addresses whose ACL verdict is kept per export. BlockList.check parses the address into a
 * SocketAddress on every call, which showed in per-call profiles; a client keeps its address, so
 * the verdict is looked up instead. Past the bound the cache starts over (a client flood costs
 * parsing again, never memory).
 */
export const ACL_CACHE_MAX = 1024;

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/** Parse "a.b.c.d/n" or "v6::/n" (a bare address means a single host); throws on bad input. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const fam = isIP(address);
  if (fam === 0) throw new Error(`not an IP network: "${cidr}"`);
  const family = fam === 4 ? 'ipv4' : 'ipv6';
  const maxPrefix = fam === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > maxPrefix) throw new Error(`bad prefix length in "${cidr}"`);
    prefix = Number(p);
  }
  return { address, prefix, family };
}

/** Canonical form of a peer address: IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes a.b.c.d. */
export function normalizeAddress(address: string): string {
  const m = MAPPED_V4.exec(address);
  return m ? m[1] : address;
}

/** 127.0.0.0/8 or ::1 (an IPv4-mapped loopback address too) */
export function isLoopback(address: string): boolean {
  const a = normalizeAddress(address);
  return a === '::1' || a.startsWith('127.');
}

function buildAcl(clients: readonly string[]): BlockList {
  const acl = new BlockList();
  for (const c of clients) {
    const { address, prefix, family } = parseCidr(c);
    acl.addSubnet(address, prefix, family);
  }
  return acl;
}

/** Does the ACL admit this peer? IPv4 peers are also checked in their IPv4-mapped IPv6 form. */
function aclAdmits(acl: BlockList, address: string): boolean {
  const a = normalizeAddress(address);
  const fam = isIP(a);
  if (fam === 4) return acl.check(a, 'ipv4') || acl.check(`::ffff:${a}`, 'ipv6');
  if (fam === 6) return acl.check(a, 'ipv6');
  return false;
}

/** Normalize an export or MNT path: collapse repeated slashes, drop a trailing slash. */
export function normalizePath(path: string): string {
  let p = path.replace(/\/{2,}/g, '/');
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

export class ExportTable {
  private readonly list: ExportEntry[];
  private readonly ids = new Map<number, ExportEntry>();
  private readonly paths = new Map<string, ExportEntry>();

  constructor(configs: readonly ExportConfig[]) {
    this.list = configs.map((c) => ({
      id: c.id,
      path: normalizePath(c.path),
      config: c,
      readOnly: c.readOnly,
      clients: [...c.clients],
      acl: buildAcl(c.clients),
      verdicts: new Map<string, boolean>(),
    }));
    for (const e of this.list) {
      if (this.ids.has(e.id)) throw new Error(`duplicate export id ${e.id}`);
      if (this.paths.has(e.path)) throw new Error(`duplicate export path ${e.path}`);
      this.ids.set(e.id, e);
      this.paths.set(e.path, e);
    }
  }

  all(): readonly Export[] {
    return this.list;
  }

  byId(id: number): Export | undefined {
    return this.ids.get(id);
  }

  byPath(path: string): Export | undefined {
    return this.paths.get(normalizePath(path));
  }

  /** May a client at `address` (as the socket reports it) use this export? */
  clientAllowed(exp: Export, address: string): boolean {
    const e = this.ids.get(exp.id);
    if (e === undefined || e !== exp) return false;
    let ok = e.verdicts.get(address);
    if (ok === undefined) {
      ok = aclAdmits(e.acl, address);
      if (e.verdicts.size >= ACL_CACHE_MAX) e.verdicts.clear();
      e.verdicts.set(address, ok);
    }
    return ok;
  }

  /** May a client at `address` use any export? (Who may send full-size NFS records at all.) */
  admitsAnyExport(address: string): boolean {
    return this.list.some((e) => this.clientAllowed(e, address));
  }

  /**
   * The credentials a call acts with on this export, after squashing; undefined when the call's
   * flavor is not acceptable here (AUTH_NONE on an export without allowAuthNone): answer
   * AUTH_ERROR / AUTH_TOOWEAK.
   */
  effectiveCred(exp: Export, ctx: Pick<RpcCallContext, 'flavor' | 'sys'>): Cred | undefined {
    return effectiveCred(exp, ctx);
  }
}

/** See ExportTable.effectiveCred. */
export function effectiveCred(exp: Export, ctx: Pick<RpcCallContext, 'flavor' | 'sys'>): Cred | undefined {
  const c = exp.config;
  const anon: Cred = { uid: c.anonUid, gid: c.anonGid, gids: [] };
  if (ctx.flavor === AuthFlavor.SYS && ctx.sys) {
    if (c.allSquash) return anon;
    if (c.rootSquash) {
      // like Linux knfsd: uid 0 becomes anonuid, gid 0 (primary and in the group list) anongid
      return {
        uid: ctx.sys.uid === 0 ? c.anonUid : ctx.sys.uid,
        gid: ctx.sys.gid === 0 ? c.anonGid : ctx.sys.gid,
        gids: ctx.sys.gids.map((g) => (g === 0 ? c.anonGid : g)),
      };
    }
    return { uid: ctx.sys.uid, gid: ctx.sys.gid, gids: [...ctx.sys.gids] };
  }
  if (ctx.flavor === AuthFlavor.NONE && c.allowAuthNone) return anon;
  return undefined;
}
