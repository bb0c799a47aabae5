/**
 * The databases as a service to the rest of the node, from any board: writes
 * (on the leader: refused past --max-database-bytes, tried on a reader first
 * when they could run long, then proposed), loads, queries and backups at a
 * chosen consistency (`none` from a local or any live replica, `weak` from
 * the leader, `strong` after ReadIndex), each bounded where it runs and
 * forwarded to the leader (leader-forwarding.ts), whose side is served by the
 * RPC handlers registered here. Creating a database on its first write and
 * founding its group stay with the replicator.
 */
import type { Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { mayRunLong, onlyShrinks } from '../store/statement-guard';
import type { ExecuteCommand, ExecuteResult, LogEntry, QueryResult, Statement } from '../store/sql-state-machine';
import type { BackupFormat, DatabaseMachine, QueryBounds } from './database-machine';
import type { ReplicaGroup } from './group';
import type { LeaderForwarder } from './leader-forwarding';
import type { MembershipView } from './membership-view';
import { dbGroup, type DbRecord } from './placement';
import { queryStatements, RPC_TIMEOUT_MS, type ReadLevel, type ReadWhat, type ReplicationRpc } from './rpc-methods';
import type { SplitWatch } from './split-watch';

/** A backup, and the check of what a load was given, run on a reader up to this long (at least --query-timeout). */
const BACKUP_TIMEOUT_MS = 10 * 60_000;
/** A load's image goes through the log to every voter: it may take longer than --write-timeout. */
const LOAD_TIMEOUT_MS = 5 * 60_000;

type DbReplica = { group: ReplicaGroup; db: DatabaseMachine | undefined; lastTs: number };

export interface DatabaseClientOptions<R extends DbReplica> {
  forward: LeaderForwarder<R>;
  rpc: ReplicationRpc;
  view: MembershipView;
  split: SplitWatch;
  clock: Clock;
  random32: () => number;
  writeTimeoutMs: number;
  queryTimeoutMs: number;
  maxDatabaseBytes?: number;
  /** The local replica of `group` while it is a member. */
  member(group: string): R | undefined;
  /** The database's placement as this node knows it. */
  database(name: string): DbRecord | undefined;
  refreshPlacement(): Promise<void>;
  /** Creates the database on its first write (idempotent) and waits until it has a leader. */
  ensureDatabase(name: string, redundancy: number | undefined): Promise<DbRecord>;
  clusterId(): string | undefined;
}

/** A database read on a local replica: its voter count, or one result per SQL statement of the query. */
async function readLocal(
  r: { group: ReplicaGroup; db: DatabaseMachine | undefined },
  what: ReadWhat,
  args: Record<string, unknown>,
  bounds: QueryBounds,
): Promise<number | QueryResult[] | Uint8Array | string> {
  if (what === 'voters') return r.group.voters().length;
  if (!r.db) throw new GandalfError('invalid_request', `${r.group.name} is not a database`);
  if (what === 'backup') return r.db.backup(args.format === 'sql' ? 'sql' : 'sqlite', bounds);
  return r.db.queryAll(queryStatements(args), bounds);
}

export class DatabaseClient<R extends DbReplica> {
  constructor(private readonly options: DatabaseClientOptions<R>) {}

  private candidates(name: string): () => string[] {
    return () => this.options.database(name)?.voters ?? [];
  }

  async execute(name: string, command: ExecuteCommand, options: { redundancy?: number } = {}): Promise<ExecuteResult[]> {
    this.refuseSplit(name);
    await this.options.ensureDatabase(name, options.redundancy);
    const group = dbGroup(name);
    const timeoutMs = this.options.writeTimeoutMs;
    return this.options.forward.onLeader<ExecuteResult[]>(
      group,
      'db-exec',
      { db: name, command, timeoutMs },
      (r) => this.executeLocal(r, command, timeoutMs),
      timeoutMs,
      this.candidates(name),
      false,
    );
  }

  /** A database both of two system groups hold under one name takes no writes: two groups would take them. */
  private refuseSplit(name: string): void {
    if (!this.options.split.collides(name)) return;
    throw new GandalfError(
      'split_cluster',
      `database ${name} exists in two system groups that run under one cluster name (${this.options.split
        .report()!
        .others.map((o) => o.cluster)
        .join(', ')} besides ${this.options.clusterId() ?? 'this one'}); writes to it are refused until an operator resolves it (README "Two system groups")`,
    );
  }

  private async executeLocal(r: R, command: ExecuteCommand, timeoutMs: number): Promise<ExecuteResult[]> {
    if (!r.db) throw new GandalfError('invalid_request', `${r.group.name} is not a database`);
    const max = this.options.maxDatabaseBytes;
    if (max !== undefined && r.db.sizeBytes() >= max && !command.statements.every((s) => onlyShrinks(s.sql))) {
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      throw new GandalfError(
        'database_too_large',
        `${r.group.name.slice(3)} holds ${mib(r.db.sizeBytes())}, at its limit of ${mib(max)} (--max-database-bytes): only DELETE, DROP and VACUUM are taken until it shrinks`,
      );
    }
    const ts = Math.max(this.options.clock.now(), r.lastTs, r.db.lastTs);
    r.lastTs = ts;
    const entry: LogEntry = { ts, seed: this.options.random32() >>> 0, command };
    // A write that could run long is tried first (and rolled back) on the reader: one past --query-timeout never enters the log, where every replica would replay it.
    if (r.db.hasTriggers || command.statements.some((s) => mayRunLong(s.sql))) await r.db.trial(entry, { timeoutMs: this.options.queryTimeoutMs });
    const result = await r.group.propose(entry, timeoutMs);
    if (!Array.isArray(result)) throw new GandalfError('internal', `the database refused the entry: ${JSON.stringify(result)}`);
    return result as ExecuteResult[];
  }

  /** `signal`: the client went away (the statement is stopped). Every read is bounded by `--query-timeout` where it runs. */
  async query(name: string, statements: Statement[], level: ReadLevel, signal?: AbortSignal): Promise<QueryResult[]> {
    if (!this.options.database(name)) await this.options.refreshPlacement();
    if (!this.options.database(name))
      throw new GandalfError('unknown_database', `database "${name}" does not exist (a database is created by its first write)`);
    return this.read<QueryResult[]>(name, 'query', { statements }, level, this.options.writeTimeoutMs, signal);
  }

  /**
   * The database as an SQLite file or SQL text (GET /db/backup), read like a
   * query at `level`: consistent as of one point of its log.
   */
  async backup(name: string, format: BackupFormat, level: ReadLevel, signal?: AbortSignal): Promise<Uint8Array | string> {
    if (!this.options.database(name)) await this.options.refreshPlacement();
    if (!this.options.database(name)) throw new GandalfError('unknown_database', `database "${name}" does not exist`);
    const got = await this.read<unknown>(name, 'backup', { format }, level, this.options.writeTimeoutMs, signal);
    if (!(got instanceof Uint8Array) && typeof got !== 'string') throw new GandalfError('internal', 'a backup came back in no known form');
    return got;
  }

  /**
   * Replaces a database's contents with an SQLite file or SQL text (POST
   * /db/load), replicated like a write: the leader checks the bytes on a
   * reader and proposes the image; every replica applies it in log order.
   * Creates the database if it does not exist.
   */
  async load(name: string, bytes: Uint8Array, options: { redundancy?: number } = {}): Promise<{ bytes: number }> {
    this.refuseSplit(name);
    await this.options.ensureDatabase(name, options.redundancy);
    const group = dbGroup(name);
    const timeoutMs = Math.max(this.options.writeTimeoutMs, LOAD_TIMEOUT_MS);
    return this.options.forward.onLeader<{ bytes: number }>(
      group,
      'db-load',
      { db: name, bytes, timeoutMs },
      (r) => this.loadLocal(r, bytes, timeoutMs),
      timeoutMs,
      this.candidates(name),
      false,
    );
  }

  private async loadLocal(r: R, bytes: Uint8Array, timeoutMs: number): Promise<{ bytes: number }> {
    if (!r.db) throw new GandalfError('invalid_request', `${r.group.name} is not a database`);
    const image = await r.db.prepareLoad(bytes, { timeoutMs: this.readBoundMs('backup') });
    const max = this.options.maxDatabaseBytes;
    if (max !== undefined && image.length > max) {
      throw new GandalfError(
        'database_too_large',
        `the loaded database would hold ${image.length} bytes, over the limit of ${max} (--max-database-bytes); nothing was loaded`,
      );
    }
    const ts = Math.max(this.options.clock.now(), r.lastTs, r.db.lastTs);
    r.lastTs = ts;
    const entry: LogEntry = { ts, seed: this.options.random32() >>> 0, command: { kind: 'load', image } };
    const result = await r.group.propose(entry, timeoutMs);
    if (!Array.isArray(result)) throw new GandalfError('internal', `the database refused the load: ${JSON.stringify(result)}`);
    return { bytes: image.length };
  }

  /** How long a read of this kind may run where it runs. */
  readBoundMs(what: ReadWhat): number {
    return what === 'backup' ? Math.max(this.options.queryTimeoutMs, BACKUP_TIMEOUT_MS) : this.options.queryTimeoutMs;
  }

  private bounds(signal?: AbortSignal, what: ReadWhat = 'query'): QueryBounds {
    return { timeoutMs: this.readBoundMs(what), ...(signal ? { signal } : {}) };
  }

  async read<T>(name: string, what: ReadWhat, args: Record<string, unknown>, level: ReadLevel, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const group = dbGroup(name);
    const run = async (r: R): Promise<T> => (await readLocal(r, what, args, this.bounds(signal, what))) as T;
    const local = this.options.member(group);
    if (level === 'none') {
      if (local) return run(local);
      const voters = this.candidates(name)();
      let last: Error | undefined;
      for (const v of voters.filter((x) => this.options.view.isAlive(x))) {
        try {
          // the far side bounds the statement by its own --query-timeout
          return (await this.options.rpc.call(
            v,
            'db-read-local',
            { db: name, what, args },
            Math.min(timeoutMs, RPC_TIMEOUT_MS) + this.readBoundMs(what),
            signal,
          )) as T;
        } catch (err) {
          if (signal?.aborted) throw err;
          last = err as Error;
        }
      }
      throw new GandalfError('no_quorum', `database ${name}: no replica reachable for a level=none read${last ? ` (${last.message})` : ''}`);
    }
    return this.options.forward.onLeader<T>(
      group,
      'db-read',
      { db: name, what, args, level, timeoutMs },
      async (r) => {
        await (level === 'strong' ? r.group.readBarrier(timeoutMs) : r.group.leaderReady(timeoutMs));
        return run(r);
      },
      timeoutMs,
      this.candidates(name),
      true,
      signal,
    );
  }

  /** The leader's side of execute, load and read, and level=none reads of a local replica. */
  registerRpc(rpc: ReplicationRpc): void {
    const { forward } = this.options;
    rpc.handle('db-exec', (_from, { db, command, timeoutMs }) => {
      this.refuseSplit(db);
      return forward.asLeader(dbGroup(db), (r) => this.executeLocal(r, command, timeoutMs));
    });
    rpc.handle('db-load', (_from, { db, bytes, timeoutMs }) => {
      this.refuseSplit(db);
      return forward.asLeader(dbGroup(db), (r) => this.loadLocal(r, bytes, timeoutMs));
    });
    rpc.handle('db-read', (_from, { db, what, args, level, timeoutMs }) =>
      forward.asLeader(dbGroup(db), async (r) => {
        await (level === 'strong' ? r.group.readBarrier(timeoutMs) : r.group.leaderReady(timeoutMs));
        return readLocal(r, what, args, this.bounds(undefined, what));
      }),
    );
    rpc.handle('db-read-local', (_from, { db, what, args }) => {
      const r = this.options.member(dbGroup(db));
      if (!r) throw new GandalfError('unknown_database', `no replica of ${db} on this node`);
      return readLocal(r, what, args, this.bounds(undefined, what));
    });
  }
}
