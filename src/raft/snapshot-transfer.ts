/**
 * Snapshot transfer: the leader sends its latest snapshot in chunks of cfg.snapshotChunkBytes to a
 * follower whose next entries it no longer has, each chunk acknowledged (SnapResp) before the next; the
 * follower reassembles the chunks and installs the snapshot.
 */
import { ProgressState, Progress } from './progress';
import { cloneConf } from './memory-storage';
import type { CoreState } from './core-state';
import { commitTo } from './membership';
import { Message, MsgType, Snapshot } from './types';

// ───────────────────────────── leader: sending ─────────────────────────────

/** start sending the latest snapshot to `pr`, if it answers at all */
export function startSnapshot(core: CoreState, pr: Progress): void {
  if (!pr.recentActive) return; // don't ship a snapshot to a node that does not answer
  const snap = core.log.snapshot();
  if (!snap) return;
  pr.becomeSnapshot(snap.meta.index);
  sendSnapChunk(core, pr);
}

/** send `pr` the chunk after what it acknowledged, or probe again if the snapshot changed */
export function sendSnapChunk(core: CoreState, pr: Progress): void {
  const snap = core.log.snapshot();
  if (!snap || snap.meta.index !== pr.pendingSnapshot) {
    pr.becomeProbe();
    core.dirty.add(pr.id);
    return;
  }
  const total = snap.data.byteLength;
  const off = pr.snapAcked;
  const end = Math.min(total, off + Math.max(1, core.cfg.snapshotChunkBytes));
  core.msgs.push({
    type: MsgType.Snap,
    from: core.id,
    to: pr.id,
    term: core.term,
    snapshot: { meta: snap.meta, offset: off, data: snap.data.subarray(off, end), done: end >= total },
  });
}

/** a follower acknowledged the snapshot's bytes up to `context` */
export function handleSnapResp(core: CoreState, m: Message): void {
  const pr = core.prs.get(m.from);
  if (!pr) return;
  pr.recentActive = true;
  if (pr.state !== ProgressState.Snapshot || m.index !== pr.pendingSnapshot) return;
  const acked = m.context ?? 0;
  const snap = core.log.snapshot();
  if (!snap || snap.meta.index !== pr.pendingSnapshot) {
    // our snapshot changed meanwhile: start over with the current one
    pr.becomeProbe();
    core.dirty.add(pr.id);
    return;
  }
  if (acked === pr.snapAcked && acked !== 0) return; // duplicate ack
  pr.snapAcked = Math.min(acked, snap.data.byteLength);
  sendSnapChunk(core, pr);
}

// ───────────────────────────── follower: receiving ─────────────────────────────

/** a chunk of the leader's snapshot: collect it, and install the snapshot at its last chunk */
export function handleSnapChunk(core: CoreState, m: Message): void {
  const s = m.snapshot;
  if (!s) return;
  const meta = s.meta;
  if (meta.index <= core.log.committed && !core.unbootstrapped()) {
    core.snapRecv = undefined;
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, index: core.log.committed });
    return;
  }
  let r = core.snapRecv;
  if (!r || r.meta.index !== meta.index || r.meta.term !== meta.term || r.from !== m.from || r.term !== m.term) {
    if (s.offset !== 0) {
      core.snapRecv = undefined;
      core.send({ type: MsgType.SnapResp, to: m.from, term: core.term, index: meta.index, context: 0 });
      return;
    }
    r = { from: m.from, term: m.term, meta, chunks: [], received: 0 };
    core.snapRecv = r;
  }
  if (s.offset !== r.received) {
    core.send({ type: MsgType.SnapResp, to: m.from, term: core.term, index: meta.index, context: r.received });
    return;
  }
  if (s.data.byteLength > 0) {
    r.chunks.push(s.data);
    r.received += s.data.byteLength;
  }
  if (!s.done) {
    core.send({ type: MsgType.SnapResp, to: m.from, term: core.term, index: meta.index, context: r.received });
    return;
  }
  core.snapRecv = undefined;
  let data: Uint8Array;
  if (r.chunks.length === 1) data = r.chunks[0]!;
  else {
    data = new Uint8Array(r.received);
    let o = 0;
    for (const c of r.chunks) {
      data.set(c, o);
      o += c.byteLength;
    }
  }
  if (restore(core, { meta, data })) {
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, index: core.log.lastIndex() });
  } else {
    core.send({ type: MsgType.AppResp, to: m.from, term: core.term, index: core.log.committed });
  }
}

/** install a snapshot; false if the log already covers it */
function restore(core: CoreState, s: Snapshot): boolean {
  const fresh = core.unbootstrapped();
  if (s.meta.index <= core.log.committed && !fresh) return false;
  if (!fresh && core.log.matchTerm(s.meta.index, s.meta.term)) {
    // fast-forward: we already have the snapshot's entries
    commitTo(core, s.meta.index);
    return false;
  }
  core.log.restore(s);
  core.conf = cloneConf(s.meta.conf);
  // earlier history stays: the caller may still compact at an index it applied before the snapshot
  core.confHistory.push({ index: s.meta.index, conf: cloneConf(core.conf) });
  core.pendingConfs = [];
  return true;
}
