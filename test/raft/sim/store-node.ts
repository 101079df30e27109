/**
 * Store mode of the simulation: every node's state machine is the REAL replicated block store — a
 * `LevelBlockStore` opened with `logWal: true` in its own directory (tmpfs), driven through the real
 * `StoreStateMachine` (src/replication/store-state-machine.ts) with entries encoded by the real op
 * codec. The harness KvStateMachine is kept only for the Raft-level bookkeeping the checkers need
 * (applied index, chain hash, membership); the data lives in the store.
 *
 * Determinism: a store apply is asynchronous (real LevelDB, real files). The node hands each Ready's
 * applies to `host.defer`, and the event loop awaits every deferred function, one at a time, before it
 * takes the next event: simulated time does not move and no other event runs while a store works, so
 * the interleaving is still a function of the seed; wall-clock I/O timing only changes how long the
 * run takes. The store's own background checkpoints are switched off (huge thresholds); the node
 * checkpoints explicitly every `checkpointEvery()` applied indexes, inside the deferred function.
 *
 * The workload models NFS files as registers: key i (a, b, c, d) is a 32-byte block of file
 * `f<i/2>` at offset 0 or 20000 (past the 16 KiB inline limit: the file moves to a data file). A
 * client first CREATEs the file (UNCHECKED: an existing file is left alone) and learns its file id
 * from the reply, then WRITEs (FILE_SYNC) whole blocks to it; a read is served by the node (LOOKUP +
 * READ at one applied state) once it applied the ReadIndex.
 *
 * Crash: the process dies (kill -9): the batches the store's writer already wrote stay (page cache),
 * nothing else is written — no checkpoint, no clean-shutdown record. Restart reopens the store and, if
 * its durable checkpoint is behind its applied index, replays the data effects of the entries in
 * between from the node's durable log (`StoreStateMachine.recover` → `redo`, `finishRedo`). The core
 * then hands out every committed entry again from its snapshot (index 0: store mode takes no Raft
 * snapshots); entries the store already applied are replays that change nothing.
 */
import { promises as fsp } from 'node:fs';
import { EntryType, type ConfState, type Ready } from '../../../src/raft/types';
import { openStore, ROOT_ID, type LevelBlockStore } from '../../../src/store/block-store';
import { Nfs3Status, type OpResult, type StoreOp, type StoreOptions, type Time } from '../../../src/store/types';
import { decodeEntry, encodeEntry } from '../../../src/replication/op-codec';
import { StoreStateMachine } from '../../../src/replication/store-state-machine';
import { digestChecksum, storeDigest } from '../../../src/store/checksum';
import { hashBytes } from './hash';
import { keyFile, keyOffset, ROOT_CRED, VALUE_BYTES } from './store-keys';
import { KvStateMachine, requestId } from './kv';
import { ClientRequest, NodeHost, SimNode } from './node';

/** the store's options in the simulation: no background checkpoints, tiny caches (evictions) */
export const SIM_STORE_OPTIONS: StoreOptions = {
  logWal: true,
  checkpointIntervalMs: 1e9,
  checkpointOps: 1e9,
  checkpointBytes: 1e15,
  inodeCacheSize: 2,
  fdCacheSize: 1,
};

export interface StoreNodeHost extends NodeHost {
  defer(fn: () => Promise<void>): void;
  storeDir(node: number): string;
  /** applied-index distance between the node's store checkpoints */
  checkpointEvery(): number;
  /** a node's store digest (digestChecksum) at a store applied index */
  observeDigest(node: number, index: number, checksum: string): void;
  storeOpened(s: LevelBlockStore): void;
  storeClosed(s: LevelBlockStore): void;
  /** op time for an op proposed now */
  opTime(): Time;
}

interface CrashInternals {
  writerDone: Promise<void>;
  closed: boolean;
  walTimer?: NodeJS.Timeout;
  ckptTimer?: NodeJS.Timeout;
  db: { close(): Promise<void> };
}

/** Stop a store the way kill -9 does once its writer is idle: what it wrote to LevelDB stays (the
 * page cache keeps it), nothing more is written (no checkpoint, no clean-shutdown record). */
export async function crashStore(store: LevelBlockStore): Promise<void> {
  const s = store as unknown as CrashInternals;
  for (let i = 0; i < 2000 && store.pendingBatches > 0; i++) await new Promise((r) => setTimeout(r, 1));
  if (store.pendingBatches > 0) throw new Error('crashStore: the writer did not go idle');
  await s.writerDone;
  if (s.walTimer) clearTimeout(s.walTimer);
  if (s.ckptTimer) clearTimeout(s.ckptTimer);
  s.closed = true;
  await store.data.closeAll();
  await s.db.close();
}

export class StoreSimNode extends SimNode {
  ssm: StoreStateMachine | undefined;
  /** request id -> log index of the entry that executed it on this node (kept across crashes: an
   * observation of the checker, not node state; reset when the store starts empty) */
  readonly executedAt = new Map<string, number>();
  redos = 0;
  checkpoints = 0;
  private starting = false;
  private storeOps = 0;

  constructor(id: number, private readonly shost: StoreNodeHost, bootConf: ConfState, tickPeriod: number) {
    super(id, shost, bootConf, tickPeriod);
  }

  get store(): LevelBlockStore | undefined {
    return this.ssm?.store;
  }

  protected override get asyncApply(): boolean {
    return true;
  }

  override get isStarting(): boolean {
    return this.starting;
  }

  override start(): void {
    if (this.starting || this.alive) return;
    this.starting = true;
    const epoch = this.epoch;
    this.shost.defer(async () => {
      if (this.epoch !== epoch) return;
      const store = await openStore(this.shost.storeDir(this.id), SIM_STORE_OPTIONS);
      this.shost.storeOpened(store);
      if (store.appliedIndex === 0) this.executedAt.clear();
      const ssm = new StoreStateMachine(store, { nodeId: this.id });
      if (store.needsRedo) {
        const from = store.durableIndex + 1, to = store.appliedIndex;
        // the log is never compacted in store mode: (durableIndex, appliedIndex] is in the durable log
        await ssm.recover((lo, hi) => this.storage.entries(lo, hi, Number.POSITIVE_INFINITY));
        this.redos++;
        this.host.trace(`n${this.id} store redo ${from}..${to}`);
      }
      this.ssm = ssm;
      this.starting = false;
      this.host.trace(`n${this.id} store open applied ${store.appliedIndex} durable ${store.durableIndex}`);
      super.start();
    });
  }

  override crash(): void {
    if (!this.alive) return;
    super.crash();
    const ssm = this.ssm;
    this.ssm = undefined;
    if (ssm) {
      this.shost.defer(async () => {
        await crashStore(ssm.store);
        this.shost.storeClosed(ssm.store);
      });
    }
  }

  /** close the store cleanly (end of run) */
  async closeStore(): Promise<void> {
    const ssm = this.ssm;
    this.ssm = undefined;
    if (ssm) {
      await ssm.store.close();
      this.shost.storeClosed(ssm.store);
    }
  }

  protected override encodeWrite(req: ClientRequest & { kind: 'write' }): Uint8Array {
    const c = req.cmd;
    const base = { time: this.shost.opTime(), cred: ROOT_CRED };
    let op: StoreOp;
    if (c.op === 'create') {
      op = { ...base, kind: 'create', dir: ROOT_ID, name: keyFile(c.key), mode: 'unchecked', attrs: {} };
    } else if (c.op === 'put') {
      if (c.file === undefined) throw new Error('store mode: a put without a file id');
      const data = Buffer.alloc(VALUE_BYTES);
      data.write(c.value, 'latin1');
      op = { ...base, kind: 'write', file: c.file, offset: keyOffset(c.key), data, stable: 2 };
    } else {
      throw new Error(`store mode: no ${c.op}`);
    }
    return encodeEntry({ kind: 'op', op, requestKey: Buffer.from(requestId(c.client, c.seq), 'latin1') });
  }

  protected override async completeAsync(rd: Ready): Promise<void> {
    const epoch = this.epoch;
    if (rd.snapshot) {
      const s = rd.snapshot;
      // store mode takes no Raft snapshots: only the bootstrap one (index 0) reaches a joining node
      if (s.meta.index !== 0 || this.sm.appliedIndex !== 0 || this.store!.appliedIndex !== 0) {
        this.host.violation('harness', `n${this.id}: store mode got snapshot ${s.meta.index} (sm ${this.sm.appliedIndex}, store ${this.store!.appliedIndex})`);
      }
      this.sm = new KvStateMachine(s.meta.conf);
      this.snapshotsInstalled++;
      this.host.trace(`n${this.id} install snapshot ${s.meta.index}/${s.meta.term}`);
      this.host.observeSnapshotInstalled(this.id, s.meta.index, this.sm.chain);
    }
    const term = this.guard(() => this.core!.status().term);
    for (const e of rd.committed) {
      if (e.index !== this.sm.appliedIndex + 1) {
        this.host.violation('apply-order', `n${this.id} committed entry ${e.index} handed out after applied ${this.sm.appliedIndex}`);
      }
      const voters = [this.sm.conf.voters, this.sm.prevVoters];
      if (e.type === EntryType.ConfChange) {
        this.applyConfEntry(e.index, e.term, e.data, true);
      } else {
        this.sm.applyNoop(e.index, e.term, e.data);
        if (e.type === EntryType.Normal && e.data.length > 0) await this.applyStore(e.index, e.term, e.data);
        if (this.epoch !== epoch) return;
      }
      this.host.observeApply(this.id, e.index, e.term, hashBytes(e.data) + e.type, this.sm.chain, term, voters);
    }
    for (const rs of rd.readStates) {
      const req = this.pendingReads.get(rs.id);
      if (!req) continue;
      this.pendingReads.delete(rs.id);
      this.readWaits.push({ index: rs.index, req });
    }
    const keep: typeof this.readWaits = [];
    for (const w of this.readWaits) {
      if (this.sm.appliedIndex >= w.index) {
        const value = await this.readKey(w.req.key);
        this.host.reply({ kind: 'ok', client: w.req.client, seq: w.req.seq, from: this.id, value });
      } else {
        keep.push(w);
      }
    }
    this.readWaits = keep;
    this.guard(() => this.core!.advance(rd));
    const store = this.store!;
    if (store.appliedIndex - store.durableIndex >= this.shost.checkpointEvery()) {
      await store.checkpoint();
      this.checkpoints++;
      this.shost.observeDigest(this.id, store.appliedIndex, await this.digest());
    }
  }

  async digest(): Promise<string> {
    return digestChecksum(await storeDigest(this.store!));
  }

  private async applyStore(index: number, term: number, data: Uint8Array): Promise<void> {
    const ssm = this.ssm!;
    const store = ssm.store;
    const cmd = this.guard(() => decodeEntry(data));
    if (cmd.kind !== 'op') return;
    const key = cmd.requestKey!;
    const id = Buffer.from(key).toString('latin1');
    const fresh = index > store.appliedIndex;
    const seen = store.lookupRequest(key) !== undefined;
    let res: OpResult | undefined;
    if (this.host.bug === 'store-skip-op' && this.id === 2 && fresh && ++this.storeOps === 3) {
      this.host.trace(`n${this.id} BUG skips store op ${index}`);
      return;
    } else if (this.host.bug === 'store-no-dedup') {
      res = await store.apply(index, cmd.op);
    } else {
      res = (await ssm.apply({ index, term, type: EntryType.Normal, data })) ?? undefined;
    }
    if (!res) this.host.violation('store-op', `n${this.id}: store op ${index} (${id}) gave no result`);
    if (res.status !== Nfs3Status.OK) this.host.violation('store-op', `n${this.id}: store op ${index} (${id}, ${cmd.op.kind}) failed with status ${res.status}`);
    if (fresh && !seen) {
      const prev = this.executedAt.get(id);
      if (prev !== undefined) this.host.violation('exactly-once', `n${this.id} executed request ${id} at index ${prev} and again at ${index}`);
      this.executedAt.set(id, index);
    }
    const req = this.pendingWrites.get(id);
    if (req) {
      this.pendingWrites.delete(id);
      this.host.acked(req);
      this.host.reply({ kind: 'ok', client: req.client, seq: req.seq, from: this.id, fileid: res.obj?.fileid });
    }
  }

  /** LOOKUP + READ of a key's block at the store's current state: the value, or null (no file, or
   * nothing written there yet) */
  async readKey(key: string): Promise<string | null> {
    const store = this.store!;
    const l = await store.lookup(ROOT_ID, keyFile(key));
    if (l.status === Nfs3Status.NOENT) return null;
    if (l.status !== Nfs3Status.OK || !l.obj) this.host.violation('store-op', `n${this.id}: LOOKUP ${keyFile(key)} gave ${l.status}`);
    const r = await store.read(l.obj.fileid, keyOffset(key), VALUE_BYTES);
    if (r.status !== Nfs3Status.OK) this.host.violation('store-op', `n${this.id}: READ ${keyFile(key)} gave ${r.status}`);
    const s = Buffer.from(r.data ?? new Uint8Array(0)).toString('latin1').replace(/\0+$/, '');
    return s === '' ? null : s;
  }
}

export async function removeStoreDirs(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}
