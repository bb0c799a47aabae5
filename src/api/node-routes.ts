/** GET /health, /livez, /readyz and /status, served on the client API and the mgmt endpoint. */
import type { Routes } from './http-server';

export type Lifecycle = 'starting' | 'serving' | 'stopping';

export interface Readiness {
  systemLeader: string | null;
  databases: { name: string; leader: string | null }[];
}

export interface NodeInfo {
  lifecycle(): Lifecycle;
  status(): Record<string, unknown>;
  /** Undefined until replication runs. */
  readiness(): Readiness | undefined;
}

export function nodeRoutes(node: NodeInfo): Routes {
  return {
    'GET /health': () => {
      const state = node.lifecycle();
      return { status: state === 'serving' ? 200 : 503, body: { status: state } };
    },
    // the process is alive and its event loop answers: never fails for a missing leader (what a restart would not fix)
    'GET /livez': () => ({ status: 200, body: { status: 'alive', state: node.lifecycle() } }),
    // rqlite's semantics: 503 until this node serves, reaches the system group's leader and every database it
    // holds a replica of has a reachable leader; ?noleader asks only whether it serves
    'GET /readyz': (req) => {
      const state = node.lifecycle();
      const checks: Record<string, string> = { node: state === 'serving' ? 'ok' : state };
      if (!req.url.searchParams.has('noleader')) {
        const r = node.readiness();
        checks.leader = r?.systemLeader ? 'ok' : 'no reachable leader of the system group';
        for (const db of r?.databases ?? []) checks[`db.${db.name}`] = db.leader ? 'ok' : 'no reachable leader';
      }
      const ready = Object.values(checks).every((v) => v === 'ok');
      return { status: ready ? 200 : 503, body: { ready, checks } };
    },
    'GET /status': () => ({ status: 200, body: node.status() }),
  };
}
