/**
 * One worker thread running a database's SQL (sql-worker.ts): requests go out
 * in order and their answers come back in order. If the thread ends (stopped
 * on purpose, out of memory, crashed) every request still waiting is rejected
 * with WorkerGoneError.
 */
import { Worker } from 'node:worker_threads';
import { GandalfError } from '../core/errors';
import { isWorkerReply, type WorkerAnswers, type WorkerEnvelope, type WorkerOp, type WorkerRequest, type WorkerStats } from './sql-worker-protocol';

export class WorkerGoneError extends GandalfError {
  constructor(readonly reason: string) {
    super('query_failed', reason);
    this.name = 'WorkerGoneError';
  }
}

export interface SqlWorkerOptions {
  /** The worker bundle's source text (see sql-worker-source.ts). */
  source: string;
  /** Cap of the thread's JavaScript heap (rows of a result live there); undefined: V8's default. */
  maxHeapMb?: number;
}

type Pending = { resolve: (v: { value: unknown; stats: WorkerStats }) => void; reject: (err: Error) => void };

export class SqlWorker {
  private readonly worker: Worker;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private gone: WorkerGoneError | undefined;

  constructor(options: SqlWorkerOptions) {
    this.worker = new Worker(options.source, {
      eval: true,
      ...(options.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb } } : {}),
    });
    this.worker.unref();
    this.worker.on('message', (reply: unknown) => {
      if (!isWorkerReply(reply)) return;
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.ok && reply.stats) p.resolve({ value: reply.value, stats: reply.stats });
      else
        p.reject(
          reply.ok ? new GandalfError('internal', 'the SQL worker answered without its state') : new GandalfError(reply.code ?? 'internal', reply.error),
        );
    });
    this.worker.on('error', (err: Error & { code?: string }) => {
      this.end(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'the SQL worker ran out of memory' : `the SQL worker failed: ${err.message}`);
    });
    this.worker.on('exit', (code) => this.end(`the SQL worker exited (code ${code})`));
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** `db`: which of the thread's databases. */
  call<O extends WorkerOp>(request: Extract<WorkerRequest, { op: O }>, db = ''): Promise<{ value: WorkerAnswers[O]; stats: WorkerStats }> {
    if (this.gone) return Promise.reject(this.gone);
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as Pending['resolve'], reject });
      this.worker.postMessage({ id, db, request } satisfies WorkerEnvelope);
    });
  }

  /** Stops the thread at once, whatever it is running; waiting requests fail with `reason`. */
  async stop(reason: string): Promise<void> {
    this.end(reason);
    await this.worker.terminate();
  }

  private end(reason: string): void {
    if (this.gone) return;
    this.gone = new WorkerGoneError(reason);
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
  }
}

/**
 * The writer threads of a board, shared by its databases: an isolate with
 * SQLite costs tens of MiB, which a board with many databases cannot pay per
 * database. A database keeps its thread (by hash of its name); a thread that
 * ended (out of memory) is replaced for databases opened after it.
 */
export class SqlWriterPool {
  private readonly writers: (SqlWorker | undefined)[];

  constructor(
    private readonly source: string,
    size: number,
  ) {
    this.writers = new Array<SqlWorker | undefined>(Math.max(1, size)).fill(undefined);
  }

  for(group: string): SqlWorker {
    let h = 0;
    for (let i = 0; i < group.length; i++) h = (Math.imul(h, 31) + group.charCodeAt(i)) >>> 0;
    const slot = h % this.writers.length;
    let w = this.writers[slot];
    if (!w || !w.alive) this.writers[slot] = w = new SqlWorker({ source: this.source });
    return w;
  }

  /**
   * Starts the writer threads now, in the background: on a slow board a
   * thread and SQLite's WebAssembly take seconds to start, which the first
   * database opened would otherwise wait for.
   */
  warm(): void {
    for (let slot = 0; slot < this.writers.length; slot++) {
      const w = this.writers[slot];
      if (!w || !w.alive) {
        const fresh = (this.writers[slot] = new SqlWorker({ source: this.source }));
        void fresh.call({ op: 'drop' }, '').catch(() => undefined); // loads SQLite; holds no database
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.writers.map((w) => w?.stop('the node is stopping')));
  }
}
