/**
 * The source text of the SQL worker bundle (src/replication/sql-worker.ts and
 * sql.js). scripts/bundle.mjs builds it first and defines it into the node's
 * bundle, so the single executable starts its workers from memory, with no
 * file beside it. Code run from the TypeScript sources is handed the text by
 * whoever builds it (test/helpers/sql-worker.ts).
 */
declare const __SQL_WORKER_SOURCE__: string | undefined;

export function bundledSqlWorkerSource(): string | undefined {
  return typeof __SQL_WORKER_SOURCE__ === 'string' ? __SQL_WORKER_SOURCE__ : undefined;
}
