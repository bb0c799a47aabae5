/** A SqlPort on the real SQL state machine, one per database, each write one entry: the routing layer's ledger and sink without Raft. */
import type { SqlPort } from '../../src/routing/ports';
import { loadSqlEngine } from '../../src/store/sql-engine';
import { SqlStateMachine } from '../../src/store/sql-state-machine';
import type { SimClock } from './sim/sim-clock';

const engine = await loadSqlEngine();

export function sqlOn(clock: SimClock): SqlPort & { dbs: Map<string, SqlStateMachine>; writes: number } {
  const dbs = new Map<string, SqlStateMachine>();
  const db = (name: string) => {
    let sm = dbs.get(name);
    if (!sm) dbs.set(name, (sm = new SqlStateMachine(engine)));
    return sm;
  };
  const port = {
    dbs,
    writes: 0,
    execute: async (name: string, statements: { sql: string; params?: never[] }[], transaction: boolean) => {
      port.writes++;
      return db(name).apply({ ts: clock.now(), seed: 1, command: { kind: 'execute', statements, transaction } });
    },
    query: async (name: string, statements: { sql: string }[]) => statements.flatMap((s) => db(name).queryAll(s)),
    exists: (name: string) => dbs.has(name),
  };
  return port as unknown as SqlPort & { dbs: Map<string, SqlStateMachine>; writes: number };
}
