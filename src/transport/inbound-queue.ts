/**
 * A channel's inbound messages, held until its one listener is attached.
 *
 * A peer may send the moment its side of a connection is open, which can be
 * before this side has adopted the connection and attached its listener; a
 * WebRTC stack drops what arrives with nobody listening, which on the reliable
 * channel would be a silent gap in an ordered stream. What arrives early is
 * held (bounded: past MAX_HELD_BYTES the rest is dropped and counted) and
 * handed over, in order, right after the listener is attached (on a
 * microtask, so the adopting code finishes registering the link first).
 */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;

export class InboundQueue {
  private listener: ((data: Uint8Array) => void) | undefined;
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private draining = false;
  /** Messages dropped because they arrived early and past the bound. */
  dropped = 0;

  /** The stack calls this for every message that arrives. */
  push(data: Uint8Array): void {
    if (this.listener && !this.draining) {
      this.listener(data);
      return;
    }
    if (!this.listener && this.heldBytes + data.length > MAX_HELD_BYTES) {
      this.dropped++;
      return;
    }
    this.held.push(data);
    this.heldBytes += data.length;
  }

  /** Attaches the one listener (which must not throw); a second one is refused. */
  attach(listener: (data: Uint8Array) => void): void {
    if (this.listener) throw new Error('a channel has one message listener');
    this.listener = listener;
    if (this.held.length === 0) return;
    this.draining = true;
    queueMicrotask(() => this.drain(listener));
  }

  private drain(listener: (data: Uint8Array) => void): void {
    // Messages that arrive meanwhile queue behind the held ones, so order is kept.
    while (this.held.length > 0) {
      const next = this.held.shift()!;
      this.heldBytes -= next.length;
      listener(next);
    }
    this.draining = false;
  }
}
