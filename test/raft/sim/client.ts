/**
 * Simulated clients of the KV service. Each runs one operation at a time: put/append a unique value,
 * or get a key (served by the leader through ReadIndex). It sends to the node it believes is the
 * leader, follows NotLeader hints, resends the same request id on a timeout, and after too many
 * attempts gives up: the operation stays in the history as never returned (it may or may not have
 * taken effect) and the client continues as a new process with a new client id, as Jepsen does.
 */
import { KvInput, KvOperation } from './linearizability';
import { ClientReply, ClientRequest } from './node';
import { Prng } from './prng';
import { keyFile } from './store-keys';

export interface ClientHost {
  readonly rng: Prng;
  now(): number;
  /** strictly increasing counter for history timestamps */
  clock(): number;
  after(delay: number, label: string, fn: () => void): void;
  trace(line: string): void;
  /** send over the client network to a node */
  sendRequest(to: number, req: ClientRequest): void;
  /** ids of the nodes a client may contact */
  directory(): number[];
  newClientId(): number;
  /** may the client start another operation? (false while the run settles) */
  issuing(): boolean;
}

export interface ClientParams {
  keys: string[];
  /** probabilities of each kind */
  pPut: number;
  pAppend: number;
  /** think time between operations, simulated time units */
  thinkMax: number;
  /** resend timeout */
  timeout: number;
  maxAttempts: number;
  /** send reads to a random node (followers serve them through ReadIndex) */
  readsAnywhere: boolean;
  /** store mode: keys live in files; a client CREATEs a key's file (learning its file id) before
   * its first put to it */
  store?: boolean;
}

interface Current {
  seq: number;
  req: ClientRequest;
  op: KvOperation;
  attempts: number;
  /** attempt number, to ignore stale timeouts */
  attempt: number;
  /** store mode: this is the CREATE of the file of this key (not in the history) */
  createFor?: string;
}

export class SimClient {
  private seq = 0;
  private leaderGuess = 0;
  private cur: Current | undefined;
  /** store mode: file name -> file id */
  private readonly handles = new Map<string, number>();
  done = 0;
  gaveUp = 0;

  constructor(
    private clientId: number,
    private readonly host: ClientHost,
    private readonly params: ClientParams,
    private readonly history: KvOperation[],
  ) {}

  get idle(): boolean {
    return this.cur === undefined;
  }

  start(): void {
    this.host.after(this.host.rng.int(this.params.thinkMax + 1), `c${this.clientId} think`, () => this.issue());
  }

  private issue(): void {
    if (this.cur || !this.host.issuing()) return;
    const rng = this.host.rng;
    const key = rng.pick(this.params.keys);
    const x = rng.float();
    if (x < this.params.pPut + this.params.pAppend) {
      const kind = x < this.params.pPut ? 'put' : 'append';
      if (this.params.store && !this.handles.has(keyFile(key))) this.issueCreate(key);
      else this.issueWrite(kind, key);
    } else {
      this.issueRead(key);
    }
  }

  private issueCreate(key: string): void {
    const seq = ++this.seq;
    const req: ClientRequest = { kind: 'write', client: this.clientId, seq, cmd: { op: 'create', client: this.clientId, seq, key, value: '' } };
    // not in the history: creating the (empty) file does not change what the key reads (null)
    const op: KvOperation = { client: this.clientId, input: { kind: 'get', key }, output: undefined, call: this.host.clock(), ret: Infinity };
    this.cur = { seq, req, op, attempts: 0, attempt: 0, createFor: key };
    this.host.trace(`c${this.clientId} invoke ${seq} create(${keyFile(key)})`);
    this.send();
  }

  private issueWrite(kind: 'put' | 'append', key: string): void {
    const seq = ++this.seq;
    const value = `${kind === 'put' ? '=' : '+'}${this.clientId}.${seq};`;
    const input: KvInput = { kind, key, value };
    const file = this.params.store ? this.handles.get(keyFile(key)) : undefined;
    const req: ClientRequest = { kind: 'write', client: this.clientId, seq, cmd: { op: kind, client: this.clientId, seq, key, value, file } };
    this.begin(seq, req, input, key);
  }

  private issueRead(key: string): void {
    const seq = ++this.seq;
    this.begin(seq, { kind: 'read', client: this.clientId, seq, key }, { kind: 'get', key }, key);
  }

  private begin(seq: number, req: ClientRequest, input: KvInput, key: string): void {
    const op: KvOperation = { client: this.clientId, input, output: undefined, call: this.host.clock(), ret: Infinity };
    this.history.push(op);
    this.cur = { seq, req, op, attempts: 0, attempt: 0 };
    this.host.trace(`c${this.clientId} invoke ${seq} ${input.kind}(${key}${input.kind === 'get' ? '' : `, ${input.value}`})`);
    this.send();
  }

  private send(): void {
    const cur = this.cur!;
    cur.attempts++;
    const attempt = ++cur.attempt;
    const dir = this.host.directory();
    if (!this.leaderGuess || !dir.includes(this.leaderGuess)) this.leaderGuess = this.host.rng.pick(dir);
    const to = this.params.readsAnywhere && cur.req.kind === 'read' && cur.attempts === 1 ? this.host.rng.pick(dir) : this.leaderGuess;
    this.host.sendRequest(to, cur.req);
    this.host.after(this.params.timeout, `c${this.clientId} timeout ${cur.seq}`, () => {
      if (this.cur !== cur || cur.attempt !== attempt) return;
      this.leaderGuess = 0;
      this.retry();
    });
  }

  private retry(): void {
    const cur = this.cur!;
    if (cur.attempts >= this.params.maxAttempts) {
      this.giveUp();
      return;
    }
    this.send();
  }

  private giveUp(): void {
    const cur = this.cur!;
    this.host.trace(`c${this.clientId} gives up ${cur.seq}`);
    if (cur.op.input.kind === 'get' && !cur.createFor) {
      // a read that never returned constrains nothing: leave it out
      const i = this.history.lastIndexOf(cur.op);
      if (i >= 0) this.history.splice(i, 1);
    }
    this.cur = undefined;
    this.gaveUp++;
    // continue as a new process: the abandoned write may still take effect at any later time
    this.clientId = this.host.newClientId();
    this.seq = 0;
    this.start();
  }

  onReply(r: ClientReply): void {
    const cur = this.cur;
    if (!cur || r.client !== this.clientId || r.seq !== cur.seq) return;
    if (r.kind === 'notLeader') {
      this.leaderGuess = r.hint && r.hint !== r.from ? r.hint : 0;
      cur.attempt++; // cancel the pending timeout
      if (cur.attempts >= this.params.maxAttempts) {
        this.giveUp();
        return;
      }
      this.host.after(1 + this.host.rng.int(20), `c${this.clientId} redirect ${cur.seq}`, () => {
        if (this.cur === cur) this.send();
      });
      return;
    }
    if (cur.createFor !== undefined) {
      if (r.fileid === undefined) throw new Error(`c${this.clientId}: CREATE reply without a file id`);
      this.handles.set(keyFile(cur.createFor), r.fileid);
      this.host.trace(`c${this.clientId} ok ${cur.seq} create -> file ${r.fileid}`);
      this.cur = undefined;
      this.done++;
      if (this.host.issuing()) this.issueWrite('put', cur.createFor);
      return;
    }
    cur.op.ret = this.host.clock();
    cur.op.output = cur.op.input.kind === 'get' ? (r.value ?? null) : null;
    if (cur.req.kind === 'write') this.leaderGuess = r.from;
    this.host.trace(`c${this.clientId} ok ${cur.seq}${cur.op.input.kind === 'get' ? ` -> ${JSON.stringify(cur.op.output)}` : ''}`);
    this.cur = undefined;
    this.done++;
    this.start();
  }

  /** the id this client currently uses (changes when it gives up) */
  get id(): number {
    return this.clientId;
  }
}
