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
  | { op: 'lock-release'; name: string; session: string }
  | { op: 'lock-cancel'; name: string; session: string }
  | { op: 'kv-put'; key: string; value: string; session?: string; prevRevision?: number }
  | { op: 'kv-delete'; key: string; prefix?: boolean; prevRevision?: number }
  /** A board taken out of the cluster for good (gandalf-node remove): never placed again, refused if it returns. */
  | { op: 'node-remove'; node: string }
  /** Fencing tokens continue above `token` (a cluster restored from a backup keeps them increasing). */
  | { op: 'tokens-at-least'; token: number };

export type SystemErrorCode =
  'invalid_command' | 'database_exists' | 'unknown_database' | 'unknown_session' | 'lock_busy' | 'not_holder' | 'revision_mismatch' | 'key_not_found';

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
      const v = o.id;
      if (typeof v !== 'string' || !CLUSTER_ID_RE.test(v)) throw new Invalid('id must be 1-160 characters of A-Z a-z 0-9 _ . - ~');
      return { op, id: v };
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
    case 'lock-release':
    case 'lock-cancel': {
      const o = fields(cmd, ['op', 'name', 'session']);
      return { op, name: name(o, 'name'), session: id(o, 'session') };
    }
    case 'kv-put': {
      const o = fields(cmd, ['op', 'key', 'value', 'session', 'prevRevision']);
      const value = o.value;
      if (typeof value !== 'string') throw new Invalid('value must be a string');
      const n = utf8Length(value);
      if (n < 0) throw new Invalid('value is not well-formed UTF-16');
      if (n > MAX_VALUE_BYTES) throw new Invalid(`value longer than ${MAX_VALUE_BYTES} bytes`);
      const c: Extract<SystemCommand, { op: 'kv-put' }> = { op, key: key(o, 'key'), value };
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
