/** GET /health and GET /status, served on the client API and the mgmt endpoint. */
import type { Routes } from './http-server';

export type Lifecycle = 'starting' | 'serving' | 'stopping';

export interface NodeInfo {
  lifecycle(): Lifecycle;
  status(): Record<string, unknown>;
}

export function nodeRoutes(node: NodeInfo): Routes {
  return {
    'GET /health': () => {
      const state = node.lifecycle();
      return { status: state === 'serving' ? 200 : 503, body: { status: state } };
    },
    'GET /status': () => ({ status: 200, body: node.status() }),
  };
}
