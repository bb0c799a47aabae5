/**
 * A watcher's resume point: the tenant's broadcast events traced after a
 * given one, read back from the data sink, in trace order, of the topics
 * watched, without answers (receipts, results, errors).
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { parseEnvelope, type Envelope } from '../../../src/routing/envelope';
import { eventsAfter } from '../../../src/routing/event-history';
import { SqlSink } from '../../../src/routing/sql-sink';
import { SimClock } from '../../helpers/sim/sim-clock';
import { sqlOn } from '../../helpers/sql-port';

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function event(n: number, topic: string, extra: Record<string, unknown> = {}): Envelope {
  const r = parseEnvelope({
    uuid: uuid(n),
    tenant: 'acme',
    kind: 'event',
    topic,
    event: `E${n}`,
    payload: { n },
    timestamp: 1000 + n,
    source: { node: 'c1', role: 'connector', logical_name: 'alpha', worker: 'w1' },
    ...extra,
  });
  if (!r.ok) throw new Error(r.error);
  return r.envelope;
}

describe('event history', () => {
  it('replays the events of the watched topics traced after the given one, in order, without answers', async () => {
    const clock = new SimClock();
    const sql = sqlOn(clock);
    const sink = new SqlSink({ sql, clock, logger: silentLogger, retentionMs: 86_400_000, maxBytes: 1 << 24 });
    expect(await eventsAfter(sql, 'acme', ['news'], uuid(1))).toEqual({ found: false });
    for (let n = 1; n <= 6; n++) {
      sink.message(event(n, n % 2 === 0 ? 'news' : 'other'), 'k1');
      clock.advance(10);
    }
    // an answer (it names the command it answers) is never replayed to a watcher
    sink.message(event(7, 'news', { reference_uuid: uuid(99), destination: { node: 'c1' } }), 'k1');
    clock.advance(10);
    sink.message(event(8, 'news'), 'k1');
    await sink.flush();
    const r = await eventsAfter(sql, 'acme', ['news'], uuid(2));
    expect(r).toMatchObject({ found: true, truncated: false });
    if (!r.found) throw new Error('unreachable');
    expect(r.events.map((e) => e.uuid)).toEqual([uuid(4), uuid(6), uuid(8)]);
    expect(r.events[0]).toEqual({ uuid: uuid(4), topic: 'news', event: 'E4', payload: { n: 4 }, node: 'c1', worker: 'w1', timestamp: 1004 });
    const all = await eventsAfter(sql, 'acme', ['*'], uuid(3));
    expect(all.found && all.events.map((e) => e.event)).toEqual(['E4', 'E5', 'E6', 'E8']);
    expect(await eventsAfter(sql, 'acme', ['news'], uuid(42))).toEqual({ found: false });
    sink.stop();
  });
});
