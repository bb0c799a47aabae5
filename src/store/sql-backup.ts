/**
 * Backups of one database in the two forms rqlite users know: the SQLite file
 * itself, and an SQL dump (as sqlite3's .dump writes it, values exact: 64-bit
 * integers, reals that read back to the same double, BLOBs in hex). And the
 * way back: bytes that claim to be a backup become a checked SQLite image or
 * a clear `invalid_backup` error, never a half-loaded database.
 */
import type { Database } from 'sql.js';
import { GandalfError } from '../core/errors';
import type { SqlEngine } from './sql-engine';

const SQLITE_HEADER = 'SQLite format 3\0';

export function isSqliteImage(bytes: Uint8Array): boolean {
  if (bytes.length < SQLITE_HEADER.length) return false;
  for (let i = 0; i < SQLITE_HEADER.length; i++) if (bytes[i] !== SQLITE_HEADER.charCodeAt(i)) return false;
  return true;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A REAL as an SQL literal that reads back to the same double (SQLite's quote() keeps only 15 digits). */
function realLiteral(v: number): string {
  if (v === Infinity) return '9e999';
  if (v === -Infinity) return '-9e999';
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function rows(db: Database, sql: string): unknown[][] {
  const out: unknown[][] = [];
  const stmt = db.prepare(sql);
  try {
    while (stmt.step()) out.push(stmt.get());
  } finally {
    stmt.free();
  }
  return out;
}

/** Every row of `table` as INSERT statements. */
function* tableRows(db: Database, table: string): Generator<string> {
  const columns = rows(db, `SELECT name FROM pragma_table_info(${sqlString(table)})`).map((r) => String(r[0]));
  if (columns.length === 0) return;
  // per column: SQL literal (exact for integers, text and blobs), storage class, and the value (for reals)
  const select = columns.map((c) => `quote(${quoteIdent(c)}), typeof(${quoteIdent(c)}), ${quoteIdent(c)}`).join(', ');
  const stmt = db.prepare(`SELECT ${select} FROM ${quoteIdent(table)}`);
  try {
    while (stmt.step()) {
      const r = stmt.get();
      const values: string[] = [];
      for (let i = 0; i < columns.length; i++) values.push(r[3 * i + 1] === 'real' ? realLiteral(Number(r[3 * i + 2])) : String(r[3 * i]));
      yield `INSERT INTO ${quoteIdent(table)} VALUES(${values.join(',')});`;
    }
  } finally {
    stmt.free();
  }
}

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * The database as SQL text, in the shape of sqlite3's .dump: tables with
 * their rows, then indexes, triggers and views, in one transaction. Virtual
 * tables are written as their CREATE statement only.
 */
export function dumpSql(db: Database): string {
  const lines = ['PRAGMA foreign_keys=OFF;', 'BEGIN TRANSACTION;'];
  const schema = rows(
    db,
    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'trigger' THEN 2 ELSE 3 END, rowid",
  );
  let sequence = false;
  for (const [type, name, sql] of schema as [string, string, string][]) {
    if (type !== 'table') continue;
    if (name === 'sqlite_sequence') {
      sequence = true;
      continue;
    }
    if (name.startsWith('sqlite_')) continue; // sqlite_stat*: rebuilt by ANALYZE
    lines.push(`${sql};`);
    if (/^CREATE\s+VIRTUAL\s+TABLE/i.test(sql)) continue;
    for (const insert of tableRows(db, name)) lines.push(insert);
  }
  if (sequence) {
    lines.push('DELETE FROM sqlite_sequence;');
    for (const insert of tableRows(db, 'sqlite_sequence')) lines.push(insert);
  }
  for (const [type, name, sql] of schema as [string, string, string][]) {
    if (type === 'table' || name.startsWith('sqlite_')) continue;
    lines.push(`${sql};`);
  }
  lines.push('COMMIT;');
  return `${lines.join('\n')}\n`;
}

function invalid(message: string): GandalfError {
  return new GandalfError('invalid_backup', message);
}

/**
 * What POST /db/load was given, as an SQLite image to replace the database
 * with: an SQLite file that opens and passes SQLite's integrity check, or SQL
 * text (a dump) that runs without error on an empty database.
 */
export function loadableImage(engine: SqlEngine, bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) throw invalid('the body is empty: send an SQLite database file or SQL text');
  let db: Database;
  if (isSqliteImage(bytes)) {
    const pageSize = pageSizeOf(bytes);
    if (bytes.length < 100 || pageSize === undefined) throw invalid('not a whole SQLite database file: its header is damaged');
    if (bytes.length % pageSize !== 0)
      throw invalid(`not a whole SQLite database file: ${bytes.length} bytes is not a multiple of its page size ${pageSize} (truncated?)`);
    const pages = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(28);
    if (pages * pageSize > bytes.length)
      throw invalid(
        `not a whole SQLite database file: its header counts ${pages} pages of ${pageSize} bytes, the file holds ${bytes.length / pageSize} (truncated?)`,
      );
    try {
      db = new engine.Database(new Uint8Array(bytes));
    } catch (err) {
      throw invalid(`the SQLite file does not open: ${(err as Error).message}`);
    }
    try {
      const check = rows(db, 'PRAGMA integrity_check').map((r) => String(r[0]));
      if (check.length !== 1 || check[0] !== 'ok') throw invalid(`the SQLite file is damaged: ${check.slice(0, 3).join('; ')}`);
    } catch (err) {
      db.close();
      if (err instanceof GandalfError) throw err;
      throw invalid(`the SQLite file is damaged: ${(err as Error).message}`);
    }
  } else {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw invalid('neither an SQLite database file nor UTF-8 SQL text');
    }
    db = new engine.Database();
    try {
      db.exec(text);
    } catch (err) {
      db.close();
      throw invalid(`the SQL does not load: ${(err as Error).message}`);
    }
    // a dump cut short leaves its transaction open: refuse it rather than load part of it
    try {
      db.exec('BEGIN');
      db.exec('ROLLBACK');
    } catch {
      db.close();
      throw invalid('the SQL text leaves a transaction open (a truncated dump?)');
    }
  }
  try {
    return db.export();
  } finally {
    db.close();
  }
}

function pageSizeOf(bytes: Uint8Array): number | undefined {
  if (bytes.length < 100) return undefined;
  const raw = (bytes[16]! << 8) | bytes[17]!;
  const size = raw === 1 ? 65536 : raw;
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0 ? size : undefined;
}
