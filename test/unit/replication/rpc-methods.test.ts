/**
 * The replicator's typed RPC table: every request is checked where it
 * arrives, with an error naming the field; a handler sees only requests its
 * parser accepted, and a malformed request from a peer is answered with
 * invalid_request while the board keeps serving.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/core/clock';
import { silentLogger } from '../../../src/core/logger';
import { parseRequest, ReplicationRpc, type Method } from '../../../src/replication/rpc-methods';
import { Rpc, Wire, type MeshPort } from '../../../src/replication/wire';

const good: { [M in Method]: unknown } = {
  'sys-propose': { command: { op: 'db-drop', name: 'x' }, timeoutMs: 1000 },
  'sys-read': { query: 'databases', args: {}, level: 'weak', timeoutMs: 1000 },
  'sys-call': { name: 'lock-acquire', args: { name: 'l' }, timeoutMs: 1000 },
  'db-exec': { db: 'main', command: { kind: 'execute', statements: [{ sql: 'SELECT ?', params: [1] }], transaction: false }, timeoutMs: 1000 },
  'db-load': { db: 'main', bytes: new Uint8Array([1]), timeoutMs: 1000 },
  'db-read': { db: 'main', what: 'query', args: { statements: [] }, level: 'strong', timeoutMs: 1000 },
  'db-read-local': { db: 'main', what: 'voters', args: {} },
  'group-members': { group: 'db.main' },
  'group-open': { group: 'db.main' },
  'group-prepare': { group: 'system', members: ['a~1'] },
};

describe('replication RPC requests', () => {
  it('accepts what the replicator sends', () => {
    for (const [method, body] of Object.entries(good)) expect(() => parseRequest(method as Method, body)).not.toThrow();
  });

  it.each([
    ['sys-propose', { command: 'drop', timeoutMs: 1 }, /command must be an object/],
    ['sys-read', { query: 'q', args: {}, level: 'linearizable', timeoutMs: 1 }, /level must be none, weak or strong/],
    ['sys-call', { name: 7, args: {}, timeoutMs: 1 }, /name must be a string/],
    ['db-exec', { db: '../etc', command: {}, timeoutMs: 1 }, /db must be a database name/],
    [
      'db-exec',
      { db: 'main', command: { kind: 'execute', statements: [{ sql: 'x', params: [{}] }], transaction: false }, timeoutMs: 1 },
      /params that are not SQL values/,
    ],
    ['db-exec', { db: 'main', command: { kind: 'load', statements: [], transaction: false }, timeoutMs: 1 }, /command.kind must be "execute"/],
    ['db-exec', { db: 'main', command: { kind: 'execute', statements: [], transaction: false }, timeoutMs: -5 }, /timeoutMs must be a duration/],
    ['db-load', { db: 'main', bytes: 'AAAA', timeoutMs: 1 }, /bytes must be bytes/],
    ['db-read', { db: 'main', what: 'everything', args: {}, level: 'weak', timeoutMs: 1 }, /what must be query, voters or backup/],
    ['group-open', { group: 'db.' }, /group must be "system" or "db.NAME"/],
    ['group-prepare', { group: 'system', members: [1] }, /members must be a list of replica ids/],
    ['group-members', null, /body must be an object/],
  ] as [Method, unknown, RegExp][])('refuses a malformed %s with a precise error', (method, body, message) => {
    expect(() => parseRequest(method, body)).toThrow(message);
  });

  it('answers a peer that sends a malformed request with invalid_request, and serves the next one', async () => {
    let toB: ((from: string, body: unknown) => void) | undefined;
    let toA: ((from: string, body: unknown) => void) | undefined;
    const a: MeshPort = { selfId: 'a', send: (_to, body) => (queueMicrotask(() => toB?.('a', body)), true), subscribe: (h) => (toA = h) };
    const b: MeshPort = { selfId: 'b', send: (_to, body) => (queueMicrotask(() => toA?.('b', body)), true), subscribe: (h) => (toB = h) };
    const caller = new Rpc(new Wire(a, silentLogger), systemClock, silentLogger);
    const served = new ReplicationRpc(new Rpc(new Wire(b, silentLogger), systemClock, silentLogger));
    const seen: unknown[] = [];
    served.handle('group-open', (_from, body) => {
      seen.push(body);
      return { ok: true as const };
    });
    expect(() => served.handle('group-open', () => ({ ok: true as const }))).toThrow(/already has a handler/);
    await expect(caller.call('b', 'group-open', { group: 42 }, 1000)).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/bad group-open request/),
    });
    expect(seen).toEqual([]);
    await expect(caller.call('b', 'group-open', { group: 'db.main' }, 1000)).resolves.toEqual({ ok: true });
    expect(seen).toEqual([{ group: 'db.main' }]);
  });
});
