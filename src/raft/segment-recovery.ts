/**
 * Recovery of the Raft log from its segment files at open: replay every record in order (checksums
 * and the log-matching rules checked, docs/raft-storage.md "Recovery"), rebuild the index and the
 * hard state, cut a torn tail off the newest segment, and open the segments' fds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LogCorruptionError, Segment, StorageLogger, StorageStats } from './log-storage-types';
import {
  NO_SALT_SEED,
  RecordType,
  allZero,
  anyValidRecordAfter,
  decodeBase,
  decodeEntryHead,
  decodeHardState,
  decodeSegmentHeader,
  lastNonZero,
  parseRecord,
} from './segment-format';
import { NEXT_TMP, listSegmentSeqs, segName } from './segment-files';
import { SegmentIndex } from './segment-index';
import { HardState } from './types';

export interface SegmentRecoveryOptions {
  dir: string;
  maxRecordBytes: number;
  log: StorageLogger;
  /** recoveredTornBytes is counted here */
  st: StorageStats;
  /** filled with the retained entries */
  index: SegmentIndex;
  /** filled with the segments, each with an open fd (the newest one read-write), as they are replayed
   * (so that the caller can close them if recovery throws) */
  segments: Segment[];
}

export interface RecoveredLog {
  /** the compaction base: entries start after it */
  base: { index: number; term: number };
  hardState: HardState;
}

/** Replay the segments in `dir`. Leaves no segment when there is none: the caller creates the first.
 * Throws LogCorruptionError on damage that is not a torn tail. */
export async function recoverSegments(o: SegmentRecoveryOptions): Promise<RecoveredLog> {
  const { dir, maxRecordBytes, log, st, index: idx, segments } = o;
  function corrupt(msg: string): never {
    throw new LogCorruptionError(`raft log ${dir}: ${msg}`);
  }
  let hs: HardState = { term: 0, vote: 0, commit: 0 };
  // a next segment that was being preallocated when the process stopped: never part of the log
  if (fs.existsSync(path.join(dir, NEXT_TMP))) {
    fs.rmSync(path.join(dir, NEXT_TMP), { force: true });
    log.info({ file: NEXT_TMP }, 'raft log: leftover preallocation file removed');
  }
  const seqs = listSegmentSeqs(dir);
  for (let k = 1; k < seqs.length; k++) if (seqs[k] !== seqs[k - 1] + 1) corrupt(`segment ${seqs[k - 1] + 1} missing`);

  // replay state: realBase from headers/base records; entries start after virtualBase
  let realBase = { index: 0, term: 0 };
  let vBase = { index: 0, term: 0 };
  const termOf = (i: number): number | undefined => (i === vBase.index ? vBase.term : idx.has(i) ? idx.term(i) : undefined);
  let firstSeg = true;
  let reopenPrev = false;

  for (let k = 0; k < seqs.length; k++) {
    const seq = seqs[k];
    const isLast = k === seqs.length - 1;
    const file = path.join(dir, segName(seq));
    const buf = fs.readFileSync(file);
    let off = 0;
    let records = 0;
    let zeroTail = false;
    // the header record is checked without a salt; the records after it with the seed of the salt in
    // it (version 2) or without one (version 1). A segment whose header is damaged: salt unknown,
    // the scan after the damage checks without one.
    let seed = NO_SALT_SEED;
    while (off < buf.length) {
      const r = parseRecord(buf, off, buf.length, maxRecordBytes, records === 0 ? NO_SALT_SEED : seed);
      if (!r.ok) {
        if (isLast && allZero(buf, off, buf.length)) {
          // preallocated space never written (or never reached the disk): the end of the log.
          // Nothing to cut: appends go on overwriting the zeros.
          zeroTail = true;
          break;
        }
        if (!isLast) corrupt(`segment ${seq} damaged at offset ${off} (${r.reason}) and later segments exist`);
        const later = anyValidRecordAfter(buf, off + 1, buf.length, maxRecordBytes, seed);
        if (later >= 0)
          corrupt(
            `segment ${seq} damaged at offset ${off} (${r.reason}) with valid records after it (offset ${later}); ` +
              'not cut automatically: the damage may cover acknowledged entries. Restore this node from its peers ' +
              '(move the raft directory away and re-add the node) or, if only never-synced data can be affected, truncate the segment at that offset',
          );
        const torn = lastNonZero(buf, off, buf.length) + 1 - off; // zeros after it: preallocated space
        log.warn({ segment: seq, offset: off, cutBytes: torn, fileBytes: buf.length - off, reason: r.reason }, 'raft log: torn tail truncated');
        st.recoveredTornBytes += torn;
        break;
      }
      const at = off;
      try {
        if (records === 0 && r.type !== RecordType.SegmentHeader) corrupt(`segment ${seq} does not start with a header`);
        switch (r.type) {
          case RecordType.SegmentHeader: {
            if (records !== 0) corrupt(`segment ${seq}: second header at ${at}`);
            const h = decodeSegmentHeader(buf, r.payloadStart, r.payloadEnd);
            if (h.seq !== seq) corrupt(`segment ${seq} header says ${h.seq}`);
            if (firstSeg) {
              realBase = { index: h.baseIndex, term: h.baseTerm };
              vBase = { index: h.lastIndex, term: h.lastTerm };
              idx.reset(h.lastIndex + 1);
            } else {
              const last = vBase.index + idx.length;
              if (h.lastIndex > last) corrupt(`segment ${seq} starts after index ${h.lastIndex} but the log before it ends at ${last}`);
              if (h.baseIndex !== realBase.index || h.baseTerm !== realBase.term) corrupt(`segment ${seq} header base ${h.baseIndex} != replayed base ${realBase.index}`);
              if (h.lastIndex >= vBase.index) {
                if (termOf(h.lastIndex) !== h.lastTerm) corrupt(`segment ${seq} header term mismatch at ${h.lastIndex}`);
                idx.truncateFrom(h.lastIndex + 1);
              } else {
                vBase = { index: h.lastIndex, term: h.lastTerm };
                idx.reset(h.lastIndex + 1);
              }
            }
            hs = h.hardState;
            seed = h.seed;
            segments.push({ seq, file, fd: -1, size: 0, seed });
            firstSeg = false;
            break;
          }
          case RecordType.Entry: {
            const e = decodeEntryHead(buf, r.payloadStart, r.payloadEnd);
            const last = vBase.index + idx.length;
            if (e.index <= realBase.index) corrupt(`entry ${e.index} at or below the compaction base ${realBase.index}`);
            if (e.index > last + 1) corrupt(`entry ${e.index} leaves a gap after ${last}`);
            if (e.index <= vBase.index) {
              vBase = { index: e.index - 1, term: e.prevTerm };
              idx.reset(e.index);
            } else {
              if (termOf(e.index - 1) !== e.prevTerm) corrupt(`entry ${e.index} does not follow the term of entry ${e.index - 1}`);
              idx.truncateFrom(e.index);
            }
            idx.push(e.index, e.term, seq, at, r.payloadEnd - r.payloadStart);
            break;
          }
          case RecordType.HardState:
            hs = decodeHardState(buf, r.payloadStart, r.payloadEnd);
            break;
          case RecordType.Base: {
            const b = decodeBase(buf, r.payloadStart, r.payloadEnd);
            const last = vBase.index + idx.length;
            if (b.reset) {
              realBase = vBase = { index: b.index, term: b.term };
              idx.reset(b.index + 1);
            } else if (b.index > realBase.index) {
              realBase = { index: b.index, term: b.term };
              if (b.index >= last) {
                vBase = { index: b.index, term: b.term };
                idx.reset(b.index + 1);
              } else if (b.index >= vBase.index) {
                const t = termOf(b.index);
                if (t !== b.term) corrupt(`compaction record term mismatch at ${b.index}`);
                idx.dropThrough(b.index);
                vBase = { index: b.index, term: b.term };
              }
            }
            break;
          }
        }
      } catch (e) {
        if (e instanceof LogCorruptionError) throw e;
        corrupt(`segment ${seq} record at ${at}: ${(e as Error).message}`);
      }
      records++;
      off = r.next;
    }
    if (!isLast && records === 0) corrupt(`segment ${seq} is empty and later segments exist`);
    if (isLast) {
      if (records === 0) {
        // the newest segment's header never reached the disk: it held nothing acknowledged
        log.warn({ segment: seq }, 'raft log: empty newest segment removed');
        fs.unlinkSync(file);
        reopenPrev = true;
      } else {
        const fd = fs.openSync(file, 'r+');
        if (off < buf.length && !zeroTail) {
          fs.ftruncateSync(fd, off);
          fs.fsyncSync(fd);
        }
        const s = segments[segments.length - 1];
        s.fd = fd;
        s.size = off;
      }
    } else {
      const s = segments[segments.length - 1];
      s.fd = fs.openSync(file, 'r');
      s.size = buf.length;
    }
  }
  if (vBase.index > realBase.index) corrupt(`entries ${realBase.index + 1}..${vBase.index} are missing (segment lost?)`);
  if (vBase.index < realBase.index) idx.dropThrough(realBase.index);
  if (segments.length > 0 && reopenPrev) {
    // the newest segment was removed: reopen its predecessor for appending
    const s = segments[segments.length - 1];
    fs.closeSync(s.fd);
    s.fd = fs.openSync(s.file, 'r+');
  }
  return { base: realBase, hardState: hs };
}
