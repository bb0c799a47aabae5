/**
 * Runs this node's replicas: the `system` group (placement, sessions, locks,
 * key/value container) and one group per database, placed by rendezvous
 * hashing with a redundancy factor. It routes Raft messages between replicas,
 * bootstraps the system group in a new cluster, keeps every group's members
 * where placement wants them (self-healing: learner -> caught up -> voter ->
 * old voter removed), and forwards work to group leaders so that any node
 * accepts any request. See DESIGN.md ("Groups").
 */
import { LeaderForwarder } from './leader-forwarding';
import { SplitWatch, type SplitReport } from './split-watch';
import { MERGE_EXPORT_QUERY, SystemMerge, type MergeReport } from './system-merge';
import { MembershipView, type MembershipPort } from './membership-view';
import * as path from 'node:path';
import { sleep, type Clock, type TimerHandle } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import type { DataFs } from '../store/data-fs';
import type { ExecuteCommand, ExecuteResult, QueryResult, Statement } from '../store/sql-state-machine';
import { ReplicaGroup, type GroupMachine, type GroupObserver, type ReplicaStatus } from './group';
import { dbGroup, effectiveRedundancy, rendezvous, type DbRecord } from './placement';
import { PlacementController } from './placement-controller';
import { SystemClient, type SystemCall, type SystemMachine, type SystemQuery } from './system-client';
import { DatabaseClient } from './database-client';
import type { Entry, RaftConfig, RaftMessage } from './raft';
import { newReplicaId, nodeOfReplica } from './replica-id';
import type { BackupFormat, DatabaseMachine, DatabaseMachineFactory } from './database-machine';
import { isGroupName, RPC_TIMEOUT_MS, ReplicationRpc, SYSTEM_GROUP, type ReadLevel } from './rpc-methods';
import type { Rpc, SendDone, Wire } from './wire';

export { SYSTEM_GROUP, isGroupName, type ReadLevel } from './rpc-methods';
export { dbGroup } from './placement';

export type { DbRecord } from './placement';
export type { SystemCall, SystemLeader, SystemMachine } from './system-client';

export type { MemberInfo, MembershipPort } from './membership-view';

export interface ReplicatorOptions {
  self: string;
  dataDir: string;
  fs: DataFs;
  logger: Logger;
  clock: Clock;
  random: () => number;
  random32: () => number;
  /** The state machine of a database replica (the node's runs SQL on worker threads). */
  createDatabaseMachine: DatabaseMachineFactory;
  wire: Wire;
  rpc: Rpc;
  membership: MembershipPort;
  createSystemMachine: () => SystemMachine;
  /** Called for every entry the local system replica applies (grants, watches). */
  onSystemApplied?: (entry: Entry, result: unknown) => void;
  /** Default voters per database (0: min(3, cluster size)). */
  redundancy: number;
  replaceAfterMs: number;
  /** Rebalancing: members must hold still this long, and moves are this far apart (default 60 s). */
  rebalanceMs?: number;
  writeTimeoutMs: number;
  /** Bound of every read and of a write's trial (`--query-timeout`). */
  queryTimeoutMs: number;
  /** A database this large takes no more growing writes (`--max-database-bytes`; undefined: no bound). */
  maxDatabaseBytes?: number;
  snapshotEntries: number;
  snapshotBytes?: number;
  /** Durations of log writes and snapshots, for metrics. */
  observer?: GroupObserver;
  /** false (--voter=false): this board holds database replicas as a learner only and never counts for quorum. */
  voter?: boolean;
  /** Boards newly known to be removed from the cluster (the node bans them from the mesh and membership). */
  onNodesRemoved?: (ids: string[]) => void;
  tickMs?: number;
  raft?: Partial<RaftConfig>;
  /** How long a node without a system group waits, and how long its view of the members must stay unchanged, before it may found one. */
  bootstrapGraceMs?: number;
  /** False while this node should not found a system group whatever it sees (e.g. --join targets not reached yet). */
  mayFound?: () => boolean;
  reconcileMs?: number;
}

/** `db`: the machine again, as a database's (undefined for the system group). */
type Replica = { group: ReplicaGroup; machine: GroupMachine; db: DatabaseMachine | undefined; lastTs: number };
/** A Raft message for replica `m.to` of group `g`, or a board's word that it holds no replica `gone` of `g`. */
type RaftEnvelope = { g: string; m: unknown } | { g: string; gone: string };
/** How a replica is opened: from its files, as the founder of a new group, or empty, waiting to be added. */
type OpenMode = 'disk' | 'found' | 'join';

const RAFT_DEFAULTS: Partial<RaftConfig> = { electionTicks: 10, heartbeatTicks: 1, maxEntriesPerMessage: 512, maxInflight: 32 };
const GC_INTERVAL_MS = 10_000;
/** A board repeats "no such replica" to one sender at most this often. */
const GONE_NOTICE_MS = 1_000;
/** Tombstone of a replica this node held and gave up: it is never re-created from a bootstrap. */
const REMOVED_SUFFIX = '.removed';

function unique(ids: string[]): string[] {
  return [...new Set(ids)];
}

export class Replicator {
  private readonly replicas = new Map<string, Replica>();
  private readonly opening = new Map<string, Promise<Replica | undefined>>();
  /** Per group: the tail of its opens and drops, which run one at a time (they share the group's directory). */
  private readonly groupOps = new Map<string, Promise<unknown>>();
  private readonly view: MembershipView;
  private readonly rpc: ReplicationRpc;
  private readonly forward: LeaderForwarder<Replica>;
  private readonly split: SplitWatch;
  private readonly merger: SystemMerge;
  private readonly placer: PlacementController;
  private readonly system: SystemClient<Replica>;
  private readonly dbs: DatabaseClient<Replica>;
  /** The system group's identity as a placement refresh learned it (boards without a system replica). */
  private learnedClusterId: string | undefined;
  private publishedClusterId: string | undefined;
  private placement = new Map<string, DbRecord>();
  private placementFetched = 0;
  private placementRefresh: Promise<void> | undefined;
  /** System leader: since when each database placed but not founded was seen so, and those being founded now. */
  private readonly unfoundedSince = new Map<string, number>();
  private readonly founding = new Set<string>();
  private readonly startedAt: number;
  private reconcileTimer: TimerHandle | undefined;
  private reconciling = false;
  private lastGc = 0;
  private lastMembershipChange: number;
  /** Who is present and who has a system replica, as last seen: founding waits until it holds still. */
  private membershipSignature = '';
  private closed = false;
  /** Replicas on disk are open: from now on a message for a replica this node lacks is answered "gone". */
  private started = false;
  /** Per group: replica ids whose boards said they hold no such replica (a lost disk, a dropped replica). */
  private readonly gone = new Map<string, Set<string>>();
  private readonly goneNoticed = new Map<string, number>();
  private readonly tickMs: number;

  constructor(private readonly options: ReplicatorOptions) {
    this.startedAt = options.clock.monotonic();
    this.lastMembershipChange = this.startedAt;
    this.tickMs = options.tickMs ?? 100;
    this.view = new MembershipView({
      self: options.self,
      membership: options.membership,
      clock: options.clock,
      replaceAfterMs: options.replaceAfterMs,
      ...(options.voter !== undefined ? { voter: options.voter } : {}),
      closed: () => this.closed,
      clusterId: () => this.clusterId(),
    });
    this.rpc = new ReplicationRpc(options.rpc);
    this.split = new SplitWatch({
      rpc: this.rpc,
      view: this.view,
      clock: options.clock,
      logger: options.logger,
      cluster: () => this.clusterId(),
      databases: () => [...this.placement.values()].map((d) => d.name),
    });
    this.merger = new SystemMerge({ rpc: this.rpc, view: this.view, clock: options.clock, logger: options.logger, writeTimeoutMs: options.writeTimeoutMs });
    this.forward = new LeaderForwarder<Replica>({
      self: options.self,
      clock: options.clock,
      rpc: this.rpc,
      view: this.view,
      replica: (group) => this.replicas.get(group),
      closed: () => this.closed,
      farSideMs: (method, body) =>
        'timeoutMs' in body && method === 'db-exec'
          ? body.timeoutMs + options.queryTimeoutMs
          : 'timeoutMs' in body && method === 'db-load'
            ? body.timeoutMs + this.dbs.readBoundMs('backup')
            : method === 'db-read'
              ? this.dbs.readBoundMs('what' in body && body.what === 'backup' ? 'backup' : 'query')
              : 0,
    });
    this.system = new SystemClient<Replica>({
      forward: this.forward,
      replica: () => this.replicas.get(SYSTEM_GROUP),
      member: () => this.member(SYSTEM_GROUP),
      candidates: () => this.systemCandidates(),
      writeTimeoutMs: options.writeTimeoutMs,
    });
    this.dbs = new DatabaseClient<Replica>({
      forward: this.forward,
      rpc: this.rpc,
      view: this.view,
      split: this.split,
      clock: options.clock,
      random32: options.random32,
      writeTimeoutMs: options.writeTimeoutMs,
      queryTimeoutMs: options.queryTimeoutMs,
      ...(options.maxDatabaseBytes !== undefined ? { maxDatabaseBytes: options.maxDatabaseBytes } : {}),
      member: (group) => this.member(group),
      database: (name) => this.database(name),
      refreshPlacement: () => this.refreshPlacement(),
      ensureDatabase: (name, redundancy) => this.ensureDatabase(name, redundancy),
      clusterId: () => this.clusterId(),
    });
    this.placer = new PlacementController({
      clock: options.clock,
      logger: options.logger,
      view: this.view,
      rpc: this.rpc,
      writeTimeoutMs: options.writeTimeoutMs,
      rebalanceMs: options.rebalanceMs ?? 60_000,
      isGone: (group, replica) => this.isGone(group, replica),
      replicaLive: (group, replica) => this.replicaLive(group, replica),
      clusterId: () => this.clusterId(),
      lastMembershipChange: () => this.lastMembershipChange,
    });
    options.wire.onMessage((from, message) => this.onWire(from, message));
    this.registerRpc();
    this.system.registerQuery(MERGE_EXPORT_QUERY, (m) => m.mergeExport());
  }

  private get raftDir(): string {
    return path.join(this.options.dataDir, 'raft');
  }

  private groupDir(group: string): string {
    return path.join(this.raftDir, group);
  }

  /** Opens every replica this node has on disk and starts the maintenance loop. */
  async start(): Promise<void> {
    const { fs } = this.options;
    await fs.mkdirp(this.raftDir);
    for (const name of await fs.readdir(this.raftDir)) {
      if (name.endsWith(REMOVED_SUFFIX) || name.endsWith('.tmp')) continue;
      if (await ReplicaGroup.exists(fs, this.groupDir(name))) await this.openReplica(name, 'disk');
    }
    this.started = true;
    if (this.options.voter === false) this.options.membership.publish('voter', '0');
    this.scheduleReconcile(0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconcileTimer) this.options.clock.clearTimeout(this.reconcileTimer);
    // Hand leadership over so the others need not wait for an election timeout.
    for (const { group } of this.replicas.values()) {
      if (!group.isLeader) continue;
      const to = group.voters().find((v) => v !== group.id && this.view.isAlive(nodeOfReplica(v)));
      if (to) group.transferLeadership(to);
    }
    if ([...this.replicas.values()].some((r) => r.group.isLeader)) await sleep(this.options.clock, 300);
    for (const r of this.replicas.values()) {
      await r.group.close();
      await r.db?.close();
    }
    this.replicas.clear();
  }

  // ---- replicas ----

  /**
   * Opens a replica of `group` (see OpenMode). A new replica ('found', 'join')
   * gets a fresh replica id; replicas are never created by Raft messages, only
   * by a founding, a leader's `group-prepare` that placement backs, or the files
   * on disk.
   */
  private openReplica(group: string, mode: OpenMode): Promise<Replica | undefined> {
    const existing = this.replicas.get(group);
    if (existing) return Promise.resolve(existing);
    let p = this.opening.get(group);
    if (!p) {
      p = this.serially(group, () => this.replicas.get(group) ?? this.doOpen(group, mode)).finally(() => this.opening.delete(group));
      this.opening.set(group, p);
    }
    return p;
  }

  private serially<T>(group: string, op: () => Promise<T> | T): Promise<T> {
    const run = (this.groupOps.get(group) ?? Promise.resolve()).then(op, op);
    const tail = run.catch(() => undefined);
    this.groupOps.set(group, tail);
    void tail.then(() => {
      if (this.groupOps.get(group) === tail) this.groupOps.delete(group);
    });
    return run;
  }

  private async doOpen(group: string, mode: OpenMode): Promise<Replica | undefined> {
    if (this.closed) return undefined;
    const { fs, logger, clock, random, self } = this.options;
    const siblings = await fs.readdir(this.raftDir).catch(() => [] as string[]);
    const tombstone = siblings.includes(group + REMOVED_SUFFIX);
    const onDisk = await ReplicaGroup.exists(fs, this.groupDir(group));
    if (mode === 'found' && tombstone && !onDisk) {
      throw new GandalfError('conflict', `${group} was removed from this node; it is not founded again here`);
    }
    // Added again by the group's leader after a removal: a fresh, empty replica under a new id; the tombstone has served.
    if (mode === 'join' && tombstone) await fs.unlink(path.join(this.raftDir, group + REMOVED_SUFFIX)).catch(() => undefined);
    if (mode === 'join' && onDisk) await fs.removeTree(this.groupDir(group));
    const replicaId = newReplicaId(self, this.options.random32);
    const db = group === SYSTEM_GROUP ? undefined : this.options.createDatabaseMachine(group);
    const machine = db ?? this.options.createSystemMachine();
    const replica: Replica = { machine, db, lastTs: 0, group: undefined as unknown as ReplicaGroup };
    replica.group = await ReplicaGroup.open({
      name: group,
      self,
      replicaId,
      dir: this.groupDir(group),
      fs,
      logger: logger.child({ group }),
      clock,
      random,
      machine,
      bootstrap: mode === 'found' ? [replicaId] : [],
      send: (m, done) => this.sendRaft(group, m, done),
      tickMs: this.tickMs,
      raft: { ...RAFT_DEFAULTS, ...this.options.raft },
      snapshotEntries: this.options.snapshotEntries,
      ...(this.options.snapshotBytes ? { snapshotBytes: this.options.snapshotBytes } : {}),
      onApplied: (entry, result) => this.onApplied(group, entry, result),
      ...(this.options.observer ? { observer: this.options.observer } : {}),
    });
    if (this.closed) {
      await replica.group.close(0, false);
      await db?.close();
      return undefined;
    }
    this.replicas.set(group, replica);
    if (group === SYSTEM_GROUP) {
      this.options.membership.publish('sys', '1');
      this.refreshPlacementFromLocal();
    }
    logger.info('replica opened', { group, mode, replica: replica.group.id, voters: replica.group.voters() });
    return replica;
  }

  /** Closes a local replica and deletes its files; a tombstone (unless it is replaced at once) keeps it from being founded here again. */
  private dropReplica(name: string, r: Replica, tombstone: { voters: string[] } | undefined): Promise<void> {
    return this.serially(name, async () => {
      // dropped or replaced meanwhile: the directory now belongs to someone else
      if (this.replicas.get(name) !== r) return;
      this.replicas.delete(name);
      await r.group.close(0);
      await r.db?.close();
      if (tombstone) {
        const record = Buffer.from(JSON.stringify({ at: this.options.clock.now(), replica: r.group.id, voters: tombstone.voters }));
        await this.options.fs.writeFileAtomic(path.join(this.raftDir, name + REMOVED_SUFFIX), [record]);
      }
      await this.options.fs.removeTree(this.groupDir(name));
    });
  }

  private onApplied(group: string, entry: Entry, result: unknown): void {
    if (entry.kind === 'conf') this.scheduleReconcile(50);
    if (group === SYSTEM_GROUP) {
      this.refreshPlacementFromLocal();
      this.options.onSystemApplied?.(entry, result);
    }
  }

  private onWire(from: string, message: unknown): void {
    const env = message as { g?: unknown; m?: unknown; gone?: unknown } | null;
    if (!env || !isGroupName(env.g) || this.closed) return;
    if (typeof env.gone === 'string') return this.noteGone(env.g, env.gone, from);
    const m = env.m as { to?: unknown } | null | undefined;
    if (!m || typeof m.to !== 'string') return;
    const replica = this.replicas.get(env.g);
    if (replica && replica.group.id === m.to) return replica.group.step(m);
    // Nothing here answers to that identity (this board never had it, dropped it, or lost its disk).
    // A Raft message never creates a replica; the sender learns the identity is gone.
    if (!this.started || this.opening.has(env.g) || nodeOfReplica(m.to) !== this.options.self) return;
    this.tellGone(from, env.g, m.to);
    if (!replica && env.g !== SYSTEM_GROUP && !this.placement.has(env.g)) void this.refreshPlacement();
  }

  /** A snapshot's image streams from the snapshot itself (never encoded into one more buffer of its size). */
  private sendRaft(group: string, m: RaftMessage, done?: SendDone): void {
    const to = nodeOfReplica(m.to);
    if (m.type === 'snapshot' && m.snapshot.data instanceof Uint8Array) {
      const image = m.snapshot.data;
      this.options.wire.sendWithBody(to, image, (body) => ({ g: group, m: { ...m, snapshot: { ...m.snapshot, data: body } } }) satisfies RaftEnvelope, done);
      return;
    }
    this.options.wire.send(to, { g: group, m } satisfies RaftEnvelope, done);
  }

  private tellGone(to: string, group: string, replica: string): void {
    const key = `${to} ${group} ${replica}`;
    const now = this.options.clock.monotonic();
    if (now - (this.goneNoticed.get(key) ?? -Infinity) < GONE_NOTICE_MS) return;
    if (this.goneNoticed.size > 1_000) this.goneNoticed.clear();
    this.goneNoticed.set(key, now);
    this.options.wire.send(to, { g: group, gone: replica } satisfies RaftEnvelope);
  }

  /** Only the replica's own board can say it is gone. Kept while the identity is a member of our replica's configuration. */
  private noteGone(group: string, replica: string, from: string): void {
    const r = this.replicas.get(group);
    if (nodeOfReplica(replica) !== from || !r || ![...r.group.voters(), ...r.group.learners()].includes(replica)) return;
    let set = this.gone.get(group);
    if (!set) this.gone.set(group, (set = new Set()));
    if (!set.has(replica)) this.options.logger.info('a member replica is gone from its board', { group, replica });
    set.add(replica);
  }

  private isGone(group: string, replica: string): boolean {
    return this.gone.get(group)?.has(replica) ?? false;
  }

  /** A member replica that can take part: its board is alive and did not say the replica is gone. */
  private replicaLive(group: string, replica: string): boolean {
    return !this.isGone(group, replica) && this.view.isAlive(nodeOfReplica(replica));
  }

  // ---- placement ----

  /**
   * The local replica of `group` if it is a member (a replica that was just opened, empty, and not
   * added yet holds no state worth reading: placement and reads go elsewhere then).
   */
  private member(group: string): Replica | undefined {
    const r = this.replicas.get(group);
    return r?.group.isMember ? r : undefined;
  }

  private refreshPlacementFromLocal(): void {
    const sys = this.member(SYSTEM_GROUP);
    if (!sys) return;
    this.placement = new Map((sys.machine as SystemMachine).databases().map((d) => [dbGroup(d.name), d]));
    this.placementFetched = this.options.clock.monotonic();
    this.noteRemoved((sys.machine as SystemMachine).removed());
    this.publishClusterId((sys.machine as SystemMachine).clusterId());
  }

  /** Every board advertises its system group (SWIM meta `sysid`), so two that meet under one cluster name tell each other apart. */
  private publishClusterId(id: string | undefined): void {
    if (id === undefined || id === this.publishedClusterId) return;
    this.publishedClusterId = id;
    this.options.membership.publish('sysid', id);
  }

  /** This board's system group: its own replica's identity, else the one its last placement refresh learned. */
  private clusterId(): string | undefined {
    const sys = this.member(SYSTEM_GROUP);
    return (sys ? (sys.machine as SystemMachine).clusterId() : undefined) ?? this.learnedClusterId;
  }

  /** Two system groups in sight (see split-watch.ts), or undefined. */
  splitReport(): (SplitReport & { merge: MergeReport | null }) | undefined {
    const r = this.split.report();
    return r ? { ...r, merge: this.merger.report() ?? null } : undefined;
  }

  /**
   * This board's system group merged into another one (system-merge.ts): its
   * own replica applied `merge-done`, or a board of its group that did says so.
   * It drops its system replica (a tombstone keeps it from founding one),
   * advertises the new group and waits to be added to it like a new board.
   */
  private async followMerge(): Promise<void> {
    const ours = this.clusterId();
    if (ours === undefined) return;
    const sys = this.replicas.get(SYSTEM_GROUP);
    const own = sys?.group.isMember ? (sys.machine as SystemMachine).mergeState() : undefined;
    const into = own?.done ? own.into : this.view.mergedInto(ours);
    if (into === undefined) return;
    this.options.logger.warn("this board's system group merged into another one; the board joins it", { from: ours, into });
    this.learnedClusterId = into;
    this.options.membership.publish('merged', ours);
    this.publishClusterId(into);
    if (sys) await this.dropReplica(SYSTEM_GROUP, sys, { voters: sys.group.voters() });
    this.placementFetched = 0;
  }

  /** Boards removed for good (as committed in the system group): never alive, never placed; the node bans them from the mesh. */
  private noteRemoved(ids: string[]): void {
    const fresh = this.view.noteRemoved(ids);
    if (fresh.length === 0) return;
    this.options.logger.info('boards removed from the cluster', { nodes: fresh });
    this.options.onNodesRemoved?.(fresh);
  }

  /** The boards removed from the cluster for good. */
  removedBoards(): string[] {
    return this.view.removed();
  }

  /**
   * Takes a dead or retired board out of the cluster for good (gandalf-node
   * remove): committed in the system group, after which no group places it
   * (its seats are filled at once, not after --replace-after) and the mesh
   * refuses it. Refused for this board itself, for a board that is alive
   * (unless `force`), and where a group it votes in has too few other voters
   * up to agree to the change (each such group is named).
   */
  /**
   * Operator recovery of a group whose quorum is lost for good (gandalf-node
   * recover): this board's replica re-forms it with the `survivors` (boards
   * holding replicas of it; default this one alone) as its only voters, like
   * etcd's --force-new-cluster. Writes the lost voters acknowledged that this
   * replica lacks are gone; entries it holds that never committed become
   * committed. Refused while a quorum of the group's voters is up (unless
   * `force`): a live group is never split by it. Placement then adds voters
   * back as usual.
   */
  async recoverGroup(
    group: string,
    options: { survivors?: string[]; force?: boolean } = {},
  ): Promise<{ group: string; replica: string; voters: string[]; lost: string[]; term: number; applied_index: number }> {
    const r = this.replicas.get(group);
    if (!r) throw new GandalfError('not_found', `this board holds no replica of ${group}; run recover on a board that does`);
    const voters = r.group.voters();
    const survivors = unique([this.options.self, ...(options.survivors ?? [])]);
    const chosen = survivors.map((board) => {
      const replica = voters.find((v) => nodeOfReplica(v) === board);
      if (!replica) throw new GandalfError('invalid_request', `${board} holds no voting replica of ${group} (voters: ${voters.map(nodeOfReplica).join(', ')})`);
      return replica;
    });
    const up = voters.filter((v) => this.replicaLive(group, v));
    if (!options.force && (r.group.isLeaderReady() || up.length >= Math.floor(voters.length / 2) + 1)) {
      throw new GandalfError(
        'conflict',
        `${group} has ${up.length} of ${voters.length} voters up, a quorum: nothing to recover (recover is for a quorum lost for good; force overrides)`,
      );
    }
    const lost = voters.filter((v) => !chosen.includes(v)).map(nodeOfReplica);
    this.options.logger.warn('re-forming a group from its survivors (operator recovery)', { group, voters: chosen, lost });
    r.group.forceConfiguration(chosen);
    const deadline = this.options.clock.monotonic() + this.options.writeTimeoutMs;
    while (!r.group.isLeaderReady()) {
      if (this.closed || this.options.clock.monotonic() >= deadline) {
        throw new GandalfError('no_quorum', `${group} was re-formed from ${survivors.join(', ')} but has not elected a leader yet: are they all up?`);
      }
      await sleep(this.options.clock, 50);
    }
    if (group === SYSTEM_GROUP) this.refreshPlacementFromLocal();
    const st = r.group.status();
    return { group, replica: r.group.id, voters: survivors, lost, term: st.term, applied_index: st.applied_index };
  }

  async removeNode(id: string, options: { force?: boolean } = {}): Promise<{ removed: string; groups: string[] }> {
    if (id === this.options.self) throw new GandalfError('conflict', 'a board cannot remove itself: stop it, then remove it through another board');
    if (this.view.isRemoved(id)) return { removed: id, groups: [] };
    const member = this.view.members().find((m) => m.id === id);
    const known = member !== undefined || [...this.placement.values()].some((d) => d.voters.includes(id));
    if (!known) throw new GandalfError('not_found', `no board ${id} in this cluster`);
    if (this.view.isAlive(id) && !options.force)
      throw new GandalfError('conflict', `${id} is ${member?.state ?? 'alive'}: stop it first (or remove it anyway with force)`);
    await this.refreshPlacement();
    const groups: { name: string; voters: string[] }[] = [...this.placement.values()].map((d) => ({ name: dbGroup(d.name), voters: d.voters }));
    const sys = this.replicas.get(SYSTEM_GROUP);
    const sysVoters = sys ? unique(sys.group.voters().map(nodeOfReplica)) : this.systemCandidates();
    groups.push({ name: SYSTEM_GROUP, voters: sysVoters });
    const stuck: string[] = [];
    const affected: string[] = [];
    for (const g of groups) {
      if (!g.voters.includes(id)) continue;
      affected.push(g.name);
      const up = g.voters.filter((v) => v !== id && this.view.isAlive(v)).length;
      const quorum = Math.floor(g.voters.length / 2) + 1;
      if (up < quorum) stuck.push(`${g.name} (${up} of its ${g.voters.length} voters up besides ${id}; ${quorum} must agree)`);
    }
    if (stuck.length > 0) {
      throw new GandalfError('no_quorum', `removing ${id} would leave groups without a quorum to agree to it: ${stuck.join(', ')}; bring a voter back first`);
    }
    const result = await this.systemPropose<{ ok: boolean; message?: string }>({ op: 'node-remove', node: id });
    if (!result?.ok) throw new GandalfError('conflict', `the system group refused the removal: ${result?.message ?? 'unknown'}`);
    this.noteRemoved([id]);
    this.scheduleReconcile(50);
    return { removed: id, groups: affected.sort() };
  }

  /** Fetches the placement table from the system group (a node without a system replica). */
  refreshPlacement(): Promise<void> {
    if (this.member(SYSTEM_GROUP)) {
      this.refreshPlacementFromLocal();
      return Promise.resolve();
    }
    if (!this.placementRefresh) {
      this.placementRefresh = this.systemRead<DbRecord[]>('databases', {}, 'weak', RPC_TIMEOUT_MS)
        .then(async (dbs) => {
          this.placement = new Map(dbs.map((d) => [dbGroup(d.name), d]));
          this.placementFetched = this.options.clock.monotonic();
          this.noteRemoved(await this.systemRead<string[]>('removed-nodes', {}, 'weak', RPC_TIMEOUT_MS));
          const id = await this.systemRead<string | null>('cluster-id', {}, 'weak', RPC_TIMEOUT_MS);
          if (typeof id === 'string') {
            this.learnedClusterId = id;
            this.publishClusterId(id);
          }
        })
        .catch((err: unknown) => this.options.logger.debug('placement refresh failed', { err: err as Error }))
        .finally(() => (this.placementRefresh = undefined));
    }
    return this.placementRefresh;
  }

  database(name: string): DbRecord | undefined {
    return this.placement.get(dbGroup(name));
  }

  databases(): DbRecord[] {
    return [...this.placement.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  // ---- maintenance: bootstrap, membership of groups, placement ----

  private scheduleReconcile(ms: number): void {
    if (this.closed) return;
    if (this.reconcileTimer) this.options.clock.clearTimeout(this.reconcileTimer);
    this.reconcileTimer = this.options.clock.setTimeout(() => void this.reconcile(), ms);
    this.reconcileTimer.unref?.();
  }

  private async reconcile(): Promise<void> {
    if (this.closed || this.reconciling) return;
    this.reconciling = true;
    try {
      this.noteMembership();
      await this.followMerge();
      await this.maybeBootstrap();
      await this.dropRemoved();
      await this.collectRemoved();
      this.forgetGone();
      this.split.poll();
      const sys = this.member(SYSTEM_GROUP);
      if (!sys && this.options.clock.monotonic() - this.placementFetched > 2000 && this.systemCandidates().length > 0) void this.refreshPlacement();
      for (const [name, r] of this.replicas) {
        if (!r.group.isLeader) continue;
        this.view.trackMissing([...r.group.voters(), ...r.group.learners()].map(nodeOfReplica));
        if (name === SYSTEM_GROUP) {
          const machine = r.machine as SystemMachine;
          await this.nameSystemGroup(r);
          this.merger.step({ machine, propose: (c, t) => r.group.propose(c, t) }, machine.clusterId());
          await this.placer.placeSystem(r.group);
          // a group merging into another keeps its placement still until it is handed over
          if (machine.mergeState().into === undefined) {
            await this.placer.placeDatabases(machine.databases(), (name, voters) =>
              r.group.propose({ op: 'db-place', name, voters }, this.options.writeTimeoutMs),
            );
          }
          this.foundForgotten(r);
        } else {
          const rec = this.placement.get(name);
          if (rec) await this.placer.moveMembers(r.group, rec.voters, this.view.observerIds());
        }
      }
    } catch (err) {
      this.options.logger.warn('replica maintenance failed', { err: err as Error });
    } finally {
      this.reconciling = false;
      this.scheduleReconcile(this.options.reconcileMs ?? 500);
    }
  }

  /** Remembers when the set of present members (and who has a system replica) last changed. */
  private noteMembership(): void {
    const signature = this.view
      .members()
      .filter((m) => m.state === 'alive' || m.state === 'suspect')
      .map((m) => `${m.id}:${m.meta.sys ?? ''}`)
      .sort()
      .join(',');
    if (signature !== this.membershipSignature) {
      this.membershipSignature = signature;
      this.lastMembershipChange = this.options.clock.monotonic();
    }
  }

  /** Drops replicas that learned from Raft itself that they were removed (a committed removal, or a member's proof). */
  private async dropRemoved(): Promise<void> {
    for (const [name, r] of [...this.replicas]) {
      if (!r.group.removed) continue;
      this.options.logger.info('dropping a replica that was removed from its group', { group: name, replica: r.group.id });
      await this.dropReplica(name, r, { voters: r.group.voters() });
    }
  }

  /** "Gone" notices matter only while the identity is still a member. */
  private forgetGone(): void {
    for (const [group, set] of this.gone) {
      const r = this.replicas.get(group);
      const members = new Set(r ? [...r.group.voters(), ...r.group.learners()] : []);
      for (const id of set) if (!members.has(id)) set.delete(id);
      if (set.size === 0) this.gone.delete(group);
    }
  }

  /**
   * Drops replicas that were removed without learning it (a learner never
   * campaigns, so no member can tell it; a voter may find no member left of
   * its old configuration to tell it): every GC_INTERVAL_MS each member
   * replica that does not lead asks its group's leader, and goes if the
   * leader's committed configuration lacks it and lies beyond this replica's
   * whole log: then whatever made this replica a member came before it, so a
   * committed change removed it (a stale leader, or one that does not know of
   * this replica's addition yet, proves nothing). A replica not added yet (no
   * configuration of its own) is left to the leader's `group-prepare`. A
   * tombstone keeps the group from being founded here again.
   */
  private async collectRemoved(): Promise<void> {
    const now = this.options.clock.monotonic();
    if (now - this.lastGc < GC_INTERVAL_MS) return;
    this.lastGc = now;
    for (const [name, r] of [...this.replicas]) {
      if (r.group.isLeader || !r.group.isMember) continue;
      const asked = unique([
        ...r.group.voters().map(nodeOfReplica),
        ...(name === SYSTEM_GROUP ? this.systemBoards() : (this.placement.get(name)?.voters ?? [])),
      ]).filter((n) => n !== this.options.self);
      const members = await this.forward
        .onLeader<{ voters: string[]; learners: string[]; since: number; committed: boolean }>(
          name,
          'group-members',
          { group: name },
          async (x) => x.group.members(),
          RPC_TIMEOUT_MS,
          () => asked,
        )
        .catch(() => undefined);
      if (
        !members?.committed ||
        members.since <= r.group.lastIndex ||
        members.voters.includes(r.group.id) ||
        members.learners.includes(r.group.id) ||
        this.replicas.get(name) !== r
      )
        continue;
      this.options.logger.info('dropping a replica this node was removed from', { group: name, replica: r.group.id, voters: members.voters });
      await this.dropReplica(name, r, { voters: members.voters });
    }
  }

  /**
   * A node with no system replica, once membership had time to settle, founds
   * the system group if no member has one, every member it knows of is alive,
   * and it has the lowest id among them. Everyone else gets added by the
   * system leader.
   */
  private async maybeBootstrap(): Promise<void> {
    if (this.replicas.has(SYSTEM_GROUP) || this.opening.has(SYSTEM_GROUP)) return;
    const now = this.options.clock.monotonic();
    const grace = this.options.bootstrapGraceMs ?? 3000;
    // The view must have settled: a member whose "sys" we have not heard yet would mean two system groups.
    if (now - this.startedAt < grace || now - this.lastMembershipChange < grace) return;
    if (this.options.mayFound && !this.options.mayFound()) return;
    const members = this.view.members();
    if (members.some((m) => m.id !== this.options.self && (m.state === 'alive' || m.state === 'suspect') && m.meta.sys === '1')) return;
    // A board it cannot reach (dead, or gone) means a cluster exists beyond this view: this board
    // (rebooted, wiped, cut off) waits to be added rather than found a second system group.
    if (members.some((m) => m.id !== this.options.self && (m.state === 'dead' || m.state === 'left'))) return;
    const alive = this.view.aliveIds();
    if (alive[0] !== this.options.self) return;
    this.options.logger.info('founding the system group', { members: alive.length });
    await this.openReplica(SYSTEM_GROUP, 'found');
  }

  /** System leader: gives the system group its identity (its first leader's replica id) if it has none yet. */
  private async nameSystemGroup(sys: Replica): Promise<void> {
    if ((sys.machine as SystemMachine).clusterId() !== undefined) return;
    await sys.group
      .propose({ op: 'cluster-id', id: sys.group.id }, this.options.writeTimeoutMs)
      .catch((err: unknown) => this.options.logger.debug('naming the system group failed', { err: err as Error }));
  }

  private systemCandidates(): string[] {
    const local = this.member(SYSTEM_GROUP);
    if (local) return unique(local.group.voters().map(nodeOfReplica));
    return this.systemBoards();
  }

  /** Live boards that say they hold a system replica. */
  private systemBoards(): string[] {
    return this.view
      .members()
      .filter((m) => m.meta.sys === '1' && (m.state === 'alive' || m.state === 'suspect') && !this.view.isForeign(m.id))
      .map((m) => m.id)
      .sort();
  }

  /** Commits a system command on the system leader; resolves with its result. */
  systemPropose<T = unknown>(command: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    return this.system.propose<T>(command, timeoutMs);
  }

  /** Reads from the system state: `none` from any replica, `weak` from the leader, `strong` after ReadIndex. */
  systemRead<T = unknown>(query: string, args: Record<string, unknown>, level: ReadLevel, timeoutMs?: number): Promise<T> {
    return this.system.read<T>(query, args, level, timeoutMs);
  }

  registerSystemQuery(name: string, fn: SystemQuery): void {
    this.system.registerQuery(name, fn);
  }

  registerSystemCall(name: string, fn: SystemCall): void {
    this.system.registerCall(name, fn);
  }

  systemCall<T = unknown>(name: string, args: Record<string, unknown>, timeoutMs: number, idempotent = false): Promise<T> {
    return this.system.call<T>(name, args, timeoutMs, idempotent);
  }

  /** The local system replica when this node leads the system group. */
  systemLeaderMachine(): SystemMachine | undefined {
    return this.system.leaderMachine();
  }

  systemLeaderTerm(): number | undefined {
    return this.system.leaderTerm();
  }

  /** Commits a system command here, only while this node leads in `term` (SystemClient.proposeAsLeader). */
  systemProposeAsLeader<T = unknown>(term: number, command: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    return this.system.proposeAsLeader<T>(term, command, timeoutMs);
  }

  get systemLeader(): string | null {
    return this.replicas.get(SYSTEM_GROUP)?.group.leader ?? null;
  }

  /**
   * Readiness (GET /readyz): the system leader this node can reach (its own
   * replica's view, else the last leader a forwarded call found), and the
   * leader of every database replica held here (null: none known or not reachable).
   */
  readiness(): { systemLeader: string | null; databases: { name: string; leader: string | null }[] } {
    const reach = (id: string | null | undefined) => (id && this.view.isAlive(id) ? id : null);
    // a leader here counts only while a quorum hears it (a cut-off leader may not know it lost yet)
    const leaderOf = (r: Replica | undefined) => (r?.group.isLeader ? (r.group.isLeaderReady() ? this.options.self : null) : reach(r?.group.leader));
    const sys = this.replicas.get(SYSTEM_GROUP);
    const systemLeader = sys ? leaderOf(sys) : reach(this.forward.hint(SYSTEM_GROUP));
    const databases = [...this.replicas.entries()]
      .filter(([g, r]) => g !== SYSTEM_GROUP && r.group.isMember)
      .map(([g, r]) => ({ name: g.slice(3), leader: leaderOf(r) }));
    return { systemLeader, databases };
  }

  // ---- databases ----

  /** Creates database `name` (idempotent) and waits until it has a leader; founds it if its creation was cut short. */
  async ensureDatabase(name: string, redundancy: number | undefined): Promise<DbRecord> {
    let rec = this.database(name);
    if (rec?.founded) return rec;
    await this.refreshPlacement();
    rec = this.database(name);
    if (rec) {
      // placed, but the board that created it stopped before its group was founded: the next write founds it
      if (!rec.founded) await this.foundDatabase(rec);
      return rec;
    }
    const alive = this.view.aliveIds();
    const r = redundancy ?? this.options.redundancy;
    const voters = rendezvous(dbGroup(name), alive, effectiveRedundancy(r, alive.length));
    const result = await this.systemPropose<{ ok: boolean; code?: string; message?: string }>({ op: 'db-create', name, redundancy: r, voters });
    if (!result.ok && result.code !== 'database_exists') {
      throw new GandalfError(result.code === 'merging' ? 'merging' : 'invalid_request', result.message ?? `database ${name} could not be created`);
    }
    if (result.ok) {
      // as committed: the first voter founds the group alone; its leader adds the others
      await this.foundDatabase({ name, redundancy: r, voters, founder: voters[0]!, founded: false });
      this.options.logger.info('database created', { db: name, voters, redundancy: r || 'auto' });
    }
    await this.refreshPlacement();
    rec = this.database(name);
    if (!rec) throw new GandalfError('no_quorum', `database ${name} was created but its placement is not visible yet; retry`);
    // another board's creation of the same name, maybe cut short
    if (!result.ok && !rec.founded) await this.foundDatabase(rec);
    if (result.ok) await this.waitForVoters(name, rec.voters.length, this.options.writeTimeoutMs);
    return rec;
  }

  /**
   * Asks the database's founder (only it: a second founder would make a
   * second group) to open the group alone, idempotently, then records that
   * it did; the group's leader adds the other voters. Retried until
   * --write-timeout: a founding lost to a slow, busy or unlinked board would
   * leave the database placed but never founded.
   */
  private async foundDatabase(rec: DbRecord): Promise<void> {
    const deadline = this.options.clock.monotonic() + this.options.writeTimeoutMs;
    for (;;) {
      try {
        await this.rpc.call(rec.founder, 'group-open', { group: dbGroup(rec.name) }, RPC_TIMEOUT_MS);
        break;
      } catch (err) {
        if (this.closed || this.options.clock.monotonic() >= deadline) {
          throw new GandalfError(
            'no_quorum',
            `database ${rec.name} is placed but its group is not founded yet: its founder ${rec.founder} did not open it (${(err as Error).message}); it is founded once ${rec.founder} answers, or by another voter once ${rec.founder} is replaced`,
          );
        }
        this.options.logger.warn('founding a database group failed; trying again', { db: rec.name, founder: rec.founder, err: err as Error });
        await sleep(this.options.clock, 250);
      }
    }
    const done = await this.systemPropose<{ ok: boolean }>({ op: 'db-founded', name: rec.name });
    if (done.ok) await this.refreshPlacement();
  }

  /**
   * System leader: a database whose creation stopped between its placement and
   * its founding (the creating board crashed) is founded now, by its founder;
   * one whose founder left the placement (replaced past --replace-after)
   * before founding gets another founder among its voters.
   */
  private foundForgotten(sys: Replica): void {
    const now = this.options.clock.monotonic();
    for (const rec of (sys.machine as SystemMachine).databases()) {
      if (rec.founded) {
        this.unfoundedSince.delete(rec.name);
        continue;
      }
      const since = this.unfoundedSince.get(rec.name) ?? now;
      this.unfoundedSince.set(rec.name, since);
      // the creator founds it itself, within --write-timeout; only a creation left unfinished is taken over
      if (now - since < this.options.writeTimeoutMs || this.founding.has(rec.name)) continue;
      this.founding.add(rec.name);
      const founderLeft = !rec.voters.includes(rec.founder);
      const next = rec.voters.find((v) => this.view.isAlive(v));
      const work =
        founderLeft && next
          ? sys.group.propose({ op: 'db-founder', name: rec.name, founder: next }, this.options.writeTimeoutMs).then(() => {
              this.options.logger.warn('a database never founded gets another founder', { db: rec.name, from: rec.founder, to: next });
            })
          : this.view.isAlive(rec.founder)
            ? this.foundDatabase(rec).then(() =>
                this.options.logger.info('founded a database whose creation was cut short', { db: rec.name, founder: rec.founder }),
              )
            : Promise.resolve();
      void work
        .catch((err: unknown) => this.options.logger.debug('founding a database not done yet', { db: rec.name, err: err as Error }))
        .finally(() => this.founding.delete(rec.name));
    }
  }

  /** Waits (bounded) until a new database's group has all its voters, so its first write is already redundant. */
  private async waitForVoters(name: string, count: number, timeoutMs: number): Promise<void> {
    const deadline = this.options.clock.monotonic() + timeoutMs;
    while (this.options.clock.monotonic() < deadline) {
      const n = await this.dbs.read<number>(name, 'voters', {}, 'weak', Math.max(100, deadline - this.options.clock.monotonic())).catch(() => 0);
      if (n >= count) return;
      await sleep(this.options.clock, 100);
    }
    this.options.logger.warn('a new database has fewer voters than placed so far', { db: name, want: count });
  }

  /** A write (creates the database on its first one), through the database's leader. */
  execute(name: string, command: ExecuteCommand, options: { redundancy?: number } = {}): Promise<ExecuteResult[]> {
    return this.dbs.execute(name, command, options);
  }

  /** `signal`: the client went away (the statement is stopped). Every read is bounded by `--query-timeout` where it runs. */
  query(name: string, statements: Statement[], level: ReadLevel, signal?: AbortSignal): Promise<QueryResult[]> {
    return this.dbs.query(name, statements, level, signal);
  }

  /** The database as an SQLite file or SQL text, read like a query at `level`. */
  backup(name: string, format: BackupFormat, level: ReadLevel, signal?: AbortSignal): Promise<Uint8Array | string> {
    return this.dbs.backup(name, format, level, signal);
  }

  /** Replaces a database's contents with an SQLite file or SQL text, replicated like a write. */
  load(name: string, bytes: Uint8Array, options: { redundancy?: number } = {}): Promise<{ bytes: number }> {
    return this.dbs.load(name, bytes, options);
  }

  /**
   * The committed placement of a database group, once it names this node.
   * Applied system state holds only committed entries, so any replica's "yes"
   * is the truth; a "no" may just be behind. So: this node's own placement
   * (refreshed from its system replica as it applies, or from the system
   * leader when it holds none), retried until `--write-timeout`.
   */
  private async placementNaming(group: string): Promise<DbRecord> {
    const deadline = this.options.clock.monotonic() + this.options.writeTimeoutMs;
    for (;;) {
      const rec = this.placement.get(group);
      if (rec?.voters.includes(this.options.self)) return rec;
      if (this.closed || this.options.clock.monotonic() >= deadline) {
        throw new GandalfError('conflict', `placement does not name ${this.options.self} for ${group}`);
      }
      if (!this.member(SYSTEM_GROUP)) await this.refreshPlacement();
      await sleep(this.options.clock, 100);
    }
  }

  // ---- RPC handlers (the far side of onLeader) ----

  private registerRpc(): void {
    const { rpc } = this;
    this.system.registerRpc(rpc);
    this.dbs.registerRpc(rpc);
    rpc.handle('group-members', (_from, { group }) => this.forward.asLeader(group, async (r) => r.group.members()));
    // Founding a database's group: only the founder committed placement names, and only before the founding is recorded.
    rpc.handle('group-open', async (_from, { group }) => {
      if (group === SYSTEM_GROUP) throw new GandalfError('invalid_request', 'the system group is founded by the bootstrap, not by group-open');
      if (this.replicas.has(group)) return { ok: true as const };
      const rec = await this.placementNaming(group);
      if (rec.founder !== this.options.self) throw new GandalfError('conflict', `${rec.founder}, not ${this.options.self}, founds ${group}`);
      if (rec.founded) throw new GandalfError('conflict', `${group} was founded already; this board rejoins it through its leader`);
      await this.openReplica(group, 'found');
      return { ok: true as const };
    });
    // A group's leader is about to add this board: open an empty replica under a fresh id and say which.
    rpc.handle('group-prepare', async (_from, { group, members, cluster }) => {
      // A leader of another system group under this cluster name never takes this board's replicas (see split-watch.ts).
      const ours = this.clusterId();
      if (cluster !== undefined && ours !== undefined && cluster !== ours) {
        throw new GandalfError('split_cluster', `this board belongs to system group ${ours}, not ${cluster}: two system groups run under one cluster name`);
      }
      // Only a committed placement that names this node creates a database replica (the system group's own configuration is
      // its placement); a non-voting board holds a learner replica of every database.
      if (group !== SYSTEM_GROUP && this.options.voter !== false) await this.placementNaming(group);
      const existing = this.replicas.get(group);
      if (existing && members.includes(existing.group.id)) return { replica: existing.group.id };
      // Prepared before and never added (an add that was lost or is slow): it never saw a configuration, so its id is still unused.
      if (existing && !existing.group.isMember && !existing.group.removed) return { replica: existing.group.id };
      // A replica that was a member and the leader does not count (removed meanwhile): never reused, replaced by a fresh one.
      if (existing) await this.dropReplica(group, existing, undefined);
      const r = await this.openReplica(group, 'join');
      if (!r) throw new GandalfError('stopping', 'the node is stopping');
      return { replica: r.group.id };
    });
  }

  // ---- status ----

  status(): ReplicaStatus[] {
    return [...this.replicas.values()].map((r) => ({
      ...r.group.status(),
      ...(r.db ? { size_bytes: r.db.sizeBytes() } : {}),
    }));
  }

  /** Local replicas by group name (tests and status). */
  localGroups(): string[] {
    return [...this.replicas.keys()].sort();
  }
}
