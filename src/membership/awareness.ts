/**
 * Lifeguard local health ("awareness"): how much this node distrusts its own
 * view. A node that is slow (overloaded CPU, starved network) misses acks and
 * nacks that healthy nodes would get; instead of accusing the members it probes,
 * it raises its score, and every probe timeout and interval is multiplied by
 * score + 1, so it waits longer before suspecting anyone.
 *
 *   +1 per missed nack, +1 for a failed probe nobody could help with,
 *   +1 for each suspicion of this node it had to refute, -1 per successful probe.
 */
export class Awareness {
  private score = 0;

  /** The score stays within [0, maxMultiplier - 1]. */
  constructor(private readonly maxMultiplier: number) {}

  get value(): number {
    return this.score;
  }

  applyDelta(delta: number): void {
    this.score = Math.min(this.maxMultiplier - 1, Math.max(0, this.score + delta));
  }

  /** `ms` stretched by the current health: ms * (score + 1). */
  scale(ms: number): number {
    return ms * (this.score + 1);
  }
}
