/**
 * READDIR and READDIRPLUS paging. The client's byte limit (READDIR count, READDIRPLUS maxcount) is
 * a hard limit on the encoded result (status included; the RPC header is not part of it), computed
 * exactly entry by entry. If not even one entry fits: TOOSMALL. READDIRPLUS's dircount is a hint
 * and not enforced, like knfsd (Linux clients send maxcount/8, which would cut replies short for no
 * gain). Limits above 1 MiB are treated as 1 MiB. Cookies and the cookie verifier are the store's;
 * BAD_COOKIE passes through.
 */
import type { Nfsv3Fh } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs';
import type { RpcCallContext } from '../rpc-program';
import { FileType, Nfs3Status, type Attr, type DirEntry } from '../../store/types';
import { RW_MAX, u64, type Nfs3Core } from './core';
import { mayList } from './permissions';
import { RawReply } from './reply';
import { FH_SIZE } from '../file-handle';
import { POST_OP_ATTR_SIZE, utf8Bytes, xdrStringSize } from './xdr';

/** entries asked from the store per round */
const BATCH = 512;
/** smallest entry3: value_follows, fileid, name of 1..4 bytes, cookie */
const MIN_ENTRY = 4 + 8 + 8 + 8;
/** smallest entryplus3 with attributes and a handle */
const MIN_PLUS_ENTRY = MIN_ENTRY + POST_OP_ATTR_SIZE + 4 + 4 + FH_SIZE;
/** status, dir post_op_attr, cookieverf, end of list, eof */
const FIXED = 4 + POST_OP_ATTR_SIZE + 8 + 4 + 4;

interface Item {
  e: DirEntry;
  attr?: Attr;
  fh?: Buffer;
}

export async function readdirCommon(
  core: Nfs3Core<any>,
  ctx: RpcCallContext,
  dirFh: Nfsv3Fh,
  cookieIn: bigint,
  verfIn: Uint8Array,
  limit: number,
  plus: boolean,
): Promise<RawReply> {
  const d = await core.resolve(ctx, dirFh);
  const id = d.exp.id;
  const fail = (status: number, attr: Attr | undefined = d.attr) =>
    new RawReply(status, (enc) => {
      enc.u32(status);
      enc.postOpAttr(attr, id);
    });
  if (d.attr.type !== FileType.DIR) return fail(Nfs3Status.NOTDIR);
  if (!mayList(d.attr, d.cred)) return fail(Nfs3Status.ACCES);
  const cookie0 = u64(cookieIn);
  if (cookie0 === undefined) return fail(Nfs3Status.BAD_COOKIE);
  const max = Math.min(limit, RW_MAX);
  if (FIXED > max) return fail(Nfs3Status.TOOSMALL);
  // cookie 0 starts over and ignores the verifier (RFC 1813 §3.3.16); an all-zero verifier with a
  // cookie comes from clients that do not keep verifiers: the store still refuses cookies it never
  // handed out
  let verf: string | undefined = cookie0 === 0 || verfIn.every((b) => b === 0) ? undefined : Buffer.from(verfIn).toString('hex');
  let cookie = cookie0;
  let used = FIXED;
  let dirAttr = d.attr;
  let cookieverf: string | undefined;
  let eof = false;
  let full = false;
  const items: Item[] = [];
  while (!full) {
    const room = max - used;
    // READDIRPLUS: entries nearly always have attributes and a handle, so ask for about as many as fit
    // with them (attributes read for entries that do not fit are wasted); one more tells eof
    const want = Math.max(1, Math.min(BATCH, Math.floor(room / (plus ? MIN_PLUS_ENTRY : MIN_ENTRY)) + 1));
    const r = await core.store.readdir(d.fileId, cookie, verf, want);
    if (r.status !== Nfs3Status.OK) return fail(r.status, r.dirAttr ?? dirAttr);
    if (r.dirAttr) dirAttr = r.dirAttr;
    if (cookieverf === undefined) cookieverf = r.cookieverf;
    verf = r.cookieverf;
    const attrs = plus ? await core.store.getattrMany(r.entries.map((e) => e.fileid)) : undefined;
    for (let i = 0; i < r.entries.length; i++) {
      const e = r.entries[i];
      let size = 4 + 8 + xdrStringSize(utf8Bytes(e.name)) + 8;
      const item: Item = { e };
      if (attrs) {
        const a = attrs[i];
        if (a) {
          item.attr = a;
          item.fh = core.handleBytes(id, a);
          size += POST_OP_ATTR_SIZE + 4 + 4 + FH_SIZE;
        } else size += 4 + 4;
      }
      if (used + size > max) {
        full = true;
        break;
      }
      used += size;
      items.push(item);
      cookie = e.cookie;
    }
    if (full) break;
    if (r.eof || r.entries.length === 0) {
      eof = r.eof;
      break;
    }
  }
  if (items.length === 0 && !eof) return fail(Nfs3Status.TOOSMALL, dirAttr);
  const cv = Buffer.alloc(8);
  if (cookieverf) Buffer.from(cookieverf, 'hex').copy(cv, 0, 0, 8);
  const expected = used;
  return new RawReply(Nfs3Status.OK, (enc) => {
    const w = enc.writer;
    // the reply starts at the writer's x0; x0 and x move together if the buffer grows
    const start = w.x - w.x0;
    enc.u32(Nfs3Status.OK);
    enc.postOpAttr(dirAttr, id);
    enc.opaque(cv);
    for (const it of items) {
      enc.bool(true);
      enc.u64(it.e.fileid);
      enc.utf8String(it.e.name);
      enc.u64(it.e.cookie);
      if (plus) {
        enc.postOpAttr(it.attr, id);
        if (it.fh) {
          enc.bool(true);
          enc.varOpaque(it.fh);
        } else enc.bool(false);
      }
    }
    enc.bool(false);
    enc.bool(eof);
    const size = w.x - w.x0 - start;
    if (size !== expected) throw new Error(`readdir reply is ${size} bytes, computed ${expected}`);
  });
}
