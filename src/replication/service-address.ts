/**
 * The service address moves with the leader. Clients use one address (the virtual IP in production;
 * a loopback address and port here): the serving leader binds it on taking office and releases it
 * before its lease can run out; every other node leaves it alone, so a follower never answers NFS on
 * it. A new leader retries until the address is free (the old holder released it, or died and the
 * kernel closed its sockets).
 *
 * Releasing closes the listeners and every client connection: calls in flight get no answer, and the
 * clients reconnect to the address (now held by the next leader) and retransmit at once instead of
 * waiting out an RPC timeout. The `bind`/`unbind` seam is where the real VIP (ip addr add + gratuitous
 * ARP) plugs in.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log';

export interface ServiceBinding {
  /** take the address (throws EADDRINUSE while another holder has it) */
  bind(): Promise<void>;
  /** give it up: stop listening, close client connections */
  unbind(): Promise<void>;
}

export interface ServiceAddressOptions {
  binding: ServiceBinding;
  /** may this node serve now (leader, caught up, lease valid)? */
  serving: () => boolean;
  /** lease left in ms: the address is released when less than `releaseMarginMs` is left */
  leaseRemainingMs: () => number;
  releaseMarginMs: number;
  /** how often to check (ms) */
  checkMs: number;
  log: Logger;
  /** taken / released (metrics) */
  onChange?: (held: boolean) => void;
  /** called just before binding: the node takes office (new write verifier, ...) */
  onTakeOffice?: () => void;
}

export class ServiceAddress {
  private held = false;
  private busy = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastBindError = '';
  /** ms (performance.now) when the address was last taken / released */
  takenAt = 0;
  releasedAt = 0;
  takes = 0;

  constructor(private readonly o: ServiceAddressOptions) {}

  get isHeld(): boolean {
    return this.held;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.o.checkMs);
    this.timer.unref();
  }

  /** re-examine now (role change, apply progress) */
  poke(): void {
    void this.check();
  }

  private want(): boolean {
    return !this.stopped && this.o.serving() && this.o.leaseRemainingMs() > this.o.releaseMarginMs;
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    const want = this.want();
    // release as soon as the lease is nearly out: before any other node can be elected
    if (this.held && (!this.o.serving() || this.o.leaseRemainingMs() <= this.o.releaseMarginMs || this.stopped)) {
      this.busy = true;
      try {
        await this.release('lease or leadership lost');
      } finally {
        this.busy = false;
      }
      return;
    }
    if (!this.held && want) {
      this.busy = true;
      try {
        this.o.onTakeOffice?.();
        await this.o.binding.bind();
        this.held = true;
        this.takes++;
        this.takenAt = performance.now();
        this.lastBindError = '';
        this.o.log.info({ takes: this.takes }, 'service address taken: serving NFS');
        this.o.onChange?.(true);
      } catch (e) {
        const msg = (e as Error).message;
        if (msg !== this.lastBindError) this.o.log.warn({ err: msg }, 'service address not free yet; retrying');
        this.lastBindError = msg;
      } finally {
        this.busy = false;
      }
      // lost the lease while binding
      if (this.held && !this.want()) void this.check();
    }
  }

  private async release(why: string): Promise<void> {
    if (!this.held) return;
    this.held = false;
    this.releasedAt = performance.now();
    try {
      await this.o.binding.unbind();
    } finally {
      this.o.log.info({ why }, 'service address released: not serving');
      this.o.onChange?.(false);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (let i = 0; this.busy && i < 400; i++) await new Promise((r) => setTimeout(r, 5));
    await this.release('stopping');
  }
}
