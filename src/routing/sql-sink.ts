/**
 * The data sink: every message, every hop and every admission, in the
 * tenant's replicated database `gandalf-<tenant>` (tables `messages`, `hops`
 * and `admissions`), written in
 * batches: records wait here at most FLUSH_MS (or until BATCH records), then
 * go as one transaction per tenant, one Raft entry. A message is kept once
 * (its uuid is the key). A secret's payload is never stored, only that it
 * passed.
 *
 * Bounded on every side: at most MAX_BUFFERED records wait (a sink that
 * cannot write, e.g. without quorum, drops the oldest and counts them), and
 * `retain` prunes each tenant's database by age (`--sink-retention`) and by
 * size (`--sink-max-bytes`: the oldest records go until the
 * live pages fit; freed pages are reused, so the file stops growing).
 */
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import { tenantDatabase } from '../core/routing-identity';
import type { SqlValue, Statement } from '../store/sql-state-machine';
import type { Envelope } from './envelope';
import type { AdmissionRecord, HopRecord, SqlPort, Tracer } from './ports';

export const SINK_SCHEMA = [
  'CREATE TABLE IF NOT EXISTS messages (uuid TEXT PRIMARY KEY, kind TEXT NOT NULL, at INTEGER NOT NULL, timestamp INTEGER, ' +
    'source_node TEXT, source_role TEXT, source_logical_name TEXT, source_worker TEXT, target TEXT, command TEXT, topic TEXT, event TEXT, ' +
    'reference_uuid TEXT, connector_type TEXT, major INTEGER, minor INTEGER, timeout_ms INTEGER, attempt INTEGER, context TEXT, payload TEXT)',
  'CREATE INDEX IF NOT EXISTS messages_at ON messages(at)',
  'CREATE INDEX IF NOT EXISTS messages_reference ON messages(reference_uuid)',
  'CREATE TABLE IF NOT EXISTS hops (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL, node TEXT NOT NULL, ' +
    'role TEXT NOT NULL, outcome TEXT NOT NULL, peer TEXT, reason TEXT)',
  'CREATE INDEX IF NOT EXISTS hops_uuid ON hops(uuid)',
  'CREATE INDEX IF NOT EXISTS hops_at ON hops(at)',
  'CREATE TABLE IF NOT EXISTS admissions (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, node TEXT NOT NULL, subject TEXT NOT NULL, ' +
    'name TEXT NOT NULL, roles TEXT NOT NULL, secret_id TEXT, outcome TEXT NOT NULL, reason TEXT)',
  'CREATE INDEX IF NOT EXISTS admissions_at ON admissions(at)',
];

const FLUSH_MS = 250;
const BATCH = 500;
export const MAX_BUFFERED = 20_000;

export interface SinkOptions {
  sql: SqlPort;
  clock: Clock;
  logger: Logger;
  /** Records older than this (ms) are deleted. */
  retentionMs: number;
  /** A tenant's database is pruned to this many bytes of live pages. */
  maxBytes: number;
}

type Row = { table: 'messages' | 'hops' | 'admissions'; values: SqlValue[] };

const INSERT: Record<Row['table'], string> = {
  messages:
    'INSERT OR IGNORE INTO messages (uuid, kind, at, timestamp, source_node, source_role, source_logical_name, source_worker, target, command, ' +
    'topic, event, reference_uuid, connector_type, major, minor, timeout_ms, attempt, context, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  hops: 'INSERT INTO hops (uuid, kind, at, node, role, outcome, peer, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  admissions: 'INSERT INTO admissions (at, node, subject, name, roles, secret_id, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
};

export class SqlSink implements Tracer {
  private readonly buffered = new Map<string, Row[]>();
  private count = 0;
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private readonly schemas = new Set<string>();
  /** Records dropped because the sink could not keep up or write (for metrics). */
  dropped = 0;
  written = 0;
  private stopped = false;

  constructor(private readonly o: SinkOptions) {}

  message(env: Envelope, node: string): void {
    const secret = env.kind === 'secret';
    const e = env as Envelope & { command?: string; topic?: string; event?: string; reference_uuid?: string; connector_type?: string };
    this.add(env.tenant, {
      table: 'messages',
      values: [
        env.uuid,
        env.kind,
        Math.floor(this.o.clock.now()),
        env.timestamp,
        env.source.node,
        env.source.role,
        env.source.logical_name,
        env.source.worker ?? null,
        env.target ?? null,
        e.command ?? null,
        e.topic ?? null,
        e.event ?? null,
        e.reference_uuid ?? null,
        e.connector_type ?? null,
        env.major,
        env.minor,
        env.timeout,
        env.attempt,
        secret ? null : JSON.stringify(env.context),
        secret ? JSON.stringify(`[secret, traced by ${node}]`) : JSON.stringify(env.payload ?? null),
      ],
    });
  }

  hop(r: HopRecord): void {
    this.add(r.tenant, { table: 'hops', values: [r.uuid, r.kind, r.at, r.node, r.role, r.outcome, r.peer ?? null, r.reason ?? null] });
  }

  admission(r: AdmissionRecord): void {
    this.add(r.tenant, { table: 'admissions', values: [r.at, r.node, r.subject, r.name, r.roles.join(','), r.secretId ?? null, r.outcome, r.reason ?? null] });
  }

  /** Records waiting to be written. */
  get pending(): number {
    return this.count;
  }

  /** Writes what waits now (after a write under way, if any); the node calls it before it stops. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    this.running = this.writeBuffered();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    if (this.count > 0) this.schedule();
  }

  private async writeBuffered(): Promise<void> {
    for (const [tenant, rows] of [...this.buffered]) {
      this.buffered.delete(tenant);
      this.count -= rows.length;
      try {
        await this.write(tenant, rows);
        this.written += rows.length;
      } catch (err) {
        this.o.logger.warn('the data sink could not write; its records wait for the next try', { tenant, records: rows.length, err: err as Error });
        this.requeue(tenant, rows);
        break;
      }
    }
  }

  /** Prunes a tenant's sink by age and size. */
  async retain(tenant: string): Promise<{ deleted: number; bytes: number }> {
    const db = tenantDatabase(tenant);
    await this.ensureSchema(tenant);
    const cutoff = this.o.clock.now() - this.o.retentionMs;
    let deleted = 0;
    const byAge = await this.o.sql.execute(
      db,
      [
        { sql: 'DELETE FROM hops WHERE at < ?', params: [cutoff] },
        { sql: 'DELETE FROM messages WHERE at < ?', params: [cutoff] },
        { sql: 'DELETE FROM admissions WHERE at < ?', params: [cutoff] },
      ],
      true,
    );
    for (const r of byAge) if (!('error' in r)) deleted += r.rows_affected;
    let bytes = await this.liveBytes(db);
    for (let round = 0; bytes > this.o.maxBytes && round < 5; round++) {
      // the oldest share that brings the live pages to 90% of the bound (a tenth at least, nine at most)
      const share = Math.min(0.9, Math.max(0.1, 1 - (0.9 * this.o.maxBytes) / bytes));
      const trimmed = await this.o.sql.execute(
        db,
        [
          {
            sql: 'DELETE FROM hops WHERE id IN (SELECT id FROM hops ORDER BY at LIMIT (SELECT max(1, CAST(count(*) * ? AS INTEGER)) FROM hops))',
            params: [share],
          },
          {
            sql: 'DELETE FROM messages WHERE uuid IN (SELECT uuid FROM messages ORDER BY at LIMIT (SELECT max(1, CAST(count(*) * ? AS INTEGER)) FROM messages))',
            params: [share],
          },
        ],
        true,
      );
      for (const r of trimmed) if (!('error' in r)) deleted += r.rows_affected;
      bytes = await this.liveBytes(db);
    }
    return { deleted, bytes };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private add(tenant: string, row: Row): void {
    let rows = this.buffered.get(tenant);
    if (!rows) this.buffered.set(tenant, (rows = []));
    rows.push(row);
    this.count++;
    this.bound();
    // one write at a time: a full batch waits for the write under way (a sink that cannot write must not start one per record)
    if (this.count >= BATCH && !this.running) void this.flush();
    else this.schedule();
  }

  private requeue(tenant: string, rows: Row[]): void {
    const now = this.buffered.get(tenant) ?? [];
    this.buffered.set(tenant, [...rows, ...now]);
    this.count += rows.length;
    this.bound();
  }

  /** Past MAX_BUFFERED, the oldest records go (counted and logged). */
  private bound(): void {
    if (this.count <= MAX_BUFFERED) return;
    for (const rows of this.buffered.values()) {
      const over = this.count - MAX_BUFFERED;
      if (over <= 0) break;
      const cut = Math.min(over, rows.length);
      rows.splice(0, cut);
      this.count -= cut;
      if (this.dropped === 0 || Math.floor((this.dropped + cut) / 10_000) > Math.floor(this.dropped / 10_000)) {
        this.o.logger.warn('the data sink is behind: its oldest records were dropped', { dropped: this.dropped + cut });
      }
      this.dropped += cut;
    }
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_MS);
    this.timer.unref?.();
  }

  private async ensureSchema(tenant: string): Promise<void> {
    if (this.schemas.has(tenant)) return;
    const results = await this.o.sql.execute(
      tenantDatabase(tenant),
      SINK_SCHEMA.map((sql) => ({ sql })),
      true,
    );
    for (const r of results) if ('error' in r) throw new Error(`sink schema: ${r.error}`);
    this.schemas.add(tenant);
  }

  private async write(tenant: string, rows: Row[]): Promise<void> {
    await this.ensureSchema(tenant);
    const statements: Statement[] = rows.map((r) => ({ sql: INSERT[r.table], params: r.values }));
    const results = await this.o.sql.execute(tenantDatabase(tenant), statements, true);
    const failed = results.find((r) => 'error' in r);
    if (failed && 'error' in failed) throw new Error(`sink write: ${failed.error}`);
  }

  private async liveBytes(db: string): Promise<number> {
    const [r] = await this.o.sql.query(db, [
      { sql: 'SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()' },
    ]);
    if (!r || 'error' in r) return 0;
    return Number(r.values[0]?.[0] ?? 0);
  }
}
