/** The messages between a database's state machine proxy (WorkerSqlMachine) and its worker thread (sql-worker.ts). */
import type { ErrorCode } from '../core/errors';
import type { ExecuteResult, LogEntry, QueryResult, Statement } from '../store/sql-state-machine';
import type { BackupFormat } from './database-machine';

export type WorkerRequest =
  | { op: 'restore'; image: Uint8Array | undefined }
  | { op: 'apply'; data: unknown[] }
  | { op: 'snapshot' }
  | { op: 'query'; statements: Statement[] }
  | { op: 'trial'; entry: LogEntry }
  | { op: 'backup'; format: BackupFormat }
  | { op: 'prepare-load'; bytes: Uint8Array }
  | { op: 'drop' };

export type WorkerOp = WorkerRequest['op'];

/** What each request answers. */
export interface WorkerAnswers {
  restore: null;
  /** One answer per command, in order. */
  apply: (ExecuteResult[] | { error: string })[];
  snapshot: Uint8Array;
  query: QueryResult[];
  trial: null;
  backup: Uint8Array | string;
  'prepare-load': Uint8Array;
  drop: null;
}

/** The state after a request, sent with every answer. */
export interface WorkerStats {
  lastTs: number;
  sizeBytes: number;
  triggers: boolean;
}

/** `db`: which of the thread's databases (a writer thread holds every database of a board; a reader one copy). */
export type WorkerEnvelope = { id: number; db: string; request: WorkerRequest };

/** `code`: the error's stable code when it has one (`invalid_backup`), else the client calls it `internal`. */
export type WorkerReply = ({ ok: true; value: unknown } | { ok: false; error: string; code?: ErrorCode }) & { id: number; stats: WorkerStats | null };

export function isWorkerEnvelope(v: unknown): v is WorkerEnvelope {
  const e = v as WorkerEnvelope;
  return (
    !!e &&
    typeof e === 'object' &&
    typeof e.id === 'number' &&
    typeof e.db === 'string' &&
    !!e.request &&
    typeof e.request === 'object' &&
    ['restore', 'apply', 'snapshot', 'query', 'trial', 'backup', 'prepare-load', 'drop'].includes((e.request as { op: unknown }).op as string)
  );
}

export function isWorkerReply(v: unknown): v is WorkerReply {
  const r = v as WorkerReply;
  return !!r && typeof r === 'object' && typeof r.id === 'number' && typeof r.ok === 'boolean';
}
