/**
 * Lifeguard dynamic suspicion: a suspected member gets a long timeout to
 * refute, which shrinks as independent accusers confirm the suspicion. One
 * (possibly slow or badly connected) accuser alone waits the maximum; K
 * confirmations bring it down to the minimum.
 *
 *   min = suspicionMult * max(1, log10(n)) * probeInterval
 *   max = suspicionMaxTimeoutMult * min
 *   timeout(c) = max(min, max - (max - min) * log(c + 1) / log(K + 1))
 *   K = min(indirectChecks, n - 2)   (the other members that could confirm)
 *
 * n counts the members that are alive or suspect, this node included. The
 * max(1, …) keeps small clusters (n < 10) from getting sub-interval timeouts.
 */
import type { SwimConfig } from './config';

export interface SuspicionBounds {
  minMs: number;
  maxMs: number;
  /** K: confirmations after which the timeout is the minimum. */
  expected: number;
}

export function suspicionBounds(config: SwimConfig, liveMembers: number): SuspicionBounds {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, liveMembers)));
  const minMs = config.suspicionMult * nodeScale * config.probeIntervalMs;
  return {
    minMs,
    maxMs: config.suspicionMaxTimeoutMult * minMs,
    expected: Math.max(0, Math.min(config.indirectChecks, liveMembers - 2)),
  };
}

export function suspicionTimeout(bounds: SuspicionBounds, confirmations: number): number {
  const { minMs, maxMs, expected } = bounds;
  if (expected < 1) return minMs;
  const c = Math.min(confirmations, expected);
  return Math.max(minMs, Math.floor(maxMs - ((maxMs - minMs) * Math.log(c + 1)) / Math.log(expected + 1)));
}

/** One suspicion of one member at one incarnation. */
export class Suspicion {
  /** The accuser and every confirmer; the accuser is not a confirmation. */
  private readonly accusers = new Set<string>();

  constructor(
    readonly incarnation: number,
    private readonly startedAt: number,
    private readonly bounds: SuspicionBounds,
    accuser: string,
  ) {
    this.accusers.add(accuser);
  }

  /** Counts `by` as a confirmation; false if it had already accused (not independent). */
  confirm(by: string): boolean {
    if (this.accusers.has(by)) return false;
    this.accusers.add(by);
    return true;
  }

  get confirmations(): number {
    return this.accusers.size - 1;
  }

  /** Monotonic time at which the member is declared dead unless it refutes first. */
  deadline(): number {
    return this.startedAt + suspicionTimeout(this.bounds, this.confirmations);
  }
}
