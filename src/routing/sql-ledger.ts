/**
 * The command ledger on the tenant's replicated database (`gandalf-<tenant>`,
 * table `claims`): each claim and each result is one Raft write, so every
 * connector of the cluster sees one order of them. A claim is an upsert that
 * takes the row only when the rules of CommandLedger allow; RETURNING says
 * whether it did. Expiry compares `until_ms` with the claimant's wall clock:
 * claims live past their command's deadline by 30 s, far more than boards'
 * clocks differ.
 */
import type { Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { tenantDatabase } from '../core/routing-identity';
import type { ExecuteResult } from '../store/sql-state-machine';
import { parseEnvelope, type EventMessage } from './envelope';
import type { Claim, CommandLedger, SqlPort } from './ports';

export const CLAIMS_SCHEMA = [
  'CREATE TABLE IF NOT EXISTS claims (uuid TEXT PRIMARY KEY, node TEXT NOT NULL, attempt INTEGER NOT NULL, until_ms INTEGER NOT NULL, result TEXT)',
  'CREATE INDEX IF NOT EXISTS claims_until ON claims(until_ms)',
];

function rows(r: ExecuteResult | undefined): unknown[][] {
  if (!r) throw new GandalfError('internal', 'ledger: a statement went without a result');
  if ('error' in r) throw new GandalfError('internal', `ledger: ${r.error}`);
  return (r.values ?? []) as unknown[][];
}

export class SqlLedger implements CommandLedger {
  private readonly schemas = new Map<string, Promise<void>>();

  constructor(
    private readonly sql: SqlPort,
    private readonly clock: Clock,
  ) {}

  async claim(tenant: string, uuid: string, attempt: number, node: string, ttlMs: number): Promise<Claim> {
    const db = await this.ready(tenant);
    const now = Math.floor(this.clock.now());
    const [taken, finished] = await this.sql.execute(
      db,
      [
        {
          sql:
            'INSERT INTO claims (uuid, node, attempt, until_ms) VALUES (?, ?, ?, ?) ON CONFLICT (uuid) DO UPDATE ' +
            'SET node = excluded.node, attempt = max(claims.attempt, excluded.attempt), until_ms = excluded.until_ms ' +
            'WHERE claims.result IS NULL AND (claims.node = excluded.node OR excluded.attempt > claims.attempt OR claims.until_ms <= ?) RETURNING node',
          params: [uuid, node, attempt, now + Math.ceil(ttlMs), now],
        },
        { sql: 'UPDATE claims SET result = result WHERE uuid = ? AND result IS NOT NULL RETURNING result', params: [uuid] },
      ],
      false,
    );
    const result = rows(finished)[0]?.[0];
    if (typeof result === 'string') return { won: false, result: this.decode(result) };
    return rows(taken).length === 1 ? { won: true } : { won: false };
  }

  async complete(tenant: string, uuid: string, attempt: number, node: string, result: EventMessage): Promise<boolean> {
    const db = await this.ready(tenant);
    const [r] = await this.sql.execute(
      db,
      [
        {
          sql: 'UPDATE claims SET result = ? WHERE uuid = ? AND node = ? AND attempt = ? AND result IS NULL',
          params: [JSON.stringify(result), uuid, node, attempt],
        },
      ],
      false,
    );
    if (!r || 'error' in r) throw new GandalfError('internal', `ledger: ${r ? r.error : 'no result'}`);
    return r.rows_affected === 1;
  }

  /** Claims past their life (the sink's retention pass calls this). */
  async expire(tenant: string): Promise<number> {
    const db = await this.ready(tenant);
    const [r] = await this.sql.execute(db, [{ sql: 'DELETE FROM claims WHERE until_ms < ?', params: [Math.floor(this.clock.now())] }], false);
    return r && !('error' in r) ? r.rows_affected : 0;
  }

  private ready(tenant: string): Promise<string> {
    const db = tenantDatabase(tenant);
    let p = this.schemas.get(tenant);
    if (!p) {
      p = this.sql
        .execute(
          db,
          CLAIMS_SCHEMA.map((sql) => ({ sql })),
          true,
        )
        .then((results) => {
          for (const r of results) if ('error' in r) throw new GandalfError('internal', `ledger schema: ${r.error}`);
        });
      p.catch(() => this.schemas.delete(tenant));
      this.schemas.set(tenant, p);
    }
    return p.then(() => db);
  }

  private decode(text: string): EventMessage | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return undefined;
    }
    const parsed = parseEnvelope(raw);
    return parsed.ok && parsed.envelope.kind === 'event' ? parsed.envelope : undefined;
  }
}
