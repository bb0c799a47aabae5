/** POST /cluster/signal to a peer's mgmt endpoint over HTTP. */
import * as http from 'node:http';
import { parseEndpoint } from '../config/settings';
import type { HttpReply } from './mesh';
import type { SignalOffer } from './signaling';

const TIMEOUT_MS = 10_000;
const MAX_REPLY_BYTES = 256 * 1024;

export function postSignal(endpoint: string, offer: SignalOffer): Promise<HttpReply> {
  const target = parseEndpoint(endpoint);
  if (!target) return Promise.reject(new Error(`invalid endpoint "${endpoint}": expected http://HOST:PORT`));
  const data = JSON.stringify(offer);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...target,
        method: 'POST',
        path: '/cluster/signal',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        timeout: TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) req.destroy(new Error('signal reply too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch {
            reject(new Error(`${endpoint} answered ${res.statusCode} with a body that is not JSON`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no signal reply from ${endpoint} within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}
