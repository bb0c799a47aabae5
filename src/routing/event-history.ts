/**
 * A tenant's past broadcast events, read back from its data sink (the
 * `messages` table of `gandalf-<tenant>`), so that a watcher that lost its
 * stream resumes after the last event it saw instead of missing what came
 * meanwhile. Events are in the order the cluster traced them (`at`, then
 * uuid). The sink lags the live stream by a batch (about 250 ms) and keeps
 * what `--sink-retention` and `--sink-max-bytes` leave: an event pruned from
 * it cannot be resumed after.
 */
import { tenantDatabase } from '../core/routing-identity';
import type { SqlValue } from '../store/sql-state-machine';
import type { SqlPort } from './ports';

/** At most this many events are replayed to one watcher; past that it is told to read the sink with SQL. */
export const MAX_REPLAY = 10_000;

export interface PastEvent {
  uuid: string;
  topic: string;
  event: string;
  payload: unknown;
  node: string;
  worker: string | null;
  timestamp: number;
}

export type Replay = { found: false } | { found: true; events: PastEvent[]; truncated: boolean };

function parsePayload(raw: SqlValue): unknown {
  if (typeof raw !== 'string') return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

/** The tenant's broadcast events of `topics` (`*`: all) traced after the event `after`; `found: false` when that one is not in the sink. */
export async function eventsAfter(sql: SqlPort, tenant: string, topics: readonly string[], after: string): Promise<Replay> {
  const db = tenantDatabase(tenant);
  if (!sql.exists(db)) return { found: false };
  const all = topics.includes('*');
  const [anchor, rows] = await sql.query(db, [
    { sql: "SELECT at FROM messages WHERE uuid = ? AND kind = 'event'", params: [after] },
    {
      sql:
        'SELECT m.uuid, m.topic, m.event, m.payload, m.source_node, m.source_worker, m.timestamp FROM messages m, ' +
        "(SELECT at FROM messages WHERE uuid = ? AND kind = 'event') a WHERE m.kind = 'event' AND m.reference_uuid IS NULL " +
        `AND (m.at > a.at OR (m.at = a.at AND m.uuid > ?))${all ? '' : ` AND m.topic IN (${topics.map(() => '?').join(', ')})`} ` +
        'ORDER BY m.at, m.uuid LIMIT ?',
      params: [after, after, ...(all ? [] : topics), MAX_REPLAY + 1],
    },
  ]);
  if (!anchor || 'error' in anchor) throw new Error(`the sink could not be read: ${anchor && 'error' in anchor ? anchor.error : 'no result'}`);
  if (anchor.values.length === 0) return { found: false };
  if (!rows || 'error' in rows) throw new Error(`the sink could not be read: ${rows && 'error' in rows ? rows.error : 'no result'}`);
  const events = rows.values.slice(0, MAX_REPLAY).map((v) => ({
    uuid: String(v[0]),
    topic: String(v[1]),
    event: String(v[2]),
    payload: parsePayload(v[3] ?? null),
    node: String(v[4]),
    worker: typeof v[5] === 'string' ? v[5] : null,
    timestamp: Number(v[6]),
  }));
  return { found: true, events, truncated: rows.values.length > MAX_REPLAY };
}
