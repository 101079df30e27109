/**
 * Where NFS mutations go. Every mutation is a StoreOp that gets the next log index and is applied
 * strictly in index order. Today the log is local (LocalOpLog); the Raft log replaces it behind the
 * same interface: submit() then resolves once the op is committed by a majority and applied here.
 */
import type { BlockStore, OpResult, StoreOp } from '../../store/types';

export interface OpLog {
  /**
   * Order, apply and return the op's result. Rejects only if the op could not be applied at all, or
   * with `DropCall` when this node cannot answer it now (not the serving leader, leadership changed
   * mid-flight): the call is dropped without a reply and the client retransmits.
   * `requestKey` names the RPC call (client address, xid, procedure, arguments): a replicated op log
   * answers a retransmit of a call it already executed with the result it had.
   */
  submit(op: StoreOp, requestKey?: Uint8Array): Promise<OpResult>;
  /** Optional: every op answered so far is durable (COMMIT); default the store's sync(). */
  commitBarrier?(): Promise<void>;
  /** Optional: every successful op is stable once submit resolves (a replicated log: committed on a
   * majority's disks), so WRITE answers FILE_SYNC whatever the client asked for. */
  readonly stableOnApply?: boolean;
}

/** The call cannot be answered by this node now: send nothing (the client retransmits). */
export class DropCall extends Error {
  override name = 'DropCall';
}

export interface LocalOpLogOptions {
  /**
   * true (default): hand each op to the store as soon as it is submitted, with the next index; the
   * store queues applies in index order and lets durable ops share fsyncs (the LevelBlockStore
   * accepts index = last queued + 1). false: wait for each apply to finish before starting the next
   * (index = store.appliedIndex + 1), for stores that take only one op at a time.
   */
  pipeline?: boolean;
}

export class LocalOpLog implements OpLog {
  private readonly pipeline: boolean;
  /** last index handed out (pipelined mode); undefined = read it from the store */
  private last: number | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  constructor(
    private readonly store: BlockStore,
    opts: LocalOpLogOptions = {},
  ) {
    this.pipeline = opts.pipeline ?? true;
  }

  /** ops submitted and not finished */
  get depth(): number {
    return this.pending;
  }

  submit(op: StoreOp): Promise<OpResult> {
    this.pending++;
    const done = () => {
      this.pending--;
    };
    if (this.pipeline) {
      // (re)start from the store's index; never hand out one it has already applied
      if (this.last === undefined || this.last < this.store.appliedIndex) this.last = this.store.appliedIndex;
      const index = ++this.last;
      let p: Promise<OpResult>;
      try {
        p = this.store.apply(index, op);
      } catch (e) {
        p = Promise.reject(e);
      }
      // a rejected apply means the store failed or the index was refused: re-read the index next time
      p.then(done, () => {
        done();
        this.last = undefined;
      });
      return p;
    }
    const run = async (): Promise<OpResult> => {
      try {
        // read the index at apply time: a failed apply does not consume one
        return await this.store.apply(this.store.appliedIndex + 1, op);
      } finally {
        done();
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
