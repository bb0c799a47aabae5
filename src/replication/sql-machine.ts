/** A database's replicated state machine: the store's deterministic SQL state machine behind GroupMachine. */
import type { SqlEngine } from '../store/sql-engine';
import { SqlStateMachine, type ExecuteResult, type LogEntry, type QueryResult, type Statement } from '../store/sql-state-machine';
import type { GroupMachine } from './group';

export class SqlMachine implements GroupMachine {
  private machine: SqlStateMachine;

  constructor(private readonly engine: SqlEngine) {
    this.machine = new SqlStateMachine(engine);
  }

  apply(data: unknown): ExecuteResult[] | { error: string } {
    const entry = data as LogEntry;
    if (!entry || typeof entry !== 'object' || !entry.command || !Array.isArray(entry.command.statements)) {
      return { error: 'not a database command' };
    }
    return this.machine.apply(entry);
  }

  snapshot(): Uint8Array {
    return this.machine.export();
  }

  restore(image: Uint8Array | undefined): void {
    this.machine.close();
    this.machine = new SqlStateMachine(this.engine, image);
  }

  query(statement: Statement): QueryResult {
    return this.machine.query(statement);
  }

  sizeBytes(): number {
    return this.machine.sizeBytes();
  }

  close(): void {
    this.machine.close();
  }
}
