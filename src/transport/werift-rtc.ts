/** WebRTC through werift: pure TypeScript, runs on every architecture. */
import type * as WeriftModule from 'werift';
import { systemClock, type Clock } from '../core/clock';
import { InboundQueue } from './inbound-queue';
import { BaseConnection, withTimeout } from './rtc-connection';
import { GATHER_TIMEOUT_MS, LOW_WATER, filterCandidates, type ChannelKind, type RtcChannel, type RtcFactory, type RtcOptions } from './rtc';

type Werift = typeof WeriftModule;
type WPeer = WeriftModule.RTCPeerConnection;
type WChannel = WeriftModule.RTCDataChannel;

class WeriftChannel implements RtcChannel {
  private readonly inbound = new InboundQueue();
  constructor(
    readonly kind: ChannelKind,
    private readonly dc: WChannel,
  ) {
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onMessage.subscribe((msg) => this.inbound.push(typeof msg === 'string' ? Buffer.from(msg, 'utf8') : msg));
  }
  send(data: Uint8Array): void {
    this.dc.send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  bufferedAmount(): number {
    return this.dc.bufferedAmount;
  }
  onDrain(listener: () => void): void {
    this.dc.bufferedAmountLow.subscribe(() => listener());
  }
  onMessage(listener: (data: Uint8Array) => void): void {
    this.inbound.attach(listener);
  }
}

class WeriftConnection extends BaseConnection {
  private released = false;
  constructor(
    readonly pc: WPeer,
    clock: Clock,
  ) {
    super(clock);
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'failed' || state === 'closed') this.closed(`peer connection ${state}`);
    });
  }
  adopt(dc: WChannel): void {
    const kind: ChannelKind | undefined = dc.label === 'reliable' ? 'reliable' : dc.label === 'datagram' ? 'datagram' : undefined;
    if (!kind) {
      dc.close();
      return;
    }
    // The channel listens from the start (messages are held until the link attaches).
    const channel = new WeriftChannel(kind, dc);
    dc.stateChanged.subscribe((state) => {
      if (state === 'open') this.channelOpen(channel);
      if (state === 'closed') this.closed(`${kind} channel closed`);
    });
    if (dc.readyState === 'open') this.channelOpen(channel);
  }
  remoteFingerprint(): string | undefined {
    // werift checks the peer's DTLS certificate against the remote SDP's fingerprint itself.
    return undefined;
  }
  protected release(): void {
    if (this.released) return;
    this.released = true;
    this.pc.close().catch(() => {});
  }
}

async function gathered(clock: Clock, pc: WPeer): Promise<string> {
  if (pc.iceGatheringState !== 'complete') {
    await withTimeout(
      clock,
      new Promise<void>((resolve) => {
        pc.iceGatheringStateChange.subscribe((state) => {
          if (state === 'complete') resolve();
        });
      }),
      GATHER_TIMEOUT_MS,
      'ICE gathering',
    );
  }
  return pc.localDescription!.sdp;
}

export async function loadWeriftRtc(clock: Clock = systemClock): Promise<RtcFactory> {
  const w: Werift = await import('werift');
  const create = (options: RtcOptions) => {
    const specific = options.iceAddresses.filter((a) => a !== '0.0.0.0');
    const loopbackOnly = specific.length > 0 && specific.every((a) => a.startsWith('127.'));
    const pc = new w.RTCPeerConnection({
      iceServers: options.iceServers.map((urls) => ({ urls })),
      iceUseIpv6: false,
      ...(specific.length === 1 ? { iceInterfaceAddresses: { udp4: specific[0]! } } : {}),
      // Loopback is not gathered by default; tests bind ICE to it.
      ...(loopbackOnly ? { iceAdditionalHostAddresses: specific } : {}),
      ...(specific.length > 0 ? { iceFilterCandidatePair: (pair) => specific.includes(pair.localCandidate.host) } : {}),
    });
    return new WeriftConnection(pc, clock);
  };
  return {
    name: 'werift',
    async offer(options) {
      const connection = create(options);
      try {
        connection.adopt(connection.pc.createDataChannel('reliable', { ordered: true }));
        connection.adopt(connection.pc.createDataChannel('datagram', { ordered: false, maxRetransmits: 0 }));
        await connection.pc.setLocalDescription(await connection.pc.createOffer());
        return { connection, sdp: filterCandidates(await gathered(clock, connection.pc), options.iceAddresses) };
      } catch (err) {
        connection.close();
        throw err;
      }
    },
    async answer(options, offerSdp) {
      const connection = create(options);
      connection.pc.onDataChannel.subscribe((dc) => connection.adopt(dc));
      try {
        await connection.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
        await connection.pc.setLocalDescription(await connection.pc.createAnswer());
        return { connection, sdp: filterCandidates(await gathered(clock, connection.pc), options.iceAddresses) };
      } catch (err) {
        connection.close();
        throw err;
      }
    },
    async complete(connection, answerSdp) {
      await (connection as WeriftConnection).pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    },
  };
}
