/**
 * Cluster endpoints. On the mgmt endpoint: POST /cluster/signal (WebRTC
 * signaling between nodes; authenticated by the signal's own MAC, see
 * transport/signaling.ts) and GET /cluster/nodes. On the client API:
 * GET /cluster/nodes.
 */
import { GandalfError } from '../core/errors';
import type { Routes } from './http-server';

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
  acceptOffer(body: unknown): Promise<{ status: number; body: unknown }>;
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
  return { 'POST /cluster/signal': (req) => receiver.acceptOffer(req.body) };
}
