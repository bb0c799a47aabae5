/**
 * The cluster mutex, sessions and the key/value container over HTTP:
 *   POST /session?ttl=10s                 open a session        -> {session, ttl_ms}
 *   POST /session/ID/keepalive            keep it alive         -> {session, ttl_ms}
 *   GET /session/ID, DELETE /session/ID
 *   POST /lock/NAME/acquire?timeout=30s&session=ID   (timeout=0: try once)
 *   POST /lock/NAME/release?session=ID[&token=N]
 *   GET  /lock/NAME
 *   GET /kv/KEY, GET /kv/PREFIX?prefix, GET /kv/KEY?watch[&prefix][&from=REV] (server-sent events)
 *   PUT /kv/KEY {"value": "...", "session"?: ID, "prev_revision"?: N}
 *   DELETE /kv/KEY[?prefix][&prev_revision=N]
 * Reads take ?level=none|weak|strong like /db/query. Keys under `gandalf/` are
 * the node's own tables: 403 forbidden to write or delete here (a prefix
 * delete that would reach them too), and the secrets' hashes are never shown.
 */
import type * as http from 'node:http';
import { parseDuration } from '../config/settings';
import { sleep, systemClock, type Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { isHiddenKey, isReservedKey, prefixReachesReserved, RESERVED_PREFIX } from '../core/reserved-keys';
import { DEFAULT_SESSION_TTL_MS, WATCH_POLL_MS, type Coordination } from '../replication/coordination';
import type { KvEntry, KvEvent } from '../replication/system-state';
import type { RouteRequest, Routes } from './http-server';

type Level = 'none' | 'weak' | 'strong';
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
const MAX_LOCK_TIMEOUT_MS = 3_600_000;

const RESERVED_WRITE = `keys under ${RESERVED_PREFIX} are the node\u2019s own tables (tenants, secrets, connector types): change them with /gandalf/tenants, /gandalf/secrets and /gandalf/connector-types`;

function reserved(message: string): never {
  throw new GandalfError('forbidden', message);
}

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function level(req: RouteRequest): Level {
  const l = req.url.searchParams.get('level') ?? 'weak';
  if (l !== 'none' && l !== 'weak' && l !== 'strong') invalid('level must be one of none, weak, strong');
  return l;
}

function flag(req: RouteRequest, name: string): boolean {
  if (!req.url.searchParams.has(name)) return false;
  const v = req.url.searchParams.get(name)!.toLowerCase();
  return v !== 'false' && v !== '0';
}

function durationParam(req: RouteRequest, name: string, fallback: number, max: number): number {
  const raw = req.url.searchParams.get(name);
  if (raw === null) return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined || ms > max) invalid(`${name} must be a duration such as 500ms, 10s or 2m (at most ${max} ms)`);
  return ms;
}

function intParam(raw: unknown, name: string): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) invalid(`${name} must be a non-negative integer`);
  return n;
}

function requireName(rest: string, what: string): string {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(rest)) invalid(`${what} name must be 1-128 characters of A-Z, a-z, 0-9, "_", "." and "-"`);
  return rest;
}

function kvJson(kv: KvEntry): Record<string, unknown> {
  return {
    key: kv.key,
    value: kv.value,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    session: kv.session ?? null,
  };
}

export function coordinationRoutes(coordination: () => Coordination, clock: Clock = systemClock): Routes {
  const session = (req: RouteRequest): string => {
    const s = req.url.searchParams.get('session');
    if (!s) invalid('the session parameter is required (POST /session opens one)');
    return s;
  };

  return {
    'POST /session': async (req) => ({
      status: 200,
      body: await coordination().openSession(durationParam(req, 'ttl', DEFAULT_SESSION_TTL_MS, 3_600_000)),
    }),
    'POST /session/*': async (req) => {
      const m = /^([A-Za-z0-9_-]{1,64})\/keepalive$/.exec(req.rest);
      if (!m) invalid('use POST /session/ID/keepalive');
      return { status: 200, body: await coordination().keepAlive(m[1]!) };
    },
    'GET /session/*': async (req) => {
      const s = await coordination().session(req.rest, level(req));
      if (!s) throw new GandalfError('unknown_session', `session ${req.rest} does not exist (expired or closed)`);
      return { status: 200, body: { session: s.id, node: s.node, ttl_ms: s.ttlMs, locks: s.locks, keys: s.keys } };
    },
    'DELETE /session/*': async (req) => {
      await coordination().closeSession(req.rest);
      return { status: 200, body: { session: req.rest, closed: true } };
    },

    'POST /lock/*': async (req) => {
      const m = /^(.+)\/(acquire|release)$/.exec(req.rest);
      if (!m) invalid('use POST /lock/NAME/acquire or POST /lock/NAME/release');
      const name = requireName(m[1]!, 'lock');
      const c = coordination();
      if (m[2] === 'release') {
        await c.release(name, session(req), intParam(req.url.searchParams.get('token'), 'token'));
        return { status: 200, body: { lock: name, released: true } };
      }
      const timeout = durationParam(req, 'timeout', DEFAULT_LOCK_TIMEOUT_MS, MAX_LOCK_TIMEOUT_MS);
      let sid = req.url.searchParams.get('session');
      let created = false;
      if (!sid) {
        sid = (await c.openSession(durationParam(req, 'ttl', DEFAULT_SESSION_TTL_MS, 3_600_000))).session;
        created = true;
      }
      try {
        const token = await c.acquire(name, sid, timeout);
        return { status: 200, body: { lock: name, session: sid, token, session_created: created } };
      } catch (err) {
        if (created) await c.closeSession(sid).catch(() => undefined);
        throw err;
      }
    },
    // the fencing token counter: read it, or raise it (a cluster restored from a backup keeps tokens increasing)
    'GET /lock-tokens': async (req) => ({ status: 200, body: { last_token: await coordination().lastToken(level(req)) } }),
    'POST /lock-tokens': async (req) => {
      const n = intParam((req.body as { at_least?: unknown } | undefined)?.at_least, 'at_least');
      if (n === undefined) invalid('body must be JSON {"at_least": N}');
      return { status: 200, body: { last_token: await coordination().tokensAtLeast(n) } };
    },
    'GET /lock/*': async (req) => {
      const name = requireName(req.rest, 'lock');
      const l = await coordination().lock(name, level(req));
      return {
        status: 200,
        body: {
          lock: name,
          held: l.holder !== undefined,
          holder: l.holder ? { session: l.holder.session, node: l.holder.node, token: l.holder.token } : null,
          waiters: l.waiters.length,
          last_token: l.lastToken,
        },
      };
    },

    'GET /kv/*': async (req) => {
      const c = coordination();
      if (flag(req, 'watch')) return { status: 200, body: null, stream: (res) => watch(c, req, res, clock) };
      if (flag(req, 'prefix')) {
        const { kvs: all, revision } = await c.list(req.rest, level(req));
        const kvs = all.filter((kv) => !isHiddenKey(kv.key));
        return { status: 200, body: { kvs: kvs.map(kvJson), count: kvs.length, revision } };
      }
      if (req.rest === '') invalid('name a key: GET /kv/KEY (or list with GET /kv/PREFIX?prefix)');
      if (isHiddenKey(req.rest)) reserved('the secrets\u2019 hashes are not shown: GET /gandalf/secrets lists them');
      const kv = await c.get(req.rest, level(req));
      if (!kv) throw new GandalfError('key_not_found', `key ${JSON.stringify(req.rest)} does not exist`);
      return { status: 200, body: kvJson(kv) };
    },
    'PUT /kv/*': async (req) => {
      if (req.rest === '') invalid('name a key: PUT /kv/KEY');
      if (isReservedKey(req.rest)) reserved(RESERVED_WRITE);
      const body = req.body as { value?: unknown; session?: unknown; prev_revision?: unknown } | undefined;
      if (!body || typeof body !== 'object' || typeof body.value !== 'string')
        invalid('body must be JSON {"value": "<string>", "session"?: ID, "prev_revision"?: N}');
      if (body.session !== undefined && typeof body.session !== 'string') invalid('session must be a string');
      const prev = intParam(body.prev_revision ?? req.url.searchParams.get('prev_revision'), 'prev_revision');
      const result = await coordination().put(req.rest, body.value, {
        ...(typeof body.session === 'string' ? { session: body.session } : {}),
        ...(prev !== undefined ? { prevRevision: prev } : {}),
      });
      return { status: 200, body: { key: req.rest, revision: (result as { revision?: number }).revision } };
    },
    'DELETE /kv/*': async (req) => {
      const prefix = flag(req, 'prefix');
      if (req.rest === '' && !prefix) invalid('name a key: DELETE /kv/KEY (or DELETE /kv/PREFIX?prefix)');
      if (prefix ? prefixReachesReserved(req.rest) : isReservedKey(req.rest)) reserved(RESERVED_WRITE);
      const prev = intParam(req.url.searchParams.get('prev_revision'), 'prev_revision');
      const result = await coordination().delete(req.rest, { prefix, ...(prev !== undefined ? { prevRevision: prev } : {}) });
      const r = result as { revision?: number; deleted?: number };
      return { status: 200, body: { key: req.rest, deleted: r.deleted ?? 0, revision: r.revision } };
    },
  };
}

/** Server-sent events: `id` is the revision, so EventSource's Last-Event-ID resumes exactly after the last one seen. */
async function watch(c: Coordination, req: RouteRequest, res: http.ServerResponse, clock: Clock): Promise<void> {
  const prefix = flag(req, 'prefix');
  const header = req.raw.headers['last-event-id'];
  // Events after `from`: ?from=N starts at revision N (inclusive), Last-Event-ID is the last one seen, neither: from now on.
  const start = intParam(req.url.searchParams.get('from'), 'from');
  const lastSeen = intParam(typeof header === 'string' ? header : undefined, 'Last-Event-ID');
  let from = start !== undefined ? Math.max(0, start - 1) : (lastSeen ?? (await c.list(req.rest, 'weak')).revision);
  let open = true;
  const gone = new Promise<null>((resolve) =>
    res.on('close', () => {
      open = false;
      resolve(null);
    }),
  );
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.write(`: watching ${prefix ? 'prefix' : 'key'} ${JSON.stringify(req.rest)} after revision ${from}\n\n`);
  while (open && !c.stopped) {
    let got: { events: KvEvent[]; revision: number } | null;
    try {
      // A client that goes away ends the stream at once, not when the poll returns.
      got = await Promise.race([c.events(from, { key: req.rest, prefix }, WATCH_POLL_MS), gone]);
      if (!got) break;
    } catch (err) {
      const e = err instanceof GandalfError ? { code: err.code, message: err.message } : { code: 'internal', message: (err as Error).message };
      res.write(`event: error\ndata: ${JSON.stringify(e)}\n\n`);
      if (e.code === 'compacted' || e.code === 'invalid_request') break;
      await sleep(clock, 500);
      continue;
    }
    for (const ev of got.events) {
      from = ev.revision;
      if (isHiddenKey(ev.key)) continue;
      res.write(
        `id: ${ev.revision}\nevent: ${ev.type}\ndata: ${JSON.stringify({ key: ev.key, value: ev.value ?? null, revision: ev.revision, mod_revision: ev.modRevision })}\n\n`,
      );
    }
    if (got.events.length === 0) res.write(': keepalive\n\n');
  }
  res.end();
}
