/** A database's replicated state machine: the store's deterministic SQL state machine behind GroupMachine. */
import type { SqlEngine } from '../store/sql-engine';
import { SqlStateMachine, type ExecuteResult, type LogEntry, type QueryResult, type Statement } from '../store/sql-state-machine';
import type { GroupMachine } from './group';

export class SqlMachine implements GroupMachine {
  private machine: SqlStateMachine;
  private maxTs = 0;

  constructor(private readonly engine: SqlEngine) {
    this.machine = new SqlStateMachine(engine);
  }

  apply(data: unknown): ExecuteResult[] | { error: string } {
    const entry = data as LogEntry;
    if (!entry || typeof entry !== 'object' || !entry.command || !Array.isArray(entry.command.statements)) {
      return { error: 'not a database command' };
    }
    this.maxTs = Math.max(this.maxTs, entry.ts);
    return this.machine.apply(entry);
  }

  /**
   * The newest entry time applied. A new leader stamps entries no earlier than
   * this, so SQL time never runs backwards across a failover to a board whose
   * clock is behind (or after a clock jump).
   */
  get lastTs(): number {
    return this.maxTs;
  }

  /** The SQLite image behind 8 bytes of the newest entry time (so it survives snapshots too). */
  snapshot(): Uint8Array {
    const head = Buffer.alloc(8);
    head.writeDoubleLE(this.maxTs, 0);
    return Buffer.concat([head, this.machine.export()]);
  }

  restore(image: Uint8Array | undefined): void {
    this.machine.close();
    if (!image || image.length < 8) {
      this.machine = new SqlStateMachine(this.engine);
      this.maxTs = 0;
      return;
    }
    const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
    this.maxTs = buf.readDoubleLE(0);
    this.machine = new SqlStateMachine(this.engine, buf.subarray(8));
  }

  query(statement: Statement): QueryResult {
    return this.machine.query(statement);
  }

  /** One result per SQL statement in the text. */
  queryAll(statement: Statement): QueryResult[] {
    return this.machine.queryAll(statement);
  }

  sizeBytes(): number {
    return this.machine.sizeBytes();
  }

  close(): void {
    this.machine.close();
  }
}
