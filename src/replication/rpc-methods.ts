/**
 * The replicator's RPCs between boards, as one typed table: each method's
 * request and reply, and a parser that checks every request where it enters
 * (a peer's bytes are not trusted to have the shape our own code sends).
 * `ReplicationRpc` wraps the generic `Rpc`: calls and handlers are typed by
 * method name, and a handler gets only a request its parser accepted.
 */
import { GandalfError } from '../core/errors';
import { isDatabaseName } from '../store/database-name';
import type { ExecuteCommand, ExecuteResult, Params, SqlValue, Statement } from '../store/sql-state-machine';
import type { Rpc } from './wire';

export const SYSTEM_GROUP = 'system';
/** The bound of one RPC round trip between boards (work on the far side may add to it). */
export const RPC_TIMEOUT_MS = 5_000;
export type ReadLevel = 'none' | 'weak' | 'strong';
/** What a database read returns: query results, the group's voter count, or a backup. */
export type ReadWhat = 'query' | 'voters' | 'backup';
/** A node that does not lead the group answers a leader's method with where to go instead. */
export type Redirect = { redirect: string | null };
export type GroupMembers = { voters: string[]; learners: string[]; since: number; committed: boolean };

/** Group names come from peers and name directories: only `system` and `db.<valid database name>`. */
export function isGroupName(group: unknown): group is string {
  return group === SYSTEM_GROUP || (typeof group === 'string' && group.startsWith('db.') && isDatabaseName(group.slice(3)));
}

export interface RpcMethods {
  'sys-propose': { req: { command: Record<string, unknown>; timeoutMs: number }; res: unknown };
  'sys-read': { req: { query: string; args: Record<string, unknown>; level: ReadLevel; timeoutMs: number }; res: unknown };
  'sys-call': { req: { name: string; args: Record<string, unknown>; timeoutMs: number }; res: unknown };
  'db-exec': { req: { db: string; command: ExecuteCommand; timeoutMs: number }; res: ExecuteResult[] };
  'db-load': { req: { db: string; bytes: Uint8Array; timeoutMs: number }; res: { bytes: number } };
  'db-read': { req: { db: string; what: ReadWhat; args: Record<string, unknown>; level: ReadLevel; timeoutMs: number }; res: unknown };
  'db-read-local': { req: { db: string; what: ReadWhat; args: Record<string, unknown> }; res: unknown };
  'group-members': { req: { group: string }; res: GroupMembers };
  'group-open': { req: { group: string }; res: { ok: true } };
  /** `cluster`: the asking leader's system group (absent from older boards). */
  'group-prepare': { req: { group: string; members: string[]; cluster?: string }; res: { replica: string } };
}

export type Method = keyof RpcMethods;
export type Req<M extends Method> = RpcMethods[M]['req'];
/** Methods served only by a group's leader: any other node answers with a Redirect. */
export type LeaderMethod = 'sys-propose' | 'sys-read' | 'sys-call' | 'db-exec' | 'db-load' | 'db-read' | 'group-members';
export type Res<M extends Method> = M extends LeaderMethod ? RpcMethods[M]['res'] | Redirect : RpcMethods[M]['res'];

type Fields = Record<string, unknown>;

function bad(method: string, what: string): never {
  throw new GandalfError('invalid_request', `bad ${method} request: ${what}`);
}

function record(method: string, v: unknown, what = 'body'): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) bad(method, `${what} must be an object`);
  return v as Fields;
}

function text(method: string, o: Fields, f: string): string {
  return typeof o[f] === 'string' ? (o[f] as string) : bad(method, `${f} must be a string`);
}

function duration(method: string, o: Fields, f = 'timeoutMs'): number {
  const v = o[f];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 24 * 3_600_000 ? v : bad(method, `${f} must be a duration in ms`);
}

function level(method: string, o: Fields): ReadLevel {
  const v = o.level;
  return v === 'none' || v === 'weak' || v === 'strong' ? v : bad(method, 'level must be none, weak or strong');
}

function what(method: string, o: Fields): ReadWhat {
  const v = o.what;
  return v === 'query' || v === 'voters' || v === 'backup' ? v : bad(method, 'what must be query, voters or backup');
}

function db(method: string, o: Fields): string {
  const v = o.db;
  return typeof v === 'string' && isDatabaseName(v) ? v : bad(method, 'db must be a database name');
}

function group(method: string, o: Fields): string {
  return isGroupName(o.group) ? o.group : bad(method, 'group must be "system" or "db.NAME"');
}

function isSqlValue(v: unknown): v is SqlValue {
  return v === null || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || v instanceof Uint8Array;
}

function statements(method: string, v: unknown): Statement[] {
  if (!Array.isArray(v)) bad(method, 'statements must be a list');
  return v.map((s, i) => {
    const o = record(method, s, `statement ${i}`);
    const sql = text(method, o, 'sql');
    if (o.params === undefined) return { sql };
    const p = o.params;
    const ok = Array.isArray(p) ? p.every(isSqlValue) : typeof p === 'object' && p !== null && !(p instanceof Uint8Array) && Object.values(p).every(isSqlValue);
    if (!ok) bad(method, `statement ${i} has params that are not SQL values`);
    return { sql, params: p as Params };
  });
}

function executeCommand(method: string, v: unknown): ExecuteCommand {
  const o = record(method, v, 'command');
  if (o.kind !== 'execute') bad(method, 'command.kind must be "execute"');
  if (typeof o.transaction !== 'boolean') bad(method, 'command.transaction must be true or false');
  return { kind: 'execute', statements: statements(method, o.statements), transaction: o.transaction };
}

const PARSERS: { [M in Method]: (method: M, o: Fields) => Req<M> } = {
  'sys-propose': (m, o) => ({ command: record(m, o.command, 'command'), timeoutMs: duration(m, o) }),
  'sys-read': (m, o) => ({ query: text(m, o, 'query'), args: record(m, o.args, 'args'), level: level(m, o), timeoutMs: duration(m, o) }),
  'sys-call': (m, o) => ({ name: text(m, o, 'name'), args: record(m, o.args, 'args'), timeoutMs: duration(m, o) }),
  'db-exec': (m, o) => ({ db: db(m, o), command: executeCommand(m, o.command), timeoutMs: duration(m, o) }),
  'db-load': (m, o) => ({ db: db(m, o), bytes: o.bytes instanceof Uint8Array ? o.bytes : bad(m, 'bytes must be bytes'), timeoutMs: duration(m, o) }),
  'db-read': (m, o) => ({ db: db(m, o), what: what(m, o), args: record(m, o.args, 'args'), level: level(m, o), timeoutMs: duration(m, o) }),
  'db-read-local': (m, o) => ({ db: db(m, o), what: what(m, o), args: record(m, o.args, 'args') }),
  'group-members': (m, o) => ({ group: group(m, o) }),
  'group-open': (m, o) => ({ group: group(m, o) }),
  'group-prepare': (m, o) => {
    const members = o.members;
    if (!Array.isArray(members) || !members.every((x) => typeof x === 'string')) bad(m, 'members must be a list of replica ids');
    if (o.cluster !== undefined && typeof o.cluster !== 'string') bad(m, 'cluster must be a string');
    return { group: group(m, o), members: members as string[], ...(typeof o.cluster === 'string' ? { cluster: o.cluster } : {}) };
  },
};

/** The statements of a database query's arguments, checked. */
export function queryStatements(args: Record<string, unknown>): Statement[] {
  return statements('db-read', args.statements);
}

/** Checks a request of `method` as it arrives; throws `invalid_request` naming what is wrong. */
export function parseRequest<M extends Method>(method: M, body: unknown): Req<M> {
  return PARSERS[method](method, record(method, body));
}

export function isRedirect(v: unknown): v is Redirect {
  return typeof v === 'object' && v !== null && 'redirect' in v;
}

/** The replicator's side of the RPC: typed by the table above. */
export class ReplicationRpc {
  constructor(private readonly rpc: Rpc) {}

  call<M extends Method>(to: string, method: M, body: Req<M>, timeoutMs: number, signal?: AbortSignal): Promise<Res<M>> {
    return this.rpc.call<Res<M>>(to, method, body, timeoutMs, signal);
  }

  /** Serves `method`: `handler` gets requests its parser accepted; a second handler for one method is refused (by Rpc). */
  handle<M extends Method>(method: M, handler: (from: string, body: Req<M>) => Promise<Res<M>> | Res<M>): void {
    this.rpc.handle(method, (from, body) => handler(from, parseRequest(method, body)));
  }
}
