/**
 * Cluster endpoints. On the mgmt endpoint: POST /cluster/signal (WebRTC
 * signaling between nodes; authenticated by the signal's own MAC, see
 * transport/signaling.ts) and GET /cluster/nodes. On the client API:
 * GET /cluster/nodes.
 */
import { GandalfError } from '../core/errors';
import type { OfferOutcome, OfferRefusal } from '../transport/mesh';
import type { RouteResponse, Routes } from './http-server';

/** One row of GET /cluster/nodes: FlowG's shape, extended. */
export interface NodeView {
  'node-id': string;
  endpoint: string;
  state: string;
  incarnation: number;
  arch: string;
  transport: string;
  'rtt-ms': number | null;
}

export interface ClusterView {
  nodes(): NodeView[];
}

export interface SignalReceiver {
  acceptOffer(body: unknown): Promise<OfferOutcome>;
}

const REFUSAL_STATUS: Record<OfferRefusal, number> = {
  invalid_request: 400,
  unauthorized: 401,
  stale: 401,
  replayed: 401,
  wrong_cluster: 403,
  removed: 403,
  self: 409,
  wrong_node: 409,
  glare: 409,
  starting: 503,
  stopping: 503,
};

/** The HTTP reply to an offer: the signed answer, or the refusal with its code (and our clock, for `stale`). */
export function offerReply(outcome: OfferOutcome): RouteResponse {
  if (outcome.ok) return { status: 200, body: outcome.answer };
  const body = { code: outcome.code, message: outcome.message, ...(outcome.serverTime === undefined ? {} : { server_time: outcome.serverTime }) };
  return { status: REFUSAL_STATUS[outcome.code], body };
}

export function clusterViewRoutes(cluster: ClusterView): Routes {
  return { 'GET /cluster/nodes': () => ({ status: 200, body: { nodes: cluster.nodes() } }) };
}

export interface ClusterAdmin {
  removeNode(id: string, options: { force?: boolean }): Promise<{ removed: string; groups: string[] }>;
  recoverGroup(group: string, options: { survivors?: string[]; force?: boolean }): Promise<object>;
}

/** The body of POST /cluster/recover: `{"group": "system" | "db.NAME", "survivors"?: [board ids], "force"?: bool}`. */
function recoverRequest(body: unknown): { group: string; survivors?: string[]; force?: boolean } {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new GandalfError('invalid_request', 'send {"group": "system" or "db.NAME"}');
  const unknown = Object.keys(b).filter((k) => !['group', 'survivors', 'force'].includes(k));
  if (unknown.length > 0) throw new GandalfError('invalid_request', `unknown field(s): ${unknown.join(', ')}`);
  if (typeof b.group !== 'string' || !(b.group === 'system' || b.group.startsWith('db.')))
    throw new GandalfError('invalid_request', '"group" must be "system" or "db.NAME", as in GET /status');
  if (b.survivors !== undefined && (!Array.isArray(b.survivors) || !b.survivors.every((s) => typeof s === 'string')))
    throw new GandalfError('invalid_request', '"survivors" must be a list of board ids');
  if (b.force !== undefined && typeof b.force !== 'boolean') throw new GandalfError('invalid_request', '"force" must be true or false');
  return { group: b.group, ...(b.survivors ? { survivors: b.survivors as string[] } : {}), ...(b.force !== undefined ? { force: b.force } : {}) };
}

/** DELETE /cluster/nodes/ID[?force]: takes a board out of the cluster for good; POST /cluster/recover re-forms a group that lost its quorum for good (client API, permission admin). */
export function clusterAdminRoutes(admin: ClusterAdmin): Routes {
  return {
    'DELETE /cluster/nodes/*': async (req) => {
      if (req.rest === '' || req.rest.includes('/')) throw new GandalfError('invalid_request', 'name the board: DELETE /cluster/nodes/ID');
      const force = req.url.searchParams.has('force') && req.url.searchParams.get('force') !== 'false';
      return { status: 200, body: await admin.removeNode(req.rest, { force }) };
    },
    'POST /cluster/recover': async (req) => {
      const { group, ...options } = recoverRequest(req.body);
      return { status: 200, body: await admin.recoverGroup(group, options) };
    },
  };
}

export function signalRoutes(receiver: SignalReceiver): Routes {
  return { 'POST /cluster/signal': async (req) => offerReply(await receiver.acceptOffer(req.body)) };
}
