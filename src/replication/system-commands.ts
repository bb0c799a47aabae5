/**
 * The system group's commands: one typed union, the results they give, and
 * the validation every command goes through where it enters the state
 * machine (it came through Raft as plain data of unknown shape). A command
 * that does not parse is answered `invalid_command` and changes nothing.
 */
import { isNodeId, NODE_ID_RULE } from '../core/node-id';

export type SystemCommand =
  /** redundancy 0: the cluster's default. */
  | { op: 'db-create'; name: string; redundancy: number; voters: string[] }
  | { op: 'db-place'; name: string; voters: string[] }
  /** The founder opened the database's group: nobody founds it again. */
  | { op: 'db-founded'; name: string }
  /** A database never founded whose founder left the placement (gone past --replace-after): another board founds it. */
  | { op: 'db-founder'; name: string; founder: string }
  /** The system group's identity, set once (by its first leader; later ones change nothing): two system groups that meet tell each other apart by it. */
  | { op: 'cluster-id'; id: string }
  | { op: 'db-drop'; name: string }
  | { op: 'session-open'; id: string; node: string; ttlMs: number }
  | { op: 'session-close'; id: string; reason: 'closed' | 'expired' | 'node-dead' }
  | { op: 'sessions-of-node-close'; node: string }
  | { op: 'lock-acquire'; name: string; session: string; wait: boolean }
  /** `token`: only the hold with this fencing token; without it, whatever the session holds. */
  | { op: 'lock-release'; name: string; session: string; token?: number }
  /** `attempt`: only the hold or queue place of the lock-acquire at that index (its `attempt`); without it, whichever the session has. */
  | { op: 'lock-cancel'; name: string; session: string; attempt?: number }
  | { op: 'kv-put'; key: string; value: string; session?: string; prevRevision?: number }
  | { op: 'kv-delete'; key: string; prefix?: boolean; prevRevision?: number }
  /** A board taken out of the cluster for good (gandalf-node remove): never placed again, refused if it returns. */
  | { op: 'node-remove'; node: string }
  /** Fencing tokens continue above `token` (a cluster restored from a backup keeps them increasing). */
  | { op: 'tokens-at-least'; token: number }
  /**
   * Merging two system groups (see system-merge.ts). On the side that gives
   * itself up: `merge-begin` freezes it (no new databases, placements,
   * sessions, locks or keys; sessions run out by their TTL), `merge-abort`
   * thaws it, `merge-done` closes it for good once the other side took its
   * state. On the side that stays: `merge-import` takes the other's databases
   * and keys in one command, or nothing if any of them collides.
   */
  | { op: 'merge-begin'; into: string }
  | { op: 'merge-abort'; into: string }
  | { op: 'merge-done'; into: string }
  | { op: 'merge-import'; from: string; databases: MergedDatabase[]; kv: MergedKey[]; token: number };

/** A database record as the merging side hands it over. */
export interface MergedDatabase {
  name: string;
  redundancy: number;
  voters: string[];
  founder: string;
  founded: boolean;
}

export interface MergedKey {
  key: string;
  value: string;
}

export type SystemErrorCode =
  | 'invalid_command'
  | 'database_exists'
  | 'unknown_database'
  | 'unknown_session'
  | 'lock_busy'
  | 'not_holder'
  | 'revision_mismatch'
  | 'key_not_found'
  /** This system group is merging into another one (or has): it takes no new state. */
  | 'merging'
  /** merge-import: a database or key of the merging side exists here too. */
  | 'merge_conflict';

export interface LockGrant {
  lock: string;
  session: string;
  node: string;
  token: number;
}

export interface SystemOk {
  ok: true;
  /** Every lock grant this command caused, in the order they happened (an immediate grant to the acquirer included). */
  grants: LockGrant[];
  /** lock-acquire: whether the session holds the lock now; token and since when it does, position (1-based) in the queue when it waits. */
  granted?: boolean;
  token?: number;
  since?: number;
  position?: number;
  /** lock-acquire: this command's index, which a lock-cancel of this attempt names. */
  attempt?: number;
  /** lock-cancel: whether the session was waiting or holding. */
  cancelled?: boolean;
  /** session-open repeated with the same id, node and ttl: nothing changed. */
  existing?: boolean;
  /** session-close, sessions-of-node-close: the sessions closed (sorted). */
  closed?: string[];
  /** kv-put, kv-delete, session closes: the revision after the command. */
  revision?: number;
  /** kv-delete and session closes: how many keys were deleted. */
  deleted?: number;
}

export interface SystemError {
  ok: false;
  code: SystemErrorCode;
  message: string;
  /** revision_mismatch: the key's current modRevision (0 if it does not exist). */
  current?: number;
  /** lock_busy: the current holder. */
  holder?: string;
  /** merge_conflict: the databases (`db:NAME`) and keys (`kv:KEY`) both sides hold. */
  collisions?: string[];
}

export type SystemResult = SystemOk | SystemError;

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MIN_TTL_MS = 1000;
export const MAX_TTL_MS = 3_600_000;
const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** Session ids are made by this code (hex); node ids follow the one node-id rule. */
const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** A replica id (`node~generation`) names a system group. */
const CLUSTER_ID_RE = /^[A-Za-z0-9_.~-]{1,160}$/;
const MAX_REDUNDANCY = 64;
const MAX_VOTERS = 64;
/** A merge hands over at most this many databases and keys in its one command. */
export const MAX_MERGED_DATABASES = 10_000;
export const MAX_MERGED_KEYS = 100_000;

/** A command that does not validate; its message says why. */
export class Invalid extends Error {}

/** UTF-8 length of a well-formed string, or -1 if it has a lone surrogate (CBOR text cannot carry one). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

// ---- validation of commands ----

type Fields = Record<string, unknown>;

function fields(cmd: unknown, allowed: readonly string[]): Fields {
  const o = cmd as Fields;
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new Invalid(`unexpected field ${JSON.stringify(k)}`);
  }
  return o;
}

function name(o: Fields, f: string): string {
  const v = o[f];
  if (typeof v !== 'string' || !NAME_RE.test(v)) throw new Invalid(`${f} must match ${NAME_RE.source}`);
  return v;
}

function id(o: Fields, f: string): string {
  const v = o[f];
  if (typeof v !== 'string' || !SESSION_ID_RE.test(v)) throw new Invalid(`${f} must match ${SESSION_ID_RE.source}`);
  return v;
}

function nodeId(o: Fields, f: string): string {
  const v = o[f];
  if (!isNodeId(v)) throw new Invalid(`${f} must be a node id (${NODE_ID_RULE})`);
  return v;
}

function ids(o: Fields, f: string): string[] {
  const v = o[f];
  if (!Array.isArray(v) || v.length > MAX_VOTERS) throw new Invalid(`${f} must be an array of at most ${MAX_VOTERS} ids`);
  const seen = new Set<string>();
  for (const x of v) {
    if (!isNodeId(x)) throw new Invalid(`${f} must hold node ids (${NODE_ID_RULE})`);
    if (seen.has(x)) throw new Invalid(`${f} holds ${x} twice`);
    seen.add(x);
  }
  return v.slice() as string[];
}

function clusterId(o: Fields, f: string): string {
  const v = o[f];
  if (typeof v !== 'string' || !CLUSTER_ID_RE.test(v)) throw new Invalid(`${f} must be 1-160 characters of A-Z a-z 0-9 _ . - ~`);
  return v;
}

function value(o: Fields, f: string): string {
  const v = o[f];
  if (typeof v !== 'string') throw new Invalid(`${f} must be a string`);
  const n = utf8Length(v);
  if (n < 0) throw new Invalid(`${f} is not well-formed UTF-16`);
  if (n > MAX_VALUE_BYTES) throw new Invalid(`${f} longer than ${MAX_VALUE_BYTES} bytes`);
  return v;
}

function list(o: Fields, f: string, max: number): unknown[] {
  const v = o[f];
  if (!Array.isArray(v) || v.length > max) throw new Invalid(`${f} must be an array of at most ${max} entries`);
  return v;
}

function object(v: unknown, what: string, allowed: readonly string[]): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new Invalid(`${what} must be an object`);
  return fields(v, allowed);
}

function mergedDatabases(o: Fields): MergedDatabase[] {
  const seen = new Set<string>();
  return list(o, 'databases', MAX_MERGED_DATABASES).map((d, i) => {
    const r = object(d, `databases[${i}]`, ['name', 'redundancy', 'voters', 'founder', 'founded']);
    const db: MergedDatabase = {
      name: name(r, 'name'),
      redundancy: count(r, 'redundancy', 0, MAX_REDUNDANCY, false)!,
      voters: ids(r, 'voters'),
      founder: nodeId(r, 'founder'),
      founded: bool(r, 'founded', false)!,
    };
    if (seen.has(db.name)) throw new Invalid(`databases holds ${db.name} twice`);
    seen.add(db.name);
    return db;
  });
}

function mergedKeys(o: Fields): MergedKey[] {
  const seen = new Set<string>();
  return list(o, 'kv', MAX_MERGED_KEYS).map((e, i) => {
    const r = object(e, `kv[${i}]`, ['key', 'value']);
    const k = { key: key(r, 'key'), value: value(r, 'value') };
    if (seen.has(k.key)) throw new Invalid(`kv holds ${JSON.stringify(k.key.slice(0, 40))} twice`);
    seen.add(k.key);
    return k;
  });
}

function key(o: Fields, f: string): string {
  const v = o[f];
  if (typeof v !== 'string' || v.length === 0) throw new Invalid(`${f} must be a non-empty string`);
  const n = utf8Length(v);
  if (n < 0) throw new Invalid(`${f} is not well-formed UTF-16`);
  if (n > MAX_KEY_BYTES) throw new Invalid(`${f} longer than ${MAX_KEY_BYTES} bytes`);
  return v;
}

function bool(o: Fields, f: string, optional: boolean): boolean | undefined {
  const v = o[f];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'boolean') throw new Invalid(`${f} must be a boolean`);
  return v;
}

function count(o: Fields, f: string, min: number, max: number, optional: boolean): number | undefined {
  const v = o[f];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new Invalid(`${f} must be an integer in [${min}, ${max}]`);
  return v;
}

export function parseCommand(cmd: unknown): SystemCommand {
  if (typeof cmd !== 'object' || cmd === null || Array.isArray(cmd) || cmd instanceof Uint8Array) throw new Invalid('command must be an object');
  const op = (cmd as Fields).op;
  switch (op) {
    case 'db-create': {
      const o = fields(cmd, ['op', 'name', 'redundancy', 'voters']);
      return { op, name: name(o, 'name'), redundancy: count(o, 'redundancy', 0, MAX_REDUNDANCY, false)!, voters: ids(o, 'voters') };
    }
    case 'db-place': {
      const o = fields(cmd, ['op', 'name', 'voters']);
      return { op, name: name(o, 'name'), voters: ids(o, 'voters') };
    }
    case 'db-drop':
    case 'db-founded': {
      const o = fields(cmd, ['op', 'name']);
      return { op, name: name(o, 'name') };
    }
    case 'db-founder': {
      const o = fields(cmd, ['op', 'name', 'founder']);
      return { op, name: name(o, 'name'), founder: nodeId(o, 'founder') };
    }
    case 'cluster-id': {
      const o = fields(cmd, ['op', 'id']);
      return { op, id: clusterId(o, 'id') };
    }
    case 'merge-begin':
    case 'merge-abort':
    case 'merge-done': {
      const o = fields(cmd, ['op', 'into']);
      return { op, into: clusterId(o, 'into') };
    }
    case 'merge-import': {
      const o = fields(cmd, ['op', 'from', 'databases', 'kv', 'token']);
      return {
        op,
        from: clusterId(o, 'from'),
        databases: mergedDatabases(o),
        kv: mergedKeys(o),
        token: count(o, 'token', 0, Number.MAX_SAFE_INTEGER, false)!,
      };
    }
    case 'session-open': {
      const o = fields(cmd, ['op', 'id', 'node', 'ttlMs']);
      return { op, id: id(o, 'id'), node: nodeId(o, 'node'), ttlMs: count(o, 'ttlMs', MIN_TTL_MS, MAX_TTL_MS, false)! };
    }
    case 'session-close': {
      const o = fields(cmd, ['op', 'id', 'reason']);
      const reason = o.reason;
      if (reason !== 'closed' && reason !== 'expired' && reason !== 'node-dead') throw new Invalid('reason must be closed, expired or node-dead');
      return { op, id: id(o, 'id'), reason };
    }
    case 'sessions-of-node-close': {
      const o = fields(cmd, ['op', 'node']);
      return { op, node: nodeId(o, 'node') };
    }
    case 'lock-acquire': {
      const o = fields(cmd, ['op', 'name', 'session', 'wait']);
      return { op, name: name(o, 'name'), session: id(o, 'session'), wait: bool(o, 'wait', false)! };
    }
    case 'lock-release': {
      const o = fields(cmd, ['op', 'name', 'session', 'token']);
      const token = count(o, 'token', 1, Number.MAX_SAFE_INTEGER, true);
      return { op, name: name(o, 'name'), session: id(o, 'session'), ...(token !== undefined ? { token } : {}) };
    }
    case 'lock-cancel': {
      const o = fields(cmd, ['op', 'name', 'session', 'attempt']);
      const attempt = count(o, 'attempt', 0, Number.MAX_SAFE_INTEGER, true);
      return { op, name: name(o, 'name'), session: id(o, 'session'), ...(attempt !== undefined ? { attempt } : {}) };
    }
    case 'kv-put': {
      const o = fields(cmd, ['op', 'key', 'value', 'session', 'prevRevision']);
      const c: Extract<SystemCommand, { op: 'kv-put' }> = { op, key: key(o, 'key'), value: value(o, 'value') };
      if (o.session !== undefined) c.session = id(o, 'session');
      const prev = count(o, 'prevRevision', 0, Number.MAX_SAFE_INTEGER, true);
      if (prev !== undefined) c.prevRevision = prev;
      return c;
    }
    case 'node-remove': {
      const o = fields(cmd, ['op', 'node']);
      return { op, node: nodeId(o, 'node') };
    }
    case 'tokens-at-least': {
      const o = fields(cmd, ['op', 'token']);
      return { op, token: count(o, 'token', 0, Number.MAX_SAFE_INTEGER, false)! };
    }
    case 'kv-delete': {
      const o = fields(cmd, ['op', 'key', 'prefix', 'prevRevision']);
      const c: Extract<SystemCommand, { op: 'kv-delete' }> = { op, key: key(o, 'key') };
      const prefix = bool(o, 'prefix', true);
      if (prefix !== undefined) c.prefix = prefix;
      const prev = count(o, 'prevRevision', 1, Number.MAX_SAFE_INTEGER, true);
      if (prev !== undefined) {
        if (prefix) throw new Invalid('prevRevision applies to a single key, not a prefix');
        c.prevRevision = prev;
      }
      return c;
    }
    default:
      throw new Invalid(`unknown op ${typeof op === 'string' ? JSON.stringify(op.slice(0, 40)) : typeof op}`);
  }
}

export function fail(code: SystemErrorCode, message: string, extra: Partial<SystemError> = {}): SystemError {
  return { ok: false, code, message, ...extra };
}
