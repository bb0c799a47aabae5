/**
 * What the mesh needs from a WebRTC implementation. Two implementations:
 * node-datachannel (native libdatachannel, linux x64/arm64) and werift (pure
 * TypeScript, everywhere); they interoperate, so a mesh may mix them.
 *
 * Per peer connection, two data channels:
 *   - "reliable": ordered, retransmitted (SCTP reliable). Carries everything
 *     that must arrive in order: push-pull state sync, and later consensus,
 *     locks and routing.
 *   - "datagram": unordered, maxRetransmits 0. Carries membership probes and
 *     acks: a probe answered late is worse than one lost (SWIM counts a missing
 *     ack as evidence), and head-of-line blocking behind a retransmission
 *     would turn one lost packet into a false suspicion.
 *
 * Signaling is not trickled: an offer or answer is handed over once ICE
 * gathering completed, so one HTTP round trip carries everything.
 */
export type ChannelKind = 'reliable' | 'datagram';

export interface RtcChannel {
  readonly kind: ChannelKind;
  send(data: Uint8Array): void;
  bufferedAmount(): number;
  /** Called once bufferedAmount drops to LOW_WATER after having been above it. */
  onDrain(listener: () => void): void;
  onMessage(listener: (data: Uint8Array) => void): void;
}

export interface RtcConnection {
  /** Resolves when both channels are open; rejects if the connection fails or is closed first. */
  readonly ready: Promise<{ reliable: RtcChannel; datagram: RtcChannel }>;
  /** SHA-256 fingerprint of the peer's DTLS certificate, as in SDP ("AB:CD:…"), once connected, if the stack exposes it. */
  remoteFingerprint(): string | undefined;
  /** Called once when the connection is closed or failed (by either side). */
  onClose(listener: (reason: string) => void): void;
  close(): void;
}

export interface RtcOptions {
  /** Local addresses ICE may use ("0.0.0.0" = all). Candidates elsewhere are removed from our SDP. */
  iceAddresses: string[];
  iceServers: string[];
}

export interface RtcFactory {
  readonly name: 'native' | 'werift';
  /** Creates a connection with both channels and returns it with its offer SDP (candidates gathered). */
  offer(options: RtcOptions): Promise<{ connection: RtcConnection; sdp: string }>;
  /** Accepts a remote offer and returns the connection with its answer SDP (candidates gathered). */
  answer(options: RtcOptions, offerSdp: string): Promise<{ connection: RtcConnection; sdp: string }>;
  /** Completes an offer with the remote answer. */
  complete(connection: RtcConnection, answerSdp: string): Promise<void>;
}

/** Bytes buffered in a channel above which senders stop and queue (backpressure). */
export const HIGH_WATER = 1024 * 1024;
export const LOW_WATER = 256 * 1024;
/** Time allowed for ICE gathering and for the channels to open. */
export const GATHER_TIMEOUT_MS = 10_000;
export const CONNECT_TIMEOUT_MS = 15_000;

/** The DTLS fingerprint announced in an SDP (normalized upper case), if any. */
export function sdpFingerprint(sdp: string): string | undefined {
  const m = /^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)\s*$/m.exec(sdp);
  return m ? m[1]!.toUpperCase() : undefined;
}

/**
 * Removes ICE candidates whose address is not one we may use, so a peer never
 * sends connectivity checks to an address this node did not offer (tests bind
 * ICE to 127.0.0.1; werift also lists other interfaces' addresses).
 */
export function filterCandidates(sdp: string, allowed: string[]): string {
  if (allowed.includes('0.0.0.0') || allowed.length === 0) return sdp;
  return sdp
    .split(/\r?\n/)
    .filter((line) => {
      const m = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ/.exec(line);
      return !m || allowed.includes(m[1]!);
    })
    .join('\r\n');
}
