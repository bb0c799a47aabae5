/**
 * The command ledger and the data sink on the real SQL state machine (the
 * statements a tenant's database applies): who wins a claim, a superseded
 * claim's result refused, a recorded result handed to a later claim; the
 * sink's batches, one record per uuid, no secret payload, and its pruning
 * by age and size.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { parseEnvelope, type Envelope, type EventMessage } from '../../../src/routing/envelope';
import { SqlLedger } from '../../../src/routing/sql-ledger';
import { SqlSink } from '../../../src/routing/sql-sink';
import { SimClock } from '../../helpers/sim/sim-clock';
import { sqlOn } from '../../helpers/sql-port';
import type { SqlPort } from '../../../src/routing/ports';

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function env(fields: Record<string, unknown>): Envelope {
  const r = parseEnvelope({
    uuid: uuid(1),
    tenant: 'acme',
    kind: 'event',
    topic: 'result',
    event: 'SUCCESS',
    timestamp: 1,
    source: { node: 'c1', role: 'connector', logical_name: 'alpha', worker: 'w' },
    ...fields,
  });
  if (!r.ok) throw new Error(r.error);
  return r.envelope;
}

describe('SqlLedger', () => {
  it('gives a command to its first claimant, again to it, to a later attempt, and never past a recorded result', async () => {
    const clock = new SimClock();
    const ledger = new SqlLedger(sqlOn(clock), clock);
    const u = uuid(7);
    expect(await ledger.claim('acme', u, 1, 'c1', 10_000)).toEqual({ won: true });
    expect(await ledger.claim('acme', u, 1, 'c2', 10_000)).toEqual({ won: false });
    expect(await ledger.claim('acme', u, 1, 'c1', 10_000)).toEqual({ won: true });
    // the sender sent it again (c1 gone): attempt 2 wins over c1's claim, and c1's result is refused
    expect(await ledger.claim('acme', u, 2, 'c2', 10_000)).toEqual({ won: true });
    const late = env({ uuid: uuid(8), reference_uuid: u, destination: { node: 's' } }) as EventMessage;
    expect(await ledger.complete('acme', u, 1, 'c1', late)).toBe(false);
    const result = env({ uuid: uuid(9), reference_uuid: u, destination: { node: 's' }, payload: { ok: 1 } }) as EventMessage;
    expect(await ledger.complete('acme', u, 2, 'c2', result)).toBe(true);
    expect(await ledger.complete('acme', u, 2, 'c2', result)).toBe(false);
    // a claim after the result: lost, with the result to send again
    const again = await ledger.claim('acme', u, 3, 'c3', 10_000);
    expect(again.won).toBe(false);
    expect(again.won === false && again.result).toMatchObject({ uuid: uuid(9), payload: { ok: 1 }, reference_uuid: u });
  });

  it('lets another node claim once the first claim expired, and prunes expired claims', async () => {
    const clock = new SimClock();
    const ledger = new SqlLedger(sqlOn(clock), clock);
    expect(await ledger.claim('acme', uuid(1), 1, 'c1', 1000)).toEqual({ won: true });
    expect(await ledger.claim('acme', uuid(2), 1, 'c1', 60_000)).toEqual({ won: true });
    clock.advance(1500);
    expect(await ledger.claim('acme', uuid(1), 1, 'c2', 1000)).toEqual({ won: true });
    clock.advance(1500);
    expect(await ledger.expire('acme')).toBe(1);
  });
});

describe('SqlSink', () => {
  it('writes batches, one record per uuid, never a secret, and prunes by age and by size', async () => {
    const clock = new SimClock();
    const sql = sqlOn(clock);
    const sink = new SqlSink({ sql, clock, logger: silentLogger, retentionMs: 60_000, maxBytes: 64 * 1024 });
    sink.message(env({ uuid: uuid(1), kind: 'command', command: 'RUN', target: 'alpha', payload: { x: 1 } }), 'k1');
    sink.message(env({ uuid: uuid(1), kind: 'command', command: 'RUN', target: 'alpha', payload: { x: 1 } }), 'k2');
    sink.message(env({ uuid: uuid(2), kind: 'secret', command: 'VALIDATE', payload: { secret: 'hunter2' } }), 'k1');
    for (let i = 0; i < 3; i++) sink.hop({ uuid: uuid(1), tenant: 'acme', kind: 'command', node: 'n', role: 'cluster', outcome: 'routed', at: clock.now() });
    expect(sql.writes).toBe(0);
    clock.advance(300); // the batch leaves after at most 250 ms
    await new Promise((r) => setTimeout(r, 0));
    await sink.flush();
    expect(sql.writes).toBe(2); // the schema, then one batch
    const db = sql.dbs.get('gandalf-acme')!;
    const q = (s: string) => {
      const r = db.query({ sql: s });
      if ('error' in r) throw new Error(r.error);
      return r.values;
    };
    expect(q('SELECT uuid, target FROM messages ORDER BY uuid')).toEqual([
      [uuid(1), 'alpha'],
      [uuid(2), null],
    ]);
    expect(JSON.stringify(q('SELECT payload, context FROM messages'))).not.toMatch(/hunter2/);
    expect(q('SELECT count(*) FROM hops')).toEqual([[3]]);
    // by age
    clock.advance(120_000);
    sink.hop({ uuid: uuid(3), tenant: 'acme', kind: 'event', node: 'n', role: 'cluster', outcome: 'routed', at: clock.now() });
    await sink.flush();
    expect((await sink.retain('acme')).deleted).toBe(5);
    expect(q('SELECT count(*) FROM hops')).toEqual([[1]]);
    // by size: 2,000 hops of 200 bytes are far past 64 KiB of live pages
    for (let i = 0; i < 2000; i++)
      sink.hop({ uuid: uuid(i), tenant: 'acme', kind: 'event', node: 'n', role: 'cluster', outcome: 'dropped', reason: 'x'.repeat(200), at: clock.now() + i });
    await sink.flush();
    const { bytes } = await sink.retain('acme');
    expect(bytes).toBeLessThanOrEqual(64 * 1024);
    const left = q('SELECT count(*), min(at) FROM hops')[0] as number[];
    expect(left[0]).toBeLessThan(2001);
    expect(left[0]).toBeGreaterThan(0);
    expect(left[1]).toBeGreaterThan(clock.now()); // the oldest went first
  });

  it('keeps at most MAX_BUFFERED records while it cannot write, dropping the oldest', async () => {
    const clock = new SimClock();
    const failing: SqlPort = {
      execute: async () => {
        throw new Error('no quorum');
      },
      query: async () => [],
      exists: () => true,
    };
    const sink = new SqlSink({ sql: failing, clock, logger: silentLogger, retentionMs: 60_000, maxBytes: 1 << 20 });
    for (let i = 0; i < 25_000; i++) sink.hop({ uuid: uuid(i), tenant: 'acme', kind: 'event', node: 'n', role: 'cluster', outcome: 'routed', at: i });
    await sink.flush();
    expect(sink.pending).toBe(20_000);
    expect(sink.dropped).toBe(5_000);
    sink.stop();
  });
});
