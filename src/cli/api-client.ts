/** The CLI's HTTP client for a node's client API. */
import * as http from 'node:http';
import { parseJson, toJson } from '../core/json';
import { formatHostPort, type HostPort } from '../config/settings';

export class NodeUnreachableError extends Error {}

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

/** `timeoutMs`: the request fails once the connection was silent this long. */
/** `signal`: abandons the request (the node sees its client go away). */
export function request(bind: HostPort, method: string, path: string, body?: unknown, timeoutMs = 60_000, signal?: AbortSignal): Promise<ApiReply> {
  const target = { host: dialHost(bind.host), port: bind.port };
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : toJson(body);
    const req = http.request(
      {
        host: target.host,
        port: target.port,
        method,
        path,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        timeout: timeoutMs,
        ...(signal ? { signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? parseJson(text) : undefined });
          } catch {
            reject(new Error(`the node at ${formatHostPort(target)} answered ${res.statusCode} with a body that is not JSON`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ECONNREFUSED' ? 'connection refused' : err.message;
      reject(new NodeUnreachableError(`no gandalf-node is answering at http://${formatHostPort(target)} (${why}); start one with "gandalf-node start" or set --http-bind`));
    });
    req.end(data);
  });
}
