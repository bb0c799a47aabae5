/**
 * The CLI's server-sent event reader (kv watch, events --watch): blocks with
 * comments, ids, events and data, split across chunks; a reader that stops;
 * a refusal; a stream that drops.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readSse, type SseBlock } from '../../../src/cli/sse-client';

let server: http.Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

function serve(handler: http.RequestListener): Promise<number> {
  server = http.createServer(handler);
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as AddressInfo).port)));
}

describe('readSse', () => {
  it('hands over each block, whole even when split across chunks, and sends Last-Event-ID', async () => {
    let lastEventId: string | undefined;
    const port = await serve((req, res) => {
      lastEventId = req.headers['last-event-id'] as string | undefined;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': watching key "a" after revision 4\n\n');
      res.write('id: 5\nevent: put\nda');
      setTimeout(() => {
        res.write('ta: {"key":"a"}\n\nid: 6\nevent: delete\ndata: {}\n\n');
        res.end();
      }, 20);
    });
    const blocks: SseBlock[] = [];
    const end = await readSse({ host: '127.0.0.1', port }, '/w', '4', (b) => void blocks.push(b));
    expect(lastEventId).toBe('4');
    expect(end).toEqual({ retry: true });
    expect(blocks).toEqual([
      { comments: ['watching key "a" after revision 4'] },
      { comments: [], id: '5', event: 'put', data: '{"key":"a"}' },
      { comments: [], id: '6', event: 'delete', data: '{}' },
    ]);
  });

  it('stops when the reader says so, and reports a refusal with its status and body', async () => {
    const port = await serve((req, res) => {
      if (req.url === '/refused') {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end('{"code":"invalid_request"}');
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: a\ndata: 1\n\nevent: b\ndata: 2\n\n');
    });
    const seen: string[] = [];
    const end = await readSse({ host: '127.0.0.1', port }, '/s', undefined, (b) => {
      seen.push(b.event!);
      return { retry: false, error: 'enough' };
    });
    expect(seen).toEqual(['a']);
    expect(end).toEqual({ retry: false, error: 'enough' });
    expect(await readSse({ host: '127.0.0.1', port }, '/refused', undefined, () => undefined)).toEqual({
      retry: false,
      error: '400: {"code":"invalid_request"}',
    });
  });
});
