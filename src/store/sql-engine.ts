/**
 * Loads SQLite (sql.js, compiled to WebAssembly). The build with the wasm
 * inlined as base64 is used everywhere, so the single executable needs no
 * file beside it and tests run exactly what ships.
 */
import initSqlJs from 'sql.js/dist/sql-wasm-inline.js';
import type { SqlJsStatic } from 'sql.js';

export type SqlEngine = SqlJsStatic;

let loading: Promise<SqlEngine> | undefined;

/**
 * SQLite's 'localtime' comes from the process time zone. Replicas must agree,
 * so the cluster's SQL clock is UTC on every node: TZ is pinned before the
 * engine starts (sql.js reads the zone once, at start).
 */
export function loadSqlEngine(): Promise<SqlEngine> {
  if (!loading) {
    process.env.TZ = 'UTC';
    loading = initSqlJs();
  }
  return loading;
}
