/**
 * The mutex, sessions and key/value container over HTTP on a one-node
 * replicated store: shapes, FIFO waiting, fencing tokens, CAS, TTL bound to a
 * session, watch streams that resume, and precise errors for bad input.
 */
import * as http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coordinationRoutes } from '../../../src/api/coordination-routes';
import { ApiServer } from '../../../src/api/http-server';
import { silentLogger } from '../../../src/core/logger';
import { startSingleNode, type SingleNode } from '../../helpers/replicator';
import { tempDir } from '../../helpers/tmp';

let server: ApiServer;
let store: SingleNode;
let base: string;
let port: number;

beforeEach(async () => {
  store = await startSingleNode(tempDir());
  server = new ApiServer({ name: 'test', routes: coordinationRoutes(() => store.coordination), logger: silentLogger, maxBodyBytes: 1 << 20 });
  port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  base = `http://127.0.0.1:${port}`;
});

afterEach(async () => {
  await server.close();
  await store.close();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

/** Collects server-sent events until `count` arrived. */
function sse(path: string, count: number, headers: Record<string, string> = {}): Promise<{ id: string; event: string; data: any }[]> {
  return new Promise((resolve, reject) => {
    const got: { id: string; event: string; data: any }[] = [];
    const req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let buf = '';
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const f: Record<string, string> = {};
          for (const line of block.split('\n')) {
            const i = line.indexOf(':');
            if (i > 0) f[line.slice(0, i)] = line.slice(i + 1).trim();
          }
          if (f.event) got.push({ id: f.id!, event: f.event, data: JSON.parse(f.data!) });
          if (got.length === count) {
            req.destroy();
            resolve(got);
          }
        }
      });
    });
    req.on('error', (e) => (got.length === count ? undefined : reject(e)));
    setTimeout(() => reject(new Error(`only ${got.length} of ${count} events`)), 10_000).unref();
  });
}

describe('cluster mutex over HTTP', () => {
  it('grants in FIFO order with strictly increasing fencing tokens', async () => {
    const s1 = (await call('POST', '/session?ttl=10s')).body.session;
    const s2 = (await call('POST', '/session?ttl=10s')).body.session;
    const s3 = (await call('POST', '/session?ttl=10s')).body.session;
    const a = await call('POST', `/lock/printer/acquire?session=${s1}`);
    expect(a.status).toBe(200);
    const order: string[] = [];
    const w2 = call('POST', `/lock/printer/acquire?session=${s2}&timeout=5s`).then((r) => (order.push('s2'), r));
    await new Promise((r) => setTimeout(r, 100));
    const w3 = call('POST', `/lock/printer/acquire?session=${s3}&timeout=5s`).then((r) => (order.push('s3'), r));
    await new Promise((r) => setTimeout(r, 100));
    const view = await call('GET', '/lock/printer');
    expect(view.body).toMatchObject({ lock: 'printer', held: true, holder: { session: s1, token: a.body.token }, waiters: 2 });
    expect((await call('POST', `/lock/printer/release?session=${s1}`)).status).toBe(200);
    const b = await w2;
    expect(b.status).toBe(200);
    expect(b.body.token).toBeGreaterThan(a.body.token);
    expect((await call('POST', `/lock/printer/release?session=${s2}`)).status).toBe(200);
    const c = await w3;
    expect(c.body.token).toBeGreaterThan(b.body.token);
    expect(order).toEqual(['s2', 's3']);
  });

  it('try-lock and timeouts fail with precise codes; a waiter that timed out leaves the queue', async () => {
    const s1 = (await call('POST', '/session')).body.session;
    const s2 = (await call('POST', '/session')).body.session;
    await call('POST', `/lock/l/acquire?session=${s1}`);
    const busy = await call('POST', `/lock/l/acquire?session=${s2}&timeout=0`);
    expect(busy.status).toBe(409);
    expect(busy.body.code).toBe('lock_busy');
    const late = await call('POST', `/lock/l/acquire?session=${s2}&timeout=300ms`);
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('lock_timeout');
    expect((await call('GET', '/lock/l')).body.waiters).toBe(0);
    const wrong = await call('POST', `/lock/l/release?session=${s2}`);
    expect(wrong.body.code).toBe('not_holder');
    // a release naming another token than the hold's is refused and leaves the hold
    const token = (await call('GET', '/lock/l')).body.holder.token as number;
    const other = await call('POST', `/lock/l/release?session=${s1}&token=${token + 1}`);
    expect(other.status).toBe(409);
    expect(other.body.code).toBe('not_holder');
    expect((await call('GET', '/lock/l')).body.holder.token).toBe(token);
    expect((await call('POST', `/lock/l/release?session=${s1}&token=x`)).status).toBe(400);
    expect((await call('POST', `/lock/l/release?session=${s1}&token=${token}`)).status).toBe(200);
    expect((await call('GET', '/lock/l')).body.held).toBe(false);
    expect((await call('POST', '/lock/bad name/acquire')).body.code).toBe('invalid_request');
    expect((await call('POST', '/lock/l/acquire?session=nosuch')).body.code).toBe('unknown_session');
  });

  it('releases the lock of a session that stops its keepalives, never one that keeps them up', async () => {
    const kept = (await call('POST', '/session?ttl=1s')).body.session;
    const dropped = (await call('POST', '/session?ttl=1s')).body.session;
    await call('POST', `/lock/kept/acquire?session=${kept}`);
    await call('POST', `/lock/dropped/acquire?session=${dropped}`);
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 300));
      expect((await call('POST', `/session/${kept}/keepalive`)).status).toBe(200);
    }
    expect((await call('GET', '/lock/kept')).body.held).toBe(true);
    expect((await call('GET', '/lock/dropped')).body.held).toBe(false);
    expect((await call('POST', `/session/${dropped}/keepalive`)).body.code).toBe('unknown_session');
  });
});

describe('key/value container over HTTP', () => {
  it('puts, gets, lists by prefix, compares-and-sets on revisions and deletes', async () => {
    const p1 = await call('PUT', '/kv/cfg/a', { value: '1' });
    expect(p1.status).toBe(200);
    await call('PUT', '/kv/cfg/b', { value: '2' });
    await call('PUT', '/kv/other', { value: 'x' });
    const a = await call('GET', '/kv/cfg/a?level=strong');
    expect(a.body).toMatchObject({ key: 'cfg/a', value: '1', mod_revision: p1.body.revision, version: 1 });
    const ls = await call('GET', '/kv/cfg/?prefix');
    expect(ls.body.kvs.map((k: any) => k.key)).toEqual(['cfg/a', 'cfg/b']);
    const stale = await call('PUT', '/kv/cfg/a', { value: '3', prev_revision: p1.body.revision - 1 });
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe('revision_mismatch');
    const cas = await call('PUT', '/kv/cfg/a', { value: '3', prev_revision: p1.body.revision });
    expect(cas.status).toBe(200);
    expect((await call('PUT', '/kv/cfg/a', { value: 'x', prev_revision: 0 })).body.code).toBe('revision_mismatch');
    expect((await call('PUT', '/kv/new', { value: 'y', prev_revision: 0 })).status).toBe(200);
    const del = await call('DELETE', '/kv/cfg/?prefix');
    expect(del.body.deleted).toBe(2);
    expect((await call('GET', '/kv/cfg/a')).status).toBe(404);
    expect((await call('PUT', '/kv/k', { nope: 1 })).body.code).toBe('invalid_request');
  });

  it('deletes keys bound to a session when it closes', async () => {
    const s = (await call('POST', '/session')).body.session;
    await call('PUT', '/kv/eph', { value: 'here', session: s });
    expect((await call('GET', '/kv/eph')).body.session).toBe(s);
    await call('DELETE', `/session/${s}`);
    expect((await call('GET', '/kv/eph')).status).toBe(404);
  });

  it('watches a prefix as server-sent events and resumes after the last event seen', async () => {
    const first = await call('PUT', '/kv/w/1', { value: 'a' });
    const live = sse('/kv/w/?watch&prefix', 2);
    await new Promise((r) => setTimeout(r, 100));
    await call('PUT', '/kv/w/2', { value: 'b' });
    await call('DELETE', '/kv/w/1');
    const events = await live;
    expect(events.map((e) => [e.event, e.data.key])).toEqual([
      ['put', 'w/2'],
      ['delete', 'w/1'],
    ]);
    // From a revision: the history replays, including the first put.
    const replay = await sse(`/kv/w/?watch&prefix&from=${first.body.revision}`, 3);
    expect(replay.map((e) => e.data.key)).toEqual(['w/1', 'w/2', 'w/1']);
    // Last-Event-ID: only what came after it.
    const resumed = await sse('/kv/w/?watch&prefix', 1, { 'last-event-id': events[0]!.id });
    expect(resumed[0]!.event).toBe('delete');
  });
});

describe('the reserved namespace gandalf/', () => {
  it('is neither written nor deleted through /kv, a prefix delete reaching it is refused, and secrets never show', async () => {
    expect((await call('PUT', '/kv/gandalf/tenants/acme', { value: '{}' })).body).toMatchObject({ code: 'forbidden' });
    expect((await call('PUT', '/kv/gandalf/tenants/acme', { value: '{}' })).status).toBe(403);
    for (const path of ['/kv/gandalf/admission', '/kv/gan?prefix', '/kv/?prefix', '/kv/gandalf/?prefix']) {
      expect((await call('DELETE', path)).status, path).toBe(403);
    }
    // the node's own tables are written through the coordination layer (the routing tables' port)
    await store.coordination.put('gandalf/secrets/acme/0123456789ab', '{"hash": "scrypt$..."}');
    await store.coordination.put('gandalf/tenants/acme', '{}');
    await call('PUT', '/kv/garden', { value: 'roses' });
    expect((await call('GET', '/kv/gandalf/secrets/acme/0123456789ab')).status).toBe(403);
    const listed = await call('GET', '/kv/?prefix');
    expect(listed.body.kvs.map((k: { key: string }) => k.key)).toEqual(['gandalf/tenants/acme', 'garden']);
    expect(listed.body.count).toBe(2);
    expect((await call('DELETE', '/kv/gar?prefix')).status).toBe(200);
    expect((await store.coordination.get('gandalf/tenants/acme'))?.value).toBe('{}');
    const events = sse('/kv/g?watch&prefix&from=1', 2);
    const got = await events;
    expect(got.map((e) => e.data.key)).toEqual(['gandalf/tenants/acme', 'garden']);
  });
});
