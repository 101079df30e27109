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
import { Readable, Writable } from 'node:stream';
import { restoreSnapshot, writeSnapshot } from '../../../src/store/snapshot';
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
import { decodeConfChange } from './core-adapter';

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
  /** a fault: crash `node` now, in the middle of replacing its store by a leader's snapshot (the
   * Raft snapshot is durable, the store not yet restored); true if it did */
  crashDuringRestore(node: number): boolean;
  /** after a Ready's applies: does the store's writer get to write what it holds now? (else a crash
   * before the next flush loses it) */
  flushWriter(): boolean;
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

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

type RawBatch = (ops: unknown[], opts: { sync?: boolean }) => Promise<void>;

/**
 * Holds the store writer's unsynced LevelDB batch writes (logWal: the batches of applied ops) in
 * process memory until the sim flushes them, at points drawn from the seed. A crash drops what is
 * held: kill -9 loses the batches the writer had not written yet, and which ones those are is then a
 * function of the seed, not of how fast the writer ran. Sync writes (checkpoints) pass; the sim
 * flushes before anything that waits for the writer (checkpoint, digest, snapshot, close).
 */
export class WriteGate {
  private held: { ops: unknown[]; opts: { sync?: boolean }; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private pass = 0;
  private readonly raw: RawBatch;
  private readonly db: { _batch: RawBatch };

  constructor(readonly store: LevelBlockStore) {
    this.db = (store as unknown as { db: { _batch: RawBatch } }).db;
    this.raw = this.db._batch;
    const raw = this.raw;
    const db = this.db;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const gate = this;
    db._batch = function (ops, opts) {
      if (gate.pass > 0 || opts?.sync) return raw.call(db, ops, opts);
      return new Promise<void>((resolve, reject) => gate.held.push({ ops, opts, resolve, reject }));
    };
  }

  /** write everything held, in order, until the writer is idle */
  async flush(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.held.length > 0) {
        const h = this.held.shift()!;
        await this.raw.call(this.db, h.ops, h.opts).then(h.resolve, h.reject);
        continue;
      }
      if (this.store.pendingBatches === 0) return;
      await tick();
    }
    throw new Error('WriteGate: the writer did not go idle');
  }

  /** run `f` with writes passing straight through (it waits for the writer) */
  async through<T>(f: () => Promise<T>): Promise<T> {
    this.pass++;
    try {
      await this.flush();
      return await f();
    } finally {
      this.pass--;
    }
  }

  get holding(): number {
    return this.held.length;
  }
}

/** Stop a store the way kill -9 does: what its writer wrote to LevelDB stays (the page cache keeps
 * it), the batches the gate still holds are lost, nothing more is written (no checkpoint, no
 * clean-shutdown record). */
export async function crashStore(store: LevelBlockStore, gate?: WriteGate): Promise<void> {
  const s = store as unknown as CrashInternals;
  if (!gate) {
    const deadline = Date.now() + 30_000;
    while (store.pendingBatches > 0 && Date.now() < deadline) await tick();
    if (store.pendingBatches > 0) throw new Error('crashStore: the writer did not go idle');
    await s.writerDone;
  }
  // (with a gate, the writer waits forever on a held write: it is abandoned, as the process would be)
  if (s.walTimer) clearTimeout(s.walTimer);
  if (s.ckptTimer) clearTimeout(s.ckptTimer);
  s.closed = true;
  await store.data.closeAll();
  await s.db.close();
}

/**
 * A Raft snapshot's data in store mode: the harness state (chain, membership), the request ids this
 * node's history executed (index of each), and the store itself as a snapshot stream
 * (src/store/snapshot.ts writeSnapshot). The real cluster puts a descriptor in the Raft snapshot and
 * streams the store beside Raft (catch-up.ts); the sim carries the stream inside the Raft snapshot, so
 * it travels through the core's chunked snapshot messages and the wire codec.
 */
export function encodeStoreSnapshot(sm: Uint8Array, executed: [string, number][], stream: Buffer): Uint8Array {
  const ex = Buffer.from(JSON.stringify(executed));
  const h = Buffer.alloc(8);
  h.writeUInt32BE(sm.length, 0);
  h.writeUInt32BE(ex.length, 4);
  return Buffer.concat([h, Buffer.from(sm), ex, stream]);
}

export function decodeStoreSnapshot(data: Uint8Array): { sm: Uint8Array; executed: [string, number][]; stream: Buffer } {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const a = b.readUInt32BE(0), e = b.readUInt32BE(4);
  return {
    sm: b.subarray(8, 8 + a),
    executed: JSON.parse(b.subarray(8 + a, 8 + a + e).toString()) as [string, number][],
    stream: b.subarray(8 + a + e),
  };
}

/** the store as one snapshot stream, in memory */
async function streamStore(store: LevelBlockStore): Promise<{ index: number; bytes: Buffer }> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      cb();
    },
  });
  const r = await writeSnapshot(store, out);
  return { index: r.index, bytes: Buffer.concat(parts) };
}

export class StoreSimNode extends SimNode {
  ssm: StoreStateMachine | undefined;
  /** request id -> log index of the entry that executed it on this node (kept across crashes: an
   * observation of the checker, not node state; reset when the store starts empty) */
  readonly executedAt = new Map<string, number>();
  redos = 0;
  checkpoints = 0;
  /** writer writes (LevelDB batches, each holding the batches of one or more ops) held by the gate
   * and lost by crashes */
  lostBatches = 0;
  private gate: WriteGate | undefined;
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
      // as RaftNode.init: a store behind the durable Raft snapshot (a restore from the leader that a
      // crash interrupted) is replaced from it without recovering first: the log entries the redo
      // would need went with the snapshot (finding F4; bug mode store-recover-first keeps the old order)
      const snap = this.storage.snapshot();
      const behind = snap !== undefined && snap.meta.index > 0 && store.appliedIndex < snap.meta.index;
      if (store.needsRedo && (!behind || this.host.bug === 'store-recover-first')) {
        const from = store.durableIndex + 1, to = store.appliedIndex;
        // the log is compacted only up to the store's durable index: (durableIndex, appliedIndex] is in it
        await ssm.recover((lo, hi) => this.storage.entries(lo, hi, Number.POSITIVE_INFINITY));
        this.redos++;
        this.host.trace(`n${this.id} store redo ${from}..${to}`);
      }
      if (snap && behind) {
        this.ssm = ssm;
        await this.installStore(snap.data, snap.meta.index);
        this.host.trace(`n${this.id} store restored from the local snapshot ${snap.meta.index}`);
      }
      this.ssm ??= ssm;
      // the store forgot what it applied after its LevelDB state (batches lost in the crash): the log
      // hands those entries again and they execute again
      const a = this.ssm.store.appliedIndex;
      for (const [id, at] of this.executedAt) if (at > a) this.executedAt.delete(id);
      this.gate = new WriteGate(this.ssm.store);
      this.starting = false;
      this.host.trace(`n${this.id} store open applied ${this.ssm.store.appliedIndex} durable ${this.ssm.store.durableIndex}`);
      super.start();
    });
  }

  override crash(): void {
    if (!this.alive) return;
    super.crash();
    const ssm = this.ssm;
    const gate = this.gate;
    this.ssm = undefined;
    this.gate = undefined;
    if (ssm) {
      this.shost.defer(async () => {
        this.lostBatches += gate?.holding ?? 0;
        await crashStore(ssm.store, gate);
        this.shost.storeClosed(ssm.store);
      });
    }
  }

  /** close the store cleanly (end of run) */
  async closeStore(): Promise<void> {
    const ssm = this.ssm;
    const gate = this.gate;
    this.ssm = undefined;
    this.gate = undefined;
    if (ssm) {
      if (gate) await gate.through(() => ssm.store.close());
      else await ssm.store.close();
      this.shost.storeClosed(ssm.store);
    }
  }

  /**
   * As RaftNode.init: the core starts from what the store applied itself (never past the log's end),
   * not from the snapshot index: `max(snapshot, min(store applied, last index))`. The harness state
   * (chain, membership) is brought there from the durable log, without touching the store; the core
   * rebuilds its membership from the log on its own.
   */
  protected override startApplied(): number {
    const from = this.sm.appliedIndex;
    const to = Math.max(from, Math.min(this.store!.appliedIndex, this.storage.lastIndex()));
    if (to > from) {
      for (const e of this.storage.entries(from + 1, to + 1, Number.POSITIVE_INFINITY)) {
        const voters = [this.sm.conf.voters, this.sm.prevVoters];
        if (e.type === EntryType.ConfChange) this.sm.applyConf(e.index, e.term, e.data, this.guard(() => decodeConfChange(e.data)));
        else this.sm.applyNoop(e.index, e.term, e.data);
        this.host.observeApply(this.id, e.index, e.term, hashBytes(e.data) + e.type, this.sm.chain, this.storage.hardState().term, voters);
      }
      this.host.trace(`n${this.id} starts at the store's applied index ${to} (snapshot ${from})`);
    }
    return to;
  }

  protected override smFromSnapshot(data: Uint8Array): KvStateMachine {
    return KvStateMachine.restore(decodeStoreSnapshot(data).sm);
  }

  /** replace this node's store by the one in a snapshot's data (closed, restored, reopened) */
  private async installStore(data: Uint8Array, index: number): Promise<void> {
    const d = decodeStoreSnapshot(data);
    const old = this.ssm!.store;
    if (this.gate) await this.gate.through(() => old.close());
    else await old.close();
    this.shost.storeClosed(old);
    this.ssm = undefined;
    const dir = this.shost.storeDir(this.id);
    const r = await restoreSnapshot(dir, Readable.from([d.stream]));
    const store = await openStore(dir, SIM_STORE_OPTIONS);
    this.shost.storeOpened(store);
    this.ssm = new StoreStateMachine(store, { nodeId: this.id });
    if (this.gate) this.gate = new WriteGate(store);
    if (r.index > index || store.appliedIndex !== r.index || store.needsRedo) {
      this.host.violation('snapshot', `n${this.id}: store restored from snapshot ${index} is at ${store.appliedIndex} (stream ${r.index}, redo ${store.needsRedo})`);
    }
    this.executedAt.clear();
    for (const [id, at] of d.executed) this.executedAt.set(id, at);
  }

  /** every snapshotEvery applied indexes: checkpoint the store, stream it into a Raft snapshot, compact */
  private async maybeSnapshotStore(): Promise<void> {
    const every = this.host.snapshotEvery();
    const applied = this.sm.appliedIndex;
    if (!Number.isFinite(every) || applied - this.storage.snapshotIndex() < every) return;
    const store = this.store!;
    // the store must hold exactly the state at `applied` (not ahead: replaying after a restart)
    if (store.appliedIndex > applied) return;
    if (this.storage.hasPending() || this.storage.term(applied) !== this.sm.appliedTerm) return;
    // the log is compacted only up to the store's durable index (as RaftNode: compactableIndex();
    // redo reads from durableIndex + 1), and the snapshot holds the harness state at `applied`: so
    // only when the store's last op is the last applied entry (not a noop / membership entry)
    if (store.appliedIndex !== applied) return;
    if (store.durableIndex < store.appliedIndex) {
      await this.gate!.through(() => store.checkpoint());
      this.checkpoints++;
    }
    const { bytes } = await this.gate!.through(() => streamStore(store));
    const executed = [...this.executedAt].filter(([, at]) => at <= applied);
    const data = encodeStoreSnapshot(this.sm.serialize(), executed, bytes);
    const snap = this.guard(() => this.core!.compact(applied, data, this.sm.conf, this.sm.appliedTerm));
    if (snap.meta.index !== applied || snap.meta.term !== this.sm.appliedTerm) {
      this.host.violation('snapshot', `n${this.id} compact(${applied}) gave meta ${JSON.stringify(snap.meta)}`);
    }
    this.storage.createSnapshot(snap);
    this.snapshotsMade++;
    this.host.trace(`n${this.id} snapshot at ${applied} (store stream ${bytes.length} bytes)`);
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
      if (s.meta.index === 0) {
        // the bootstrap snapshot of a joining node: its store is new and empty
        if (this.sm.appliedIndex !== 0 || this.store!.appliedIndex !== 0) {
          this.host.violation('harness', `n${this.id}: bootstrap snapshot over sm ${this.sm.appliedIndex}, store ${this.store!.appliedIndex}`);
        }
        this.sm = new KvStateMachine(s.meta.conf);
      } else {
        if (this.shost.crashDuringRestore(this.id)) return;
        await this.installStore(s.data, s.meta.index);
        this.sm = this.smFromSnapshot(s.data);
        if (this.sm.appliedIndex !== s.meta.index) {
          this.host.violation('snapshot', `n${this.id} snapshot meta index ${s.meta.index} but its state is at ${this.sm.appliedIndex}`);
        }
      }
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
      await this.gate!.through(() => store.checkpoint());
      this.checkpoints++;
      this.shost.observeDigest(this.id, store.appliedIndex, await this.digest());
    } else if (this.shost.flushWriter()) {
      await this.gate!.flush();
    }
    await this.maybeSnapshotStore();
  }

  async digest(): Promise<string> {
    return digestChecksum(await this.storeDigest());
  }

  /** the store's digest (it waits for the writer) */
  storeDigest(): ReturnType<typeof storeDigest> {
    const store = this.store!;
    return this.gate ? this.gate.through(() => storeDigest(store)) : storeDigest(store);
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
