/**
 * A database replica's state machine on worker threads, so that no statement
 * runs on the thread of membership, Raft, the mesh and HTTP:
 *
 *   - the writer thread holds the state and applies committed entries in log
 *     order (and restores and exports snapshots);
 *   - the reader thread holds a copy for reads and write trials, fed the same
 *     entries right behind the writer, so a long read never delays an apply or
 *     another write's answer. It is started on the first read (from the
 *     writer's image at that point of the log) and stopped after
 *     `readerIdleMs` without reads, so an idle database costs one thread.
 *
 * A read or trial that outlives its bound, or whose client went away, stops
 * the reader thread (sql.js cannot interrupt a statement); the next read
 * starts a fresh one. The writer is never stopped: a write that could run long
 * is refused by its trial before it enters the log (replicator.ts).
 */
import type { Clock, TimerHandle } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { LogEntry, QueryResult, Statement } from '../store/sql-state-machine';
import type { DatabaseMachine, QueryBounds } from './database-machine';
import { isLogEntry } from './sql-machine';
import { SqlWorker, WorkerGoneError } from './sql-worker-client';
import type { WorkerAnswers, WorkerOp, WorkerRequest, WorkerStats } from './sql-worker-protocol';

export interface WorkerSqlMachineOptions {
  group: string;
  source: string;
  clock: Clock;
  logger: Logger;
  /** The reader thread is stopped after this long without reads. */
  readerIdleMs: number;
  /** Heap cap of the reader thread, where result rows are built. */
  readerHeapMb: number;
}

interface Reader {
  worker: SqlWorker;
  /** Set once the copy was restored; until then requests wait in `backlog`, in order. */
  ready: boolean;
  backlog: (() => void)[];
  idle: TimerHandle | undefined;
  busy: number;
  /** Stopped on purpose (a bound, a snapshot, idle): requests caught in it run again on a fresh reader. */
  stopped: boolean;
}

export class WorkerSqlMachine implements DatabaseMachine {
  private readonly writer: SqlWorker;
  private reader: Reader | undefined;
  private stats: WorkerStats = { lastTs: 0, sizeBytes: 0, triggers: false };
  private maxTs = 0;
  private closed = false;

  constructor(private readonly options: WorkerSqlMachineOptions) {
    this.writer = new SqlWorker({ source: options.source });
  }

  get lastTs(): number {
    return Math.max(this.maxTs, this.stats.lastTs);
  }

  get hasTriggers(): boolean {
    return this.stats.triggers;
  }

  sizeBytes(): number {
    return this.stats.sizeBytes;
  }

  apply(data: unknown): Promise<unknown> {
    if (isLogEntry(data)) this.maxTs = Math.max(this.maxTs, data.ts);
    const answer = this.onWriter({ op: 'apply', data });
    this.toReader({ op: 'apply', data });
    return answer;
  }

  snapshot(): Promise<Uint8Array> {
    return this.onWriter({ op: 'snapshot' });
  }

  async restore(image: Uint8Array | undefined): Promise<void> {
    this.stopReader('the database was replaced by a snapshot');
    await this.onWriter({ op: 'restore', image });
  }

  queryAll(statements: Statement[], bounds: QueryBounds): Promise<QueryResult[]> {
    return this.onReader({ op: 'query', statements }, bounds, (ms) => `the query ran longer than ${ms} ms (--query-timeout) and was stopped`);
  }

  async trial(entry: LogEntry, bounds: QueryBounds): Promise<void> {
    await this.onReader(
      { op: 'trial', entry },
      bounds,
      (ms) => `the write ran longer than ${ms} ms (--query-timeout) in a trial on the leader and was refused; it was not applied`,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopReader('the database is closing');
    await this.writer.stop('the database is closing');
  }

  private async onWriter<O extends WorkerOp>(request: Extract<WorkerRequest, { op: O }>): Promise<WorkerAnswers[O]> {
    const { value, stats } = await this.writer.call(request);
    this.stats = stats;
    return value;
  }

  /** Entries for the reader's copy, right behind the writer's. */
  private toReader(request: WorkerRequest): void {
    const reader = this.reader;
    if (!reader) return;
    const send = () => void reader.worker.call(request).catch(() => undefined);
    if (reader.ready) send();
    else reader.backlog.push(send);
  }

  private startReader(): Reader {
    const reader: Reader = { worker: new SqlWorker({ source: this.options.source, maxHeapMb: this.options.readerHeapMb }), ready: false, backlog: [], idle: undefined, busy: 0, stopped: false };
    this.reader = reader;
    // the writer's image at this point of the log; every entry handed over after it waits in the backlog
    this.writer.call({ op: 'snapshot' }).then(
      ({ value }) => {
        if (this.reader !== reader) return;
        void reader.worker.call({ op: 'restore', image: value }).catch(() => undefined);
        reader.ready = true;
        for (const send of reader.backlog.splice(0)) send();
      },
      (err: Error) => {
        if (this.reader === reader) this.stopReader(`the reader could not copy the database: ${err.message}`);
      },
    );
    return reader;
  }

  private stopReader(reason: string): void {
    const reader = this.reader;
    if (!reader) return;
    this.reader = undefined;
    reader.stopped = true;
    if (reader.idle) this.options.clock.clearTimeout(reader.idle);
    void reader.worker.stop(reason);
  }

  private onReader<O extends 'query' | 'trial'>(
    request: Extract<WorkerRequest, { op: O }>,
    { timeoutMs, signal }: QueryBounds,
    timeoutMessage: (ms: number) => string,
  ): Promise<WorkerAnswers[O]> {
    const deadline = this.options.clock.monotonic() + timeoutMs;
    if (this.closed) return Promise.reject(new GandalfError('stopping', 'the database is closing'));
    if (signal?.aborted) return Promise.reject(new GandalfError('query_canceled', 'the client went away'));
    if (this.reader && !this.reader.worker.alive) this.stopReader('its thread ended'); // out of memory, crashed
    const reader = this.reader ?? this.startReader();
    if (reader.idle) this.options.clock.clearTimeout(reader.idle);
    reader.busy++;
    return new Promise<WorkerAnswers[O]>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        this.options.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (--reader.busy === 0 && this.reader === reader) {
          reader.idle = this.options.clock.setTimeout(() => this.stopReader('idle'), this.options.readerIdleMs);
          reader.idle.unref?.();
        }
        fn();
      };
      const stopWith = (err: GandalfError) => {
        settle(() => reject(err));
        // sql.js cannot interrupt a statement: the thread goes, a fresh copy serves the next read
        if (this.reader === reader) {
          this.options.logger.info('stopped a SQL reader thread', { group: this.options.group, reason: err.code });
          this.stopReader(err.message);
        }
      };
      const timer = this.options.clock.setTimeout(() => stopWith(new GandalfError('query_timeout', timeoutMessage(timeoutMs))), timeoutMs);
      timer.unref?.();
      const onAbort = () => stopWith(new GandalfError('query_canceled', 'the client went away; the statement was stopped'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const run = () =>
        reader.worker.call(request).then(
          ({ value }) => settle(() => resolve(value)),
          (err: Error) => {
            if (settled) return;
            if (err instanceof WorkerGoneError && reader.stopped && !this.closed) {
              // another request's bound stopped this reader: run again on a fresh one, within what is left of this bound
              const again = this.onReader(request, { timeoutMs: Math.max(1, deadline - this.options.clock.monotonic()), ...(signal ? { signal } : {}) }, () => timeoutMessage(timeoutMs));
              settle(() => again.then(resolve, reject));
            } else if (err instanceof WorkerGoneError) {
              if (this.reader === reader) this.stopReader(err.reason);
              settle(() => reject(new GandalfError('query_failed', `${err.reason}; the statement was stopped`)));
            } else settle(() => reject(err));
          },
        );
      if (reader.ready) run();
      else reader.backlog.push(run);
    });
  }
}
