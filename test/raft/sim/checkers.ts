/**
 * Safety checkers, fed by the node drivers as the simulation runs (every step), and the end-of-run
 * checks. A violation throws SimViolation, which stops the run.
 *
 * - election safety: at most one leader per term;
 * - log matching: an entry (index, term) written to any node's log always has the same content and the
 *   same whole log prefix before it (a chained hash of the prefix is compared);
 * - leader completeness: a leader of term T has, at the start of its term, every entry known to be
 *   committed in a term below T (an entry applied by a node whose term was b was committed in a term
 *   <= b, so it must be in the log of every leader of a term > b);
 * - state machine safety: no two nodes apply different entries at one index (and applied histories,
 *   as chained hashes, agree; snapshots installed match the history at their index);
 * - commit durability (DRBD protocol C): when an entry is first applied anywhere, a majority of the
 *   voters of the membership it was committed under has it on disk (durable log or snapshot);
 * - acknowledged writes: at the end each is executed exactly once by every live member.
 */
import { Ready, Role } from '../../../src/raft/types';
import type { CoreStatus } from './core-adapter';
import { SimViolation } from './node';
import { StorageListener } from './storage';

interface Committed {
  term: number;
  hash: number;
  /** smallest term of a node that applied it: it was committed in a term <= bound */
  bound: number;
  node: number;
}

interface LeaderLog {
  term: number;
  node: number;
  /** log as the leader had it when it appended its first entry of its term */
  offset: number;
  terms: number[];
}

export class Checkers implements StorageListener {
  readonly leaders = new Map<number, number>();
  private prefixes = new Map<number, Map<number, { prefix: number; node: number }>>();
  private committed = new Map<number, Committed>();
  private chains = new Map<number, { chain: number; node: number }>();
  private leaderLogs: LeaderLog[] = [];
  private recordedLeaderTerms = new Set<number>();
  checks = 0;

  violation(kind: string, msg: string): never {
    throw new SimViolation(kind, msg);
  }

  // ---- election safety ----
  observeStatus(node: number, st: CoreStatus): void {
    this.checks++;
    if (st.role !== Role.Leader) return;
    const other = this.leaders.get(st.term);
    if (other === undefined) this.leaders.set(st.term, node);
    else if (other !== node) this.violation('election-safety', `two leaders in term ${st.term}: n${other} and n${node}`);
  }

  // ---- log matching ----
  entryWritten(node: number, index: number, term: number, prefixHash: number): void {
    this.checks++;
    let byTerm = this.prefixes.get(index);
    if (!byTerm) {
      byTerm = new Map();
      this.prefixes.set(index, byTerm);
    }
    const seen = byTerm.get(term);
    if (!seen) byTerm.set(term, { prefix: prefixHash, node });
    else if (seen.prefix !== prefixHash) {
      this.violation(
        'log-matching',
        `n${node} wrote entry ${index}/${term} whose content or log prefix differs from the one n${seen.node} wrote`,
      );
    }
  }

  prefixOf(index: number, term: number): number | undefined {
    return this.prefixes.get(index)?.get(term)?.prefix;
  }

  // ---- leader completeness ----
  /** a Ready from a leader holding entries of its own term: record its log the first time */
  observeReady(node: number, rd: Ready, st: CoreStatus, writtenLog: () => { offset: number; terms: number[] }): void {
    if (st.role !== Role.Leader || this.recordedLeaderTerms.has(st.term)) return;
    const own = rd.entries.findIndex((e) => e.term === st.term);
    if (own < 0) return;
    const log = writtenLog();
    this.recordedLeaderTerms.add(st.term);
    // the log the leader had before its first own-term entry: written log + this Ready's earlier entries
    const first = rd.entries[own].index;
    const terms = log.terms.slice(0, Math.max(0, first - log.offset));
    for (let k = 0; k < own; k++) {
      const e = rd.entries[k];
      const at = e.index - log.offset;
      if (at < 0) continue;
      terms.length = at;
      terms.push(e.term);
    }
    terms.length = Math.min(terms.length, Math.max(0, first - log.offset));
    const ll: LeaderLog = { term: st.term, node, offset: log.offset, terms };
    this.leaderLogs.push(ll);
    for (const [index, c] of this.committed) {
      if (c.bound < ll.term) this.checkLeaderHas(ll, index, c);
    }
  }

  private checkLeaderHas(ll: LeaderLog, index: number, c: Committed): void {
    if (index < ll.offset) return; // compacted into the leader's snapshot
    const t = ll.terms[index - ll.offset];
    if (t !== c.term) {
      this.violation(
        'leader-completeness',
        `leader n${ll.node} of term ${ll.term} started its term with ${t === undefined ? 'no entry' : `term ${t}`} at index ${index}, ` +
          `but entry ${index}/${c.term} was committed (applied by n${c.node} in term ${c.bound})`,
      );
    }
  }

  // ---- state machine safety ----
  /** first application of an entry anywhere: is it durable on a majority of the voters? */
  isNewCommit(index: number): boolean {
    return !this.committed.has(index);
  }

  observeApply(node: number, index: number, term: number, dataHash: number, chain: number, applierTerm: number): void {
    this.checks++;
    const c = this.committed.get(index);
    if (!c) {
      const nc = { term, hash: dataHash, bound: applierTerm, node };
      this.committed.set(index, nc);
      for (const ll of this.leaderLogs) if (ll.term > applierTerm) this.checkLeaderHas(ll, index, nc);
    } else {
      if (c.term !== term || c.hash !== dataHash) {
        this.violation('state-machine-safety', `n${node} applied ${index}/${term} but n${c.node} applied ${index}/${c.term} (different entries at one index)`);
      }
      if (applierTerm < c.bound) {
        c.bound = applierTerm;
        c.node = node;
        for (const ll of this.leaderLogs) if (ll.term > applierTerm) this.checkLeaderHas(ll, index, c);
      }
    }
    this.checkChain(node, index, chain, 'applied');
  }

  observeSnapshotInstalled(node: number, index: number, chain: number): void {
    this.checkChain(node, index, chain, 'installed a snapshot of');
  }

  private checkChain(node: number, index: number, chain: number, what: string): void {
    const seen = this.chains.get(index);
    if (!seen) this.chains.set(index, { chain, node });
    else if (seen.chain !== chain) {
      this.violation('state-machine-safety', `n${node} ${what} a history up to ${index} that differs from n${seen.node}'s`);
    }
  }

  stats(): { terms: number; leaders: number; committed: number } {
    return { terms: Math.max(0, ...this.leaders.keys()), leaders: this.leaders.size, committed: this.committed.size };
  }
}
