/**
 * Portmapper v2 (RFC 1833 §3) and rpcbind v3/v4 (RFC 1833 §2) for the programs this daemon serves,
 * so that `mount.nfs`, `rpcinfo` and `showmount` can find NFS and MOUNT. Registrations come from the
 * daemon itself; SET/UNSET are honoured only from loopback callers. CALLIT/INDIRECT/BCAST are not
 * offered (PROC_UNAVAIL): an open relay is an amplification and spoofing tool.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { isIPv4, isIPv6 } from 'node:net';
import type { ProgramResult, RpcCallContext, RpcProgram } from './rpc-program';
import { XdrOut, xdrString, xdrU32 } from './rpc-server';
import { isLoopback } from './exports';

export const PMAP_PROG = 100000;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export type Netid = 'tcp' | 'udp' | 'tcp6' | 'udp6';

export interface Registration {
  prog: number;
  vers: number;
  netid: Netid;
  /** host part of the address: an IP, or a wildcard (0.0.0.0 / ::) meaning "where the client reached us" */
  host: string;
  port: number;
  owner: string;
}

const V2_PROCS = ['NULL', 'SET', 'UNSET', 'GETPORT', 'DUMP', 'CALLIT'];
const V3_PROCS = ['NULL', 'SET', 'UNSET', 'GETADDR', 'DUMP', 'CALLIT', 'GETTIME', 'UADDR2TADDR', 'TADDR2UADDR'];
const V4_PROCS = [...V3_PROCS.slice(0, 5), 'BCAST', ...V3_PROCS.slice(6), 'GETVERSADDR', 'INDIRECT', 'GETADDRLIST', 'GETSTAT'];

/** RFC 1833 limits the strings in rpcb to no particular size; these are generous and bounded. */
const MAX_NETID = 32;
const MAX_UADDR = 128;
const MAX_OWNER = 255;
const MAX_REGISTRATIONS = 256;


/** Universal address (RFC 5665 §5.2.3.3/4): "h1.h2.h3.h4.p1.p2" or "v6addr.p1.p2". */
export function toUaddr(host: string, port: number): string {
  return `${host}.${port >> 8}.${port & 0xff}`;
}

export function fromUaddr(uaddr: string): { host: string; port: number } | undefined {
  const m = /^(.*)\.(\d{1,3})\.(\d{1,3})$/.exec(uaddr);
  if (!m) return undefined;
  const hi = Number(m[2]);
  const lo = Number(m[3]);
  if (hi > 255 || lo > 255) return undefined;
  if (!isIPv4(m[1]) && !isIPv6(m[1])) return undefined;
  return { host: m[1], port: hi * 256 + lo };
}

function netidProto(netid: string): number {
  return netid.startsWith('tcp') ? IPPROTO_TCP : netid.startsWith('udp') ? IPPROTO_UDP : 0;
}

function netidOf(transport: 'tcp' | 'udp', address: string): Netid {
  return (isIPv6(address) ? `${transport}6` : transport) as Netid;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

export class PortmapProgram implements RpcProgram {
  readonly prog = PMAP_PROG;
  readonly versions = [2, 3, 4];
  readonly name = 'portmap';
  private regs: Registration[] = [];

  constructor(initial: Registration[] = []) {
    for (const r of initial) this.register(r);
  }

  register(r: Registration): void {
    this.regs = this.regs.filter((x) => !(x.prog === r.prog && x.vers === r.vers && x.netid === r.netid));
    if (this.regs.length >= MAX_REGISTRATIONS) throw new Error('too many portmap registrations');
    this.regs.push({ ...r });
  }

  unregister(prog: number, vers: number, netid?: string): boolean {
    const before = this.regs.length;
    this.regs = this.regs.filter((x) => !(x.prog === prog && x.vers === vers && (netid === undefined || x.netid === netid)));
    return this.regs.length !== before;
  }

  registrations(): readonly Registration[] {
    return this.regs;
  }

  procName(vers: number, proc: number): string {
    const names = vers === 2 ? V2_PROCS : vers === 3 ? V3_PROCS : V4_PROCS;
    return names[proc] ?? 'unknown';
  }

  async handle(ctx: RpcCallContext, args: Reader): Promise<ProgramResult> {
    if (listsOverUdpFromAfar(ctx)) return { kind: 'drop' };
    return ctx.vers === 2 ? this.v2(ctx, args) : this.rpcb(ctx, args);
  }

  /** the host the client reached us on, for wildcard registrations */
  private hostFor(r: Registration, ctx: RpcCallContext): string {
    if (!isWildcard(r.host)) return r.host;
    const local = ctx.localAddress;
    return local && !isWildcard(local) ? local : r.host === '::' ? '::1' : '127.0.0.1';
  }

  // ---- portmapper v2 --------------------------------------------------------------------------

  private v2(ctx: RpcCallContext, a: Reader): ProgramResult {
    const out = new XdrOut(64);
    switch (ctx.proc) {
      case 0:
        return ok(out);
      case 1: // SET(mapping) -> bool
      case 2: {
        // UNSET(mapping) -> bool
        const prog = xdrU32(a);
        const vers = xdrU32(a);
        const prot = xdrU32(a);
        const port = xdrU32(a);
        if (!isLoopback(ctx.remoteAddress)) return ok(out.bool(false));
        if (ctx.proc === 1) {
          if (port > 65535 || (prot !== IPPROTO_TCP && prot !== IPPROTO_UDP)) return ok(out.bool(false));
          const netid: Netid = prot === IPPROTO_TCP ? 'tcp' : 'udp';
          if (this.regs.some((r) => r.prog === prog && r.vers === vers && r.netid === netid)) return ok(out.bool(false));
          if (this.regs.length >= MAX_REGISTRATIONS) return ok(out.bool(false));
          this.register({ prog, vers, netid, host: '0.0.0.0', port, owner: 'unknown' });
          return ok(out.bool(true));
        }
        // UNSET ignores prot and port: it removes the program/version for every v4 transport
        const removed = this.unregisterWhere((r) => r.prog === prog && r.vers === vers && !r.netid.endsWith('6'));
        return ok(out.bool(removed));
      }
      case 3: {
        // GETPORT(mapping) -> port (0 = not registered)
        const prog = xdrU32(a);
        const vers = xdrU32(a);
        const prot = xdrU32(a);
        xdrU32(a); // port, ignored
        const r = this.regs.find((x) => x.prog === prog && x.vers === vers && netidProto(x.netid) === prot && !x.netid.endsWith('6'));
        return ok(out.u32(r ? r.port : 0));
      }
      case 4: {
        // DUMP -> pmaplist (optional-data linked list)
        for (const r of this.regs) {
          if (r.netid.endsWith('6')) continue;
          out.bool(true).u32(r.prog).u32(r.vers).u32(netidProto(r.netid)).u32(r.port);
        }
        return ok(out.bool(false));
      }
      default:
        return { kind: 'proc_unavail' };
    }
  }

  private unregisterWhere(pred: (r: Registration) => boolean): boolean {
    const before = this.regs.length;
    this.regs = this.regs.filter((r) => !pred(r));
    return this.regs.length !== before;
  }

  // ---- rpcbind v3 / v4 ------------------------------------------------------------------------

  private readRpcb(a: Reader): { prog: number; vers: number; netid: string; addr: string; owner: string } {
    const prog = xdrU32(a);
    const vers = xdrU32(a);
    const netid = xdrString(a, MAX_NETID);
    const addr = xdrString(a, MAX_UADDR);
    const owner = xdrString(a, MAX_OWNER);
    return { prog, vers, netid, addr, owner };
  }

  private rpcb(ctx: RpcCallContext, a: Reader): ProgramResult {
    const out = new XdrOut(128);
    const v4 = ctx.vers === 4;
    switch (ctx.proc) {
      case 0:
        return ok(out);
      case 1: {
        // SET(rpcb) -> bool
        const b = this.readRpcb(a);
        if (!isLoopback(ctx.remoteAddress)) return ok(out.bool(false));
        const where = fromUaddr(b.addr);
        if (!where || !['tcp', 'udp', 'tcp6', 'udp6'].includes(b.netid)) return ok(out.bool(false));
        if (this.regs.some((r) => r.prog === b.prog && r.vers === b.vers && r.netid === b.netid)) return ok(out.bool(false));
        if (this.regs.length >= MAX_REGISTRATIONS) return ok(out.bool(false));
        this.register({ prog: b.prog, vers: b.vers, netid: b.netid as Netid, host: where.host, port: where.port, owner: b.owner });
        return ok(out.bool(true));
      }
      case 2: {
        // UNSET(rpcb) -> bool; an empty netid removes every transport
        const b = this.readRpcb(a);
        if (!isLoopback(ctx.remoteAddress)) return ok(out.bool(false));
        return ok(out.bool(this.unregisterWhere((r) => r.prog === b.prog && r.vers === b.vers && (b.netid === '' || r.netid === b.netid))));
      }
      case 3: // GETADDR(rpcb) -> uaddr ("" = not registered)
      case 9: {
        // v4 GETVERSADDR: same, exact version
        if (ctx.proc === 9 && !v4) return { kind: 'proc_unavail' };
        const b = this.readRpcb(a);
        const netid = b.netid === '' ? netidOf(ctx.transport, ctx.remoteAddress) : b.netid;
        const r = this.regs.find((x) => x.prog === b.prog && x.vers === b.vers && x.netid === netid);
        return ok(out.string(r ? toUaddr(this.hostFor(r, ctx), r.port) : ''));
      }
      case 4: {
        // DUMP -> rpcblist_ptr
        for (const r of this.regs) {
          out.bool(true).u32(r.prog).u32(r.vers).string(r.netid).string(toUaddr(this.hostFor(r, ctx), r.port)).string(r.owner);
        }
        return ok(out.bool(false));
      }
      case 6:
        // GETTIME -> seconds since the epoch
        return ok(out.u32(Math.floor(Date.now() / 1000)));
      case 11: {
        // v4 GETADDRLIST(rpcb) -> rpcb_entry_list_ptr: every transport of prog/vers
        if (!v4) return { kind: 'proc_unavail' };
        const b = this.readRpcb(a);
        for (const r of this.regs) {
          if (r.prog !== b.prog || r.vers !== b.vers) continue;
          const six = r.netid.endsWith('6');
          out
            .bool(true)
            .string(toUaddr(this.hostFor(r, ctx), r.port))
            .string(r.netid)
            .u32(r.netid.startsWith('tcp') ? 3 : 1) // NC_TPI_COTS_ORD : NC_TPI_CLTS
            .string(six ? 'inet6' : 'inet')
            .string(r.netid.startsWith('tcp') ? 'tcp' : 'udp');
        }
        return ok(out.bool(false));
      }
      default:
        // CALLIT/BCAST, INDIRECT, UADDR2TADDR/TADDR2UADDR (netbuf is transport-specific), GETSTAT
        return { kind: 'proc_unavail' };
    }
  }
}

/**
 * DUMP (v2, v3, v4) and GETADDRLIST (v4) over UDP from anywhere but loopback: dropped. Their replies
 * are many times the size of the call, so a forged source address would turn the portmapper into an
 * amplifier aimed at a third party. Over TCP (where a source cannot be forged; `rpcinfo -p` asks
 * there) and from loopback they are answered; GETPORT/GETADDR, which clients mount with, always.
 */
function listsOverUdpFromAfar(ctx: RpcCallContext): boolean {
  if (ctx.transport !== 'udp' || isLoopback(ctx.remoteAddress)) return false;
  return ctx.proc === 4 || (ctx.vers === 4 && ctx.proc === 11);
}

function ok(out: XdrOut): ProgramResult {
  return { kind: 'success', body: out.bytes() };
}

/** The registrations for this daemon's own listeners. */
export function daemonRegistrations(opts: {
  host: string;
  nfsPort?: number;
  mountPort?: number;
  mountVersions?: number[];
  portmapPort?: number;
}): Registration[] {
  // a dual-stack wildcard listener is reachable over both families
  const families: { tcp: Netid; udp: Netid; host: string }[] =
    opts.host === '::'
      ? [
          { tcp: 'tcp', udp: 'udp', host: '0.0.0.0' },
          { tcp: 'tcp6', udp: 'udp6', host: '::' },
        ]
      : isIPv6(opts.host)
        ? [{ tcp: 'tcp6', udp: 'udp6', host: opts.host }]
        : [{ tcp: 'tcp', udp: 'udp', host: opts.host }];
  const regs: Registration[] = [];
  const add = (prog: number, vers: number, proto: 'tcp' | 'udp', port: number, owner: string) => {
    for (const f of families) regs.push({ prog, vers, netid: f[proto], host: f.host, port, owner });
  };
  if (opts.portmapPort) {
    for (const v of [2, 3, 4]) {
      add(PMAP_PROG, v, 'tcp', opts.portmapPort, 'superuser');
      add(PMAP_PROG, v, 'udp', opts.portmapPort, 'superuser');
    }
  }
  if (opts.nfsPort) add(100003, 3, 'tcp', opts.nfsPort, 'hanfs');
  if (opts.mountPort) {
    for (const v of opts.mountVersions ?? [1, 2, 3]) {
      add(100005, v, 'tcp', opts.mountPort, 'hanfs');
      add(100005, v, 'udp', opts.mountPort, 'hanfs');
    }
  }
  return regs;
}
