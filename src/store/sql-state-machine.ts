/**
 * The deterministic state machine behind every database: one sql.js
 * connection to which log entries are applied in index order.
 *
 * Determinism (the same entries give the same database on every replay and
 * every replica):
 *   - each entry carries a timestamp `ts` and a random `seed`, fixed when the
 *     entry is created. While an entry is applied, SQLite's clock reads `ts`
 *     (so datetime('now'), CURRENT_TIMESTAMP and DEFAULT CURRENT_TIMESTAMP all
 *     give the entry's time) and random() / randomblob() draw from a PRNG seeded
 *     with `seed` (so each row still gets its own random value);
 *   - time zone is UTC (see sql-engine.ts);
 *   - statements that depend on connection history are rejected before they
 *     reach the log (statement-guard.ts).
 * Reads run with PRAGMA query_only=1 and the real clock and randomness.
 */
import { randomBytes } from 'node:crypto';
import type { BindParams, Database, Statement as SqlJsStatement } from 'sql.js';
import type { SqlEngine } from './sql-engine';
import { dumpSql } from './sql-backup';
import { splitStatements, tokenize } from './statement-guard';

/** The answer to every statement of a request from the BEGIN it left open on. */
export const DANGLING_TRANSACTION_ERROR = 'the request left a transaction open (BEGIN without COMMIT or ROLLBACK): everything since that BEGIN was rolled back';

/** An integer beyond ±(2^53 - 1) is a bigint (exact); every other number is a number. */
export type SqlValue = number | bigint | string | Uint8Array | null;
export type Params = SqlValue[] | Record<string, SqlValue>;

export interface Statement {
  sql: string;
  params?: Params;
}

/** A write request: the payload of one log entry. */
export interface ExecuteCommand {
  kind: 'execute';
  statements: Statement[];
  /** All statements apply atomically, or none does. */
  transaction: boolean;
}

/** Replaces the whole database with an SQLite image (POST /db/load; the leader checked it before proposing). */
export interface LoadCommand {
  kind: 'load';
  image: Uint8Array;
}

export type DatabaseCommand = ExecuteCommand | LoadCommand;

export interface LogEntry<C extends DatabaseCommand = DatabaseCommand> {
  /** Wall-clock ms at creation; SQLite's "now" while the entry applies. */
  ts: number;
  /** Seed of random() / randomblob() while the entry applies. */
  seed: number;
  command: C;
}

export interface ExecuteOk {
  last_insert_id: number | bigint;
  rows_affected: number;
  /** Present when the statement returned rows (RETURNING). */
  columns?: string[];
  values?: SqlValue[][];
}
export interface StatementError {
  error: string;
}
export type ExecuteResult = ExecuteOk | StatementError;

export interface QueryOk {
  columns: string[];
  types: string[];
  values: SqlValue[][];
}
export type QueryResult = QueryOk | StatementError;

/** Largest randomblob() accepted while applying an entry (SQLite's own limit is 1e9). */
const MAX_RANDOMBLOB = 16 * 1024 * 1024;

function opensTransaction(sql: string): boolean {
  return splitStatements(tokenize(sql)).some((st) => /^(BEGIN|SAVEPOINT)$/i.test(st[0]?.text ?? ''));
}

function findLastIndex<T>(xs: readonly T[], p: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i]!)) return i;
  return -1;
}

export class SqlStateMachine {
  private db: Database;
  /** Statements run for every entry, prepared once per connection. */
  private control!: Record<'counters' | 'writable' | 'readOnly' | 'begin' | 'rollback' | 'triggers' | 'size', SqlJsStatement>;
  private nextRandom: () => number = cryptoRandom32;

  constructor(engine: SqlEngine, image?: Uint8Array) {
    // A copy: sql.js's in-memory file system keeps `image.slice()`, which for a Node Buffer is a
    // view, so SQLite would write into the caller's bytes (a Raft snapshot that is sent on later).
    this.db = new engine.Database(image ? new Uint8Array(image) : undefined);
    this.configure();
  }

  /**
   * Per-connection setup; sql.js export() reopens the connection, so this runs
   * again after it. The rollback journal lives in memory: the database itself
   * is in memory and durability comes from the command log, so a journal file
   * in emscripten's in-memory file system would only cost time.
   */
  private configure(): void {
    this.db.create_function('random', () => random53(this.nextRandom));
    this.db.create_function('randomblob', (n: unknown) => randomBlob(this.nextRandom, n));
    this.db.run('PRAGMA journal_mode=MEMORY');
    this.db.run('PRAGMA temp_store=MEMORY');
    this.control = {
      counters: this.db.prepare('SELECT last_insert_rowid(), total_changes()'),
      writable: this.db.prepare('PRAGMA query_only=0'),
      readOnly: this.db.prepare('PRAGMA query_only=1'),
      begin: this.db.prepare('BEGIN'),
      rollback: this.db.prepare('ROLLBACK'),
      triggers: this.db.prepare("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger')"),
      size: this.db.prepare('SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()'),
    };
    this.run(this.control.readOnly);
  }

  private run(stmt: SqlJsStatement): void {
    try {
      stmt.step();
    } finally {
      stmt.reset();
    }
  }

  /** Applies one entry. Never throws for SQL errors: they are the statement's result. */
  apply(entry: LogEntry<ExecuteCommand>): ExecuteResult[] {
    const { command } = entry;
    let results: ExecuteResult[][];
    let dangling: boolean;
    this.nextRandom = seededRandom32(entry.seed);
    this.run(this.control.writable);
    try {
      results = atEntryTime(entry.ts, () => (command.transaction ? this.applyTransaction(command.statements) : this.applyEach(command.statements)));
    } finally {
      dangling = this.closeDanglingTransaction();
      this.run(this.control.readOnly);
      this.nextRandom = cryptoRandom32;
    }
    if (dangling) {
      // what the client sent from its last BEGIN on was rolled back: say so for each of those statements
      const from = Math.max(
        0,
        findLastIndex(command.statements, (st) => opensTransaction(st.sql)),
      );
      results = results.map((r, i) => (i >= from ? r.map(() => ({ error: DANGLING_TRANSACTION_ERROR })) : r));
    }
    return results.flat();
  }

  /** Per request statement, one result per SQL statement in its text. */
  private applyEach(statements: Statement[]): ExecuteResult[][] {
    return statements.map((s) => this.tryWrite(s));
  }

  private applyTransaction(statements: Statement[]): ExecuteResult[][] {
    const results: ExecuteResult[][] = [];
    this.run(this.control.begin);
    for (const s of statements) {
      const r = this.tryWrite(s);
      results.push(r);
      if (r.some((x) => 'error' in x)) {
        this.run(this.control.rollback);
        return results;
      }
    }
    try {
      this.db.run('COMMIT');
    } catch (err) {
      this.run(this.control.rollback);
      results.push([{ error: `commit failed: ${messageOf(err)}` }]);
    }
    return results;
  }

  /**
   * A request may use explicit BEGIN/COMMIT; one that leaves a transaction
   * open is rolled back here so that no entry leaks into the next one (the same
   * happens on every replay, so replicas agree).
   */
  private closeDanglingTransaction(): boolean {
    let open = false;
    try {
      this.run(this.control.begin);
    } catch {
      open = true; // BEGIN fails only inside a transaction: the request left one open
    }
    this.run(this.control.rollback);
    return open;
  }

  /**
   * Runs every SQL statement in `statement.sql` (as SQLite splits it), one
   * result each; the first that fails ends the list with its error.
   */
  private tryWrite({ sql, params }: Statement): ExecuteResult[] {
    const results: ExecuteResult[] = [];
    const hasParams = params !== undefined && (Array.isArray(params) ? params.length > 0 : Object.keys(params).length > 0);
    try {
      for (const stmt of this.db.iterateStatements(sql)) {
        try {
          if (hasParams && results.length > 0) throw new Error('parameters were given for a string that holds several statements');
          results.push(this.writeOne(stmt, hasParams ? params : undefined));
        } finally {
          stmt.free();
        }
      }
      if (results.length === 0) throw new Error('empty statement');
    } catch (err) {
      results.push({ error: messageOf(err) });
    }
    return results;
  }

  private writeOne(stmt: SqlJsStatement, params: Params | undefined): ExecuteOk {
    const before = this.counters();
    if (params) stmt.bind(bindable(params));
    let columns: string[] | undefined;
    let values: SqlValue[][] | undefined;
    while (stmt.step()) {
      columns ??= stmt.getColumnNames();
      (values ??= []).push(readRow(stmt));
    }
    const rowsModified = this.db.getRowsModified();
    const after = this.counters();
    const result: ExecuteOk = {
      last_insert_id: after.lastInsertId,
      rows_affected: after.totalChanges === before.totalChanges ? 0 : rowsModified,
    };
    if (columns) {
      result.columns = columns;
      result.values = values ?? [];
    }
    return result;
  }

  private counters(): { lastInsertId: number | bigint; totalChanges: number } {
    const c = this.control.counters;
    c.step();
    const [lastInsertId, totalChanges] = readRow(c) as [number | bigint, number];
    c.reset();
    return { lastInsertId, totalChanges };
  }

  /** Whether the schema has triggers (then any write may run arbitrary SQL). */
  hasTriggers(): boolean {
    const t = this.control.triggers;
    try {
      t.step();
      return t.get()[0] === 1;
    } finally {
      t.reset();
    }
  }

  /**
   * Runs a write's statements as `apply` would, inside a transaction that is
   * rolled back: nothing changes. Transaction control in the request is
   * skipped (the whole trial is one transaction). What it measures is how long
   * the write takes; its answers are not kept.
   */
  trial(entry: LogEntry<ExecuteCommand>): void {
    this.nextRandom = seededRandom32(entry.seed);
    this.run(this.control.writable);
    try {
      this.run(this.control.begin);
      atEntryTime(entry.ts, () => {
        for (const { sql, params } of entry.command.statements) {
          for (const stmt of this.db.iterateStatements(sql)) {
            try {
              if (isTransactionControl(stmt.getSQL())) continue;
              if (params !== undefined) stmt.bind(bindable(params));
              while (stmt.step());
            } finally {
              stmt.free();
            }
          }
        }
      });
    } catch {
      // the real apply answers the error
    } finally {
      this.closeDanglingTransaction();
      this.run(this.control.readOnly);
      this.nextRandom = cryptoRandom32;
    }
  }

  /** Runs the first read-only statement of `statement.sql` on the local state. */
  query(statement: Statement): QueryResult {
    return this.queryAll(statement)[0]!;
  }

  /** Runs every read-only statement in `statement.sql`, one result each; the first that fails ends the list. */
  queryAll({ sql, params }: Statement): QueryResult[] {
    const results: QueryResult[] = [];
    try {
      for (const stmt of this.db.iterateStatements(sql)) {
        try {
          if (params !== undefined && results.length > 0) throw new Error('parameters were given for a string that holds several statements');
          if (params !== undefined) stmt.bind(bindable(params));
          const columns = stmt.getColumnNames();
          const values: SqlValue[][] = [];
          while (stmt.step()) values.push(readRow(stmt));
          results.push({ columns, types: columnTypes(columns.length, values), values });
        } finally {
          stmt.free();
        }
      }
      if (results.length === 0) throw new Error('empty statement');
    } catch (err) {
      results.push({ error: messageOf(err) });
    }
    return results;
  }

  /** The whole database as an SQLite file image (for snapshots). */
  export(): Uint8Array {
    for (const stmt of Object.values(this.control)) stmt.free();
    const image = this.db.export();
    this.configure();
    return image;
  }

  /** The database as SQL text (sqlite3's .dump). */
  dump(): string {
    return dumpSql(this.db);
  }

  /** Bytes the database occupies (page_count * page_size). */
  sizeBytes(): number {
    const t = this.control.size;
    try {
      t.step();
      return Number(t.get()[0] ?? 0);
    } finally {
      t.reset();
    }
  }

  close(): void {
    this.db.close();
  }
}

function isTransactionControl(sql: string): boolean {
  return /^(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)$/i.test(tokenize(sql)[0]?.text ?? '');
}

/**
 * One row, integers exact: sql.js reads an INTEGER as a double, so a value
 * that comes back beyond ±(2^53 - 1) is read again as a bigint (from SQLite's
 * decimal text of it), and a bigint within that range becomes a number.
 */
function readRow(stmt: SqlJsStatement): SqlValue[] {
  const row = stmt.get() as SqlValue[];
  if (!row.some((v) => typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v))) return row;
  const exact = (stmt.get as (params: null, config: { useBigInt: boolean }) => SqlValue[]).call(stmt, null, { useBigInt: true });
  return exact.map((v) => (typeof v === 'bigint' && v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v));
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * sql.js binds named parameters by their full name (":x"); rqlite clients send
 * bare names. It binds a bigint as its decimal text (it has no 64-bit bind), so
 * a column of INTEGER or NUMERIC affinity stores it as that exact integer.
 */
function bindable(params: Params): BindParams {
  if (Array.isArray(params)) return params as BindParams;
  const out: Record<string, SqlValue> = {};
  for (const [key, value] of Object.entries(params)) {
    if (/^[:@$]/.test(key)) out[key] = value;
    else {
      out[`:${key}`] = value;
      out[`@${key}`] = value;
      out[`$${key}`] = value;
    }
  }
  return out as BindParams;
}

function columnTypes(width: number, rows: SqlValue[][]): string[] {
  const types: string[] = new Array(width).fill('');
  for (let c = 0; c < width; c++) {
    for (const row of rows) {
      const v = row[c];
      if (v === null || v === undefined) continue;
      types[c] = typeof v === 'string' ? 'text' : v instanceof Uint8Array ? 'blob' : typeof v === 'bigint' || Number.isInteger(v) ? 'integer' : 'real';
      break;
    }
  }
  return types;
}

function cryptoRandom32(): number {
  return randomBytes(4).readUInt32LE(0);
}

/** splitmix32: small, fast, and the same sequence on every platform for a seed. */
export function seededRandom32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * SQLite's random() is a 64-bit integer; sql.js can return at most a double,
 * so this returns an integer in ±(2^53 - 1).
 */
function random53(next: () => number): number {
  const high = next() & 0x1fffff;
  const value = high * 0x100000000 + next();
  return next() & 1 ? -value : value;
}

function randomBlob(next: () => number, n: unknown): Uint8Array {
  const size = Math.max(1, Math.floor(Number(n) || 0));
  if (size > MAX_RANDOMBLOB) throw new Error(`randomblob(${size}) is larger than ${MAX_RANDOMBLOB} bytes`);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 4) {
    const r = next();
    out[i] = r & 0xff;
    if (i + 1 < size) out[i + 1] = (r >>> 8) & 0xff;
    if (i + 2 < size) out[i + 2] = (r >>> 16) & 0xff;
    if (i + 3 < size) out[i + 3] = r >>> 24;
  }
  return out;
}

/**
 * Runs `fn` with `Date.now` answering the entry's timestamp: sql.js reads the
 * time for `datetime('now')` and friends through it, and every replica must
 * read the same. Deliberately the one place that replaces the global.
 */
function atEntryTime<T>(ts: number, fn: () => T): T {
  /* eslint-disable no-restricted-properties -- the entry's time stands in for the wall clock */
  const realNow = Date.now;
  Date.now = () => ts;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
  /* eslint-enable no-restricted-properties */
}
