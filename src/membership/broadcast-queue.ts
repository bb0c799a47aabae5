/**
 * Dissemination: the updates waiting to be piggybacked on outgoing messages.
 * It holds at most one update per member (a newer one replaces the older,
 * whose news it supersedes) and hands out the least-sent, then newest, first.
 * Each update is sent at most `limit` times, then dropped; with the limit
 * growing as log(n), an update reaches every member with high probability.
 */
import type { MemberUpdate } from './messages';

interface Entry {
  update: MemberUpdate;
  transmits: number;
  /** Insertion order: higher is newer. */
  order: number;
}

export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private counter = 0;

  get size(): number {
    return this.entries.size;
  }

  /** Queues `update`, replacing any queued update about the same member. */
  enqueue(update: MemberUpdate): void {
    this.entries.set(update.id, { update, transmits: 0, order: this.counter++ });
  }

  /** Up to `max` updates for one message; each counts as sent once and is dropped after `limit` sends. */
  take(max: number, limit: number): MemberUpdate[] {
    if (max <= 0) return [];
    const chosen = [...this.entries.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order).slice(0, max);
    for (const entry of chosen) {
      entry.transmits++;
      if (entry.transmits >= limit) this.entries.delete(entry.update.id);
    }
    return chosen.map((e) => e.update);
  }
}
