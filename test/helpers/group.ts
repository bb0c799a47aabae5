/** One-voter ReplicaGroups over a SQL state machine, for driver-level tests. */
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { ReplicaGroup } from '../../src/replication/group';
import { SqlMachine } from '../../src/replication/sql-machine';
import type { DataFs } from '../../src/store/data-fs';
import { nodeDataFs } from '../../src/store/data-fs';
import { loadSqlEngine } from '../../src/store/sql-engine';
import type { ExecuteResult, LogEntry, Statement } from '../../src/store/sql-state-machine';
import { mulberry32 } from './sim/prng';

export interface SoloGroup {
  group: ReplicaGroup;
  machine: SqlMachine;
  exec(...sql: (string | Statement)[]): Promise<ExecuteResult[]>;
  rows(sql: string): unknown[][];
}

export async function openSolo(dir: string, opts: { fs?: DataFs; snapshotEntries?: number } = {}): Promise<SoloGroup> {
  const machine = new SqlMachine(await loadSqlEngine());
  const group = await ReplicaGroup.open({
    name: 'db.main',
    self: 'solo',
    dir,
    fs: opts.fs ?? nodeDataFs,
    logger: silentLogger,
    clock: systemClock,
    random: mulberry32(1),
    machine,
    bootstrap: ['solo'],
    send: () => {},
    tickMs: 5,
    raft: { electionTicks: 4 },
    snapshotEntries: opts.snapshotEntries ?? 1_000_000,
  });
  const deadline = Date.now() + 5000;
  while (!group.isLeaderReady()) {
    if (Date.now() > deadline) throw new Error('the one-voter group did not elect itself');
    await new Promise((r) => setTimeout(r, 5));
  }
  let ts = 0;
  return {
    group,
    machine,
    exec: async (...sql) => {
      const entry: LogEntry = {
        ts: ++ts,
        seed: ts,
        command: { kind: 'execute', transaction: false, statements: sql.map((s) => (typeof s === 'string' ? { sql: s } : s)) },
      };
      return (await group.propose(entry, 5000)) as ExecuteResult[];
    },
    rows: (sql) => {
      const r = machine.queryAllNow([{ sql }])[0] as { values?: unknown[][]; error?: string };
      if (r.error) throw new Error(r.error);
      return r.values ?? [];
    },
  };
}
