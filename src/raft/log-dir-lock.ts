/**
 * The LOCK file of a Raft log directory: one process at a time opens the log.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const LOCK = 'LOCK';

/** Take the directory's lock. LOCK holds "pid bootId": a lock left by a process that died, or by a
 * previous boot (its pid may now belong to an unrelated process), is stale and taken over. */
export function lockLogDir(dir: string): void {
  const f = path.join(dir, LOCK);
  try {
    const [pidText, boot] = fs.readFileSync(f, 'utf8').trim().split(/\s+/);
    const pid = Number(pidText);
    const sameBoot = boot === undefined || boot === bootId();
    if (pid === process.pid && sameBoot) throw new Error(`raft log ${dir} is already open in this process`);
    if (pid && sameBoot && pidAlive(pid)) throw new Error(`raft log ${dir} is in use by process ${pid}`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(f, `${process.pid} ${bootId()}\n`, { mode: 0o600 });
}

/** Remove the lock if this process holds it. */
export function unlockLogDir(dir: string): void {
  try {
    if (Number(fs.readFileSync(path.join(dir, LOCK), 'utf8').trim().split(/\s+/)[0]) === process.pid) fs.unlinkSync(path.join(dir, LOCK));
  } catch {
    /* already gone */
  }
}

let cachedBootId: string | undefined;
function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = 'unknown';
    }
  }
  return cachedBootId;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
