/**
 * A database replica's state machine on worker threads, so that no statement
 * runs on the thread of membership, Raft, the mesh and HTTP:
 *
 *   - the writer thread holds the state and applies committed entries in log
 *     order (and restores and exports snapshots);
 *   - reader threads hold copies for reads and write trials, fed the same
 *     entries right behind the writer, so a long read never delays an apply or
 *     another write's answer. A reader is started when a read finds every
 *     reader busy (up to `maxReaders`, from the writer's image at that point
 *     of the log) and stopped after `readerIdleMs` without reads, so an idle
 *     database costs one thread and one long read does not hold up the others.
 *
 * A read or trial that outlives its bound, or whose client went away, stops
 * its reader thread (sql.js cannot interrupt a statement); reads queued
 * behind it run again elsewhere. The writer is never stopped: a write that could run long
 * is refused by its trial before it enters the log (replicator.ts).
 */
import type { Clock, TimerHandle } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { LogEntry, QueryResult, Statement } from '../store/sql-state-machine';
import type { BackupFormat, DatabaseMachine, QueryBounds } from './database-machine';
import { isLogEntry } from './sql-machine';
import { SqlWorker, WorkerGoneError } from './sql-worker-client';
import type { WorkerAnswers, WorkerOp, WorkerRequest, WorkerStats } from './sql-worker-protocol';

/** A read running this long gets a spare reader started beside it. */
const SPARE_AFTER_MS = 100;
/** How long a statement may wait for a reader thread to come up (an emulated ARMv6 takes about 6 s). */
const READER_START_MS = 120_000;
/** A statement runs again on a fresh reader at most this often in all when other statements' bounds stop its readers. */
const MAX_ATTEMPTS = 3;

export interface WorkerSqlMachineOptions {
  group: string;
  /** The writer thread, shared by several databases (SqlWriterPool); this database is `group` in it. */
  writer: SqlWorker;
  /** The worker bundle, for reader threads. */
  source: string;
  clock: Clock;
  logger: Logger;
  /** The reader thread is stopped after this long without reads. */
  readerIdleMs: number;
  /** Heap cap of each reader thread, where result rows are built. */
  readerHeapMb: number;
  /** At most this many reader threads (default 2). */
  maxReaders?: number;
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
  private readers: Reader[] = [];
  private stats: WorkerStats = { lastTs: 0, sizeBytes: 0, triggers: false };
  private maxTs = 0;
  private closed = false;
  /** Commands handed over in this turn of the event loop: they leave as one message (see flush). */
  private batch: { data: unknown; resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly options: WorkerSqlMachineOptions) {}

  private get writer(): SqlWorker {
    return this.options.writer;
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
    return new Promise((resolve, reject) => {
      if (this.batch.push({ data, resolve, reject }) === 1) queueMicrotask(() => this.flush());
    });
  }

  /**
   * Sends the commands handed over so far as one message to the writer and to
   * every reader. Runs before any other request leaves, so the threads see
   * everything in the order it was called.
   */
  private flush(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    const data = batch.map((b) => b.data);
    this.writer.call({ op: 'apply', data }, this.options.group).then(
      ({ value, stats }) => {
        this.stats = stats;
        batch.forEach((b, i) => b.resolve(value[i]));
      },
      (err: Error) => batch.forEach((b) => b.reject(err)),
    );
    this.toReader({ op: 'apply', data });
  }

  snapshot(): Promise<Uint8Array> {
    return this.onWriter({ op: 'snapshot' });
  }

  async restore(image: Uint8Array | undefined): Promise<void> {
    this.stopReaders('the database was replaced by a snapshot');
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

  backup(format: BackupFormat, bounds: QueryBounds): Promise<Uint8Array | string> {
    return this.onReader({ op: 'backup', format }, bounds, (ms) => `the backup took longer than ${ms} ms and was stopped`);
  }

  prepareLoad(bytes: Uint8Array, bounds: QueryBounds): Promise<Uint8Array> {
    return this.onReader({ op: 'prepare-load', bytes }, bounds, (ms) => `checking the load took longer than ${ms} ms and was stopped; nothing was loaded`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    this.stopReaders('the database is closing');
    await this.writer.call({ op: 'drop' }, this.options.group).catch(() => undefined); // the writer thread goes on for the others
  }

  private async onWriter<O extends WorkerOp>(request: Extract<WorkerRequest, { op: O }>): Promise<WorkerAnswers[O]> {
    this.flush();
    const { value, stats } = await this.writer.call(request, this.options.group);
    this.stats = stats;
    return value;
  }

  /** Entries for the readers' copies, right behind the writer's. */
  private toReader(request: WorkerRequest): void {
    for (const reader of this.readers) {
      const send = () => void reader.worker.call(request).catch(() => undefined);
      if (reader.ready) send();
      else reader.backlog.push(send);
    }
  }

  /** An idle reader, else a new one while there may be more, else the least busy. */
  private pickReader(): Reader {
    for (const r of this.readers.filter((x) => !x.worker.alive)) this.stopReader(r, 'its thread ended'); // out of memory, crashed
    const idle = this.readers.find((r) => r.busy === 0);
    if (idle) return idle;
    if (this.readers.length < (this.options.maxReaders ?? 2)) return this.startReader();
    return this.readers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private startReader(): Reader {
    this.flush();
    const reader: Reader = {
      worker: new SqlWorker({ source: this.options.source, maxHeapMb: this.options.readerHeapMb }),
      ready: false,
      backlog: [],
      idle: undefined,
      busy: 0,
      stopped: false,
    };
    this.readers.push(reader);
    // the writer's image at this point of the log; every entry handed over after it waits in the backlog
    // ready once the thread is up and holds the copy: a statement's bound starts only then
    const copyFailed = (err: Error) => this.stopReader(reader, `the reader could not copy the database: ${err.message}`);
    this.writer.call({ op: 'snapshot' }, this.options.group).then(({ value }) => {
      if (reader.stopped) return;
      reader.worker.call({ op: 'restore', image: value }).then(() => {
        if (reader.stopped) return;
        reader.ready = true;
        for (const send of reader.backlog.splice(0)) send();
      }, copyFailed);
    }, copyFailed);
    return reader;
  }

  private stopReader(reader: Reader, reason: string): void {
    if (reader.stopped) return;
    reader.stopped = true;
    this.readers = this.readers.filter((r) => r !== reader);
    if (reader.idle) this.options.clock.clearTimeout(reader.idle);
    void reader.worker.stop(reason);
    // what waited for it to come up fails now (reads go on to another reader)
    for (const send of reader.backlog.splice(0)) send();
  }

  private stopReaders(reason: string): void {
    for (const r of [...this.readers]) this.stopReader(r, reason);
  }

  /**
   * Runs `request` on a reader. `timeoutMs` bounds its running there; waiting
   * for a reader thread to come up (seconds on an emulated or slow board) does
   * not count, but is bounded by READER_START_MS. `attempt`: runs again after
   * the reader was stopped under it by another request's bound.
   */
  private onReader<O extends 'query' | 'trial' | 'backup' | 'prepare-load'>(
    request: Extract<WorkerRequest, { op: O }>,
    { timeoutMs, signal }: QueryBounds,
    timeoutMessage: (ms: number) => string,
    attempt = 1,
  ): Promise<WorkerAnswers[O]> {
    if (this.closed) return Promise.reject(new GandalfError('stopping', 'the database is closing'));
    if (signal?.aborted) return Promise.reject(new GandalfError('query_canceled', 'the client went away'));
    this.flush(); // the read comes after every command handed over before it
    const reader = this.pickReader();
    if (reader.idle) this.options.clock.clearTimeout(reader.idle);
    reader.busy++;
    return new Promise<WorkerAnswers[O]>((resolve, reject) => {
      let settled = false;
      let timer: TimerHandle | undefined;
      let startedAt: number | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer) this.options.clock.clearTimeout(timer);
        this.options.clock.clearTimeout(waiting);
        this.options.clock.clearTimeout(spare);
        signal?.removeEventListener('abort', onAbort);
        if (--reader.busy === 0 && !reader.stopped) {
          reader.idle = this.options.clock.setTimeout(() => this.stopReader(reader, 'idle'), this.options.readerIdleMs);
          reader.idle.unref?.();
        }
        fn();
      };
      const stopWith = (err: GandalfError) => {
        settle(() => reject(err));
        // sql.js cannot interrupt a statement: the thread goes, a fresh copy serves the next read
        if (!reader.stopped) this.options.logger.info('stopped a SQL reader thread', { group: this.options.group, reason: err.code });
        this.stopReader(reader, err.message);
      };
      const waiting = this.options.clock.setTimeout(
        () => stopWith(new GandalfError('starting', `no SQL reader thread came up within ${READER_START_MS / 1000} s; try again`)),
        READER_START_MS,
      );
      waiting.unref?.();
      // a read that runs long: have a spare reader ready for the next one, so it does not pay a thread start
      const spare = this.options.clock.setTimeout(() => {
        if (!settled && !this.closed && !this.readers.some((r) => r.busy === 0) && this.readers.length < (this.options.maxReaders ?? 2)) this.startReader();
      }, SPARE_AFTER_MS);
      spare.unref?.();
      const onAbort = () => stopWith(new GandalfError('query_canceled', 'the client went away; the statement was stopped'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const run = () => {
        if (settled) return;
        this.options.clock.clearTimeout(waiting);
        startedAt = this.options.clock.monotonic();
        timer = this.options.clock.setTimeout(() => stopWith(new GandalfError('query_timeout', timeoutMessage(timeoutMs))), timeoutMs);
        timer.unref?.();
        reader.worker.call(request).then(
          ({ value }) => settle(() => resolve(value)),
          (err: Error) => {
            if (settled) return;
            if (err instanceof WorkerGoneError && reader.stopped && !this.closed && attempt < MAX_ATTEMPTS) {
              // another request's bound stopped this reader: run again on a fresh one, within what is left of this bound
              const left = Math.max(1, timeoutMs - (this.options.clock.monotonic() - (startedAt ?? this.options.clock.monotonic())));
              const again = this.onReader(request, { timeoutMs: left, ...(signal ? { signal } : {}) }, () => timeoutMessage(timeoutMs), attempt + 1);
              settle(() => again.then(resolve, reject));
            } else if (err instanceof WorkerGoneError) {
              this.stopReader(reader, err.reason);
              settle(() => reject(new GandalfError('query_failed', `${err.reason}; the statement was stopped`)));
            } else settle(() => reject(err));
          },
        );
      };
      if (reader.ready) run();
      else reader.backlog.push(run);
    });
  }
}
