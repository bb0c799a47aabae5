/**
 * WebRTC through node-datachannel (libdatachannel). Its prebuilt addon exists
 * for linux x64 and arm64 only; `loadNativeRtc` throws elsewhere, or when the
 * addon is missing (e.g. inside a single executable without it), and the
 * caller falls back to werift.
 */
import type * as NdcModule from 'node-datachannel';
import { BaseConnection, withTimeout } from './rtc-connection';
import {
  GATHER_TIMEOUT_MS,
  LOW_WATER,
  filterCandidates,
  type ChannelKind,
  type RtcChannel,
  type RtcFactory,
  type RtcOptions,
} from './rtc';

type Ndc = typeof NdcModule;
type NdcPeer = NdcModule.PeerConnection;
type NdcChannel = NdcModule.DataChannel;

class NativeChannel implements RtcChannel {
  constructor(
    readonly kind: ChannelKind,
    private readonly dc: NdcChannel,
  ) {
    dc.setBufferedAmountLowThreshold(LOW_WATER);
  }
  send(data: Uint8Array): void {
    this.dc.sendMessageBinary(data);
  }
  bufferedAmount(): number {
    return this.dc.bufferedAmount();
  }
  onDrain(listener: () => void): void {
    this.dc.onBufferedAmountLow(listener);
  }
  onMessage(listener: (data: Uint8Array) => void): void {
    this.dc.onMessage((msg) => {
      if (typeof msg === 'string') listener(Buffer.from(msg, 'utf8'));
      else listener(msg instanceof ArrayBuffer ? new Uint8Array(msg) : (msg as Uint8Array));
    });
  }
}

class NativeConnection extends BaseConnection {
  private released = false;
  constructor(readonly pc: NdcPeer) {
    super();
    pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') this.closed(`peer connection ${state}`);
    });
  }
  adopt(dc: NdcChannel): void {
    const kind: ChannelKind | undefined = dc.getLabel() === 'reliable' ? 'reliable' : dc.getLabel() === 'datagram' ? 'datagram' : undefined;
    if (!kind) {
      dc.close();
      return;
    }
    dc.onClosed(() => this.closed(`${kind} channel closed`));
    dc.onError((err) => this.closed(`${kind} channel error: ${err}`));
    const open = () => this.channelOpen(new NativeChannel(kind, dc));
    if (dc.isOpen()) open();
    else dc.onOpen(open);
  }
  remoteFingerprint(): string | undefined {
    try {
      const fp = this.pc.remoteFingerprint();
      return fp?.value ? fp.value.toUpperCase() : undefined;
    } catch {
      return undefined;
    }
  }
  protected release(): void {
    if (this.released) return;
    this.released = true;
    try {
      this.pc.close();
    } catch {
      /* already closed */
    }
  }
}

function gathered(pc: NdcPeer): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      pc.onGatheringStateChange((state) => {
        if (state === 'complete') resolve(pc.localDescription()!.sdp);
      });
    }),
    GATHER_TIMEOUT_MS,
    'ICE gathering',
  );
}

export async function loadNativeRtc(): Promise<RtcFactory> {
  const mod = (await import('node-datachannel')) as Ndc & { default?: Ndc };
  const ndc: Ndc = mod.PeerConnection ? mod : mod.default!;
  if (typeof ndc?.PeerConnection !== 'function') throw new Error('node-datachannel loaded without PeerConnection');
  let counter = 0;
  const create = (options: RtcOptions) => {
    const bind = options.iceAddresses.length === 1 && options.iceAddresses[0] !== '0.0.0.0' ? options.iceAddresses[0] : undefined;
    const pc = new ndc.PeerConnection(`gandalf-${++counter}`, {
      iceServers: options.iceServers,
      ...(bind ? { bindAddress: bind } : {}),
      enableIceTcp: false,
    });
    return new NativeConnection(pc);
  };
  return {
    name: 'native',
    async offer(options) {
      const connection = create(options);
      const sdp = gathered(connection.pc);
      connection.adopt(connection.pc.createDataChannel('reliable', {}));
      connection.adopt(connection.pc.createDataChannel('datagram', { unordered: true, maxRetransmits: 0 }));
      connection.pc.setLocalDescription();
      try {
        return { connection, sdp: filterCandidates(await sdp, options.iceAddresses) };
      } catch (err) {
        connection.close();
        throw err;
      }
    },
    async answer(options, offerSdp) {
      const connection = create(options);
      connection.pc.onDataChannel((dc) => connection.adopt(dc));
      const sdp = gathered(connection.pc);
      try {
        connection.pc.setRemoteDescription(offerSdp, 'offer');
        return { connection, sdp: filterCandidates(await sdp, options.iceAddresses) };
      } catch (err) {
        connection.close();
        throw err;
      }
    },
    async complete(connection, answerSdp) {
      (connection as NativeConnection).pc.setRemoteDescription(answerSdp, 'answer');
    },
  };
}
