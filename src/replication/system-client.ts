/**
 * The system group as a service to the rest of the node, from any board:
 * commands committed on its leader, read-only queries of its state at a
 * chosen consistency (`none` from the local replica, `weak` from the leader,
 * `strong` after ReadIndex), and named calls that run on the leader (the
 * coordination layer's lock waits, keepalives, watches). Each is forwarded
 * to the leader (leader-forwarding.ts) and served there by the RPC handlers
 * registered here. The query and call registries refuse a second handler.
 */
import { GandalfError } from '../core/errors';
import { NotLeaderError, type GroupMachine, type ReplicaGroup } from './group';
import type { LeaderForwarder } from './leader-forwarding';
import type { DbRecord } from './placement';
import { SYSTEM_GROUP, type ReadLevel, type ReplicationRpc } from './rpc-methods';

/** What the replicator needs from the system group's state machine. */
export interface SystemMachine extends GroupMachine {
  databases(): DbRecord[];
  /** Boards removed from the cluster for good. */
  removed(): string[];
  /** The system group's identity, once its first leader set it. */
  clusterId(): string | undefined;
  database(name: string): DbRecord | undefined;
  /** A merge of this group into another one (`into`; finished once `done`), see system-merge.ts. */
  mergeState(): { into: string | undefined; done: boolean };
  /** What a merge hands over: the databases, the keys not bound to a session, the last fencing token and the open sessions' count. */
  mergeExport(): MergeExport;
}

export interface MergeExport {
  databases: DbRecord[];
  kv: { key: string; value: string }[];
  token: number;
  sessions: number;
}

/** What a system call gets on the system leader. */
export interface SystemLeader {
  machine: SystemMachine;
  propose(command: Record<string, unknown>, timeoutMs: number): Promise<unknown>;
  readBarrier(timeoutMs: number): Promise<void>;
  isLeader(): boolean;
}
export type SystemCall = (leader: SystemLeader, args: Record<string, unknown>, timeoutMs: number) => Promise<unknown>;
export type SystemQuery = (machine: SystemMachine, args: Record<string, unknown>) => unknown;

type SystemReplica = { group: ReplicaGroup; machine: GroupMachine };

export interface SystemClientOptions<R extends SystemReplica> {
  forward: LeaderForwarder<R>;
  /** The local system replica, whatever its state. */
  replica(): R | undefined;
  /** The local system replica while it is a member of the group. */
  member(): R | undefined;
  /** Boards to ask when no leader is known. */
  candidates(): string[];
  writeTimeoutMs: number;
}

export class SystemClient<R extends SystemReplica> {
  private readonly queries = new Map<string, SystemQuery>([
    ['databases', (m) => m.databases()],
    ['removed-nodes', (m) => m.removed()],
    ['cluster-id', (m) => m.clusterId() ?? null],
  ]);
  private readonly calls = new Map<string, SystemCall>();

  constructor(private readonly options: SystemClientOptions<R>) {}

  /** Commits a system command on the system leader; resolves with its result. */
  propose<T = unknown>(command: Record<string, unknown>, timeoutMs = this.options.writeTimeoutMs): Promise<T> {
    return this.options.forward.onLeader<T>(
      SYSTEM_GROUP,
      'sys-propose',
      { command, timeoutMs },
      (r) => r.group.propose(command, timeoutMs) as Promise<T>,
      timeoutMs,
      () => this.options.candidates(),
      false,
    );
  }

  read<T = unknown>(query: string, args: Record<string, unknown>, level: ReadLevel, timeoutMs = this.options.writeTimeoutMs): Promise<T> {
    const local = this.options.member();
    if (level === 'none' && local) return Promise.resolve(this.runQuery(local, query, args) as T);
    return this.options.forward.onLeader<T>(
      SYSTEM_GROUP,
      'sys-read',
      { query, args, level, timeoutMs },
      async (r) => {
        await (level === 'strong' ? r.group.readBarrier(timeoutMs) : r.group.leaderReady(timeoutMs));
        return this.runQuery(r, query, args) as T;
      },
      timeoutMs,
      () => this.options.candidates(),
    );
  }

  /** Named read-only queries of the system state (the coordination layer registers its own). */
  registerQuery(name: string, fn: SystemQuery): void {
    if (this.queries.has(name)) throw new Error(`system query ${name} already has a handler`);
    this.queries.set(name, fn);
  }

  /** An operation that runs on the system leader (it may propose, wait for applied entries, read the state); `call` runs it there from any node. */
  registerCall(name: string, fn: SystemCall): void {
    if (this.calls.has(name)) throw new Error(`system call ${name} already has a handler`);
    this.calls.set(name, fn);
  }

  call<T = unknown>(name: string, args: Record<string, unknown>, timeoutMs: number, idempotent = false): Promise<T> {
    const fn = this.calls.get(name);
    if (!fn) return Promise.reject(new GandalfError('internal', `no system call ${name}`));
    return this.options.forward.onLeader<T>(
      SYSTEM_GROUP,
      'sys-call',
      { name, args, timeoutMs },
      async (r) => {
        await r.group.leaderReady(timeoutMs);
        return (await fn(this.leaderHandle(r), args, timeoutMs)) as T;
      },
      timeoutMs,
      () => this.options.candidates(),
      idempotent,
    );
  }

  /** The local system replica's machine while this node leads the group and can serve. */
  leaderMachine(): SystemMachine | undefined {
    const r = this.options.replica();
    return r?.group.isLeaderReady() ? (r.machine as SystemMachine) : undefined;
  }

  /** The term this node's system replica leads in, ready to serve or not (undefined: not the leader). */
  leaderTerm(): number | undefined {
    return this.options.replica()?.group.leaderTerm;
  }

  /**
   * Commits `command` on this node's system replica while it leads in `term`; never forwarded or
   * retried elsewhere: what a leader decided by its own clock and term (a session expired) is
   * not another leader's to commit.
   */
  proposeAsLeader<T = unknown>(term: number, command: Record<string, unknown>, timeoutMs = this.options.writeTimeoutMs): Promise<T> {
    const r = this.options.replica();
    if (!r || r.group.leaderTerm !== term) return Promise.reject(new NotLeaderError(SYSTEM_GROUP, r?.group.leader ?? null));
    return r.group.propose(command, timeoutMs) as Promise<T>;
  }

  /** The far side of propose, read and call: served here only as the leader. */
  registerRpc(rpc: ReplicationRpc): void {
    const { forward } = this.options;
    rpc.handle('sys-propose', (_from, { command, timeoutMs }) => forward.asLeader(SYSTEM_GROUP, (r) => r.group.propose(command, timeoutMs)));
    rpc.handle('sys-read', (_from, { query, args, level, timeoutMs }) =>
      forward.asLeader(SYSTEM_GROUP, async (r) => {
        await (level === 'strong' ? r.group.readBarrier(timeoutMs) : r.group.leaderReady(timeoutMs));
        return this.runQuery(r, query, args);
      }),
    );
    rpc.handle('sys-call', (_from, { name, args, timeoutMs }) => {
      const fn = this.calls.get(name);
      if (!fn) throw new GandalfError('invalid_request', `unknown system call ${name}`);
      return forward.asLeader(SYSTEM_GROUP, async (r) => {
        await r.group.leaderReady(timeoutMs);
        return fn(this.leaderHandle(r), args, timeoutMs);
      });
    });
  }

  private runQuery(r: R, query: string, args: Record<string, unknown>): unknown {
    const fn = this.queries.get(query);
    if (!fn) throw new GandalfError('invalid_request', `unknown system query ${query}`);
    return fn(r.machine as SystemMachine, args);
  }

  private leaderHandle(r: R): SystemLeader {
    return {
      machine: r.machine as SystemMachine,
      propose: (command, timeoutMs) => r.group.propose(command, timeoutMs),
      readBarrier: (timeoutMs) => r.group.readBarrier(timeoutMs),
      isLeader: () => r.group.isLeader && this.options.replica() === r,
    };
  }
}
