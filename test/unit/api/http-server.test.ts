/** The HTTP server's handling of clients that misbehave: slow trickled bodies and clients that go away. */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer } from '../../../src/api/http-server';
import type { LogFields, Logger } from '../../../src/core/logger';

function recordingLogger(lines: { level: string; msg: string; fields?: LogFields }[]): Logger {
  const log = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
  return logger;
}

let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(lines: { level: string; msg: string }[], handled: string[], requestTimeoutMs?: number): Promise<number> {
  server = new ApiServer({
    name: 'test',
    routes: { 'POST /echo': (req) => (handled.push(JSON.stringify(req.body)), { status: 200, body: { got: req.body } }) },
    logger: recordingLogger(lines),
    maxBodyBytes: 4096,
    ...(requestTimeoutMs ? { requestTimeoutMs } : {}),
  });
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('ApiServer with misbehaving clients', () => {
  it('cuts off a body trickled past the request timeout, like slow headers, and keeps serving', async () => {
    const lines: { level: string; msg: string }[] = [];
    const handled: string[] = [];
    const port = await start(lines, handled, 600);
    const s = await connect(port);
    let received = '';
    const closed = new Promise<number>((resolve) => {
      const t0 = performance.now();
      s.on('data', (d) => (received += d.toString()));
      s.on('close', () => resolve(performance.now() - t0));
    });
    s.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n{');
    // one byte every 100 ms: never finished within the bound (count-bounded)
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent++ < 100 && !s.destroyed) s.write(' ');
    }, 100);
    await closed;
    clearInterval(trickle);
    expect(sent).toBeLessThan(100); // the server closed it, not the end of the trickle
    expect(received).toMatch(/^HTTP\/1\.1 408|^$/);
    expect(handled).toEqual([]);
    const r = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: '{"a":1}' });
    expect(await r.json()).toEqual({ got: { a: 1 } });
  });

  it('logs a client that goes away mid-body at debug, never as an error', async () => {
    const lines: { level: string; msg: string }[] = [];
    const handled: string[] = [];
    const port = await start(lines, handled);
    const s = await connect(port);
    s.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n{"half":');
    await new Promise((r) => setTimeout(r, 100));
    s.destroy();
    for (let i = 0; i < 50 && !lines.some((l) => l.level === 'debug'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(lines.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
    expect(lines.some((l) => l.level === 'debug' && /went away/.test(l.msg))).toBe(true);
    expect(handled).toEqual([]);
    const r = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: '[1]' });
    expect(r.status).toBe(200);
  });
});
