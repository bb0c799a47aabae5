/**
 * Which permission each client API route needs (any one of those listed);
 * /health and /livez are open to probes. A route missing here needs "admin":
 * a new endpoint is closed until it is given its permission.
 */
import { isReadStatement } from '../store/statement-guard';
import type { Permission } from './auth';

const ROUTES: Record<string, Permission[] | 'open'> = {
  'GET /health': 'open',
  'GET /livez': 'open',
  'GET /readyz': ['ready', 'status'],
  'GET /status': ['status'],
  'GET /metrics': ['status'],
  'GET /cluster/nodes': ['status'],
  'DELETE /cluster/nodes/*': ['admin'],
  'POST /cluster/recover': ['admin'],
  'GET /ui': 'open',
  'GET /ui/': ['status'],
  'GET /ui/overview': ['status'],
  'POST /db/execute': ['execute'],
  'POST /db/query': ['query'],
  'GET /db/query': ['query'],
  'GET /db/backup': ['backup'],
  'POST /db/load': ['load'],
  // a session serves locks and keys alike
  'POST /session': ['lock', 'kv'],
  'POST /session/*': ['lock', 'kv'],
  'GET /session/*': ['lock', 'kv'],
  'DELETE /session/*': ['lock', 'kv'],
  'POST /lock/*': ['lock'],
  'GET /lock/*': ['lock'],
  'GET /lock-tokens': ['lock'],
  'POST /lock-tokens': ['lock'],
  'GET /kv/*': ['kv'],
  'PUT /kv/*': ['kv'],
  'DELETE /kv/*': ['kv'],
  'POST /gandalf/command': ['route'],
  'POST /gandalf/event': ['route'],
  'GET /gandalf/events': ['route'],
  'GET /gandalf/connector-types': ['route'],
  'GET /gandalf/admission': ['route', 'status'],
  // PUT and DELETE /gandalf/connector-types/*: admin
};

/** The permissions that allow `route` ("POST /db/execute"); `body`: the parsed request, for /db/request. */
export function permissionsFor(route: string, body: unknown): Permission[] | 'open' {
  if (route === 'POST /db/request') {
    const reads =
      Array.isArray(body) && body.every((s) => isReadStatement(typeof s === 'string' ? s : Array.isArray(s) && typeof s[0] === 'string' ? s[0] : ''));
    return reads ? ['query'] : ['execute'];
  }
  return ROUTES[route] ?? ['admin'];
}
