/** What a handler returns: a library response message, or a reply it encodes itself. */
import type { ReplyEncoder } from './xdr';
import type { RpcCallContext } from '../rpc-program';
import type { ExportRef } from './deps';
import type { Nfs3Core } from './core';

export class RawReply {
  constructor(
    readonly status: number,
    /** writes the whole result (status first); called synchronously right before flushing */
    readonly write: (enc: ReplyEncoder) => void,
  ) {}
}

/** any Nfsv3*Response from @jsonjoy.com/json-pack (they all carry `status`) */
export interface LibReply {
  status: number;
}

export type Reply = RawReply | LibReply;

export type Handler = (core: Nfs3Core<ExportRef>, ctx: RpcCallContext, req: any) => Promise<Reply>;
