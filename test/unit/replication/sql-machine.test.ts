/** The database state machine behind Raft: snapshots round-trip, and entry time never runs backwards after a failover or restore. */
import { describe, expect, it } from 'vitest';
import { SqlMachine } from '../../../src/replication/sql-machine';
import { loadSqlEngine } from '../../../src/store/sql-engine';

const entry = (ts: number, sql: string) => ({ ts, seed: ts, command: { kind: 'execute' as const, transaction: false, statements: [{ sql }] } });

describe('SqlMachine', () => {
  it('keeps the newest entry time across snapshot and restore, with the data', async () => {
    const engine = await loadSqlEngine();
    const a = new SqlMachine(engine);
    a.apply(entry(5_000, 'CREATE TABLE t(at)'));
    a.apply(entry(9_000, "INSERT INTO t VALUES(datetime('now'))"));
    a.apply(entry(7_000, 'SELECT 1')); // an older stamp does not move it back
    expect(a.lastTs).toBe(9_000);
    const b = new SqlMachine(engine);
    b.restore(a.snapshot());
    expect(b.lastTs).toBe(9_000);
    expect(b.queryAllNow([{ sql: 'SELECT at FROM t' }])[0]).toMatchObject({ values: [['1970-01-01 00:00:09']] });
    b.restore(undefined);
    expect(b.lastTs).toBe(0);
    expect(b.apply({ nope: true })).toEqual({ error: 'not a database command' });
  });
});
