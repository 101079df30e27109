/**
 * The members' addresses as log records (`members` entries, snapshot descriptors) and as
 * members.json in the data dir: the members' addresses as last replicated (a `members` log entry),
 * so a restarted node reaches members added after its config file was written. Written atomically
 * (temp file, fsync, rename).
 */
import * as fs from 'node:fs';
import { formatHostPort, parseHostPort } from '../config';
import type { ClusterMember } from './cluster-config';
import type { MemberRecord } from './op-codec';

export function memberRecords(members: Map<number, ClusterMember>): MemberRecord[] {
  return [...members.values()]
    .sort((a, b) => a.id - b.id)
    .map((m) => ({ id: m.id, peer: formatHostPort(m.peer), snapshot: formatHostPort(m.snapshot), admin: m.admin ? formatHostPort(m.admin) : '' }));
}

export function memberFromRecord(r: MemberRecord): ClusterMember {
  return {
    id: r.id,
    peer: parseHostPort('peer', r.peer),
    snapshot: parseHostPort('snapshot', r.snapshot),
    admin: r.admin ? parseHostPort('admin', r.admin) : undefined,
  };
}

export function saveMembers(file: string, records: MemberRecord[]): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify({ members: records }, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export function loadMembers(file: string): ClusterMember[] | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const o = JSON.parse(text) as { members: MemberRecord[] };
  return o.members.map(memberFromRecord);
}
