/**
 * The driver of one replica of one Raft group: it owns a RaftNode, persists
 * each Ready (RaftDiskStorage: one fdatasync per Ready, so proposals that
 * arrive while a write is in flight share the next one: group commit), sends
 * its messages, applies committed entries to the group's state machine and
 * answers the proposers and readers waiting on them. Time comes from the
 * injected clock (ticks), randomness from the injected source.
 */
import * as path from 'node:path';
import { sleep, type Clock, type TimerHandle } from '../core/clock';
import { DiskFullError, GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { DataFs } from '../store/data-fs';
import { RaftNode, type ConfChange, type Entry, type NodeId, type RaftConfig, type RaftMessage, type RaftState, type Ready } from './raft';
import { RaftDiskStorage } from './raft-storage';
import { nodeOfReplica } from './replica-id';

/**
 * A replicated state machine: deterministic, fed committed commands in log
 * order. A machine may answer later (a promise: SQL runs on a worker thread);
 * calls are made in log order and it must carry them out in that order, so a
 * snapshot() reflects every apply() called before it. The Raft loop never
 * waits for it: entries are handed over and applied behind it (see `applyTail`).
 */
export interface GroupMachine {
  /** Applies a committed command and returns the proposer's answer. Bad input is an answer, not a throw. */
  apply(data: unknown, index: number): unknown;
  /** The state as bytes, for a snapshot. */
  snapshot(): Uint8Array | Promise<Uint8Array>;
  /** Replaces the state with a snapshot's (undefined: the empty state). */
  restore(image: Uint8Array | undefined): void | Promise<void>;
}

export interface GroupOptions {
  name: string;
  /** This board's node id. */
  self: NodeId;
  /** The identity of a replica created now (see replica-id.ts; default: `self`); a replica on disk keeps the one it was created with. */
  replicaId?: NodeId;
  dir: string;
  fs: DataFs;
  logger: Logger;
  clock: Clock;
  random: () => number;
  machine: GroupMachine;
  /** Voters (replica ids) of a newly created group; [] for a replica that waits to be added. Ignored when the replica has state on disk. */
  bootstrap: NodeId[];
  /**
   * Sends to the replica `message.to` (its board is `nodeOfReplica(message.to)`).
   * `done`, if given, is told later whether the whole message reached the link.
   */
  send: (message: RaftMessage, done?: (sent: boolean) => void) => void;
  tickMs: number;
  raft?: Partial<RaftConfig>;
  /** Take a snapshot (and drop the log before it) after this many applied entries… */
  snapshotEntries: number;
  /** …or once the log grew by this many bytes. */
  snapshotBytes?: number;
  /** Called after every applied entry (commands, no-ops, conf changes). */
  onApplied?: (entry: Entry, result: unknown) => void;
  /** Durations for metrics; time is the clock's. */
  observer?: GroupObserver;
}

/** One replica in GET /status (and the metrics). */
export interface ReplicaStatus {
  group: string;
  state: RaftState;
  leader: NodeId | null;
  term: number;
  commit_index: number;
  applied_index: number;
  snapshot_index: number;
  voters: string[];
  learners: string[];
  replica: NodeId;
  voter_replicas: NodeId[];
  learner_replicas: NodeId[];
  removed: boolean;
  failed: string | null;
  leader_changes: number;
  proposals_pending: number;
  proposals_failed: number;
  /** Databases only. */
  size_bytes?: number;
}

/** What a replica reports as it goes, for metrics (counters are in status()). */
export interface GroupObserver {
  /** A Ready that wrote the log was made durable (write and fsync) in `seconds`. */
  persisted(group: string, seconds: number): void;
  /** A snapshot of `bytes` was taken and written in `seconds`. */
  snapshotted(group: string, seconds: number, bytes: number): void;
}

export class NotLeaderError extends GandalfError {
  /** `leader`: the board of the leader this replica knows of. */
  constructor(
    readonly group: string,
    readonly leader: NodeId | null,
  ) {
    super('not_leader', `this node does not lead ${group}${leader ? ` (${leader} does)` : ' (no leader known)'}`);
  }
}

interface Waiter {
  term: number;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timer: TimerHandle;
}

const BOOTSTRAP_FILE = 'bootstrap.json';

export class ReplicaGroup {
  private node!: RaftNode;
  private storage!: RaftDiskStorage;
  /** Index of the last entry the state machine applied (its answer is in). */
  private applied = 0;
  /** Index of the last entry handed to the state machine (applied, or being applied behind the Raft loop). */
  private issued = 0;
  /** The chain of state-machine work, in log order: applies, snapshot installs and snapshots. */
  private applyTail: Promise<void> = Promise.resolve();
  private persistedLast = 0;
  private running = false;
  private closed = false;
  private failed: Error | undefined;
  private tickTimer: TimerHandle | undefined;
  private readonly proposals = new Map<number, Waiter>();
  /** For metrics: leaders seen (a change to a known leader) and proposals that failed. */
  private leaderChanges = 0;
  private lastLeader: NodeId | null = null;
  private proposalsFailed = 0;
  private snapshotStarted = 0;
  private readonly reads = new Map<string, Waiter>();
  /** ReadIndex results waiting for the state machine to catch up. */
  private readonly readsAt: { requestId: string; index: number }[] = [];
  private readSeq = 0;
  private bootstrap: NodeId[] = [];
  private replica = '';
  private snapshotting = false;
  /** A snapshot image the state machine produced, for the Ready loop to compact and write. */
  private pendingCheckpoint: { index: number; image: Uint8Array } | undefined;
  private closing = false;
  private readonly readyWaiters = new Set<() => void>();

  private constructor(private readonly options: GroupOptions) {}

  static async open(options: GroupOptions): Promise<ReplicaGroup> {
    const group = new ReplicaGroup(options);
    await group.load();
    group.scheduleTick();
    group.kick();
    return group;
  }

  /** Whether a replica of this group has state under `dir`. */
  static async exists(fs: DataFs, dir: string): Promise<boolean> {
    try {
      return (await fs.readdir(dir)).includes(BOOTSTRAP_FILE);
    } catch {
      return false;
    }
  }

  private async load(): Promise<void> {
    const { dir, fs, logger, self } = this.options;
    await fs.mkdirp(dir);
    const bootFile = path.join(dir, BOOTSTRAP_FILE);
    if ((await fs.readdir(dir)).includes(BOOTSTRAP_FILE)) {
      const boot = JSON.parse(Buffer.from(await fs.readFile(bootFile)).toString('utf8')) as { voters: NodeId[]; replica?: NodeId };
      this.bootstrap = boot.voters;
      // replicas created before replica ids existed are their board's id
      this.replica = typeof boot.replica === 'string' ? boot.replica : self;
    } else {
      this.bootstrap = [...this.options.bootstrap];
      this.replica = this.options.replicaId ?? self;
      await fs.writeFileAtomic(bootFile, [Buffer.from(JSON.stringify({ group: this.options.name, voters: this.bootstrap, replica: this.replica }))]);
    }
    const { storage, state } = await RaftDiskStorage.open({ dir, fs, logger });
    this.storage = storage;
    if (state?.snapshot) {
      await this.options.machine.restore(state.snapshot.data as Uint8Array);
      this.applied = state.snapshot.index;
    } else {
      await this.options.machine.restore(undefined);
      this.applied = 0;
    }
    this.issued = this.applied;
    this.persistedLast = state ? (state.entries.length > 0 ? state.entries[state.entries.length - 1]!.index : this.applied) : 0;
    logger.info('replica loaded', {
      group: this.options.name,
      snapshotIndex: state?.snapshot?.index ?? 0,
      replayed: state ? state.entries.filter((e) => e.index <= state.commit).length : 0,
    });
    this.node = new RaftNode({
      id: this.replica,
      peers: this.bootstrap,
      random: this.options.random,
      ...(this.options.raft ? { config: this.options.raft } : {}),
      ...(state ? { storage: state } : {}),
    });
  }

  // ---- view ----

  get name(): string {
    return this.options.name;
  }
  /** This replica's identity in the group. */
  get id(): NodeId {
    return this.replica;
  }
  /** The board of the leader this replica knows of. */
  get leader(): NodeId | null {
    return this.node.leader === null ? null : nodeOfReplica(this.node.leader);
  }
  /** This replica is in its own configuration (as far as its log goes): it was founded, or received its addition. */
  get isMember(): boolean {
    return this.node.voters().includes(this.replica) || this.node.learners().includes(this.replica);
  }
  /** This replica learned it was removed from the group (see RaftNode.removed): the node drops it. */
  get removed(): boolean {
    return this.node.removed;
  }
  get isLeader(): boolean {
    return this.node.state === 'leader';
  }
  /** The term this replica leads in (undefined: it is not the leader). */
  get leaderTerm(): number | undefined {
    return this.isLeader ? this.node.term : undefined;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get commitIndex(): number {
    return this.node.commitIndex;
  }
  /** Voting replicas (replica ids). */
  voters(): NodeId[] {
    return this.node.voters();
  }
  /** The configuration (replica ids), the log index it is known in force at, and whether that is committed. */
  members(): { voters: NodeId[]; learners: NodeId[]; since: number; committed: boolean } {
    const since = this.node.configSince;
    return { voters: this.node.voters(), learners: this.node.learners(), since, committed: since <= this.node.commitIndex };
  }
  /** Index of the last entry in this replica's log. */
  get lastIndex(): number {
    return this.node.lastIndex;
  }
  /** Learner replicas (replica ids). */
  learners(): NodeId[] {
    return this.node.learners();
  }
  /** Whether a membership change would be refused now (not leader, one pending, a transfer). */
  get confChangeBlocked(): boolean {
    return this.node.confChangeBlocked();
  }
  /** Leader only: how far a member replica's log matches the leader's. */
  matchIndex(peer: NodeId): number | undefined {
    return this.node.matchIndex(peer);
  }
  /** Set when this replica cannot write any more (its log failed); a restart recovers. */
  get failure(): Error | undefined {
    return this.failed ?? this.storage.failure;
  }

  status(): ReplicaStatus {
    return {
      group: this.options.name,
      state: this.node.state,
      leader: this.leader,
      term: this.node.term,
      commit_index: this.node.commitIndex,
      applied_index: this.applied,
      snapshot_index: this.storage.snapshotIndex,
      voters: this.node.voters().map(nodeOfReplica),
      learners: this.node.learners().map(nodeOfReplica),
      replica: this.replica,
      voter_replicas: this.node.voters(),
      learner_replicas: this.node.learners(),
      removed: this.node.removed,
      failed: this.failure?.message ?? null,
      leader_changes: this.leaderChanges,
      proposals_pending: this.proposals.size,
      proposals_failed: this.proposalsFailed,
    };
  }

  // ---- inputs ----

  step(message: unknown): void {
    if (this.closed || this.failed) return;
    this.node.step(message);
    this.kick();
  }

  /** Commits `data` and resolves with the state machine's answer once applied here. */
  propose(data: unknown, timeoutMs: number): Promise<unknown> {
    this.checkWritable();
    const r = this.node.propose(data);
    return this.awaitEntry(r, timeoutMs);
  }

  changeConf(change: ConfChange, timeoutMs: number): Promise<unknown> {
    this.checkWritable();
    const r = this.node.proposeConfChange(change);
    if ('error' in r && r.error !== 'not_leader') {
      return Promise.reject(new GandalfError('conflict', `membership change ${change.type} ${change.node} of ${this.name} refused: ${r.error}`));
    }
    return this.awaitEntry(r, timeoutMs);
  }

  /** Resolves once this replica's state reflects every write acknowledged before the call (ReadIndex). Leader only. */
  readBarrier(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(new GandalfError('stopping', 'the node is stopping'));
    const requestId = `${this.options.self}:${++this.readSeq}`;
    const r = this.node.readIndex(requestId);
    if ('error' in r) return Promise.reject(new NotLeaderError(this.name, this.leader));
    this.kick();
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.reads.delete(requestId);
        reject(new GandalfError('no_quorum', `${this.name}: no quorum confirmed leadership within ${timeoutMs} ms; a linearizable read is not possible now`));
      }, timeoutMs);
      timer.unref?.();
      this.reads.set(requestId, { term: this.node.term, resolve: () => resolve(), reject, timer });
    });
  }

  /**
   * Leader only: resolves once this leader committed an entry of its own term,
   * applied everything committed, and heard from a quorum of voters within the
   * last election timeout, so its state holds every acknowledged write and no
   * newer leader can exist yet (what `level=weak` reads need; a leader cut off
   * from its quorum serves none).
   */
  leaderReady(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(new GandalfError('stopping', 'the node is stopping'));
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.name, this.leader));
    if (this.isLeaderReady()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.readyWaiters.delete(waiter);
        reject(new GandalfError('no_quorum', `${this.name}: this leader could not commit or reach a quorum of its voters within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      const waiter = () => {
        if (!this.isLeader) {
          this.readyWaiters.delete(waiter);
          this.options.clock.clearTimeout(timer);
          reject(new NotLeaderError(this.name, this.leader));
        } else if (this.isLeaderReady()) {
          this.readyWaiters.delete(waiter);
          this.options.clock.clearTimeout(timer);
          resolve();
        }
      };
      this.readyWaiters.add(waiter);
    });
  }

  isLeaderReady(): boolean {
    return this.isLeader && this.node.termAt(this.node.commitIndex) === this.node.term && this.applied >= this.node.commitIndex && this.node.hasQuorumContact();
  }

  /** Operator recovery after the quorum was lost for good: see RaftNode.forceConfiguration (`voters`: replica ids, this one among them). */
  forceConfiguration(voters: NodeId[]): void {
    this.checkWritable();
    const r = this.node.forceConfiguration(voters);
    if ('error' in r) throw new GandalfError('conflict', `${this.name} cannot be re-formed from ${voters.join(', ')}: ${r.error}`);
    this.kick();
  }

  transferLeadership(to: NodeId): boolean {
    const ok = this.node.transferLeadership(to);
    this.kick();
    return ok;
  }

  /**
   * Lets proposals in flight settle (up to `graceMs`), then stops ticking and
   * answering; the rest fail. Writes a final snapshot unless `snapshot` is
   * false (what a crash would leave). The files stay.
   */
  async close(graceMs = 2000, snapshot = true): Promise<void> {
    if (this.closed) return;
    const until = this.options.clock.monotonic() + graceMs;
    this.closing = true;
    while (this.proposals.size > 0 && this.options.clock.monotonic() < until && !this.failure) await sleep(this.options.clock, 5);
    this.closed = true;
    if (this.tickTimer) this.options.clock.clearTimeout(this.tickTimer);
    while (this.running) await new Promise<void>((r) => this.options.clock.defer(r));
    await this.applyTail;
    await this.writeCheckpoint(); // one the loop did not get to
    // These entries are in the log already and the other voters may still commit them: retrying one elsewhere could apply it twice.
    this.failAll(new GandalfError('outcome_unknown', `${this.name}: this node stopped before the write committed here; it may or may not be applied`));
    // A final snapshot: the next start restores it instead of replaying the log.
    if (snapshot && !this.failure && this.applied > this.storage.snapshotIndex) {
      await this.captureSnapshot();
      await this.writeCheckpoint();
    }
    await this.storage.close();
  }

  // ---- the Ready loop ----

  private checkWritable(): void {
    if (this.closed || this.closing) throw new GandalfError('stopping', 'the node is stopping');
    const failure = this.failure;
    if (failure) throw new GandalfError('log_failed', `${this.name} refuses writes on this node: ${failure.message}`);
  }

  private awaitEntry(r: ReturnType<RaftNode['propose']>, timeoutMs: number): Promise<unknown> {
    if ('error' in r) {
      if (r.error === 'not_leader') return Promise.reject(new NotLeaderError(this.name, r.leader === null ? null : nodeOfReplica(r.leader)));
      return Promise.reject(new GandalfError('leader_changed', `${this.name}: leadership is moving (${r.error}); retry`));
    }
    this.kick();
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.proposals.delete(r.index);
        this.proposalsFailed++;
        reject(
          new GandalfError(
            'no_quorum',
            `${this.name}: the write was not committed within ${timeoutMs} ms (no quorum of ${this.node.voters().length} voters reachable?); it may still be applied later`,
          ),
        );
      }, timeoutMs);
      timer.unref?.();
      this.proposals.set(r.index, { term: r.term, resolve, reject, timer });
    });
  }

  private scheduleTick(): void {
    if (this.closed) return;
    this.tickTimer = this.options.clock.setTimeout(() => {
      if (this.closed) return;
      this.node.tick();
      this.kick();
      this.scheduleTick();
    }, this.options.tickMs);
    this.tickTimer.unref?.();
  }

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.options.clock.defer(() => void this.loop());
  }

  private async loop(): Promise<void> {
    for (;;) {
      // A replica whose log failed says nothing more: it could not make a vote or an ack durable.
      if (this.closed || this.failed) {
        this.running = false;
        return;
      }
      if (this.pendingCheckpoint) {
        await this.writeCheckpoint();
        continue;
      }
      const rd = this.node.advance();
      if (!rd) {
        this.running = false; // same synchronous step as seeing no work: a later kick() starts a new loop
        return;
      }
      const leader = this.node.leader;
      if (leader !== null && leader !== this.lastLeader) {
        this.lastLeader = leader;
        this.leaderChanges++;
      }
      try {
        await this.process(rd);
      } catch (err) {
        await this.recover(err as Error).catch((again: unknown) => {
          this.failed = again as Error;
          this.options.logger.error('the replica could not reopen its files; it stays down until restart', { group: this.name, err: again as Error });
        });
      }
    }
  }

  private async process(rd: Ready): Promise<void> {
    // A leader's appends may leave while its own disk write is in flight (Raft
    // thesis 10.2.1): commitment counts its own log only in later Readys,
    // processed after this write. Not when the term or vote changes here.
    let messages = rd.messages;
    if (this.node.state === 'leader' && !this.storage.changesTermOrVote(rd)) {
      for (const m of messages) if (m.type === 'append') this.options.send(m);
      messages = messages.filter((m) => m.type !== 'append');
    }
    const writes = rd.entries.length > 0 || rd.hardState !== undefined || rd.snapshot !== undefined;
    const t0 = this.options.clock.monotonic();
    await this.storage.persist(rd);
    if (writes) this.options.observer?.persisted(this.name, (this.options.clock.monotonic() - t0) / 1000);
    if (rd.snapshot) this.persistedLast = rd.snapshot.index;
    if (rd.truncateFrom !== undefined) this.persistedLast = Math.min(this.persistedLast, rd.truncateFrom - 1);
    if (rd.entries.length > 0) this.persistedLast = rd.entries[rd.entries.length - 1]!.index;
    for (const m of messages) {
      if (m.type === 'snapshot') {
        // a large database's snapshot streams for minutes: Raft waits for it rather than resending early
        this.options.send(m, (sent) => {
          this.node.reportSnapshot(m.to, sent);
          this.kick();
        });
      } else {
        this.options.send(m);
      }
    }
    // The state machine works behind the Raft loop, in log order: a long apply
    // (SQL on its worker) delays only the answers that wait for it, never
    // heartbeats, votes or appends.
    const snapshot = rd.snapshot;
    if (snapshot && snapshot.index > this.issued) {
      this.issued = snapshot.index;
      this.enqueue(() => this.install(snapshot.index, snapshot.data as Uint8Array));
    }
    const batch = rd.committed.filter((e) => e.index > this.issued);
    if (batch.length > 0) {
      this.issued = batch[batch.length - 1]!.index;
      this.enqueue(() => this.applyBatch(batch));
    }
    for (const rs of rd.readStates) this.readsAt.push(rs);
    this.answerReads();
  }

  /** Runs `work` after all state-machine work handed over before it. A machine that fails takes the replica out, like a failed log. */
  private enqueue(work: () => Promise<void>): void {
    this.applyTail = this.applyTail.then(work).catch((err: unknown) => {
      if (this.failed) return;
      this.failed = err as Error;
      this.options.logger.error('the state machine failed; this replica stops taking part until restart', { group: this.name, err: err as Error });
      this.failAll(new GandalfError('log_failed', `${this.name}: the state machine failed: ${(err as Error).message}`));
    });
  }

  private async install(index: number, image: Uint8Array): Promise<void> {
    await this.options.machine.restore(image);
    this.applied = index;
    this.options.logger.info('installed a snapshot from the leader', { group: this.name, index });
    for (const [i, w] of this.proposals) {
      if (i <= this.applied) this.settle(i, w, undefined, true);
    }
    this.afterApply();
  }

  private async applyBatch(batch: Entry[]): Promise<void> {
    // every command is handed over before the first answer is awaited: a worker machine runs them back to back
    const answers = batch.map((e) => (e.kind ? undefined : this.options.machine.apply(e.data, e.index)));
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!;
      const result = await answers[i];
      this.applied = entry.index;
      const w = this.proposals.get(entry.index);
      if (w) this.settle(entry.index, w, result, w.term !== entry.term);
      this.options.onApplied?.(entry, result);
    }
    this.afterApply();
    await this.maybeSnapshot();
  }

  private afterApply(): void {
    this.answerReads();
    for (const w of [...this.readyWaiters]) w();
  }

  private settle(index: number, w: Waiter, result: unknown, lost: boolean): void {
    this.proposals.delete(index);
    this.options.clock.clearTimeout(w.timer);
    if (lost) {
      this.proposalsFailed++;
      w.reject(new GandalfError('leader_changed', `${this.name}: leadership changed before the write committed; it was not applied, retry`));
    } else w.resolve(result);
  }

  private answerReads(): void {
    for (let i = 0; i < this.readsAt.length;) {
      const rs = this.readsAt[i]!;
      if (rs.index > this.applied) {
        i++;
        continue;
      }
      this.readsAt.splice(i, 1);
      const w = this.reads.get(rs.requestId);
      if (!w) continue;
      this.reads.delete(rs.requestId);
      this.options.clock.clearTimeout(w.timer);
      w.resolve(undefined);
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.snapshotting || this.applied <= this.storage.snapshotIndex) return;
    const entries = this.applied - this.storage.snapshotIndex;
    if (entries < this.options.snapshotEntries && this.storage.bytesSinceSnapshot < (this.options.snapshotBytes ?? Infinity)) return;
    await this.captureSnapshot();
  }

  /**
   * Part of the state-machine chain: the image at `applied`. The Ready loop
   * compacts and writes it (never beside a persist of its own).
   */
  private async captureSnapshot(): Promise<void> {
    // an image must not cover entries this replica has not made durable itself
    if (this.snapshotting || this.applied > this.persistedLast) return;
    this.snapshotting = true;
    this.snapshotStarted = this.options.clock.monotonic();
    try {
      const index = this.applied;
      const image = await this.options.machine.snapshot();
      this.pendingCheckpoint = { index, image };
      this.kick();
    } catch (err) {
      this.snapshotting = false;
      this.options.logger.warn('snapshot failed; the log keeps every entry', { group: this.name, err: err as Error });
    }
  }

  private async writeCheckpoint(): Promise<void> {
    const pending = this.pendingCheckpoint;
    if (!pending) return;
    this.pendingCheckpoint = undefined;
    try {
      const snap = this.node.compact(pending.index, pending.image);
      if (!snap) return;
      const tail: Entry[] = [];
      for (let i = pending.index + 1; i <= this.persistedLast; i++) {
        const e = this.node.entry(i);
        if (e) tail.push(e);
      }
      await this.storage.checkpoint(snap, tail);
      this.options.observer?.snapshotted(this.name, (this.options.clock.monotonic() - this.snapshotStarted) / 1000, pending.image.length);
      this.options.logger.debug('snapshot written', { group: this.name, index: pending.index });
    } catch (err) {
      this.options.logger.warn('snapshot failed; the log keeps every entry', { group: this.name, err: err as Error });
    } finally {
      this.snapshotting = false;
    }
  }

  /**
   * A Ready could not be made durable. Raft's volatile state may now be ahead of
   * the disk, so the replica restarts in place from what is on disk (the state
   * machine keeps what it applied; committed entries are never undone). Waiting
   * proposers are told; a full disk stays writable once space returns.
   */
  private async recover(err: Error): Promise<void> {
    const diskFull = err instanceof DiskFullError;
    this.options.logger.error(diskFull ? 'disk full: a write could not be made durable' : 'persisting a Raft Ready failed', { group: this.name, err });
    this.failAll(diskFull ? err : new GandalfError('log_failed', `${this.name}: ${err.message}`));
    if (!diskFull) {
      this.failed = err;
      return;
    }
    const applied = this.applied;
    await this.storage.close().catch(() => {});
    const { storage, state } = await RaftDiskStorage.open({ dir: this.options.dir, fs: this.options.fs, logger: this.options.logger });
    this.storage = storage;
    this.persistedLast = state ? (state.entries.length > 0 ? state.entries[state.entries.length - 1]!.index : (state.snapshot?.index ?? 0)) : 0;
    this.node = new RaftNode({
      id: this.replica,
      peers: this.bootstrap,
      random: this.options.random,
      ...(this.options.raft ? { config: this.options.raft } : {}),
      ...(state ? { storage: state } : {}),
    });
    this.applied = applied;
  }

  private failAll(err: Error): void {
    this.readyWaiters.clear();
    for (const [index, w] of this.proposals) {
      this.options.clock.clearTimeout(w.timer);
      this.proposals.delete(index);
      this.proposalsFailed++;
      w.reject(err);
    }
    for (const [id, w] of this.reads) {
      this.options.clock.clearTimeout(w.timer);
      this.reads.delete(id);
      w.reject(err);
    }
  }
}
