/** The SQL worker bundle built from the sources, as the node's bundle embeds it (scripts/sql-worker-bundle.mjs). */
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { WorkerSqlMachine } from '../../src/replication/worker-sql-machine';
// @ts-expect-error: a plain .mjs build script without types
import { buildSqlWorkerSync } from '../../scripts/sql-worker-bundle.mjs';

let source: string | undefined;

export function sqlWorkerSource(): string {
  source ??= (buildSqlWorkerSync as (root: string) => string)(fileURLToPath(new URL('../..', import.meta.url)));
  return source;
}

export function workerMachine(opts: { readerIdleMs?: number; readerHeapMb?: number } = {}): WorkerSqlMachine {
  return new WorkerSqlMachine({
    group: 'db.test',
    source: sqlWorkerSource(),
    clock: systemClock,
    logger: silentLogger,
    readerIdleMs: opts.readerIdleMs ?? 60_000,
    readerHeapMb: opts.readerHeapMb ?? 256,
  });
}
