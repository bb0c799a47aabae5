/**
 * What routing nodes say to each other over the mesh's reliable channel: a
 * message handed to the next hop (`msg`, naming the role it leaves and the
 * role it goes to), and that hop's answer (`ack`: taken, it is mine now;
 * `nack`: refused, try another). `parseFrame` checks the frame; the envelope
 * inside is checked by `parseEnvelope`.
 */
import { isRole, type Role } from '../core/routing-identity';

export const ROUTING_TOPIC = 'route';

export type RouteFrame = { t: 'msg'; hop: number; from: Role; to: Role; env: unknown } | { t: 'ack'; hop: number } | { t: 'nack'; hop: number; reason: string };

/** The hops a message may take: a connector's to an aggregator, an aggregator's to the cluster, and back. */
export const EDGES: readonly (readonly [Role, Role])[] = [
  ['connector', 'aggregator'],
  ['aggregator', 'cluster'],
  ['cluster', 'aggregator'],
  ['aggregator', 'connector'],
];

export function isEdge(from: Role, to: Role): boolean {
  return EDGES.some(([f, t]) => f === from && t === to);
}

export function parseFrame(body: unknown): RouteFrame | string {
  if (typeof body !== 'object' || body === null) return 'not a routing frame';
  const f = body as Record<string, unknown>;
  if (typeof f.hop !== 'number' || !Number.isSafeInteger(f.hop) || f.hop < 0) return 'hop must be a non-negative integer';
  if (f.t === 'ack') return { t: 'ack', hop: f.hop };
  if (f.t === 'nack') return { t: 'nack', hop: f.hop, reason: typeof f.reason === 'string' ? f.reason.slice(0, 200) : 'refused' };
  if (f.t !== 'msg') return 'unknown frame type';
  if (!isRole(f.from) || !isRole(f.to)) return 'from and to must be roles';
  if (!isEdge(f.from, f.to)) return `no hop from ${f.from} to ${f.to}`;
  return { t: 'msg', hop: f.hop, from: f.from, to: f.to, env: f.env };
}
