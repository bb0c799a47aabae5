/** The CLI's HTTP client for a node's client API. */
import * as http from 'node:http';
import * as https from 'node:https';
import { parseJson, toJson } from '../core/json';
import { formatHostPort, type HostPort } from '../config/settings';

export class NodeUnreachableError extends Error {}

/** A node's client API, the credentials to send it (HTTP Basic) and its TLS, if any. */
export interface ClientTarget extends HostPort {
  authorization?: string;
  /** HTTPS: trust `ca` (else the system's CAs, or nothing with `insecure`); `cert`/`key`: a client certificate. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean };
}

/** Starts a request to the node: HTTP, or HTTPS with the target's TLS settings. */
export function openRequest(bind: ClientTarget, options: http.RequestOptions, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
  const target = { ...options, host: dialHost(bind.host), port: bind.port };
  if (!bind.tls) return http.request(target, onResponse);
  const { ca, cert, key, insecure } = bind.tls;
  return https.request(
    { ...target, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), rejectUnauthorized: !insecure, servername: bind.host },
    onResponse,
  );
}

export interface ApiReply {
  status: number;
  body: unknown;
}

/** A wildcard bind address is reached through loopback. */
function dialHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

export interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  bytes: Buffer;
}

export interface RawRequestOptions {
  /** The request fails once the connection was silent this long. */
  timeoutMs?: number;
  /** Abandons the request (the node sees its client go away). */
  signal?: AbortSignal;
  contentType?: string;
  /** Told of the bytes of the answer received so far (a progress line). */
  onProgress?: (received: number, total: number | undefined) => void;
}

/** One request with a body of bytes, answered with bytes. */
export function rawRequest(bind: ClientTarget, method: string, path: string, body: Buffer | undefined, options: RawRequestOptions = {}): Promise<RawReply> {
  const target = { host: dialHost(bind.host), port: bind.port };
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const req = openRequest(
      bind,
      {
        method,
        path,
        headers: {
          ...(bind.authorization ? { authorization: bind.authorization } : {}),
          ...(body ? { 'content-type': options.contentType ?? 'application/octet-stream', 'content-length': body.length } : {}),
        },
        timeout: timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        const total = res.headers['content-length'] ? Number(res.headers['content-length']) : undefined;
        let received = 0;
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          received += c.length;
          options.onProgress?.(received, total);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks, received) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name === 'AbortError') return reject(err);
      const why = err.code === 'ECONNREFUSED' ? 'connection refused' : err.message;
      reject(
        new NodeUnreachableError(
          `no gandalf-node is answering at http://${formatHostPort(target)} (${why}); start one with "gandalf-node start" or set --http-bind`,
        ),
      );
    });
    req.end(body);
  });
}

/** A JSON request (`body` as JSON), answered with JSON. `timeoutMs`: the request fails once the connection was silent this long. */
export async function request(bind: ClientTarget, method: string, path: string, body?: unknown, timeoutMs = 60_000, signal?: AbortSignal): Promise<ApiReply> {
  const data = body === undefined ? undefined : Buffer.from(toJson(body), 'utf8');
  const reply = await rawRequest(bind, method, path, data, { timeoutMs, contentType: 'application/json', ...(signal ? { signal } : {}) });
  const text = reply.bytes.toString('utf8');
  try {
    return { status: reply.status, body: text ? parseJson(text) : undefined };
  } catch {
    throw new Error(`the node at ${formatHostPort({ host: dialHost(bind.host), port: bind.port })} answered ${reply.status} with a body that is not JSON`);
  }
}
