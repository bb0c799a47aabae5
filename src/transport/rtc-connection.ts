/** Bookkeeping shared by both WebRTC implementations: readiness, timeout, close listeners. */
import type { Clock, TimerHandle } from '../core/clock';
import type { RtcChannel, RtcConnection } from './rtc';
import { CONNECT_TIMEOUT_MS } from './rtc';

export abstract class BaseConnection implements RtcConnection {
  readonly ready: Promise<{ reliable: RtcChannel; datagram: RtcChannel }>;
  private resolveReady!: (channels: { reliable: RtcChannel; datagram: RtcChannel }) => void;
  private rejectReady!: (err: Error) => void;
  private readonly openChannels: Partial<Record<'reliable' | 'datagram', RtcChannel>> = {};
  private readonly closeListeners: ((reason: string) => void)[] = [];
  private closedReason: string | undefined;
  private readonly timer: TimerHandle;

  constructor(private readonly clock: Clock) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed through onClose as well
    this.timer = clock.setTimeout(() => this.closed(`channels not open after ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS);
    this.timer.unref?.();
  }

  /** Implementations call this when a channel opened. */
  protected channelOpen(channel: RtcChannel): void {
    this.openChannels[channel.kind] = channel;
    const { reliable, datagram } = this.openChannels;
    if (reliable && datagram) {
      this.clock.clearTimeout(this.timer);
      this.resolveReady({ reliable, datagram });
    }
  }

  /** Implementations call this on any close or failure; the first reason wins. */
  protected closed(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.clock.clearTimeout(this.timer);
    this.rejectReady(new Error(`connection closed: ${reason}`));
    this.release();
    for (const l of this.closeListeners.splice(0)) l(reason);
  }

  /** Frees the implementation's resources (idempotent). */
  protected abstract release(): void;
  abstract remoteFingerprint(): string | undefined;

  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== undefined) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }

  close(): void {
    this.closed('closed locally');
  }

  /** Why the connection closed, or undefined while it is open or connecting. */
  closeReason(): string | undefined {
    return this.closedReason;
  }
}

/** Waits for `done` or fails after `ms` with `what` in the message. */
export function withTimeout<T>(clock: Clock, done: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: TimerHandle | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([done, timeout]).finally(() => clock.clearTimeout(timer!));
}
