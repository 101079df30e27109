/**
 * The only file of the simulation that knows the Raft core's API (src/raft/core.ts). Everything else
 * talks to the `SimCore` interface below, so a change in the core's API changes only this file.
 * Core API: docs/raft.md.
 */
import type {
  ConfChange, ConfState, HardState, LogReader, Message, NodeId, RaftConfig, Ready, Role, Snapshot,
} from '../../../src/raft/types';
import { decodeConfChange as coreDecodeConfChange } from '../../../src/raft/confchange';
import { RaftCore } from '../../../src/raft/core';

export interface CoreStatus {
  role: Role;
  term: number;
  leader: NodeId;
  commit: number;
}

export interface SimCore {
  tick(): void;
  step(m: Message): void;
  /** false if the proposal was refused (not leader, transfer in progress, ...) */
  propose(data: Uint8Array): boolean;
  proposeConfChange(cc: ConfChange): boolean;
  /** hand leadership to `to`; false if refused */
  transferLeadership(to: NodeId): boolean;
  /** false if refused; else a ReadState with this id may come in a later Ready */
  readIndex(id: number): boolean;
  hasReady(): boolean;
  ready(): Ready;
  advance(rd: Ready): void;
  /** the caller applied a committed ConfChange entry */
  applyConfChange(cc: ConfChange): void;
  /** make a snapshot at `index` (<= applied) holding `data`, for the caller to store */
  compact(index: number, data: Uint8Array, conf: ConfState, term: number): Snapshot;
  status(): CoreStatus;
  /** one line of the core's state, for failure reports */
  debug(): string;
}

export interface CoreBoot {
  /** durable hard state (zero for a fresh node) */
  hardState: HardState;
  /** index the restored state machine has applied (the snapshot's) */
  applied: number;
  /** serve ReadIndex from the leader lease (needs checkQuorum; clock skew within the core's bound) */
  leaseReads: boolean;
}

/** on receiving a snapshot the core discards the whole log (MemoryStorage.applySnapshot does too) */
export const SNAPSHOT_RETAINS_SUFFIX = false;

export function decodeConfChange(data: Uint8Array): ConfChange {
  return coreDecodeConfChange(data);
}

export function createCore(cfg: RaftConfig, storage: LogReader, boot: CoreBoot): SimCore {
  const core = new RaftCore(cfg, storage, boot.hardState, { applied: boot.applied, leaseReads: boot.leaseReads });
  return {
    tick: () => core.tick(),
    step: (msg) => core.step(msg),
    propose: (data) => 'index' in core.propose(data),
    proposeConfChange: (cc) => 'index' in core.proposeConfChange(cc),
    transferLeadership: (to) => 'ok' in core.transferLeadership(to),
    readIndex: (id) => 'ok' in core.readIndex(id),
    hasReady: () => core.hasReady(),
    ready: () => core.ready(),
    advance: (rd) => core.advance(rd),
    // the core applies membership changes itself when their entries commit
    applyConfChange: () => undefined,
    // the core fills in the membership at `index` from its own history (checked by the driver)
    compact: (index, data) => core.compact(index, data),
    // cheap: status() builds progress arrays; the driver asks after every Ready
    status: () => ({ role: core.role, term: core.term, leader: core.lead, commit: core.log.committed }),
    debug: () => {
      const st = core.status();
      const prs = st.progress.map((p) => `${p.id}:${p.state[0]}${p.match}/${p.next}${p.inflightMsgs ? `+${p.inflightMsgs}` : ""}`).join(' ');
      return `core ${st.roleName} t${st.term} v${st.vote} lead ${st.leader} commit ${st.commit} applied ${st.applied} ` +
        `log [${st.firstIndex}..${st.lastIndex}] conf v[${st.conf.voters}] l[${st.conf.learners}]${prs ? ` prs ${prs}` : ''}`;
    },
  };
}
