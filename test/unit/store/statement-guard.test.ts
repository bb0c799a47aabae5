import { describe, expect, it } from 'vitest';
import { checkReadStatement, checkWriteStatement, splitStatements, tokenize } from '../../../src/store/statement-guard';

const rejectsWrite = (sql: string) => expect(() => checkWriteStatement(sql), sql).toThrow(/./);
const acceptsWrite = (sql: string) => expect(() => checkWriteStatement(sql), sql).not.toThrow();
const rejectsRead = (sql: string) => expect(() => checkReadStatement(sql), sql).toThrow(/./);
const acceptsRead = (sql: string) => expect(() => checkReadStatement(sql), sql).not.toThrow();

describe('statement guard', () => {
  it('tokenizes literals, identifiers and comments without matching keywords inside them', () => {
    const t = tokenize(`SELECT 'it''s ATTACH', "we""ird", [br ack], x'00ff' -- ATTACH\n /* DETACH */ FROM t;`);
    expect(t.map((x) => x.kind)).toEqual(['word', 'string', 'punct', 'ident', 'punct', 'ident', 'punct', 'blob', 'word', 'word', 'punct']);
    expect(t[1]!.text).toBe(`'it''s ATTACH'`);
  });

  it('splits statements but keeps trigger bodies whole', () => {
    const stmts = splitStatements(
      tokenize('CREATE TABLE a(x); CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO b VALUES(1); DELETE FROM c; END; SELECT 1'),
    );
    expect(stmts.map((s) => s[0]!.text)).toEqual(['CREATE', 'CREATE', 'SELECT']);
  });

  it('accepts ordinary writes, including time and randomness (made deterministic by the entry)', () => {
    acceptsWrite('INSERT INTO t VALUES(random(), randomblob(16), CURRENT_TIMESTAMP)');
    acceptsWrite("UPDATE t SET ts = datetime('now') WHERE id = ?");
    acceptsWrite('CREATE TABLE t (id INTEGER PRIMARY KEY, ts DEFAULT CURRENT_TIMESTAMP)');
    acceptsWrite("INSERT INTO t VALUES('ATTACH DATABASE x', 'PRAGMA foo=1')");
    acceptsWrite('BEGIN; INSERT INTO t VALUES(1); COMMIT');
    acceptsWrite('PRAGMA user_version = 3');
    acceptsWrite('PRAGMA main.application_id=7');
  });

  it('rejects writes that reach outside the database or depend on connection state', () => {
    rejectsWrite("ATTACH DATABASE 'x.db' AS x");
    rejectsWrite('DETACH x');
    rejectsWrite('INSERT INTO t VALUES(1); attach "y" as y');
    rejectsWrite('PRAGMA foreign_keys = ON');
    rejectsWrite('PRAGMA journal_mode=WAL');
    rejectsWrite('PRAGMA user_version');
    rejectsWrite('INSERT INTO t VALUES(total_changes())');
    rejectsWrite('   ');
    rejectsWrite('-- only a comment');
  });

  it('accepts read-only queries and rejects everything else', () => {
    acceptsRead('SELECT * FROM t');
    acceptsRead('  with x as (select 1) select * from x');
    acceptsRead('VALUES(1),(2)');
    acceptsRead('EXPLAIN QUERY PLAN SELECT 1');
    acceptsRead('PRAGMA table_info(t)');
    rejectsRead('INSERT INTO t VALUES(1)');
    // a WITH clause may introduce a write: that is not a query
    rejectsRead('WITH x(v) AS (SELECT 1) INSERT INTO t SELECT v FROM x');
    rejectsRead('with recursive x(v) as (select 1 union all select v + 1 from x where v < 3) delete from t where v in x');
    rejectsRead('WITH x AS (SELECT 1) UPDATE t SET v = (SELECT * FROM x)');
    rejectsRead('WITH x AS MATERIALIZED (SELECT 1) REPLACE INTO t SELECT * FROM x');
    acceptsRead('WITH x AS (SELECT 1), y AS NOT MATERIALIZED (SELECT 2) SELECT * FROM x, y');
    acceptsRead("WITH x(v) AS (VALUES('delete')) VALUES((SELECT v FROM x))");
    rejectsRead('BEGIN');
    rejectsRead('PRAGMA query_only=0');
    acceptsRead('SELECT 1; SELECT 2');
    rejectsRead('SELECT 1; DELETE FROM t');
    rejectsRead("ATTACH 'x' AS y");
  });
});
