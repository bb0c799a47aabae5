/**
 * The durable part of one Raft replica, on the store's own files: each Ready
 * becomes one record of a CommandLog (hard state, truncation point, entries),
 * written with one write + fdatasync before any message of that Ready leaves;
 * snapshots go to a SnapshotStore. Replay folds the records back into
 * RaftStorage.
 *
 * Compaction: after a snapshot at raft index S the log is rolled and a
 * checkpoint record (hard state + every entry after S) starts the new
 * segment; the snapshot remembers that record's position, and segments before
 * the older retained snapshot's position are deleted. Two snapshots stay on
 * disk, so a corrupt newest one falls back to the older one plus the log.
 */
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import { checkCbor } from '../core/cbor-guard';
import { CorruptDataError } from '../core/errors';
import type { Logger } from '../core/logger';
import { CommandLog } from '../store/command-log';
import type { DataFs } from '../store/data-fs';
import { SnapshotStore } from '../store/snapshot-store';
import type { Entry, HardState, RaftStorage, Snapshot } from './raft';

interface Record_ {
  hs?: HardState;
  /** Drop entries >= trunc before appending. */
  trunc?: number;
  /** Checkpoint: the entries below replace everything (after the snapshot base `base`). */
  base?: number;
  entries: Entry[];
}

interface SnapshotFile {
  data: unknown;
  /** First log record to replay on top of this snapshot. */
  replayFrom: number;
  voters: string[];
  learners: string[];
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

export interface OpenedStorage {
  storage: RaftDiskStorage;
  /** What was persisted; undefined for a replica that never wrote anything. */
  state: RaftStorage | undefined;
}

export class RaftDiskStorage {
  private hard: HardState;
  private olderReplayFrom: number;
  private snapIndex: number;

  private constructor(
    private readonly log: CommandLog<Record_>,
    private readonly snapshots: SnapshotStore,
    private readonly logger: Logger,
    state: { hard: HardState; replayFrom: number; snapIndex: number },
  ) {
    this.hard = state.hard;
    this.olderReplayFrom = state.replayFrom;
    this.snapIndex = state.snapIndex;
  }

  static async open(options: { dir: string; fs: DataFs; logger: Logger }): Promise<OpenedStorage> {
    const { dir, fs, logger } = options;
    const snapshots = new SnapshotStore(path.join(dir, 'snapshots'), fs, logger);
    await snapshots.removeLeftovers();
    const stored = await snapshots.loadNewestValid();
    let snapshot: Snapshot | undefined;
    let replayFrom = 1;
    if (stored) {
      const problem = checkCbor(stored.image);
      if (problem) throw new CorruptDataError(`snapshot ${stored.index} in ${dir} does not decode: ${problem}`);
      const file = cbor.decode(stored.image) as SnapshotFile;
      snapshot = { index: stored.index, term: stored.term, data: file.data, voters: file.voters, learners: file.learners };
      replayFrom = file.replayFrom;
    }
    const { log, records } = await CommandLog.open<Record_>({ dir: path.join(dir, 'log'), fs, logger, replayFrom });
    const base = snapshot?.index ?? 0;
    let hard: HardState = { term: snapshot?.term ?? 0, vote: null, commit: base };
    let entries: Entry[] = [];
    for (const { data: r } of records) {
      if (r.hs) hard = r.hs;
      // A checkpoint rewrites what follows its snapshot; what precedes it stays (needed when an
      // older snapshot is the one loaded, because the newest was unreadable).
      if (r.base !== undefined) entries = entries.filter((e) => e.index <= r.base!);
      if (r.trunc !== undefined) entries = entries.filter((e) => e.index < r.trunc!);
      for (const e of r.entries) {
        if (e.index <= base) continue;
        if (entries.length > 0 && e.index !== entries[entries.length - 1]!.index + 1) {
          entries = entries.filter((x) => x.index < e.index);
        }
        entries.push(e);
      }
    }
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.index !== base + 1 + i) {
        throw new CorruptDataError(
          `raft log in ${dir} misses entry ${base + 1 + i} (after snapshot ${base}): acknowledged entries are damaged, refusing to start this replica`,
        );
      }
    }
    const fresh = !snapshot && records.length === 0;
    const storage = new RaftDiskStorage(log, snapshots, logger, { hard, replayFrom, snapIndex: base });
    if (fresh) return { storage, state: undefined };
    const last = entries.length > 0 ? entries[entries.length - 1]!.index : base;
    const commit = Math.min(Math.max(hard.commit, base), last);
    return {
      storage,
      state: { term: hard.term, vote: hard.vote, commit, entries, ...(snapshot ? { snapshot } : {}) },
    };
  }

  get snapshotIndex(): number {
    return this.snapIndex;
  }

  /** Log bytes written since the last snapshot. */
  get bytesSinceSnapshot(): number {
    return this.log.bytesSinceSnapshot;
  }

  get failure(): Error | undefined {
    return this.log.failure;
  }

  /** Whether a Ready changes the term or vote (or installs a snapshot): nothing may leave before it is durable. */
  changesTermOrVote(ready: { hardState?: HardState; snapshot?: Snapshot }): boolean {
    const hs = ready.hardState;
    return ready.snapshot !== undefined || (hs !== undefined && (hs.term !== this.hard.term || hs.vote !== this.hard.vote));
  }

  /** Steps 1-3 of a Ready, durable when this resolves. A received snapshot is written first. */
  async persist(ready: { hardState?: HardState; snapshot?: Snapshot; truncateFrom?: number; entries: Entry[] }): Promise<void> {
    if (ready.snapshot) {
      if (ready.hardState) this.hard = ready.hardState;
      await this.checkpoint(ready.snapshot, ready.entries);
      return;
    }
    // Like etcd's MustSync: a Ready that only moved the commit index needs no write (Raft
    // re-learns commit after a restart); the next record carries it.
    const hs = ready.hardState;
    if (hs && hs.term === this.hard.term && hs.vote === this.hard.vote && ready.truncateFrom === undefined && ready.entries.length === 0) {
      this.hard = hs;
      return;
    }
    if (!hs && ready.truncateFrom === undefined && ready.entries.length === 0) return;
    const record: Record_ = { entries: ready.entries, hs: hs ?? this.hard };
    if (ready.truncateFrom !== undefined) record.trunc = ready.truncateFrom;
    await this.log.appendBatch([{ index: this.log.lastIndex + 1, term: 0, data: record }]);
    if (ready.hardState) this.hard = ready.hardState;
  }

  /**
   * Writes `snapshot` (own compaction or received from the leader) and restarts
   * the log after it with `tail` (the entries after the snapshot still held).
   */
  async checkpoint(snapshot: Snapshot, tail: Entry[]): Promise<void> {
    await this.log.roll();
    const replayFrom = this.log.lastIndex + 1;
    const hard = { ...this.hard, commit: Math.max(this.hard.commit, snapshot.index), term: Math.max(this.hard.term, snapshot.term) };
    await this.log.appendBatch([
      { index: replayFrom, term: 0, data: { hs: hard, base: snapshot.index, entries: tail.filter((e) => e.index > snapshot.index) } },
    ]);
    this.hard = hard;
    // The image first: its bytes then sit at the same offsets in every snapshot, so a delta holds only what changed.
    const file: SnapshotFile = { data: snapshot.data, replayFrom, voters: snapshot.voters, learners: snapshot.learners };
    await this.snapshots.save({ index: snapshot.index, term: snapshot.term, image: cbor.encode(file) as Uint8Array });
    this.snapIndex = snapshot.index;
    // The older retained snapshot still needs the log from where it starts.
    const dropBefore = this.olderReplayFrom;
    this.olderReplayFrom = replayFrom;
    try {
      await this.log.compact(dropBefore - 1);
    } catch (err) {
      this.logger.warn('could not delete old log segments', { err: err as Error });
    }
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
