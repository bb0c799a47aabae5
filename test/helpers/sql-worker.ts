/** The SQL worker bundle built from the sources, as the node's bundle embeds it (scripts/sql-worker-bundle.mjs). */
import { fileURLToPath } from 'node:url';
import { systemClock, type Clock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { SqlWriterPool } from '../../src/replication/sql-worker-client';
import { WorkerSqlMachine } from '../../src/replication/worker-sql-machine';
// @ts-expect-error: a plain .mjs build script without types
import { buildSqlWorkerSync } from '../../scripts/sql-worker-bundle.mjs';

let source: string | undefined;
let writers: SqlWriterPool | undefined;
let seq = 0;

export function sqlWorkerSource(): string {
  source ??= (buildSqlWorkerSync as (root: string) => string)(fileURLToPath(new URL('../..', import.meta.url)));
  return source;
}

/** A database machine on a writer thread shared by every machine of this test file, as on a board. */
export function workerMachine(opts: { readerIdleMs?: number; readerHeapMb?: number; clock?: Clock } = {}): WorkerSqlMachine {
  writers ??= new SqlWriterPool(sqlWorkerSource(), 1);
  const group = `db.test${++seq}`;
  return new WorkerSqlMachine({
    group,
    writer: writers.for(group),
    source: sqlWorkerSource(),
    clock: opts.clock ?? systemClock,
    logger: silentLogger,
    readerIdleMs: opts.readerIdleMs ?? 60_000,
    readerHeapMb: opts.readerHeapMb ?? 256,
  });
}
