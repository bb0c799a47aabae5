/**
 * One authenticated link to a peer over its two data channels.
 *
 * Sending: messages queued in the same tick are coalesced into frames of at
 * most MAX_FRAME_BYTES, flushed on the next turn of the event loop. A channel
 * whose bufferedAmount is above HIGH_WATER gets nothing more until it drains.
 * Queues are bounded: datagrams beyond DATAGRAM_QUEUE_BYTES are dropped (they
 * are best-effort by contract); a reliable queue beyond RELIABLE_QUEUE_BYTES
 * means the peer cannot keep up, and the link is closed rather than growing
 * memory without bound (the mesh reconnects with backoff).
 *
 * Receiving: every frame is validated where it enters (frames.ts). Malformed,
 * oversized or unknown-topic frames are counted and dropped; more than
 * MAX_BAD_FRAMES of them within BAD_FRAME_WINDOW_MS closes the link.
 */
import type { Logger } from '../core/logger';
import { MAX_FRAME_BYTES, decodeFrame, encodeFrame, type WireMessage } from './frames';
import { HIGH_WATER, type ChannelKind, type RtcChannel, type RtcConnection } from './rtc';

export const RELIABLE_QUEUE_BYTES = 32 * 1024 * 1024;
export const DATAGRAM_QUEUE_BYTES = 1024 * 1024;
export const MAX_BAD_FRAMES = 20;
export const BAD_FRAME_WINDOW_MS = 60_000;

export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  badFrames: number;
  datagramsDropped: number;
}

export interface LinkHandler {
  /** A valid message arrived; returns false if its topic is unknown (counted as a bad frame). */
  deliver(from: string, message: WireMessage): boolean;
}

interface Outgoing {
  queue: WireMessage[];
  /** Estimated bytes queued (body sizes are estimated when queued). */
  bytes: number;
  scheduled: boolean;
}

function estimate(message: WireMessage): number {
  const body = message.body;
  if (body instanceof Uint8Array) return body.length + 32;
  if (typeof body === 'string') return body.length + 32;
  return JSON.stringify(body ?? null).length + 32;
}

export class PeerLink {
  readonly stats: LinkStats = {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    badFrames: 0,
    datagramsDropped: 0,
  };
  private readonly out: Record<ChannelKind, Outgoing> = {
    reliable: { queue: [], bytes: 0, scheduled: false },
    datagram: { queue: [], bytes: 0, scheduled: false },
  };
  private badFrameTimes: number[] = [];
  private lastBadLog = 0;
  private isClosed = false;

  constructor(
    readonly peerId: string,
    readonly endpoint: string,
    /** The peer's WebRTC implementation, as it announced it. */
    readonly remoteImpl: string,
    readonly connection: RtcConnection,
    private readonly channels: { reliable: RtcChannel; datagram: RtcChannel },
    private readonly handler: LinkHandler,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    for (const kind of ['reliable', 'datagram'] as const) {
      channels[kind].onMessage((data) => this.receive(data));
      channels[kind].onDrain(() => this.flush(kind));
    }
    connection.onClose(() => {
      this.isClosed = true;
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes waiting to go out on a channel: queued here plus buffered in the channel. Bulk senders pace on it. */
  backlog(kind: ChannelKind): number {
    return this.out[kind].bytes + this.channels[kind].bufferedAmount();
  }

  /** Queues a message; returns false if it was dropped (link closed, or datagram queue full). */
  send(kind: ChannelKind, message: WireMessage): boolean {
    if (this.isClosed) return false;
    const out = this.out[kind];
    const size = estimate(message);
    if (kind === 'datagram' && out.bytes + size > DATAGRAM_QUEUE_BYTES) {
      this.stats.datagramsDropped++;
      return false;
    }
    if (kind === 'reliable' && out.bytes + size > RELIABLE_QUEUE_BYTES) {
      this.close(`peer does not keep up: more than ${RELIABLE_QUEUE_BYTES} bytes queued`);
      return false;
    }
    out.queue.push(message);
    out.bytes += size;
    if (!out.scheduled) {
      out.scheduled = true;
      setImmediate(() => {
        out.scheduled = false;
        this.flush(kind);
      });
    }
    return true;
  }

  private flush(kind: ChannelKind): void {
    const out = this.out[kind];
    const channel = this.channels[kind];
    while (out.queue.length > 0 && !this.isClosed) {
      if (channel.bufferedAmount() > HIGH_WATER) return; // resumes on drain
      const batch = this.takeFrame(out);
      const frame = encodeFrame(batch);
      if (frame.length > MAX_FRAME_BYTES) {
        // One message alone is too large for any frame: the caller broke the contract.
        this.logger.error('dropped a message larger than a frame', { peer: this.peerId, topic: batch[0]!.topic, bytes: frame.length });
        continue;
      }
      try {
        channel.send(frame);
        this.stats.framesSent++;
        this.stats.bytesSent += frame.length;
        this.stats.messagesSent += batch.length;
      } catch (err) {
        this.close(`send failed: ${(err as Error).message}`);
      }
    }
  }

  /** Takes as many queued messages as fit in one frame (at least one). */
  private takeFrame(out: Outgoing): WireMessage[] {
    let bytes = 0;
    let n = 0;
    while (n < out.queue.length) {
      const size = estimate(out.queue[n]!);
      if (n > 0 && bytes + size > MAX_FRAME_BYTES * 0.9) break;
      bytes += size;
      n++;
    }
    let batch = out.queue.splice(0, n);
    out.bytes = Math.max(0, out.bytes - bytes);
    // Estimates are approximate: split until the encoded frame really fits.
    while (batch.length > 1 && encodeFrame(batch).length > MAX_FRAME_BYTES) {
      const half = Math.ceil(batch.length / 2);
      out.queue.unshift(...batch.slice(half));
      batch = batch.slice(0, half);
    }
    return batch;
  }

  private receive(data: Uint8Array): void {
    this.stats.bytesReceived += data.length;
    const result = decodeFrame(data);
    if (!result.ok) {
      this.badFrame(result.error);
      return;
    }
    this.stats.framesReceived++;
    for (const message of result.messages) {
      this.stats.messagesReceived++;
      let known: boolean;
      try {
        known = this.handler.deliver(this.peerId, message);
      } catch (err) {
        this.logger.error('message handler failed', { peer: this.peerId, topic: message.topic, err: err as Error });
        continue;
      }
      if (!known) this.badFrame(`unknown topic "${message.topic}"`);
    }
  }

  private badFrame(reason: string): void {
    const now = this.now();
    this.stats.badFrames++;
    this.badFrameTimes = this.badFrameTimes.filter((t) => now - t < BAD_FRAME_WINDOW_MS);
    this.badFrameTimes.push(now);
    if (now - this.lastBadLog > 10_000) {
      this.lastBadLog = now;
      this.logger.warn('dropped a bad frame from a peer', { peer: this.peerId, reason, badFrames: this.stats.badFrames });
    }
    if (this.badFrameTimes.length > MAX_BAD_FRAMES) {
      this.close(`${this.badFrameTimes.length} bad frames within ${BAD_FRAME_WINDOW_MS / 1000} s`);
    }
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.logger.info('closing peer link', { peer: this.peerId, reason });
    this.connection.close();
  }
}
