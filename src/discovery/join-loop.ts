/**
 * Manual formation (`--join ENDPOINT,…`): keeps trying to connect to each
 * endpoint with exponential backoff and jitter, for as long as the node runs.
 * One failure never ends the retrying; after a success the loop only checks
 * that the link still stands and dials again when it is gone (e.g. the seed
 * restarted).
 */
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';

export const JOIN_BACKOFF_MIN_MS = 1000;
export const JOIN_BACKOFF_MAX_MS = 30_000;
/** How often a joined endpoint is checked for its link still being up. */
export const JOIN_RECHECK_MS = 5000;

export interface JoinLoopOptions {
  endpoints: string[];
  /** Dials an endpoint; resolves with the peer's node id. */
  connect: (endpoint: string) => Promise<string>;
  /** Whether a link to that node id is up. */
  isConnected: (id: string) => boolean;
  clock: Clock;
  random: () => number;
  logger: Logger;
}

export class JoinLoop {
  private readonly timers = new Map<string, TimerHandle>();
  private stopped = true;

  constructor(private readonly options: JoinLoopOptions) {}

  start(): void {
    this.stopped = false;
    for (const endpoint of this.options.endpoints) this.schedule(endpoint, 0, 0, undefined);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) this.options.clock.clearTimeout(t);
    this.timers.clear();
  }

  private schedule(endpoint: string, delayMs: number, failures: number, joinedId: string | undefined): void {
    if (this.stopped) return;
    const timer = this.options.clock.setTimeout(() => void this.attempt(endpoint, failures, joinedId), delayMs);
    timer.unref?.();
    this.timers.set(endpoint, timer);
  }

  private async attempt(endpoint: string, failures: number, joinedId: string | undefined): Promise<void> {
    if (this.stopped) return;
    if (joinedId !== undefined && this.options.isConnected(joinedId)) {
      this.schedule(endpoint, JOIN_RECHECK_MS, 0, joinedId);
      return;
    }
    try {
      const id = await this.options.connect(endpoint);
      if (failures > 0 || joinedId === undefined) this.options.logger.info('joined through endpoint', { endpoint, peer: id });
      this.schedule(endpoint, JOIN_RECHECK_MS, 0, id);
    } catch (err) {
      const backoff = Math.min(JOIN_BACKOFF_MAX_MS, JOIN_BACKOFF_MIN_MS * 2 ** Math.min(failures, 10));
      const delay = Math.round(backoff * (0.5 + this.options.random() / 2));
      this.options.logger[failures === 0 ? 'warn' : 'debug']('join attempt failed; retrying', { endpoint, inMs: delay, err: err as Error });
      this.schedule(endpoint, delay, failures + 1, undefined);
    }
  }
}
