/**
 * One named database made durable: commands go through a commit pipeline
 * (queue -> one log frame + one fdatasync per batch -> apply in index order
 * -> answer), and snapshots bound the log. Start = newest valid snapshot +
 * replay of the log. See DESIGN.md for the promises.
 *
 * Replication (a later layer) replaces "append to the local log" with
 * "commit through consensus"; the state machine and the apply order stay.
 */
import * as path from 'node:path';
import type { Clock } from '../core/clock';
import { GandalfError, LogFailedError } from '../core/errors';
import type { Logger } from '../core/logger';
import { CommandLog, type LogRecord } from './command-log';
import type { DataFs } from './data-fs';
import type { SqlEngine } from './sql-engine';
import {
  SqlStateMachine,
  type ExecuteCommand,
  type ExecuteResult,
  type LogEntry,
  type QueryResult,
  type Statement,
} from './sql-state-machine';
import { SnapshotStore } from './snapshot-store';

/** Entries per log frame (group commit batch); one frame is one write + one fdatasync. */
const MAX_BATCH_ENTRIES = 1024;
/** SQL text per frame, so one frame stays far below the frame limit. */
const MAX_BATCH_SQL_BYTES = 16 * 1024 * 1024;

export interface DurableDatabaseOptions {
  name: string;
  dir: string;
  engine: SqlEngine;
  fs: DataFs;
  logger: Logger;
  clock: Clock;
  /** Source of the per-entry random seeds (injected for deterministic tests). */
  random32: () => number;
  /** Snapshot after this many entries since the last one… */
  snapshotEntries: number;
  /** …or once the log has grown by this many bytes. */
  snapshotBytes: number;
}

export interface DatabaseStatus {
  name: string;
  size_bytes: number;
  applied_index: number;
  log: { segments: number; bytes_since_snapshot: number; entries_since_snapshot: number; failed: string | null };
  snapshot: { index: number; retained: number; last_duration_ms: number | null; last_error: string | null };
}

interface Pending {
  entry: LogEntry;
  resolve: (results: ExecuteResult[]) => void;
  reject: (err: Error) => void;
}

export class DurableDatabase {
  private readonly queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private snapshotWrite: Promise<void> | undefined;
  private closing = false;
  private failed: Error | undefined;
  private lastTs: number;
  private snapshotIndex: number;
  private snapshotRetained: number;
  private lastSnapshotMs: number | null = null;
  private lastSnapshotError: string | null = null;

  private constructor(
    private readonly options: DurableDatabaseOptions,
    private readonly machine: SqlStateMachine,
    private readonly log: CommandLog<LogEntry>,
    private readonly snapshots: SnapshotStore,
    state: { lastTs: number; snapshotIndex: number; snapshotRetained: number },
  ) {
    this.lastTs = state.lastTs;
    this.snapshotIndex = state.snapshotIndex;
    this.snapshotRetained = state.snapshotRetained;
  }

  static async open(options: DurableDatabaseOptions): Promise<DurableDatabase> {
    const { dir, fs, logger, engine } = options;
    const started = options.clock.monotonic();
    const snapshots = new SnapshotStore(path.join(dir, 'snapshots'), fs, logger);
    await snapshots.removeLeftovers();
    const snap = await snapshots.loadNewestValid();
    const machine = new SqlStateMachine(engine, snap?.image);
    const snapshotIndex = snap?.index ?? 0;
    const { log, records } = await CommandLog.open<LogEntry>({
      dir: path.join(dir, 'log'),
      fs,
      logger,
      replayFrom: snapshotIndex + 1,
    });
    let lastTs = 0;
    for (const r of records) {
      machine.apply(r.data);
      lastTs = Math.max(lastTs, r.data.ts);
    }
    const retained = (await snapshots.list()).length;
    logger.info('database opened', {
      snapshotIndex,
      replayed: records.length,
      appliedIndex: log.lastIndex,
      ms: Math.round(options.clock.monotonic() - started),
    });
    return new DurableDatabase(options, machine, log, snapshots, { lastTs, snapshotIndex, snapshotRetained: retained });
  }

  get name(): string {
    return this.options.name;
  }

  get appliedIndex(): number {
    return this.log.lastIndex;
  }

  /**
   * Makes a write durable and applies it. Resolves with one result per
   * statement once the entry is fsynced and applied; rejects (DiskFullError,
   * LogFailedError, `stopping`) when it was not written, in which case it is
   * not applied either, now or on any replay.
   */
  execute(command: ExecuteCommand): Promise<ExecuteResult[]> {
    if (this.closing) return Promise.reject(new GandalfError('stopping', 'the node is stopping'));
    const failure = this.failed ?? this.log.failure;
    if (failure) return Promise.reject(new LogFailedError(`database ${this.name} refuses writes: ${failure.message}`, failure));
    const ts = Math.max(this.options.clock.now(), this.lastTs);
    this.lastTs = ts;
    const entry: LogEntry = { ts, seed: this.options.random32() >>> 0, command };
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.kick();
    });
  }

  /** Reads the local state (linearizable on a single node: every acknowledged write is applied). */
  query(statement: Statement): QueryResult {
    return this.machine.query(statement);
  }

  private takeBatch(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_BATCH_ENTRIES) {
      const size = this.queue[n]!.entry.command.statements.reduce((sum, s) => sum + s.sql.length, 0);
      if (n > 0 && bytes + size > MAX_BATCH_SQL_BYTES) break;
      bytes += size;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /**
   * Starts the flush loop unless it runs. The flag is cleared in the same
   * synchronous step in which the loop sees an empty queue, so a write queued
   * by a caller resuming from an earlier answer is never stranded.
   */
  private kick(): void {
    if (!this.flushing) this.flushing = this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    await Promise.resolve(); // lets kick() store the promise before the loop can end
    try {
      // The loop condition and the finally run in one synchronous step.
      while (this.queue.length > 0) await this.flushBatch(this.takeBatch());
    } finally {
      this.flushing = undefined;
    }
  }

  private async flushBatch(batch: Pending[]): Promise<void> {
    const first = this.log.lastIndex + 1;
    const records: LogRecord<LogEntry>[] = batch.map((p, i) => ({ index: first + i, term: 0, data: p.entry }));
    try {
      await this.log.appendBatch(records);
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    for (const p of batch) {
      try {
        p.resolve(this.machine.apply(p.entry));
      } catch (err) {
        // Not an SQL error (those are results) but the engine itself failing:
        // memory no longer matches the log. Refuse writes; a restart replays.
        this.failed = err as Error;
        this.options.logger.error('applying a log entry failed; refusing writes until restart', { err: err as Error });
        p.reject(new LogFailedError(`apply failed: ${(err as Error).message}`, err));
      }
    }
    if (this.snapshotDue()) await this.beginSnapshot();
  }

  private snapshotDue(): boolean {
    const entries = this.log.lastIndex - this.snapshotIndex;
    return entries >= this.options.snapshotEntries || this.log.bytesSinceSnapshot >= this.options.snapshotBytes;
  }

  /**
   * Exports the state at the applied index, rolls the log to a new segment,
   * then writes the snapshot in the background (writes continue meanwhile)
   * and drops the segments the retained snapshots cover.
   */
  private async beginSnapshot(): Promise<void> {
    if (this.snapshotWrite || this.failed) return;
    const index = this.log.lastIndex;
    if (index === this.snapshotIndex) return;
    const started = this.options.clock.monotonic();
    const image = this.machine.export();
    try {
      await this.log.roll();
    } catch (err) {
      this.recordSnapshotError(err);
      return;
    }
    this.snapshotWrite = (async () => {
      try {
        const oldestRetained = await this.snapshots.save({ index, term: 0, image });
        this.snapshotIndex = index;
        this.snapshotRetained = (await this.snapshots.list()).length;
        await this.log.compact(oldestRetained);
        this.lastSnapshotMs = Math.round(this.options.clock.monotonic() - started);
        this.lastSnapshotError = null;
        this.options.logger.debug('snapshot written', { index, bytes: image.length, ms: this.lastSnapshotMs });
      } catch (err) {
        this.recordSnapshotError(err);
      } finally {
        this.snapshotWrite = undefined;
      }
    })();
  }

  private recordSnapshotError(err: unknown): void {
    this.lastSnapshotError = (err as Error).message;
    this.options.logger.warn('snapshot failed; the log keeps every entry', { err: err as Error });
  }

  /** Waits until every queued write is answered and no snapshot is being written. */
  async drain(): Promise<void> {
    while (this.flushing || this.snapshotWrite) {
      await this.flushing;
      await this.snapshotWrite;
    }
  }

  /** Forces a snapshot now (after draining queued writes). */
  async snapshot(): Promise<void> {
    await this.drain();
    await this.beginSnapshot();
    await this.drain();
  }

  /** Stops accepting writes, answers the queued ones, writes a final snapshot, closes the files. */
  async close(): Promise<void> {
    this.closing = true;
    await this.drain();
    await this.beginSnapshot();
    await this.drain();
    await this.log.close();
    this.machine.close();
  }

  status(): DatabaseStatus {
    const failure = this.failed ?? this.log.failure;
    return {
      name: this.name,
      size_bytes: this.machine.sizeBytes(),
      applied_index: this.log.lastIndex,
      log: {
        segments: this.log.segmentCount,
        bytes_since_snapshot: this.log.bytesSinceSnapshot,
        entries_since_snapshot: this.log.lastIndex - this.snapshotIndex,
        failed: failure ? failure.message : null,
      },
      snapshot: {
        index: this.snapshotIndex,
        retained: this.snapshotRetained,
        last_duration_ms: this.lastSnapshotMs,
        last_error: this.lastSnapshotError,
      },
    };
  }
}
