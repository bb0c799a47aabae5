/**
 * A database's replicated state machine in this thread: the store's
 * deterministic SQL state machine behind GroupMachine, plus the newest entry
 * time. The node runs it inside a worker (sql-worker.ts); simulations use it
 * directly, where bounds on statements cannot interrupt anything.
 */
import type { SqlEngine } from '../store/sql-engine';
import { SqlStateMachine, type ExecuteResult, type LogEntry, type QueryResult, type Statement } from '../store/sql-state-machine';
import type { DatabaseMachine } from './database-machine';

export function isLogEntry(data: unknown): data is LogEntry {
  const entry = data as LogEntry;
  return !!entry && typeof entry === 'object' && !!entry.command && Array.isArray(entry.command.statements);
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
    return this.machine.apply(data);
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
    this.machine.trial(entry);
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
