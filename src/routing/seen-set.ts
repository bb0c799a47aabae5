/**
 * Remembers keys (message uuids) for a while, so a message that arrives twice
 * (a hop retried after its acknowledgement was lost, two routes that met) is
 * handled once. Bounded in time (each key until its expiry) and in count (the
 * oldest are forgotten first), so a flood cannot grow it past `max`.
 */
import type { Clock } from '../core/clock';

export class SeenSet {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly max: number,
  ) {}

  /** True when `key` was seen and has not expired; else remembers it for `ttlMs` and returns false. */
  check(key: string, ttlMs: number): boolean {
    const now = this.clock.monotonic();
    const expiry = this.until.get(key);
    if (expiry !== undefined && expiry > now) return true;
    this.until.delete(key);
    this.until.set(key, now + ttlMs);
    this.prune(now);
    return false;
  }

  has(key: string): boolean {
    const expiry = this.until.get(key);
    return expiry !== undefined && expiry > this.clock.monotonic();
  }

  get size(): number {
    return this.until.size;
  }

  /** Drops expired keys from the oldest end (insertion order, which is nearly expiry order), and the oldest past `max`. */
  private prune(now: number): void {
    for (const [key, expiry] of this.until) {
      if (this.until.size <= this.max && expiry > now) break;
      this.until.delete(key);
    }
  }
}
