/**
 * A small HTTP server: exact-path routing, JSON bodies with a size limit,
 * errors mapped from stable codes to HTTP statuses, and a graceful close that
 * stops accepting and lets in-flight requests finish.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/settings';
import { GandalfError, type ErrorCode } from '../core/errors';
import { parseJson, toJson } from '../core/json';
import type { Logger } from '../core/logger';
import { sleep, systemClock, type Clock } from '../core/clock';

export interface RouteRequest {
  method: string;
  url: URL;
  /** Parsed JSON body (undefined when the request had none, and on raw-body routes). */
  body: unknown;
  /** The body's bytes, on routes listed in `rawBody` (empty when the request had none). */
  bytes: Buffer;
  raw: http.IncomingMessage;
  /** For a wildcard route (`"GET /kv/*"`): the decoded rest of the path after the prefix. */
  rest: string;
  /** Aborted when the client goes away before its answer (a running statement is stopped). */
  signal: AbortSignal;
}

export interface RouteResponse {
  status: number;
  body: unknown;
  /** Extra response headers (JSON answers). */
  headers?: Record<string, string>;
  /** A streaming answer (server-sent events): writes the response itself; `body` is ignored. */
  stream?: (res: http.ServerResponse) => Promise<void>;
}

export type Handler = (req: RouteRequest) => Promise<RouteResponse> | RouteResponse;

/** `"GET /status"` -> handler; `"GET /kv/*"` matches every path under /kv/ (longest prefix wins). */
export type Routes = Record<string, Handler>;

const STATUS_OF: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  body_too_large: 413,
  not_found: 404,
  unknown_database: 404,
  invalid_database_name: 400,
  statement_rejected: 400,
  disk_full: 507,
  log_failed: 503,
  corrupt_data: 500,
  stopping: 503,
  starting: 503,
  data_dir_locked: 500,
  invalid_config: 500,
  peer_rejected: 502,
  peer_unreachable: 502,
  not_leader: 503,
  no_quorum: 503,
  split_cluster: 503,
  merging: 503,
  outcome_unknown: 503,
  leader_changed: 503,
  conflict: 409,
  lock_timeout: 409,
  lock_busy: 409,
  not_holder: 409,
  unknown_session: 404,
  unknown_lock: 404,
  key_not_found: 404,
  revision_mismatch: 409,
  compacted: 410,
  query_timeout: 400,
  query_canceled: 499,
  query_failed: 500,
  database_too_large: 507,
  invalid_backup: 400,
  unauthorized: 401,
  forbidden: 403,
  internal: 500,
};

/** Error body: a stable `code`, a human `message`, and rqlite's `error` string for its clients. */
export function errorBody(code: ErrorCode, message: string): { code: ErrorCode; message: string; error: string } {
  return { code, message, error: message };
}

export interface ApiServerOptions {
  name: string;
  routes: Routes;
  logger: Logger;
  maxBodyBytes: number;
  /** Grace period for in-flight requests on close. */
  closeTimeoutMs?: number;
  /** Times the close grace period (default: the system clock). */
  clock?: Clock;
  /** Time a client has to send a whole request, headers and body (default REQUEST_TIMEOUT_MS): a trickled body is cut off like slow headers. */
  requestTimeoutMs?: number;
  /**
   * Runs before a route's handler, with the route's key, the Authorization
   * header and the parsed body; throws (`unauthorized`, `forbidden`) to refuse.
   */
  authorize?: (route: string, authorization: string | undefined, body: unknown) => Promise<void>;
  /** Routes whose body is taken as bytes (not JSON), with their own size limit: `{"POST /db/load": 256 MiB}`. */
  rawBody?: Record<string, number>;
  /** Told of every answered request, with its route ("GET /db/query", "GET /kv/*"; "unmatched" for none), for metrics. */
  observe?: { clock: Clock; answered(route: string, status: number, seconds: number): void };
  /** HTTPS with this certificate and key (PEM); with `ca`, clients must present a certificate it signed. */
  tls?: TlsFiles;
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** How often the server looks for requests past their time. */
const TIMEOUT_CHECK_MS = 1_000;

/** The client went away before its request was read or answered: nothing to answer, nothing wrong here. */
class ClientGone extends Error {}

export class ApiServer {
  private readonly server: http.Server | https.Server;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: ApiServerOptions) {
    const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    const serverOptions: http.ServerOptions = { requestTimeout, headersTimeout: requestTimeout };
    // Node 18.12+: how often request and header timeouts are checked (its default, 30 s, would let a deadline slip by that much)
    Object.assign(serverOptions, { connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, requestTimeout) });
    const tls = options.tls;
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.inFlight++;
      this.handle(req, res).finally(() => {
        this.inFlight--;
        if (this.inFlight === 0) this.idleWaiters.splice(0).forEach((w) => w());
      });
    };
    this.server = tls
      ? https.createServer({ ...serverOptions, ...secureContext(tls), requestCert: !!tls.ca, rejectUnauthorized: !!tls.ca }, onRequest)
      : http.createServer(serverOptions, onRequest);
    this.server.keepAliveTimeout = 5000;
  }

  /** New certificate, key or CA for connections from now on (the files changed); connections that are up keep theirs. */
  setTls(tls: TlsFiles): void {
    if (!(this.server instanceof https.Server)) throw new Error('this server was started without TLS');
    this.server.setSecureContext(secureContext(tls));
  }

  listen(bind: HostPort): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.server.off('listening', onListening);
        reject(new GandalfError('internal', `cannot listen on ${bind.host}:${bind.port} for the ${this.options.name}: ${err.message}`, err));
      };
      const onListening = () => {
        this.server.off('error', onError);
        const addr = this.server.address() as AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen(bind.port, bind.host);
    });
  }

  /** Stops accepting connections, waits for in-flight requests (up to the grace period), then closes the rest. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      const timeout = this.options.closeTimeoutMs ?? 10_000;
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), sleep(this.options.clock ?? systemClock, timeout)]);
    }
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const observe = this.options.observe;
    if (!observe) return this.answer(req, res, { key: 'unmatched' });
    const started = observe.clock.monotonic();
    const matched = { key: 'unmatched' };
    await this.answer(req, res, matched);
    observe.answered(matched.key, res.headersSent ? res.statusCode : 499, (observe.clock.monotonic() - started) / 1000);
  }

  /** `matched.key` is set to the route that took the request. */
  private async answer(req: http.IncomingMessage, res: http.ServerResponse, matched: { key: string }): Promise<void> {
    let response: RouteResponse;
    try {
      const url = new URL(req.url ?? '/', 'http://local');
      const method = req.method ?? 'GET';
      const { handler, rest, key } = this.route(method, url.pathname);
      if (key) matched.key = key;
      if (!handler) {
        const allowed = Object.keys(this.options.routes).filter((k) => k.endsWith(` ${url.pathname}`));
        response =
          allowed.length > 0
            ? {
                status: 405,
                body: errorBody('invalid_request', `${method} is not allowed on ${url.pathname}; use ${allowed.map((a) => a.split(' ')[0]).join(' or ')}`),
              }
            : { status: 404, body: errorBody('not_found', `no endpoint ${method} ${url.pathname}`) };
        req.resume();
      } else {
        const rawLimit = key ? this.options.rawBody?.[key] : undefined;
        const authorize = this.options.authorize;
        // a large raw body is read only for a client allowed to send it (its permission never depends on it)
        if (authorize && rawLimit !== undefined) {
          await authorize(key!, req.headers.authorization, undefined).catch((err: unknown) => {
            req.resume();
            throw err;
          });
        }
        const bytes = await readBody(req, rawLimit ?? this.options.maxBodyBytes);
        const body = rawLimit === undefined ? parseBody(bytes) : undefined;
        if (authorize && rawLimit === undefined) await authorize(key!, req.headers.authorization, body);
        const gone = new AbortController();
        const onClose = () => {
          if (!res.writableFinished) gone.abort();
        };
        res.once('close', onClose);
        try {
          response = await handler({ method, url, body, bytes: rawLimit === undefined ? EMPTY : bytes, raw: req, rest, signal: gone.signal });
        } finally {
          res.off('close', onClose);
        }
      }
    } catch (err) {
      if (err instanceof ClientGone || (err instanceof GandalfError && err.code === 'query_canceled')) {
        this.options.logger.debug('the client went away before its request was read', { url: req.url, err: err as Error });
        return;
      }
      response = this.errorResponse(err);
    }
    if (res.destroyed || req.socket.destroyed) {
      this.options.logger.debug('the client went away before its answer', { url: req.url });
      return;
    }
    if (response.stream) {
      try {
        await response.stream(res);
      } catch (err) {
        if (!res.headersSent) {
          const e = this.errorResponse(err);
          res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify(e.body));
        } else res.end();
      }
      return;
    }
    const text = toJson(response.body, jsonReplacer);
    res.writeHead(response.status, {
      ...response.headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private route(method: string, pathname: string): { handler: Handler | undefined; rest: string; key?: string } {
    const exact = this.options.routes[`${method} ${pathname}`];
    if (exact) return { handler: exact, rest: '', key: `${method} ${pathname}` };
    let best: { handler: Handler; rest: string; len: number; key: string } | undefined;
    for (const [key, handler] of Object.entries(this.options.routes)) {
      if (!key.endsWith('/*') || !key.startsWith(`${method} `)) continue;
      const prefix = key.slice(method.length + 1, -1);
      if (!pathname.startsWith(prefix) || (best && best.len >= prefix.length)) continue;
      let rest: string;
      try {
        rest = decodeURIComponent(pathname.slice(prefix.length));
      } catch {
        throw new GandalfError('invalid_request', `bad percent-encoding in ${pathname}`);
      }
      best = { handler, rest, len: prefix.length, key };
    }
    return best ? { handler: best.handler, rest: best.rest, key: best.key } : { handler: undefined, rest: '' };
  }

  private errorResponse(err: unknown): RouteResponse {
    if (err instanceof GandalfError) {
      const challenge = err.code === 'unauthorized' ? { headers: { 'www-authenticate': 'Basic realm="gandalf-node", charset="UTF-8"' } } : {};
      return { status: STATUS_OF[err.code] ?? 500, body: errorBody(err.code, err.message), ...challenge };
    }
    this.options.logger.error('request failed', { err: err as Error });
    return { status: 500, body: errorBody('internal', `internal error: ${(err as Error)?.message ?? String(err)}`) };
  }
}

/** BLOBs (Uint8Array) are sent as base64 strings, as rqlite does. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString('base64');
  }
  return value;
}

const EMPTY = Buffer.alloc(0);

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new GandalfError('body_too_large', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        req.resume();
        throw new GandalfError('body_too_large', `request body exceeds the limit of ${limit} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof GandalfError) throw err;
    throw new ClientGone((err as Error).message); // aborted, ECONNRESET: the request never arrived whole
  }
  return Buffer.concat(chunks, size);
}

function parseBody(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  const text = bytes.toString('utf8');
  try {
    return parseJson(text);
  } catch (err) {
    throw new GandalfError('invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

function secureContext(tls: TlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  return { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) };
}
