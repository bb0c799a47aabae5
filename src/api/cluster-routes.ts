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
}

/** DELETE /cluster/nodes/ID[?force]: takes a board out of the cluster for good (client API, permission admin). */
export function clusterAdminRoutes(admin: ClusterAdmin): Routes {
  return {
    'DELETE /cluster/nodes/*': async (req) => {
      if (req.rest === '' || req.rest.includes('/')) throw new GandalfError('invalid_request', 'name the board: DELETE /cluster/nodes/ID');
      const force = req.url.searchParams.has('force') && req.url.searchParams.get('force') !== 'false';
      return { status: 200, body: await admin.removeNode(req.rest, { force }) };
    },
  };
}

export function signalRoutes(receiver: SignalReceiver): Routes {
  return { 'POST /cluster/signal': async (req) => offerReply(await receiver.acceptOffer(req.body)) };
}
