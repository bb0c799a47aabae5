/**
 * The wire messages of membership: a tagged union of plain JSON-able objects
 * (the transport CBOR-encodes them), and the validator that every received
 * value passes before it reaches the state machine.
 *
 *   ping       datagram  "are you alive?" to the probed member; answered by ack
 *   ping-req   datagram  "please ping `target` for me" to k helpers (indirect probe)
 *   ack        datagram  answer to a ping; a helper relays the target's ack to the requester
 *   nack       datagram  a helper's "the target did not answer me either" (Lifeguard)
 *   gossip     datagram  updates without a probe: notices to the dead, refutation replies,
 *                        leave (which also goes reliably to a few members)
 *   push-pull  reliable  a node's whole member list; answered by the receiver's own
 *
 * ping, ping-req, ack and nack carry piggybacked `updates` (dissemination).
 * Fields are never `undefined`; unknown fields of a received message are dropped.
 */
import type { MemberMeta, MemberState } from './member';

/** Longest node id accepted. */
export const MAX_ID_LENGTH = 128;
/** Longest endpoint accepted. */
export const MAX_ENDPOINT_LENGTH = 512;
/** Most meta entries a member may publish. */
export const MAX_META_ENTRIES = 32;
/** Longest meta value. */
export const MAX_META_VALUE_LENGTH = 256;
/** Meta keys: a letter or digit, then up to 63 of letters, digits, `.`, `_`, `-`. */
const META_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Most updates in one message; also the most members a push-pull carries. */
export const MAX_UPDATES = 1024;

const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];

/** One claim about one member: "`id` is in `state` at `incarnation`", as told by `by`. */
export interface MemberUpdate {
  id: string;
  endpoint: string;
  meta: MemberMeta;
  state: MemberState;
  incarnation: number;
  /** The node making the claim: the accuser of a suspicion (counts confirmations), the declarer of a death, the member itself for alive/left. */
  by: string;
}

export interface PingMessage {
  type: 'ping';
  seq: number;
  /** The node the sender means to probe; a ping for someone else is not answered. */
  target: string;
  updates: MemberUpdate[];
}

export interface PingReqMessage {
  type: 'ping-req';
  /** The requester's probe sequence number, echoed in the relayed ack or nack. */
  seq: number;
  target: string;
  updates: MemberUpdate[];
}

export interface AckMessage {
  type: 'ack';
  seq: number;
  updates: MemberUpdate[];
}

export interface NackMessage {
  type: 'nack';
  seq: number;
  updates: MemberUpdate[];
}

export interface GossipMessage {
  type: 'gossip';
  updates: MemberUpdate[];
}

export interface PushPullMessage {
  type: 'push-pull';
  /** false: the receiver answers with its own state; true: this is that answer. */
  reply: boolean;
  members: MemberUpdate[];
}

export type SwimMessage = PingMessage | PingReqMessage | AckMessage | NackMessage | GossipMessage | PushPullMessage;

export function isMemberId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_ID_LENGTH;
}

export function isEndpoint(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= MAX_ENDPOINT_LENGTH;
}

/** A copy of `value` if it is valid meta (a plain object of bounded string entries), else undefined. */
export function parseMeta(value: unknown): MemberMeta | undefined {
  if (!isPlainObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length > MAX_META_ENTRIES) return undefined;
  const meta: MemberMeta = {};
  for (const key of keys) {
    const v = value[key];
    if (!META_KEY.test(key) || typeof v !== 'string' || v.length > MAX_META_VALUE_LENGTH) return undefined;
    meta[key] = v;
  }
  return meta;
}

/** Returns the message if it is a well-formed SwimMessage (as a fresh copy holding only known fields), else undefined. Never throws. */
export function parseSwimMessage(value: unknown): SwimMessage | undefined {
  try {
    return parseMessage(value);
  } catch {
    // Only exotic inputs get here (e.g. a Proxy or a getter that throws).
    return undefined;
  }
}

function parseMessage(value: unknown): SwimMessage | undefined {
  if (!isPlainObject(value)) return undefined;
  const { type } = value;
  if (type === 'gossip') {
    const updates = parseUpdates(value.updates);
    return updates && { type, updates };
  }
  if (type === 'push-pull') {
    const members = parseUpdates(value.members);
    return members && typeof value.reply === 'boolean' ? { type, reply: value.reply, members } : undefined;
  }
  if (type !== 'ping' && type !== 'ping-req' && type !== 'ack' && type !== 'nack') return undefined;
  const { seq } = value;
  const updates = parseUpdates(value.updates);
  if (!isCount(seq) || !updates) return undefined;
  if (type === 'ack' || type === 'nack') return { type, seq: seq + 0, updates };
  const { target } = value;
  return isMemberId(target) ? { type, seq: seq + 0, target, updates } : undefined;
}

function parseUpdates(value: unknown): MemberUpdate[] | undefined {
  if (!Array.isArray(value) || value.length > MAX_UPDATES) return undefined;
  const updates: MemberUpdate[] = [];
  for (const item of value) {
    const update = parseUpdate(item);
    if (!update) return undefined;
    updates.push(update);
  }
  return updates;
}

function parseUpdate(value: unknown): MemberUpdate | undefined {
  if (!isPlainObject(value)) return undefined;
  const { id, endpoint, state, incarnation, by } = value;
  const meta = parseMeta(value.meta);
  if (!isMemberId(id) || !isEndpoint(endpoint) || !meta || !isMemberState(state) || !isCount(incarnation) || !isMemberId(by)) {
    return undefined;
  }
  return { id, endpoint, meta, state, incarnation: incarnation + 0, by };
}

function isMemberState(value: unknown): value is MemberState {
  return typeof value === 'string' && (MEMBER_STATES as readonly string[]).includes(value);
}

/** A finite, non-negative, safe integer (-0 included: callers add 0 to make it +0). */
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
