/**
 * An in-process RtcFactory: connections between factories of one process,
 * exchanged through SDP-shaped strings. Used by tests to run whole meshes
 * without sockets; it passes the same conformance suite as WebRTC.
 */
import { createHash, randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../core/clock';
import { InboundQueue } from './inbound-queue';
import { BaseConnection } from './rtc-connection';
import { sdpFingerprint, type ChannelKind, type RtcChannel, type RtcConnection, type RtcFactory } from './rtc';

const registry = new Map<string, MemoryConnection>();

class MemoryChannel implements RtcChannel {
  peer: MemoryChannel | undefined;
  private readonly inbound = new InboundQueue();
  constructor(
    readonly kind: ChannelKind,
    private readonly owner: MemoryConnection,
  ) {}
  send(data: Uint8Array): void {
    if (this.owner.isClosed) throw new Error('channel closed');
    const copy = Uint8Array.from(data);
    const peer = this.peer!;
    setImmediate(() => {
      if (!peer.owner.isClosed) peer.inbound.push(copy);
    });
  }
  bufferedAmount(): number {
    return 0;
  }
  onDrain(): void {}
  onMessage(listener: (data: Uint8Array) => void): void {
    this.inbound.attach(listener);
  }
}

class MemoryConnection extends BaseConnection {
  readonly token = randomBytes(8).toString('hex');
  readonly fingerprint = fingerprintOf(this.token);
  readonly channels = { reliable: new MemoryChannel('reliable', this), datagram: new MemoryChannel('datagram', this) };
  peer: MemoryConnection | undefined;
  isClosed = false;
  constructor(private readonly timing: Clock) {
    super(timing);
    registry.set(this.token, this);
  }
  open(): void {
    this.timing.defer(() => {
      this.channelOpen(this.channels.reliable);
      this.channelOpen(this.channels.datagram);
    });
  }
  remoteFingerprint(): string | undefined {
    return this.peer?.fingerprint;
  }
  protected release(): void {
    this.isClosed = true;
    registry.delete(this.token);
    const peer = this.peer;
    this.peer = undefined;
    if (peer && !peer.isClosed) this.timing.defer(() => peer.close());
  }
}

function fingerprintOf(token: string): string {
  return createHash('sha256').update(token).digest('hex').toUpperCase().match(/../g)!.join(':');
}

function sdpOf(c: MemoryConnection): string {
  return `v=0\r\na=memory-token:${c.token}\r\na=fingerprint:sha-256 ${c.fingerprint}\r\n`;
}

function lookup(sdp: string): MemoryConnection {
  const token = /a=memory-token:([0-9a-f]+)/.exec(sdp)?.[1];
  const c = token ? registry.get(token) : undefined;
  if (!c) throw new Error('no such in-memory offer');
  if (sdpFingerprint(sdp) !== c.fingerprint) throw new Error('fingerprint does not match');
  return c;
}

function pair(a: MemoryConnection, b: MemoryConnection): void {
  a.peer = b;
  b.peer = a;
  a.channels.reliable.peer = b.channels.reliable;
  a.channels.datagram.peer = b.channels.datagram;
  b.channels.reliable.peer = a.channels.reliable;
  b.channels.datagram.peer = a.channels.datagram;
}

export function memoryRtc(clock: Clock = systemClock): RtcFactory {
  return {
    name: 'werift',
    async offer() {
      const connection = new MemoryConnection(clock);
      return { connection, sdp: sdpOf(connection) };
    },
    async answer(_options, offerSdp) {
      const offerer = lookup(offerSdp);
      const connection = new MemoryConnection(clock);
      pair(offerer, connection);
      connection.open();
      return { connection, sdp: sdpOf(connection) };
    },
    async complete(connection: RtcConnection, answerSdp: string) {
      const answerer = lookup(answerSdp);
      if (answerer.peer !== connection) throw new Error('answer is for another offer');
      (connection as MemoryConnection).open();
    },
  };
}
