/**
 * What a database replica's state machine offers besides GroupMachine: reads
 * and write trials bounded in time, and what the leader needs to stamp entries.
 * Two implementations: WorkerSqlMachine (the node: SQL on worker threads) and
 * SqlMachine (in-process, for the simulations; its bounds cannot interrupt).
 */
import type { LogEntry, QueryResult, Statement } from '../store/sql-state-machine';
import type { GroupMachine } from './group';

export type BackupFormat = 'sqlite' | 'sql';

export interface QueryBounds {
  /** The statement is stopped after this long (`query_timeout`). */
  timeoutMs: number;
  /** The client went away: the statement is stopped (`query_canceled`). */
  signal?: AbortSignal;
}

export interface DatabaseMachine extends GroupMachine {
  /** The newest entry time handed to the machine (SQL time never runs backwards across leaders). */
  readonly lastTs: number;
  /** Whether the schema has triggers (any write may then run arbitrary SQL). */
  readonly hasTriggers: boolean;
  /** Read-only statements on the state as of every apply() called before; one result per SQL statement. */
  queryAll(statements: Statement[], bounds: QueryBounds): Promise<QueryResult[]>;
  /** Runs a write and rolls it back; rejects with `query_timeout` if it takes longer than the bound. */
  trial(entry: LogEntry, bounds: QueryBounds): Promise<void>;
  /** The database as of every apply() called before, as an SQLite file or SQL text (rqlite's GET /db/backup). */
  backup(format: BackupFormat, bounds: QueryBounds): Promise<Uint8Array | string>;
  /** Bytes given to POST /db/load as a checked SQLite image to propose; rejects with `invalid_backup`. */
  prepareLoad(bytes: Uint8Array, bounds: QueryBounds): Promise<Uint8Array>;
  /** Bytes of the database (as of the last answer). */
  sizeBytes(): number;
  close(): Promise<void>;
}

export type DatabaseMachineFactory = (group: string) => DatabaseMachine;
