/**
 * Authenticated signaling. A node that wants a link POSTs an offer to the
 * peer's mgmt endpoint (`POST /cluster/signal`); the answer comes back in the
 * response. Both are signed with HMAC-SHA256 keyed by the cluster cookie over
 * the sender's id, the cluster name, a timestamp, a nonce and the SDP (which
 * carries the DTLS certificate fingerprint). Both WebRTC stacks check the
 * peer's DTLS certificate against the fingerprint in the SDP they were given,
 * so a data channel only opens between holders of the cookie, and the cookie
 * itself never travels. The answer's MAC also covers the offer's nonce, so an
 * old answer cannot be replayed to a new offer.
 *
 * Without a cookie the cluster is open: messages are unsigned and only the
 * cluster name is checked (the node warns about it at start).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../core/clock';

export const SIGNAL_VERSION = 1;
/** Accepted difference between a signal's timestamp and this node's clock. */
export const DEFAULT_SKEW_WINDOW_MS = 5 * 60_000;
/** Bound of the replay cache (nonces seen within the window). */
const MAX_NONCES = 100_000;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_SDP_BYTES = 64 * 1024;

interface SignalCommon {
  v: number;
  from: string;
  /** The intended receiver's id ("" when dialling an endpoint whose node is unknown). */
  to: string;
  cluster: string;
  /** The sender's mgmt endpoint (how others reach it for signaling). */
  endpoint: string;
  /** WebRTC implementation of the sender: "native" or "werift". */
  impl: string;
  ts: number;
  nonce: string;
  sdp: string;
  mac: string;
}

export interface SignalOffer extends SignalCommon {
  kind: 'offer';
}

export interface SignalAnswer extends SignalCommon {
  kind: 'answer';
  /** Nonce of the offer this answers. */
  re: string;
}

export type SignalRejection = { code: 'unauthorized' | 'stale' | 'replayed' | 'wrong_cluster' | 'invalid_request'; message: string };

function isStr(v: unknown, max = 512): v is string {
  return typeof v === 'string' && v.length <= max;
}

/** Checks shape and bounds of an offer or answer; never throws. */
export function parseSignal(value: unknown, kind: 'offer' | 'answer'): SignalOffer | SignalAnswer | SignalRejection {
  const bad = (message: string): SignalRejection => ({ code: 'invalid_request', message });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('signal must be a JSON object');
  const s = value as Record<string, unknown>;
  if (s.v !== SIGNAL_VERSION) return bad(`unsupported signal version ${String(s.v)}`);
  if (s.kind !== kind) return bad(`expected a signal of kind ${kind}`);
  if (!isStr(s.from) || !ID_RE.test(s.from)) return bad('invalid "from" node id');
  if (!isStr(s.to) || (s.to !== '' && !ID_RE.test(s.to))) return bad('invalid "to" node id');
  if (!isStr(s.cluster, 64) || !isStr(s.endpoint) || !isStr(s.impl, 16) || !isStr(s.nonce, 64) || !isStr(s.mac, 128)) {
    return bad('missing or oversized string field');
  }
  if (typeof s.ts !== 'number' || !Number.isSafeInteger(s.ts) || s.ts < 0) return bad('invalid timestamp');
  if (!isStr(s.sdp, MAX_SDP_BYTES) || !s.sdp.startsWith('v=0')) return bad('invalid SDP');
  if (kind === 'answer' && !isStr(s.re, 64)) return bad('invalid "re" nonce');
  return s as unknown as SignalOffer | SignalAnswer;
}

function macInput(s: Omit<SignalOffer, 'mac'> | Omit<SignalAnswer, 'mac'>): string {
  const re = s.kind === 'answer' ? (s as SignalAnswer).re : '';
  return ['gandalf-signal', s.v, s.kind, s.from, s.to, s.cluster, s.endpoint, s.impl, s.ts, s.nonce, re, s.sdp].join('\n');
}

/**
 * Signs signals with the primary cookie of a keyring and accepts any cookie
 * of it, so a rack rotates its cookie board by board: first every board
 * accepts the new one, then every board signs with it, then the old one goes.
 */
export class SignalAuth {
  /** keys[0] signs; every key verifies. Empty: an open cluster. */
  private keys: Buffer[];
  private readonly seen = new Map<string, number>();

  constructor(
    cookies: string | readonly string[] | undefined,
    readonly cluster: string,
    private readonly clock: Clock,
    readonly windowMs = DEFAULT_SKEW_WINDOW_MS,
  ) {
    this.keys = toKeys(cookies);
  }

  get open(): boolean {
    return this.keys.length === 0;
  }

  /** How many cookies are accepted. */
  get keyringSize(): number {
    return this.keys.length;
  }

  /** A new keyring (the cookie file changed); an open cluster stays open and a closed one closed. */
  setCookies(cookies: readonly string[]): void {
    const keys = toKeys(cookies);
    if ((keys.length === 0) !== this.open)
      throw new Error(
        keys.length === 0 ? 'a cluster with a cookie cannot become open by a reload' : 'an open cluster cannot get a cookie by a reload; restart it',
      );
    this.keys = keys;
  }

  private mac(signal: Omit<SignalOffer, 'mac'> | Omit<SignalAnswer, 'mac'>, key: Buffer): Buffer {
    return createHmac('sha256', key).update(macInput(signal)).digest();
  }

  nonce(): string {
    return randomBytes(16).toString('hex');
  }

  sign<T extends SignalOffer | SignalAnswer>(unsigned: Omit<T, 'mac'>): T {
    const mac = this.keys.length > 0 ? this.mac(unsigned as Omit<SignalOffer, 'mac'>, this.keys[0]!).toString('hex') : '';
    return { ...unsigned, mac } as T;
  }

  /**
   * Verifies a signal's MAC and cluster. An offer must also be fresh (within
   * the window of this node's clock) and its nonce unseen; the nonce is then
   * remembered. An answer is verified against `expectRe`, the nonce of the
   * offer it answers: that binding, not its timestamp, makes it fresh, so a
   * board whose clock is off can still complete a connection.
   */
  verify(signal: SignalOffer | SignalAnswer, expectRe?: string): SignalRejection | undefined {
    if (signal.cluster !== this.cluster) {
      return { code: 'wrong_cluster', message: `signal is for cluster "${signal.cluster}", this node is in "${this.cluster}"` };
    }
    if (this.keys.length > 0) {
      const got = /^[0-9a-f]{64}$/.test(signal.mac) ? Buffer.from(signal.mac, 'hex') : Buffer.alloc(0);
      // every key is tried (no early exit), so the time taken says nothing about which one matched
      let ok = false;
      for (const key of this.keys) {
        const want = this.mac(signal, key);
        if (got.length === want.length && timingSafeEqual(got, want)) ok = true;
      }
      if (!ok) return { code: 'unauthorized', message: 'signal MAC does not verify: wrong or missing cluster cookie' };
    }
    if (expectRe !== undefined) {
      return (signal as SignalAnswer).re === expectRe ? undefined : { code: 'unauthorized', message: 'answer does not answer this offer' };
    }
    const now = this.clock.now();
    if (Math.abs(now - signal.ts) > this.windowMs) {
      return {
        code: 'stale',
        message: `signal timestamp is ${Math.round((now - signal.ts) / 1000)} s from this node's clock (window ±${this.windowMs / 1000} s)`,
      };
    }
    const key = `${signal.from}/${signal.nonce}`;
    if (this.seen.has(key)) return { code: 'replayed', message: 'signal nonce was already used' };
    this.remember(key, now);
    return undefined;
  }

  private remember(key: string, now: number): void {
    this.seen.set(key, now);
    if (this.seen.size > MAX_NONCES || this.seen.size % 1024 === 0) {
      for (const [k, t] of this.seen) {
        if (now - t > 2 * this.windowMs || this.seen.size > MAX_NONCES) this.seen.delete(k);
        else break; // insertion order = time order
      }
    }
  }
}

function toKeys(cookies: string | readonly string[] | undefined): Buffer[] {
  const list = cookies === undefined ? [] : typeof cookies === 'string' ? [cookies] : cookies;
  return list.filter((c) => c.length > 0).map((c) => Buffer.from(c, 'utf8'));
}
