/** Portmapper v2 (RFC 1833) client: NULL, GETPORT, DUMP. Tiny XDR by hand. */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader';
import { RpcConnection, type RpcConnectionOptions } from './rpc-connection';
import { AUTH_NONE } from './auth';
import { PROG_PORTMAP } from './constants';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export interface PortMapping {
  prog: number;
  vers: number;
  prot: number;
  port: number;
}

export class PortmapClient {
  constructor(readonly conn: RpcConnection) {}

  static async connect(opts: RpcConnectionOptions): Promise<PortmapClient> {
    return new PortmapClient(await RpcConnection.connect(opts));
  }

  close(): void {
    this.conn.close();
  }

  null(): Promise<true> {
    return this.conn.call(PROG_PORTMAP, 2, 0, AUTH_NONE, null, () => true as const);
  }

  getport(prog: number, vers: number, prot = IPPROTO_TCP): Promise<number> {
    const args = Buffer.alloc(16);
    args.writeUInt32BE(prog, 0);
    args.writeUInt32BE(vers, 4);
    args.writeUInt32BE(prot, 8);
    return this.conn.call(PROG_PORTMAP, 2, 3, AUTH_NONE, args, (r: Reader) => r.u32());
  }

  dump(): Promise<PortMapping[]> {
    return this.conn.call(PROG_PORTMAP, 2, 4, AUTH_NONE, null, (r: Reader) => {
      const out: PortMapping[] = [];
      while (r.u32() === 1) out.push({ prog: r.u32(), vers: r.u32(), prot: r.u32(), port: r.u32() });
      return out;
    });
  }
}
