/**
 * A database's replicated state machine in this thread: the store's
 * deterministic SQL state machine behind GroupMachine, plus the newest entry
 * time. The node runs it inside a worker (sql-worker.ts); simulations use it
 * directly, where bounds on statements cannot interrupt anything.
 */
import { loadableImage } from '../store/sql-backup';
import type { SqlEngine } from '../store/sql-engine';
import { SqlStateMachine, type ExecuteResult, type LogEntry, type QueryResult, type Statement } from '../store/sql-state-machine';
import type { BackupFormat, DatabaseMachine } from './database-machine';

/** A database log entry, checked at entry: an execute command or a load. */
export function isLogEntry(data: unknown): data is LogEntry {
  if (typeof data !== 'object' || data === null) return false;
  const { ts, seed, command } = data as Partial<LogEntry>;
  if (typeof ts !== 'number' || typeof seed !== 'number' || typeof command !== 'object' || command === null) return false;
  if (command.kind === 'load') return command.image instanceof Uint8Array;
  return Array.isArray(command.statements);
}

export class SqlMachine implements DatabaseMachine {
  private machine: SqlStateMachine;
  private maxTs = 0;

  constructor(private readonly engine: SqlEngine) {
    this.machine = new SqlStateMachine(engine);
  }

  apply(data: unknown): ExecuteResult[] | { error: string } {
    if (!isLogEntry(data)) return { error: 'not a database command' };
    this.maxTs = Math.max(this.maxTs, data.ts);
    const { command } = data;
    if (command.kind !== 'load') return this.machine.apply({ ...data, command });
    // a load replaces the database; the leader checked the image, so it opens alike on every replica
    const next = new SqlStateMachine(this.engine, command.image);
    this.machine.close();
    this.machine = next;
    return [];
  }

  /**
   * The newest entry time applied. A new leader stamps entries no earlier than
   * this, so SQL time never runs backwards across a failover to a board whose
   * clock is behind (or after a clock jump).
   */
  get lastTs(): number {
    return this.maxTs;
  }

  get hasTriggers(): boolean {
    return this.machine.hasTriggers();
  }

  /** The SQLite image behind 8 bytes of the newest entry time (so it survives snapshots too), in a buffer of its own. */
  snapshot(): Uint8Array {
    const image = this.machine.export();
    const out = new Uint8Array(8 + image.length);
    new DataView(out.buffer).setFloat64(0, this.maxTs, true);
    out.set(image, 8);
    return out;
  }

  restore(image: Uint8Array | undefined): void {
    this.machine.close();
    if (!image || image.length < 8) {
      this.machine = new SqlStateMachine(this.engine);
      this.maxTs = 0;
      return;
    }
    this.maxTs = new DataView(image.buffer, image.byteOffset, image.byteLength).getFloat64(0, true);
    this.machine = new SqlStateMachine(this.engine, image.subarray(8));
  }

  /** One result per SQL statement of every statement given. */
  queryAllNow(statements: Statement[]): QueryResult[] {
    return statements.flatMap((s) => this.machine.queryAll(s));
  }

  queryAll(statements: Statement[]): Promise<QueryResult[]> {
    return Promise.resolve(this.queryAllNow(statements));
  }

  trialNow(entry: LogEntry): void {
    const { command } = entry;
    if (command.kind !== 'load') this.machine.trial({ ...entry, command });
  }

  /** The database as an SQLite file or as SQL text. */
  backupNow(format: BackupFormat): Uint8Array | string {
    return format === 'sql' ? this.machine.dump() : this.machine.export();
  }

  /** What POST /db/load was given, as a checked SQLite image (or `invalid_backup`). */
  prepareLoadNow(bytes: Uint8Array): Uint8Array {
    return loadableImage(this.engine, bytes);
  }

  backup(format: BackupFormat): Promise<Uint8Array | string> {
    return Promise.resolve(this.backupNow(format));
  }

  prepareLoad(bytes: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve(this.prepareLoadNow(bytes));
  }

  trial(entry: LogEntry): Promise<void> {
    this.trialNow(entry);
    return Promise.resolve();
  }

  sizeBytes(): number {
    return this.machine.sizeBytes();
  }

  close(): Promise<void> {
    this.machine.close();
    return Promise.resolve();
  }
}
