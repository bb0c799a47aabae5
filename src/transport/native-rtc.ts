/**
 * WebRTC through node-datachannel (libdatachannel). Its prebuilt addon exists
 * for linux x64 and arm64 only; `loadNativeRtc` throws elsewhere, or when the
 * addon cannot be loaded, and the caller falls back to werift.
 *
 * Where the addon comes from: inside a single executable, the SEA asset
 * "node_datachannel.node" (scripts/runtime.mjs embeds it), written once to a
 * private cache under a name holding its SHA-256 and loaded with
 * process.dlopen; otherwise the node-datachannel package in node_modules.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as NdcModule from 'node-datachannel';
import { systemClock, type Clock } from '../core/clock';
import { runningSea } from '../core/sea';
import { InboundQueue } from './inbound-queue';
import { BaseConnection, withTimeout } from './rtc-connection';
import { GATHER_TIMEOUT_MS, LOW_WATER, filterCandidates, type ChannelKind, type RtcChannel, type RtcFactory, type RtcOptions } from './rtc';

type Ndc = typeof NdcModule;
type NdcPeer = NdcModule.PeerConnection;
type NdcChannel = NdcModule.DataChannel;

class NativeChannel implements RtcChannel {
  private readonly inbound = new InboundQueue();
  constructor(
    readonly kind: ChannelKind,
    private readonly dc: NdcChannel,
  ) {
    dc.setBufferedAmountLowThreshold(LOW_WATER);
    dc.onMessage((msg) => {
      if (typeof msg === 'string') this.inbound.push(Buffer.from(msg, 'utf8'));
      else this.inbound.push(msg instanceof ArrayBuffer ? new Uint8Array(msg) : (msg as Uint8Array));
    });
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
    this.inbound.attach(listener);
  }
}

class NativeConnection extends BaseConnection {
  private released = false;
  constructor(
    readonly pc: NdcPeer,
    clock: Clock,
  ) {
    super(clock);
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
    // The channel listens from the moment it opens (messages are held until the link attaches).
    const channel = new NativeChannel(kind, dc);
    const open = () => this.channelOpen(channel);
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

function gathered(clock: Clock, pc: NdcPeer): Promise<string> {
  return withTimeout(
    clock,
    new Promise<string>((resolve) => {
      pc.onGatheringStateChange((state) => {
        if (state === 'complete') resolve(pc.localDescription()!.sdp);
      });
    }),
    GATHER_TIMEOUT_MS,
    'ICE gathering',
  );
}

const ADDON_ASSET = 'node_datachannel.node';

/** Where an embedded addon is unpacked: $GANDALF_CACHE_DIR, else the user's cache, else the temp dir. */
function addonCacheDir(): string {
  if (process.env.GANDALF_CACHE_DIR) return process.env.GANDALF_CACHE_DIR;
  const home = process.env.XDG_CACHE_HOME ?? (process.env.HOME ? path.join(process.env.HOME, '.cache') : undefined);
  return home ? path.join(home, 'gandalf-node') : path.join(os.tmpdir(), `gandalf-node-${process.getuid?.() ?? 'user'}`);
}

/** The addon embedded in this single executable, loaded; undefined when this is no SEA or it embeds none. */
function loadEmbeddedAddon(): Ndc | undefined {
  const sea = runningSea();
  if (!sea) return undefined;
  let bytes: Buffer;
  try {
    bytes = Buffer.from(sea.getAsset(ADDON_ASSET));
  } catch {
    return undefined; // this executable embeds no addon (no prebuilt for its architecture)
  }
  const sum = createHash('sha256').update(bytes).digest('hex');
  const dir = addonCacheDir();
  const file = path.join(dir, `node_datachannel-${sum.slice(0, 16)}.node`);
  const intact = () => existsSync(file) && createHash('sha256').update(readFileSync(file)).digest('hex') === sum;
  if (!intact()) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes, { mode: 0o700 });
    renameSync(tmp, file);
    chmodSync(file, 0o700);
  }
  const module = { exports: {} as Ndc };
  process.dlopen(module, file);
  return module.exports;
}

export async function loadNativeRtc(clock: Clock = systemClock): Promise<RtcFactory> {
  let ndc = loadEmbeddedAddon();
  if (!ndc) {
    const mod = (await import('node-datachannel')) as Ndc & { default?: Ndc };
    ndc = mod.PeerConnection ? mod : mod.default!;
  }
  if (typeof ndc?.PeerConnection !== 'function') throw new Error('node-datachannel loaded without PeerConnection');
  let counter = 0;
  const create = (options: RtcOptions) => {
    const bind = options.iceAddresses.length === 1 && options.iceAddresses[0] !== '0.0.0.0' ? options.iceAddresses[0] : undefined;
    const pc = new ndc.PeerConnection(`gandalf-${++counter}`, {
      iceServers: options.iceServers,
      ...(bind ? { bindAddress: bind } : {}),
      enableIceTcp: false,
    });
    return new NativeConnection(pc, clock);
  };
  return {
    name: 'native',
    async offer(options) {
      const connection = create(options);
      const sdp = gathered(clock, connection.pc);
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
      const sdp = gathered(clock, connection.pc);
      try {
        connection.pc.setRemoteDescription(offerSdp, 'offer');
        return { connection, sdp: filterCandidates(await sdp, options.iceAddresses) };
      } catch (err) {
        connection.close();
        throw err;
      }
    },
    async complete(connection, answerSdp) {
      const native = connection as NativeConnection;
      // The connect timeout may have closed it while the answer was on its way (a starved host).
      const early = native.closeReason();
      if (early !== undefined) throw new Error(`connection closed before the answer arrived: ${early}`);
      try {
        native.pc.setRemoteDescription(answerSdp, 'answer');
      } catch (err) {
        const reason = native.closeReason();
        throw new Error(`the answer could not be applied: ${(err as Error).message}${reason ? ` (connection closed: ${reason})` : ''}`, { cause: err });
      }
    },
  };
}
