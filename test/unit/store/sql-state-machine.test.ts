import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { DANGLING_TRANSACTION_ERROR, SqlStateMachine, type ExecuteCommand, type LogEntry, type Statement } from '../../../src/store/sql-state-machine';

const engine = await loadSqlEngine();

function entry(ts: number, seed: number, statements: (string | Statement)[], transaction = false): LogEntry<ExecuteCommand> {
  return {
    ts,
    seed,
    command: { kind: 'execute', transaction, statements: statements.map((s) => (typeof s === 'string' ? { sql: s } : s)) },
  };
}

function values(sm: SqlStateMachine, sql: string): unknown[][] {
  const r = sm.query({ sql });
  if ('error' in r) throw new Error(r.error);
  return r.values;
}

const HISTORY: LogEntry<ExecuteCommand>[] = [
  entry(1_000_000_000_000, 11, ['CREATE TABLE t (id INTEGER PRIMARY KEY, r, b, ts DEFAULT CURRENT_TIMESTAMP, d)']),
  entry(1_000_000_001_000, 22, ["INSERT INTO t (r, b, d) VALUES (random(), randomblob(8), datetime('now'))"]),
  entry(1_000_000_002_000, 33, ['INSERT INTO t (r, b) SELECT random(), randomblob(4) FROM t', "UPDATE t SET d = julianday('now') WHERE d IS NULL"]),
  entry(1_000_000_003_000, 44, ["INSERT INTO t (r, d) VALUES (abs(random()) % 100, strftime('%s','now'))"]),
];

describe('SqlStateMachine', () => {
  it('replays to byte-identical databases, whatever the real clock and randomness say', async () => {
    const a = new SqlStateMachine(engine);
    for (const e of HISTORY) a.apply(e);
    await new Promise((r) => setTimeout(r, 1100)); // the real clock moves on between the two replays
    const b = new SqlStateMachine(engine);
    for (const e of HISTORY) b.apply(e);
    expect(Buffer.from(b.export()).equals(Buffer.from(a.export()))).toBe(true);
    expect(values(a, 'SELECT * FROM t ORDER BY id')).toEqual(values(b, 'SELECT * FROM t ORDER BY id'));
  });

  it("evaluates time at the entry's timestamp, also for DEFAULT CURRENT_TIMESTAMP", () => {
    const sm = new SqlStateMachine(engine);
    for (const e of HISTORY.slice(0, 2)) sm.apply(e);
    expect(values(sm, 'SELECT ts, d FROM t')).toEqual([['2001-09-09 01:46:41', '2001-09-09 01:46:41']]);
    // Reads use the real clock.
    const now = values(sm, "SELECT strftime('%Y', 'now')")[0]![0];
    expect(Number(now)).toBeGreaterThan(2020);
  });

  it('gives each row its own random value, seeded by the entry', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(
      entry(1, 5, ['CREATE TABLE n(x)', 'WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<50) INSERT INTO n SELECT random() FROM c']),
    );
    const xs = values(sm, 'SELECT x FROM n').map((r) => r[0]);
    expect(new Set(xs).size).toBe(50);
    for (const x of xs) expect(Number.isSafeInteger(x)).toBe(true);
    const other = new SqlStateMachine(engine);
    other.apply(entry(1, 6, ['CREATE TABLE n(x)', 'INSERT INTO n VALUES(random())']));
    expect(values(other, 'SELECT x FROM n')[0]![0]).not.toBe(xs[0]);
  });

  it('returns per-statement results and keeps going after an error outside a transaction', () => {
    const sm = new SqlStateMachine(engine);
    const r = sm.apply(
      entry(1, 1, [
        'CREATE TABLE t(id INTEGER PRIMARY KEY, v)',
        { sql: 'INSERT INTO t(v) VALUES(?)', params: ['a'] },
        'INSERT INTO nope VALUES(1)',
        { sql: 'INSERT INTO t(v) VALUES(:v)', params: { v: 'b' } },
        'UPDATE t SET v = v || v',
      ]),
    );
    expect(r).toEqual([
      { last_insert_id: 0, rows_affected: 0 },
      { last_insert_id: 1, rows_affected: 1 },
      { error: 'no such table: nope' },
      { last_insert_id: 2, rows_affected: 1 },
      { last_insert_id: 2, rows_affected: 2 },
    ]);
  });

  it('applies a transaction atomically: an error rolls every statement back', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(v UNIQUE)']));
    const r = sm.apply(entry(2, 1, ['INSERT INTO t VALUES(1)', 'INSERT INTO t VALUES(2)', 'INSERT INTO t VALUES(1)', 'INSERT INTO t VALUES(3)'], true));
    expect(r).toHaveLength(3);
    expect(r[2]).toEqual({ error: expect.stringMatching(/UNIQUE constraint failed/) });
    expect(values(sm, 'SELECT count(*) FROM t')).toEqual([[0]]);
    sm.apply(entry(3, 1, ['INSERT INTO t VALUES(1)', 'INSERT INTO t VALUES(2)'], true));
    expect(values(sm, 'SELECT count(*) FROM t')).toEqual([[2]]);
  });

  it('rolls back a transaction a request leaves open, so it never leaks into the next entry', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(v)']));
    const left = sm.apply(entry(2, 1, ["INSERT INTO t VALUES('kept')", 'BEGIN', 'INSERT INTO t VALUES(1)']));
    // the client is told, statement by statement, what was rolled back; what came before stays
    expect(left).toEqual([{ last_insert_id: 1, rows_affected: 1 }, { error: DANGLING_TRANSACTION_ERROR }, { error: DANGLING_TRANSACTION_ERROR }]);
    expect(values(sm, 'SELECT v FROM t')).toEqual([['kept']]);
    sm.apply(entry(2, 1, ["DELETE FROM t WHERE v = 'kept'"]));
    sm.apply(entry(3, 1, ['BEGIN; INSERT INTO t VALUES(2); COMMIT']));
    expect(values(sm, 'SELECT v FROM t')).toEqual([[2]]);
  });

  it('returns rows of RETURNING, and one result per statement of a string that holds several', () => {
    const sm = new SqlStateMachine(engine);
    const r = sm.apply(entry(1, 1, ['CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t(v) VALUES (1)', 'INSERT INTO t(v) VALUES (7) RETURNING id, v']));
    expect(r).toEqual([
      { last_insert_id: 0, rows_affected: 0 },
      { last_insert_id: 1, rows_affected: 1 },
      { last_insert_id: 2, rows_affected: 1, columns: ['id', 'v'], values: [[2, 7]] },
    ]);
    expect(sm.apply(entry(2, 1, ['SELECT 1; SELECT 2']))).toEqual([
      { last_insert_id: 2, rows_affected: 0, columns: ['1'], values: [[1]] },
      { last_insert_id: 2, rows_affected: 0, columns: ['2'], values: [[2]] },
    ]);
    // the first failing statement of a string ends it, after the results of those before it
    expect(sm.apply(entry(3, 1, ['INSERT INTO t(v) VALUES (3); INSERT INTO nope VALUES (1); INSERT INTO t(v) VALUES (4)']))).toEqual([
      { last_insert_id: 3, rows_affected: 1 },
      { error: expect.stringMatching(/no such table: nope/) },
    ]);
    expect(sm.apply(entry(4, 1, [{ sql: 'INSERT INTO t(v) VALUES(?); INSERT INTO t(v) VALUES(?)', params: [1] }]))).toEqual([
      { last_insert_id: 4, rows_affected: 1 },
      { error: expect.stringMatching(/several statements/) },
    ]);
    expect(sm.queryAll({ sql: 'SELECT count(*) FROM t; SELECT max(v) FROM t' }).map((q) => ('values' in q ? q.values : q))).toEqual([[[4]], [[7]]]);
  });

  it('never lets a query write, even one the guard would miss', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)']));
    expect(sm.query({ sql: 'WITH x AS (SELECT 1) DELETE FROM t' })).toEqual({ error: expect.stringMatching(/readonly/) });
    expect(values(sm, 'SELECT count(*) FROM t')).toEqual([[1]]);
  });

  it('keeps its functions and read-only guard after export (which reopens the connection)', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(v)']));
    const image = sm.export();
    expect(sm.query({ sql: 'WITH x AS (SELECT 1) DELETE FROM t' })).toEqual({ error: expect.stringMatching(/readonly/) });
    const a = sm.apply(entry(2, 9, ['INSERT INTO t VALUES(random())']));
    const copy = new SqlStateMachine(engine, image);
    copy.apply(entry(2, 9, ['INSERT INTO t VALUES(random())']));
    expect(a[0]).toEqual({ last_insert_id: 1, rows_affected: 1 });
    expect(values(copy, 'SELECT v FROM t')).toEqual(values(sm, 'SELECT v FROM t'));
  });

  it('never writes into the image it was opened from (a Raft snapshot that is later sent to followers)', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(v)', "INSERT INTO t VALUES ('before')"]));
    // a Buffer, as snapshots come from disk and the wire: sql.js's file system "copies" with slice(), a view for a Buffer
    const image = Buffer.from(sm.export());
    const pristine = Buffer.from(image);
    const opened = new SqlStateMachine(engine, image);
    opened.apply(entry(2, 2, ["INSERT INTO t SELECT 'x' || value FROM generate_series(1, 500)", "UPDATE t SET v = 'after'"]));
    expect(image.equals(pristine)).toBe(true);
    expect(values(new SqlStateMachine(engine, image), 'SELECT count(*) FROM t')).toEqual([[1]]);
  });

  it('reports column types from values and BLOBs as bytes', () => {
    const sm = new SqlStateMachine(engine);
    sm.apply(entry(1, 1, ['CREATE TABLE t(a, b, c, d, e)', "INSERT INTO t VALUES(1, 1.5, 'x', x'0102', NULL)"]));
    const r = sm.query({ sql: 'SELECT * FROM t' });
    expect(r).toEqual({
      columns: ['a', 'b', 'c', 'd', 'e'],
      types: ['integer', 'real', 'text', 'blob', ''],
      values: [[1, 1.5, 'x', new Uint8Array([1, 2]), null]],
    });
  });
});
