import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import type { DataFs } from '../../src/store/data-fs';
import { nodeDataFs } from '../../src/store/data-fs';
import { DurableDatabase } from '../../src/store/durable-database';
import { loadSqlEngine } from '../../src/store/sql-engine';
import type { ExecuteCommand, Statement } from '../../src/store/sql-state-machine';
import { seededRandom32 } from '../../src/store/sql-state-machine';

export async function openDb(dir: string, opts: { fs?: DataFs; snapshotEntries?: number; snapshotBytes?: number; seed?: number } = {}) {
  return DurableDatabase.open({
    name: 'main',
    dir,
    engine: await loadSqlEngine(),
    fs: opts.fs ?? nodeDataFs,
    logger: silentLogger,
    clock: systemClock,
    random32: seededRandom32(opts.seed ?? 1),
    snapshotEntries: opts.snapshotEntries ?? 1_000_000,
    snapshotBytes: opts.snapshotBytes ?? 1 << 30,
  });
}

export function exec(...sql: (string | Statement)[]): ExecuteCommand {
  return { kind: 'execute', transaction: false, statements: sql.map((s) => (typeof s === 'string' ? { sql: s } : s)) };
}

export function rows(db: { query(s: Statement): unknown }, sql: string): unknown[][] {
  const r = db.query({ sql }) as { values?: unknown[][]; error?: string };
  if (r.error) throw new Error(r.error);
  return r.values!;
}
