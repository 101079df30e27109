/**
 * RaftNode's tick clock: counts the ticks it feeds the core and remembers when (performance.now())
 * the recent ones happened, to turn the core's leader lease, which ends at a tick, into
 * milliseconds.
 */
import { performance } from 'node:perf_hooks';

export interface TickClockOptions {
  tickMs: number;
  /** the lease length in ticks (RaftCoreOptions.leaseTicks) */
  leaseTicks: number;
  /** taken off the lease end in milliseconds */
  leaseSafetyMs: number;
  /** how many recent tick times are kept */
  remember: number;
}

export class TickClock {
  private ticks = 0;
  private readonly tickTimes: Float64Array;
  private startMs = 0;

  constructor(private readonly o: TickClockOptions) {
    this.tickTimes = new Float64Array(o.remember);
  }

  /** tick 0 is now */
  start(): void {
    this.startMs = performance.now();
  }

  tick(): void {
    this.ticks++;
    this.tickTimes[this.ticks % this.tickTimes.length] = performance.now();
  }

  /** End in milliseconds of a lease valid until tick `until` (RaftCore.leaseValidUntil()), with the
   * safety margin taken off: it runs leaseTicks from the tick its heartbeat round was sent at; 0 if
   * that tick's time is no longer known. */
  leaseEndMs(until: number): number {
    const sentTick = until - this.o.leaseTicks;
    const t0 = this.tickTime(sentTick);
    if (t0 === undefined) return 0;
    return t0 + this.o.leaseTicks * this.o.tickMs - this.o.leaseSafetyMs;
  }

  private tickTime(k: number): number | undefined {
    if (k === 0) return this.startMs;
    if (k < 0 || k > this.ticks || k <= this.ticks - this.tickTimes.length) return undefined;
    return this.tickTimes[k % this.tickTimes.length];
  }
}
