/**
 * The node's database state machine on worker threads (WorkerSqlMachine):
 * long reads are stopped at their bound or when the client goes away, the
 * main thread stays free meanwhile, writes are never held up by a read, and a
 * long write is refused by its trial without changing anything.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/core/clock';
import type { ExecuteResult, LogEntry, QueryResult, Statement } from '../../../src/store/sql-state-machine';
import type { WorkerSqlMachine } from '../../../src/replication/worker-sql-machine';
import { workerMachine } from '../../helpers/sql-worker';
import { SimClock } from '../../helpers/sim/sim-clock';

const COUNT_TO = (n: number) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT count(*) FROM c`;
let ts = 1_000;
function entry(...statements: (string | Statement)[]): LogEntry {
  return { ts: ++ts, seed: ts, command: { kind: 'execute', transaction: false, statements: statements.map((s) => (typeof s === 'string' ? { sql: s } : s)) } };
}

const open: WorkerSqlMachine[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

async function machine(opts: { readerHeapMb?: number; clock?: Clock } = {}): Promise<WorkerSqlMachine> {
  const m = workerMachine(opts);
  open.push(m);
  await m.restore(undefined);
  return m;
}

function values(r: QueryResult[] | undefined): unknown[][] {
  const first = r?.[0];
  if (!first || 'error' in first) throw new Error(`query failed: ${JSON.stringify(first)}`);
  return first.values;
}

describe('WorkerSqlMachine', () => {
  it('stops a read at its bound with query_timeout; the main thread, writes and the next read go on', async () => {
    const m = await machine();
    await m.apply(entry('CREATE TABLE t(v)'));
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    let slowSettled = false;
    const slow = m.queryAll([{ sql: COUNT_TO(1e10) }], { timeoutMs: 1500 }).then(
      () => 'finished',
      (err: { code?: string }) => err.code,
    );
    void slow.finally(() => (slowSettled = true));
    // while it runs: writes apply and answer, the event loop ticks
    const writes: unknown[] = [];
    for (let i = 0; i < 5; i++) writes.push(await m.apply(entry({ sql: 'INSERT INTO t VALUES(?)', params: [i] })));
    const writesBeforeRead = !slowSettled;
    expect(await slow).toBe('query_timeout');
    clearInterval(ticker);
    expect(writes.every((w) => Array.isArray(w) && (w as ExecuteResult[])[0] && 'rows_affected' in (w as ExecuteResult[])[0]!)).toBe(true);
    expect(writesBeforeRead).toBe(true); // the writes did not wait for the read
    expect(ticks).toBeGreaterThan(10); // with SQL on this thread: 0 ticks while it ran
    // a fresh reader serves the next read, with every write
    expect(values(await m.queryAll([{ sql: 'SELECT count(*) FROM t' }], { timeoutMs: 5000 }))).toEqual([[5]]);
  }, 20_000);

  it('stops a read when its client goes away (query_canceled)', async () => {
    const m = await machine();
    const gone = new AbortController();
    const slow = m.queryAll([{ sql: COUNT_TO(1e10) }], { timeoutMs: 60_000, signal: gone.signal }).catch((err: { code?: string }) => err.code);
    setTimeout(() => gone.abort());
    expect(await slow).toBe('query_canceled');
    expect(values(await m.queryAll([{ sql: 'SELECT 41 + 1' }], { timeoutMs: 5000 }))).toEqual([[42]]);
  }, 20_000);

  it('the bound of a read counts from when its reader holds the copy, not from the thread start', async () => {
    // simulated time: a whole second of it passes while the reader thread starts, far past the bound
    const clock = new SimClock();
    const m = await machine({ clock });
    await m.apply(entry('CREATE TABLE t(v)', 'INSERT INTO t VALUES(7)'));
    const settle = async <T>(p: Promise<T>): Promise<T | Error> => {
      let out: T | Error | undefined;
      p.then(
        (v) => (out = v),
        (e: Error) => (out = e),
      );
      for (let i = 0; i < 500 && out === undefined; i++) {
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 5));
        clock.advance(0);
      }
      return out ?? new Error('did not settle');
    };
    const first = m.queryAll([{ sql: 'SELECT v FROM t' }], { timeoutMs: 15 });
    clock.advance(1_000);
    expect(values((await settle(first)) as QueryResult[])).toEqual([[7]]);
    // once the reader holds the copy, the bound applies: 20 ms of simulated time stop a read still running
    const long = m.queryAll([{ sql: COUNT_TO(1e10) }], { timeoutMs: 15 }).catch((err: { code?: string }) => err.code);
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(20);
    expect(await settle(long)).toBe('query_timeout');
  }, 20_000);

  it('a read caught behind another one that is stopped runs again on a fresh reader', async () => {
    const m = await machine();
    const slow = m.queryAll([{ sql: COUNT_TO(1e10) }], { timeoutMs: 500 }).catch((err: { code?: string }) => err.code);
    const behind = m.queryAll([{ sql: 'SELECT 7' }], { timeoutMs: 10_000 });
    expect(await slow).toBe('query_timeout');
    expect(values(await behind)).toEqual([[7]]);
  }, 20_000);

  it('a trial refuses a write past its bound and changes nothing; a short one passes', async () => {
    const m = await machine();
    await m.apply(entry('CREATE TABLE t(v)'));
    const long = entry(`INSERT INTO t ${COUNT_TO(1e10)}`);
    await expect(m.trial(long, { timeoutMs: 500 })).rejects.toMatchObject({ code: 'query_timeout' });
    const short = entry(`INSERT INTO t ${COUNT_TO(10)}`, 'BEGIN', 'DELETE FROM t', 'COMMIT');
    await m.trial(short, { timeoutMs: 5000 });
    expect(values(await m.queryAll([{ sql: 'SELECT count(*) FROM t' }], { timeoutMs: 5000 }))).toEqual([[0]]);
    expect(await m.apply(short)).toMatchObject([{ rows_affected: 1 }, {}, { rows_affected: 1 }, {}]);
    expect(values(await m.queryAll([{ sql: 'SELECT count(*) FROM t' }], { timeoutMs: 5000 }))).toEqual([[0]]);
  }, 20_000);

  it('a read that runs out of memory fails with query_failed; the database goes on', async () => {
    const m = await machine({ readerHeapMb: 24 });
    await m.apply(entry('CREATE TABLE t(v)', "INSERT INTO t VALUES('kept')"));
    const huge = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT x, printf('%.200c', 'x') FROM c`;
    await expect(m.queryAll([{ sql: huge }], { timeoutMs: 60_000 })).rejects.toMatchObject({ code: 'query_failed' });
    expect(values(await m.queryAll([{ sql: 'SELECT v FROM t' }], { timeoutMs: 5000 }))).toEqual([['kept']]);
  }, 60_000);

  it('keeps 64-bit integers exact, and its snapshot restores to the same state', async () => {
    const m = await machine();
    const r = await m.apply(
      entry('CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)', { sql: 'INSERT INTO t VALUES(?, ?)', params: [9223372036854775807n, 9007199254740993n] }),
    );
    expect(r).toMatchObject([{}, { last_insert_id: 9223372036854775807n, rows_affected: 1 }]);
    expect(values(await m.queryAll([{ sql: 'SELECT id, v, v + 0 = 9007199254740993, 1 FROM t' }], { timeoutMs: 5000 }))).toEqual([
      [9223372036854775807n, 9007199254740993n, 1, 1],
    ]);
    const copy = await machine();
    await copy.restore(await m.snapshot());
    expect(values(await copy.queryAll([{ sql: 'SELECT v FROM t' }], { timeoutMs: 5000 }))).toEqual([[9007199254740993n]]);
    expect(copy.lastTs).toBe(m.lastTs);
  }, 20_000);
});
