/**
 * The mesh: authenticated WebRTC links to peers, by node id. It connects
 * (offer over the peer's mgmt endpoint), accepts offers (the mgmt HTTP route
 * hands them to `acceptOffer`), resolves glare, replaces a stale link when a
 * peer reconnects, and dispatches received messages to topic subscribers.
 * Which peers to connect to is decided upstream (discovery, membership).
 *
 * When a known peer's mgmt endpoint cannot be reached, the offer travels
 * through a peer both are linked to instead (topic "signal", one hop): the
 * relay forwards the signed offer to the target and the signed answer back.
 * Offer and answer are authenticated end to end by their MACs, so a relay
 * cannot alter them; it only forwards between its own authenticated links.
 */
import type { Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { WireMessage } from './frames';
import { PeerLink, type LinkStats } from './peer-link';
import { sdpFingerprint, type ChannelKind, type RtcChannel, type RtcConnection, type RtcFactory, type RtcOptions } from './rtc';
import { SIGNAL_VERSION, parseSignal, type SignalAnswer, type SignalAuth, type SignalOffer, type SignalRejection } from './signaling';

export interface MeshSelf {
  id: string;
  /** Our mgmt endpoint as peers should reach it, e.g. http://10.0.0.5:8421. */
  endpoint: string;
}

export interface PeerView {
  id: string;
  endpoint: string;
  /** The peer's WebRTC implementation ("native" or "werift"). */
  impl: string;
  since: number;
  stats: LinkStats;
}

export interface HttpReply {
  status: number;
  body: unknown;
}

/** Why an offer was refused: the signal check's codes and the mesh's own. */
export type OfferRefusal = SignalRejection['code'] | 'starting' | 'stopping' | 'self' | 'removed' | 'wrong_node' | 'glare';

/** What `acceptOffer` decided; the API layer maps it to an HTTP reply. */
export type OfferOutcome =
  | { ok: true; answer: SignalAnswer }
  | { ok: false; code: OfferRefusal; message: string; /** Our clock, with `stale`, so the dialer can retry on it. */ serverTime?: number };

export interface MeshOptions {
  self: MeshSelf;
  rtc: RtcFactory;
  rtcOptions: RtcOptions;
  auth: SignalAuth;
  /** POSTs a signal to `${endpoint}/cluster/signal` and returns the reply. */
  postSignal: (endpoint: string, offer: SignalOffer) => Promise<HttpReply>;
  logger: Logger;
  clock: Clock;
}

type TopicHandler = (from: string, body: unknown) => void;

export const SIGNAL_TOPIC = 'signal';
/** Relays tried, one after the other, when the target's endpoint is unreachable. */
export const MAX_RELAYS_TRIED = 3;
export const RELAY_TIMEOUT_MS = 10_000;

/** Messages of the "signal" topic. */
type RelayMessage =
  | { kind: 'relay-offer'; to: string; hops: number; offer: unknown }
  | { kind: 'relay-reply'; to: string; hops: number; re: string; status: number; body: unknown };

function parseRelay(body: unknown): RelayMessage | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const m = body as Record<string, unknown>;
  if (typeof m.to !== 'string' || m.to.length > 128 || typeof m.hops !== 'number' || !Number.isInteger(m.hops) || m.hops < 0 || m.hops > 1) return undefined;
  if (m.kind === 'relay-offer' && typeof m.offer === 'object') return m as unknown as RelayMessage;
  if (m.kind === 'relay-reply' && typeof m.re === 'string' && typeof m.status === 'number') return m as unknown as RelayMessage;
  return undefined;
}

/** Totals over every link this node has had, for metrics; `signalsRefused`: offers refused by the cookie check. */
export type MeshTotals = LinkStats & { signalsRefused: number };

export class Mesh {
  private readonly links = new Map<string, { link: PeerLink; since: number }>();
  private readonly banned = new Set<string>();
  /** Counters of links that are gone (those of live links are added in totals()). */
  private readonly retired: MeshTotals = {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    badFrames: 0,
    datagramsDropped: 0,
    signalsRefused: 0,
  };
  private readonly outgoing = new Map<string, Promise<string>>();
  private readonly topics = new Map<string, TopicHandler>();
  private readonly upListeners: ((peer: PeerView) => void)[] = [];
  private readonly downListeners: ((id: string, reason: string) => void)[] = [];
  /** Per endpoint: their clock minus ours, learned from a "stale" rejection. */
  private readonly skew = new Map<string, number>();
  /** Relayed offers of ours awaiting their reply, by offer nonce. */
  private readonly relayWaiters = new Map<string, (reply: HttpReply) => void>();
  private stopped = false;

  constructor(private readonly options: MeshOptions) {
    this.topics.set(SIGNAL_TOPIC, (from, body) => this.onRelayMessage(from, body));
  }

  get self(): MeshSelf {
    return this.options.self;
  }

  get implementation(): string {
    return this.options.rtc.name;
  }

  /** Registers the handler of `topic`; a second handler for one topic is a bug and refused. */
  subscribe(topic: string, handler: TopicHandler): void {
    if (this.topics.has(topic)) throw new Error(`mesh: topic ${topic} already has a handler`);
    this.topics.set(topic, handler);
  }

  onPeerUp(listener: (peer: PeerView) => void): void {
    this.upListeners.push(listener);
  }

  onPeerDown(listener: (id: string, reason: string) => void): void {
    this.downListeners.push(listener);
  }

  /** Queues a message to a connected peer; false if not connected or dropped. */
  send(kind: ChannelKind, to: string, topic: string, body: unknown): boolean {
    const entry = this.links.get(to);
    return entry ? entry.link.send(kind, { topic, body }) : false;
  }

  /**
   * Bytes waiting to go to a peer on a channel (undefined when not connected).
   * A reliable backlog above RELIABLE_QUEUE_BYTES closes the link, so bulk
   * senders (snapshots, catch-up) pace themselves on this.
   */
  backlog(to: string, kind: ChannelKind): number | undefined {
    return this.links.get(to)?.link.backlog(kind);
  }

  isConnected(id: string): boolean {
    return this.links.has(id);
  }

  peers(): PeerView[] {
    return [...this.links.values()].map(({ link, since }) => ({
      id: link.peerId,
      endpoint: link.endpoint,
      impl: link.remoteImpl,
      since,
      stats: link.stats,
    }));
  }

  /** Refuses `id` from now on (it was removed from the cluster): its link closes, its offers get 403 `removed`. */
  ban(id: string): void {
    this.banned.add(id);
    this.links.get(id)?.link.close('removed from the cluster');
  }

  isBanned(id: string): boolean {
    return this.banned.has(id);
  }

  /** Counters summed over every link this node has had (monotonic, for Prometheus counters). */
  totals(): MeshTotals {
    const sum = { ...this.retired };
    for (const { link } of this.links.values()) add(sum, link.stats);
    return sum;
  }

  private retire(link: PeerLink): void {
    add(this.retired, link.stats);
  }

  /**
   * Connects to the node at `endpoint` (its mgmt URL) and returns its id.
   * `expectedId` (when known, e.g. from membership) guards against an endpoint
   * that now hosts another node. Concurrent calls for the same target share one attempt.
   */
  connect(endpoint: string, expectedId?: string): Promise<string> {
    const key = expectedId ?? endpoint;
    let attempt = this.outgoing.get(key);
    if (!attempt) {
      // One fresh retry when WebRTC itself failed (a timeout on a starved board, a
      // lost answer); a refusal by the peer or our own shutdown is final.
      attempt = this.dial(endpoint, expectedId)
        .catch((err: unknown) => {
          if (this.stopped || err instanceof GandalfError) throw err;
          this.options.logger.debug('connection attempt failed; retrying once', { endpoint, err: err as Error });
          return this.dial(endpoint, expectedId);
        })
        .finally(() => this.outgoing.delete(key));
      this.outgoing.set(key, attempt);
    }
    return attempt;
  }

  private async dial(endpoint: string, expectedId: string | undefined): Promise<string> {
    if (this.stopped) throw new GandalfError('stopping', 'the node is stopping');
    const { rtc, rtcOptions, auth, self } = this.options;
    const { connection, sdp } = await rtc.offer(rtcOptions);
    try {
      let reply: HttpReply | undefined;
      let offer: SignalOffer | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        offer = auth.sign<SignalOffer>({
          v: SIGNAL_VERSION,
          kind: 'offer',
          from: self.id,
          to: expectedId ?? '',
          cluster: auth.cluster,
          endpoint: self.endpoint,
          impl: rtc.name,
          ts: this.options.clock.now() + (this.skew.get(endpoint) ?? 0),
          nonce: auth.nonce(),
          sdp,
        });
        reply = await this.deliverOffer(endpoint, expectedId, offer);
        const body = reply.body as { code?: string; server_time?: unknown } | undefined;
        // The peer's clock differs by more than the window (boards without RTC): retry once on its time.
        if (reply.status !== 200 && body?.code === 'stale' && typeof body.server_time === 'number' && attempt === 0) {
          this.skew.set(endpoint, body.server_time - this.options.clock.now());
          continue;
        }
        break;
      }
      if (reply!.status !== 200) {
        const body = reply!.body as { code?: string; message?: string } | undefined;
        throw new GandalfError('peer_rejected', `${endpoint} refused the connection (${reply!.status} ${body?.code ?? ''}): ${body?.message ?? ''}`);
      }
      const answer = parseSignal(reply!.body, 'answer');
      if ('code' in answer) throw new GandalfError('peer_rejected', `${endpoint} sent an invalid answer: ${answer.message}`);
      const rejected = auth.verify(answer, offer!.nonce);
      if (rejected) throw new GandalfError('peer_rejected', `answer from ${endpoint} rejected: ${rejected.message}`);
      if (answer.from === self.id) throw new GandalfError('peer_rejected', `${endpoint} is this node itself`);
      if (expectedId && answer.from !== expectedId) {
        throw new GandalfError('peer_rejected', `${endpoint} is now node ${answer.from}, not ${expectedId}`);
      }
      await rtc.complete(connection, answer.sdp);
      const channels = await connection.ready;
      this.adopt(answer as SignalAnswer, connection, channels);
      return answer.from;
    } catch (err) {
      connection.close();
      throw err;
    }
  }

  /** Sends an offer to the peer's endpoint, or through a relay when the endpoint is unreachable. */
  private async deliverOffer(endpoint: string, expectedId: string | undefined, offer: SignalOffer): Promise<HttpReply> {
    try {
      return await this.options.postSignal(endpoint, offer);
    } catch (err) {
      const relays = expectedId ? [...this.links.keys()].filter((id) => id !== expectedId).slice(0, MAX_RELAYS_TRIED) : [];
      if (relays.length === 0) throw new GandalfError('peer_unreachable', `${endpoint} is unreachable: ${(err as Error).message}`);
      this.options.logger.debug('endpoint unreachable; relaying the offer', { endpoint, peer: expectedId, err: err as Error });
      for (const relay of relays) {
        const reply = await this.relayOffer(relay, expectedId!, offer);
        if (reply) return reply;
      }
      throw new GandalfError('peer_unreachable', `${endpoint} is unreachable, directly and through ${relays.length} relay(s): ${(err as Error).message}`);
    }
  }

  private relayOffer(relay: string, to: string, offer: SignalOffer): Promise<HttpReply | undefined> {
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimeout(() => {
        this.relayWaiters.delete(offer.nonce);
        resolve(undefined);
      }, RELAY_TIMEOUT_MS);
      timer.unref?.();
      this.relayWaiters.set(offer.nonce, (reply) => {
        this.options.clock.clearTimeout(timer);
        this.relayWaiters.delete(offer.nonce);
        resolve(reply);
      });
      const message: RelayMessage = { kind: 'relay-offer', to, hops: 0, offer };
      if (!this.send('reliable', relay, SIGNAL_TOPIC, message)) {
        this.options.clock.clearTimeout(timer);
        this.relayWaiters.delete(offer.nonce);
        resolve(undefined);
      }
    });
  }

  private onRelayMessage(from: string, body: unknown): void {
    const message = parseRelay(body);
    if (!message) {
      this.options.logger.debug('dropped a malformed signal relay message', { from });
      return;
    }
    if (message.to !== this.options.self.id) {
      // Forward once, along our own links only.
      if (message.hops === 0) this.send('reliable', message.to, SIGNAL_TOPIC, { ...message, hops: 1 });
      return;
    }
    if (message.kind === 'relay-reply') {
      this.relayWaiters.get(message.re)?.({ status: message.status, body: message.body });
      return;
    }
    const offer = message.offer as { from?: unknown; nonce?: unknown };
    void this.acceptOffer(message.offer).then((outcome) => {
      if (typeof offer.from !== 'string' || typeof offer.nonce !== 'string') return;
      // A relayed reply says only accepted (200) or refused (409); the body carries the code.
      const reply = outcome.ok
        ? { status: 200, body: outcome.answer }
        : {
            status: 409,
            body: { code: outcome.code, message: outcome.message, ...(outcome.serverTime === undefined ? {} : { server_time: outcome.serverTime }) },
          };
      const back: RelayMessage = { kind: 'relay-reply', to: offer.from, hops: 0, re: offer.nonce, status: reply.status, body: reply.body };
      // Straight back if linked to the originator, else through the relay it came from.
      if (!this.send('reliable', offer.from, SIGNAL_TOPIC, back)) this.send('reliable', from, SIGNAL_TOPIC, back);
    });
  }

  /** Handles an offer (from `POST /cluster/signal` or a relay): the signed answer, or why it was refused. */
  async acceptOffer(body: unknown): Promise<OfferOutcome> {
    const refuse = (code: OfferRefusal, message: string, serverTime?: number): OfferOutcome => ({
      ok: false,
      code,
      message,
      ...(serverTime === undefined ? {} : { serverTime }),
    });
    if (this.stopped) return refuse('stopping', 'the node is stopping');
    const offer = parseSignal(body, 'offer');
    if ('code' in offer) return refuse(offer.code, offer.message);
    const { auth, self, rtc, rtcOptions } = this.options;
    const rejected = auth.verify(offer);
    if (rejected) {
      this.retired.signalsRefused++;
      this.options.logger.warn('refused a signal', { from: offer.from, endpoint: offer.endpoint, code: rejected.code });
      return refuse(rejected.code, rejected.message, rejected.code === 'stale' ? this.options.clock.now() : undefined);
    }
    if (offer.from === self.id) return refuse('self', 'an offer from this node itself');
    if (this.banned.has(offer.from)) {
      this.retired.signalsRefused++;
      return refuse('removed', `node ${offer.from} was removed from this cluster; wipe its data directory (a new node id) to join again`);
    }
    if (offer.to !== '' && offer.to !== self.id) return refuse('wrong_node', `this endpoint is node ${self.id}, not ${offer.to}`);
    // Glare: both sides dialing each other. The lower id's offer wins.
    if (this.outgoing.has(offer.from) && self.id < offer.from) return refuse('glare', `${self.id} is connecting to ${offer.from} already`);
    let answered: { connection: RtcConnection; sdp: string };
    try {
      answered = await rtc.answer(rtcOptions, offer.sdp);
    } catch (err) {
      return refuse('invalid_request', `cannot answer the offer: ${(err as Error).message}`);
    }
    const answer = auth.sign<SignalAnswer>({
      v: SIGNAL_VERSION,
      kind: 'answer',
      from: self.id,
      to: offer.from,
      cluster: auth.cluster,
      endpoint: self.endpoint,
      impl: rtc.name,
      ts: this.options.clock.now(),
      nonce: auth.nonce(),
      re: offer.nonce,
      sdp: answered.sdp,
    });
    answered.connection.ready.then(
      (channels) => this.adopt(offer as SignalOffer, answered.connection, channels),
      (err: Error) => this.options.logger.debug('incoming connection did not open', { from: offer.from, err }),
    );
    return { ok: true, answer };
  }

  /** Takes a connection whose channels are open; the newest connection to a peer replaces older ones. */
  private adopt(signal: SignalOffer | SignalAnswer, connection: RtcConnection, channels: { reliable: RtcChannel; datagram: RtcChannel }): void {
    const signed = sdpFingerprint(signal.sdp);
    const actual = connection.remoteFingerprint();
    if (actual !== undefined && actual !== signed) {
      this.options.logger.warn('DTLS fingerprint differs from the signed one; closing', { peer: signal.from });
      connection.close();
      return;
    }
    if (this.stopped || this.banned.has(signal.from)) {
      connection.close();
      return;
    }
    const id = signal.from;
    const link = new PeerLink(id, signal.endpoint, signal.impl, connection, channels, this.handler, this.options.logger, () => this.options.clock.now());
    const previous = this.links.get(id);
    this.links.set(id, { link, since: this.options.clock.now() });
    if (previous) {
      previous.link.close('replaced by a newer connection');
      this.retire(previous.link);
    }
    connection.onClose((reason) => {
      if (this.links.get(id)?.link !== link) return;
      this.links.delete(id);
      this.retire(link);
      this.options.logger.info('peer link down', { peer: id, reason });
      for (const l of this.downListeners) l(id, reason);
    });
    this.options.logger.info('peer link up', { peer: id, endpoint: signal.endpoint, impl: signal.impl });
    const view = this.peers().find((p) => p.id === id)!;
    for (const l of this.upListeners) l(view);
  }

  private readonly handler = {
    deliver: (from: string, message: WireMessage): boolean => {
      const handler = this.topics.get(message.topic);
      if (!handler) return false;
      handler(from, message.body);
      return true;
    },
  };

  disconnect(id: string, reason: string): void {
    this.links.get(id)?.link.close(reason);
  }

  close(): void {
    this.stopped = true;
    for (const { link } of this.links.values()) link.close('node stopping');
  }
}

function add(into: LinkStats, stats: LinkStats): void {
  for (const k of Object.keys(stats) as (keyof LinkStats)[]) into[k] += stats[k];
}
