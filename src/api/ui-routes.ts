/**
 * The live dashboard at /ui/ (client API, permission "status"): one static
 * page (src/api/ui-page.ts, no build step, no framework) that polls
 * GET /ui/overview every second.
 */
import type { Routes } from './http-server';
import { DASHBOARD_HTML } from './ui-page';

export interface OverviewNode {
  'node-id': string;
  endpoint: string;
  state: string;
  arch: string;
  transport: string;
  'rtt-ms': number | null;
}

/** What the page shows; counters are cumulative (the page turns them into rates). */
export interface Overview {
  node: string;
  version: string;
  cluster: string;
  time: number;
  nodes: OverviewNode[];
  /** Peers this board has a mesh link to. */
  links: string[];
  groups: { group: string; state: string; leader: string | null; voters: string[]; applied_index: number; size_bytes?: number }[];
  locks: { name: string; holder: { node: string; token: number } | null; waiters: number }[];
  counters: { writes: number; reads: number };
  errors: { time: string; level: string; msg: string }[];
}

export function uiRoutes(overview: () => Promise<Overview>): Routes {
  const page = Buffer.from(DASHBOARD_HTML, 'utf8');
  return {
    'GET /ui': () => ({ status: 308, body: null, headers: { location: '/ui/' } }),
    'GET /ui/': () => ({
      status: 200,
      body: undefined,
      stream: async (res) => {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': page.length,
          'cache-control': 'no-cache',
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        });
        res.end(page);
      },
    }),
    'GET /ui/overview': async () => ({ status: 200, body: await overview(), headers: { 'cache-control': 'no-store' } }),
  };
}
