/**
 * Types shared by the pure Raft core (core.ts), its durable storage (log-storage.ts), its transport
 * (transport.ts) and the deterministic simulation (test/raft/sim). The core does no I/O, reads no clock
 * and draws no random numbers of its own: the caller drives it (the Ready/Advance shape).
 */

export type NodeId = number;
export const NONE: NodeId = 0;

export const enum EntryType {
  /** a state machine command (an NFS mutation, or a test KV command) */
  Normal = 0,
  /** membership change; data is an encoded ConfChange */
  ConfChange = 1,
  /** empty entry a new leader appends in its term */
  Noop = 2,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Cluster membership. `voters` decide; `learners` receive the log but do not vote. During joint
 * consensus `votersOutgoing` is non-empty and decisions need a majority of both sets. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type ConfChange =
  | { type: 'addLearner'; node: NodeId }
  | { type: 'promote'; node: NodeId }
  | { type: 'remove'; node: NodeId };

export const enum MsgType {
  PreVote = 1,
  PreVoteResp = 2,
  Vote = 3,
  VoteResp = 4,
  App = 5,
  AppResp = 6,
  Heartbeat = 7,
  HeartbeatResp = 8,
  Snap = 9,
  SnapResp = 10,
  TimeoutNow = 11,
  ReadIndex = 12,
  ReadIndexResp = 13,
  Propose = 14,
}

export interface Message {
  type: MsgType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: index of entry before `entries`; Vote/PreVote: last log index; AppResp: match or hint index;
   * HeartbeatResp: the follower's last index; SnapResp: the snapshot's index; ReadIndexResp: read index */
  index?: number;
  /** App: term of entry at `index`; Vote/PreVote: last log term; AppResp: hint term;
   * HeartbeatResp: the follower's last term */
  logTerm?: number;
  entries?: Entry[];
  commit?: number;
  /** AppResp/Vote answers: refused. HeartbeatResp: the follower is alive in this term but busy
   * restoring a snapshot (its Ready loop waits for the state machine): it acknowledges no heartbeat
   * round and no log position, and nothing is to be resent to it */
  reject?: boolean;
  /** for InstallSnapshot chunks */
  snapshot?: { meta: SnapshotMeta; offset: number; data: Uint8Array; done: boolean };
  /** Heartbeat/HeartbeatResp: heartbeat round (ReadIndex, lease); ReadIndex/ReadIndexResp: request id;
   * AppResp with reject: the rejected index (index/logTerm then carry the backtracking hint);
   * SnapResp: snapshot bytes received so far; Vote/PreVote: 1 = leadership-transfer campaign */
  context?: number;
}

export interface ReadState {
  /** caller's request id */
  id: number;
  /** wait until appliedIndex >= index, then the read is linearizable */
  index: number;
}

/** What the caller must do after the core changed. Persist first, then send, then apply. */
export interface Ready {
  hardState?: HardState;
  /** entries to append to stable storage (they may overwrite a conflicting suffix) */
  entries: Entry[];
  /** a snapshot received from the leader, to persist and then apply (replaces the state machine) */
  snapshot?: Snapshot;
  /** messages to send, only after hardState/entries/snapshot above are durable */
  messages: Message[];
  /** entries committed and ready to apply, in order */
  committed: Entry[];
  readStates: ReadState[];
  /** true if the role/leader changed since the last Ready */
  softStateChanged: boolean;
}

export const enum Role {
  Follower = 0,
  PreCandidate = 1,
  Candidate = 2,
  Leader = 3,
}

export interface RaftConfig {
  id: NodeId;
  /** ticks without hearing a leader before an election; randomized in [et, et + jitter) */
  electionTicks: number;
  /** the random part of the election timeout in ticks (default electionTicks: [et, 2*et), as etcd).
   * The lease rests on electionTicks alone; the jitter only spreads the candidates apart */
  electionJitterTicks?: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** per follower: max messages and bytes of entries in flight */
  maxInflightMsgs: number;
  maxInflightBytes: number;
  /** max bytes of entries in one App message */
  maxMsgBytes: number;
  /** snapshot chunk size */
  snapshotChunkBytes: number;
  /** supplied by the caller: returns an integer in [0, n). The core never calls Math.random. */
  random: (n: number) => number;
}

/** Read-only view of stable storage the core reads from (implemented by MemoryStorage and the
 * durable log storage). Entries in it are durable. */
export interface LogReader {
  firstIndex(): number;
  lastIndex(): number;
  /** term of entry i, for snapshotIndex <= i <= lastIndex; undefined otherwise */
  term(i: number): number | undefined;
  /** entries [lo, hi), at most maxBytes (at least one entry) */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  snapshot(): Snapshot | undefined;
}
