/**
 * members.json in the data dir: the members' addresses as last replicated (a `members` log entry),
 * so a restarted node reaches members added after its config file was written. Written atomically
 * (temp file, fsync, rename).
 */
import * as fs from 'node:fs';
import type { ClusterMember } from './cluster-config';
import { memberFromRecord } from './cluster-admin';
import type { MemberRecord } from './op-codec';

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
