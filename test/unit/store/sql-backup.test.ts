/**
 * Backups of a database: an SQL dump reads back to exactly the same rows
 * (64-bit integers, reals to the last bit, blobs, quotes and newlines in
 * text, NULLs, AUTOINCREMENT counters, indexes, triggers, views), an SQLite
 * file reads back whole, and damaged, truncated or foreign bytes are refused
 * with invalid_backup.
 */
import type { SqlJsStatic } from 'sql.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { GandalfError } from '../../../src/core/errors';
import { dumpSql, isSqliteImage, loadableImage } from '../../../src/store/sql-backup';
import { loadSqlEngine } from '../../../src/store/sql-engine';

let engine: SqlJsStatic;
beforeAll(async () => {
  engine = await loadSqlEngine();
});

function sample(): InstanceType<SqlJsStatic['Database']> {
  const db = new engine.Database();
  db.exec(`
    CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, s TEXT, b BLOB, n);
    INSERT INTO t(i, r, s, b, n) VALUES (9223372036854775807, 0.1, 'it''s', x'00ff10', NULL);
    INSERT INTO t(i, r, s, b, n) VALUES (-9223372036854775808, 1e300, 'two
lines', x'', 3.0);
    INSERT INTO t(i, r, s, b, n) VALUES (9007199254740993, 2.5e-310, '', NULL, 'text');
    INSERT INTO t(i, r, s) VALUES (1, 1.0000000000000002, '"quoted" ident');
    INSERT INTO t(i, r) VALUES (2, 9e999);
    DELETE FROM t WHERE id = 5;
    CREATE TABLE "odd ""name"""(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    INSERT INTO "odd ""name"""(k, v) VALUES ('a', 1), ('b', -0.0);
    CREATE INDEX t_i ON t(i);
    CREATE VIEW v AS SELECT id, s FROM t;
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET n = 'trig' WHERE id = new.id; END;
  `);
  return db;
}

/** Every row of every table, exactly: integers as text (no rounding through doubles), reals as their bits. */
function contents(db: InstanceType<SqlJsStatic['Database']>): unknown {
  const tables = db.exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")[0]!.values.map((r) => String(r[0]));
  const out: Record<string, unknown> = {};
  for (const t of tables) {
    const cols = db.exec(`SELECT name FROM pragma_table_info('${t.replace(/'/g, "''")}')`)[0]!.values.map((r) => String(r[0]));
    const q = `"${t.replace(/"/g, '""')}"`;
    const select = cols
      .map(
        (c) =>
          `typeof("${c}"), CASE typeof("${c}") WHEN 'real' THEN hex(CAST("${c}" AS BLOB)) || ':' || printf('%!.20g', "${c}") WHEN 'blob' THEN hex("${c}") ELSE CAST("${c}" AS TEXT) END`,
      )
      .join(', ');
    out[t] = db.exec(`SELECT ${select} FROM ${q} ORDER BY 1, 2`)[0]?.values ?? [];
  }
  out.schema = db.exec('SELECT type, name, sql FROM sqlite_master ORDER BY name')[0]!.values;
  return out;
}

describe('SQL dumps', () => {
  it('read back to exactly the same rows, schema and AUTOINCREMENT counter', () => {
    const db = sample();
    const dump = dumpSql(db);
    expect(dump.startsWith('PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n')).toBe(true);
    expect(dump.trimEnd().endsWith('COMMIT;')).toBe(true);
    const copy = new engine.Database(loadableImage(engine, Buffer.from(dump, 'utf8')));
    expect(contents(copy)).toEqual(contents(db));
    // the counter survived: the next row gets id 6, not 5
    copy.exec("INSERT INTO t(s) VALUES ('next')");
    expect(copy.exec("SELECT id, n FROM t WHERE s = 'next'")[0]!.values).toEqual([[6, 'trig']]);
    // and the exact values are there
    expect(copy.exec('SELECT CAST(i AS TEXT) FROM t WHERE id = 1')[0]!.values).toEqual([['9223372036854775807']]);
    expect(copy.exec('SELECT r = 0.1, typeof(r) FROM t WHERE id = 1')[0]!.values).toEqual([[1, 'real']]);
    expect(copy.exec('SELECT r > 1e308 FROM t WHERE id = 4')[0]?.values ?? [[1]]).toEqual([[0]]);
    db.close();
    copy.close();
  });

  it('a dump of an empty database loads to an empty database', () => {
    const db = new engine.Database();
    const copy = new engine.Database(loadableImage(engine, Buffer.from(dumpSql(db))));
    expect(copy.exec('SELECT count(*) FROM sqlite_master')[0]!.values).toEqual([[0]]);
  });
});

describe('loading', () => {
  const refused = (bytes: Uint8Array): string => {
    try {
      loadableImage(engine, bytes);
    } catch (err) {
      expect(err).toBeInstanceOf(GandalfError);
      expect((err as GandalfError).code).toBe('invalid_backup');
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('an SQLite file reads back whole', () => {
    const db = sample();
    const image = db.export();
    expect(isSqliteImage(image)).toBe(true);
    const copy = new engine.Database(loadableImage(engine, image));
    expect(contents(copy)).toEqual(contents(sample()));
  });

  it('refuses a truncated, damaged or foreign file and a truncated or invalid dump, saying why', () => {
    const image = sample().export();
    expect(refused(image.subarray(0, 3000))).toMatch(/truncated/);
    expect(refused(image.subarray(0, image.length - 4096))).toMatch(/truncated|damaged/);
    const damaged = new Uint8Array(image);
    for (let i = 4096; i < 8192; i++) damaged[i] = 0x5a; // the whole second page (a table b-tree page)
    expect(refused(damaged)).toMatch(/damaged|does not open/);
    expect(refused(new Uint8Array([0xff, 0xfe, 0x00, 0x41]))).toMatch(/neither an SQLite database file nor UTF-8 SQL text/);
    expect(refused(new Uint8Array(0))).toMatch(/empty/);
    const dump = dumpSql(sample());
    expect(refused(Buffer.from(dump.slice(0, dump.indexOf('COMMIT;'))))).toMatch(/transaction open|does not load/);
    expect(refused(Buffer.from(dump.slice(0, Math.floor(dump.length / 2))))).toMatch(/does not load|transaction open/);
    expect(refused(Buffer.from('CREATE TABLE x(a); INSERT INTO nope VALUES(1);'))).toMatch(/does not load: no such table: nope/);
  });
});
