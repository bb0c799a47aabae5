/**
 * The deterministic state machine of the cluster's "system" Raft group:
 * database placement, client sessions, named locks with FIFO waiters and
 * fencing tokens, and a small key/value store with revisions and a watch
 * history.
 *
 * Promises:
 * - Pure: no I/O, no timers, no wall clock, no randomness, no locale-dependent
 *   ordering (string order is by UTF-16 code unit). The same commands applied
 *   in the same order give identical state, identical results and
 *   byte-identical snapshots on every replica.
 * - `apply(cmd)` takes the command as plain data of unknown shape (it came
 *   through Raft, CBOR-encoded) and validates it; an invalid command returns
 *   `{ ok: false, code: 'invalid_command' }`. A command that fails (any
 *   `ok: false`) changes nothing. `apply` never throws.
 * - Fencing tokens come from one counter for the whole group, so they are
 *   strictly increasing per lock over its whole life (and across locks), never
 *   reused; the counter is part of the snapshot. A lock's record (its
 *   lastToken) stays once created, also when it is free.
 * - Session ids are chosen by the proposer and must be fresh: an open id may be
 *   opened again only with the same node and ttl (a no-op); the ids of closed
 *   sessions are not remembered.
 * - A lock's waiters are granted in FIFO order. Every grant a command causes is
 *   listed in its result's `grants` (including an immediate grant to the
 *   acquirer), so the driver can wake waiting clients.
 * - Closing a session (closed, expired, node dead) releases its locks (granting
 *   them to the next waiters), removes it from every wait queue and deletes
 *   every key bound to it (each deletion is a watch event).
 * - KV revisions are etcd-style: one cluster-wide counter, +1 per put and per
 *   delete command that deletes at least one key (all keys deleted by one
 *   command share its revision).
 * - Nothing is time-based: session deadlines live in the leader's memory, which
 *   proposes `session-close` with reason 'expired'. Raft indexes are tracked by
 *   the driver; the optional `index` given to `apply` is only recorded (as a
 *   lock holder's `since` and a session's `openedAt`).
 * - `snapshot()` / `SystemState.restore()` round-trip exactly: state, watch
 *   history, token counter, FIFO order and revision. The encoding is canonical
 *   (sorted), so equal states give equal bytes.
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

export interface DatabaseInfo {
  name: string;
  redundancy: number;
  voters: string[];
  /** The one board that may found the group (the first voter placed at creation, unless reassigned before founding). */
  founder: string;
  /** The founder reported its group open; until then the system leader (or the next write) asks it again. */
  founded: boolean;
}

export interface SessionInfo {
  id: string;
  node: string;
  ttlMs: number;
  /** The index given to `apply` for the session-open (0 if none was given). */
  openedAt: number;
  /** Locks held, sorted. */
  locks: string[];
  /** Keys bound to the session, sorted. */
  keys: string[];
}

export interface LockInfo {
  name: string;
  holder?: { session: string; node: string; token: number; since: number };
  waiters: string[];
  /** The last token granted for this lock (0 if never). */
  lastToken: number;
}

export interface KvEntry {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** Puts since the key was (re)created. */
  version: number;
  session?: string;
}

export interface KvEvent {
  revision: number;
  type: 'put' | 'delete';
  key: string;
  /** put only. */
  value?: string;
  modRevision: number;
}

export type EventsSince =
  | { compacted: false; events: KvEvent[] }
  /** The history no longer reaches back: `oldest` is the lowest revision whose events are all still kept (eventsSince(oldest - 1) works). */
  | { compacted: true; oldest: number };

export interface SystemStateOptions {
  /** Watch events kept (default 10_000). */
  historyLimit?: number;
}

export const DEFAULT_HISTORY_LIMIT = 10_000;
export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MIN_TTL_MS = 1000;
export const MAX_TTL_MS = 3_600_000;
const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;
/** Session ids are made by this code (hex); node ids follow the one node-id rule. */
const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_REDUNDANCY = 64;
const MAX_VOTERS = 64;
const SNAPSHOT_FORMAT = 1;

interface Session {
  id: string;
  node: string;
  ttlMs: number;
  openedAt: number;
}

interface Lock {
  holder: { session: string; token: number; since: number } | undefined;
  waiters: string[];
  lastToken: number;
}

interface Kv {
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  session: string | undefined;
}

class Invalid extends Error {}

/** Code-unit order: the same everywhere (unlike localeCompare). */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedKeys<T>(m: Map<string, T>): string[] {
  return [...m.keys()].sort(cmp);
}

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

function parseCommand(cmd: unknown): SystemCommand {
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

function fail(code: SystemErrorCode, message: string, extra: Partial<SystemError> = {}): SystemError {
  return { ok: false, code, message, ...extra };
}

// ---- snapshot image (canonical: every collection sorted, tuples not objects keyed by user strings) ----

interface Image {
  format: number;
  revision: number;
  lastToken: number;
  compactedThrough: number;
  /** name, redundancy, voters, founded (1/0), founder; older images have only the first three. */
  databases: [string, number, string[], number?, string?][];
  sessions: [string, string, number, number][];
  locks: [string, [string, number, number] | null, string[], number][];
  kv: [string, string, number, number, number, string | null][];
  events: [number, 0 | 1, string, string | null, number][];
  /** Absent in snapshots from before removal existed. */
  removed?: string[];
}

export class SystemState {
  private readonly historyLimit: number;
  private rev = 0;
  /** The last fencing token handed out (any lock). */
  private lastToken = 0;
  /** The highest revision some of whose events were dropped from the history. */
  private compactedThrough = 0;
  private readonly dbs = new Map<string, { redundancy: number; voters: string[]; founder: string; founded: boolean }>();
  private readonly sessionMap = new Map<string, Session>();
  private readonly removedNodes = new Set<string>();
  private readonly locks = new Map<string, Lock>();
  private readonly kv = new Map<string, Kv>();
  private events: KvEvent[] = [];
  // derived indexes (rebuilt on restore; only ever iterated in sorted order)
  private readonly sessionLocks = new Map<string, Set<string>>();
  private readonly sessionKeys = new Map<string, Set<string>>();

  constructor(options: SystemStateOptions = {}) {
    const limit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError('historyLimit must be a non-negative integer');
    this.historyLimit = limit;
  }

  // ---- commands ----

  /** Applies one command. `index`: the Raft index of its entry, only recorded (lock `since`, session `openedAt`). Never throws. */
  apply(cmd: unknown, index = 0): SystemResult {
    let c: SystemCommand;
    try {
      c = parseCommand(cmd);
    } catch (err) {
      return fail('invalid_command', err instanceof Invalid ? err.message : 'malformed command');
    }
    const at = Number.isSafeInteger(index) && index >= 0 ? index : 0;
    switch (c.op) {
      case 'db-create':
        if (this.dbs.has(c.name)) return fail('database_exists', `database ${c.name} exists`);
        this.dbs.set(c.name, { redundancy: c.redundancy, voters: c.voters, founder: c.voters[0] ?? '', founded: false });
        return { ok: true, grants: [] };
      case 'db-founded': {
        const db = this.dbs.get(c.name);
        if (!db) return fail('unknown_database', `no database ${c.name}`);
        db.founded = true;
        return { ok: true, grants: [] };
      }
      case 'db-founder': {
        const db = this.dbs.get(c.name);
        if (!db) return fail('unknown_database', `no database ${c.name}`);
        if (db.founded) return fail('database_exists', `database ${c.name} was founded by ${db.founder} already`);
        db.founder = c.founder;
        return { ok: true, grants: [] };
      }
      case 'db-place': {
        const db = this.dbs.get(c.name);
        if (!db) return fail('unknown_database', `no database ${c.name}`);
        db.voters = c.voters;
        return { ok: true, grants: [] };
      }
      case 'tokens-at-least':
        this.lastToken = Math.max(this.lastToken, c.token);
        return { ok: true, grants: [] };
      case 'node-remove': {
        // its sessions end with it (their locks go to the next waiters)
        this.removedNodes.add(c.node);
        const of = sortedKeys(this.sessionMap).filter((s) => this.sessionMap.get(s)!.node === c.node);
        return this.closeSessions(of, at);
      }
      case 'db-drop':
        if (!this.dbs.delete(c.name)) return fail('unknown_database', `no database ${c.name}`);
        return { ok: true, grants: [] };
      case 'session-open': {
        const s = this.sessionMap.get(c.id);
        if (s) {
          if (s.node === c.node && s.ttlMs === c.ttlMs) return { ok: true, grants: [], existing: true };
          return fail('invalid_command', `session ${c.id} is open with another node or ttl`);
        }
        this.sessionMap.set(c.id, { id: c.id, node: c.node, ttlMs: c.ttlMs, openedAt: at });
        return { ok: true, grants: [] };
      }
      case 'session-close':
        if (!this.sessionMap.has(c.id)) return fail('unknown_session', `no open session ${c.id}`);
        return this.closeSessions([c.id], at);
      case 'sessions-of-node-close': {
        const of = sortedKeys(this.sessionMap).filter((s) => this.sessionMap.get(s)!.node === c.node);
        return this.closeSessions(of, at);
      }
      case 'lock-acquire':
        return this.acquire(c.name, c.session, c.wait, at);
      case 'lock-release': {
        if (!this.sessionMap.has(c.session)) return fail('unknown_session', `no open session ${c.session}`);
        const lock = this.locks.get(c.name);
        if (!lock || lock.holder?.session !== c.session) return fail('not_holder', `session ${c.session} does not hold ${c.name}`);
        const grants: LockGrant[] = [];
        this.release(c.name, lock, at, grants);
        return { ok: true, grants };
      }
      case 'lock-cancel': {
        if (!this.sessionMap.has(c.session)) return fail('unknown_session', `no open session ${c.session}`);
        const lock = this.locks.get(c.name);
        const grants: LockGrant[] = [];
        if (!lock) return { ok: true, grants, cancelled: false };
        if (lock.holder?.session === c.session) {
          this.release(c.name, lock, at, grants);
          return { ok: true, grants, cancelled: true };
        }
        const i = lock.waiters.indexOf(c.session);
        if (i < 0) return { ok: true, grants, cancelled: false };
        lock.waiters.splice(i, 1);
        this.sessionLocks.get(c.session)?.delete(c.name);
        return { ok: true, grants, cancelled: true };
      }
      case 'kv-put':
        return this.put(c);
      case 'kv-delete':
        return this.del(c);
    }
  }

  private acquire(lockName: string, session: string, wait: boolean, at: number): SystemResult {
    const s = this.sessionMap.get(session);
    if (!s) return fail('unknown_session', `no open session ${session}`);
    let lock = this.locks.get(lockName);
    if (lock?.holder?.session === session) {
      return { ok: true, grants: [], granted: true, token: lock.holder.token, since: lock.holder.since };
    }
    if (lock?.holder) {
      const i = lock.waiters.indexOf(session);
      if (i >= 0) return { ok: true, grants: [], granted: false, position: i + 1 };
      if (!wait) return fail('lock_busy', `${lockName} is held`, { holder: lock.holder.session });
      lock.waiters.push(session);
      this.index(this.sessionLocks, session).add(lockName);
      return { ok: true, grants: [], granted: false, position: lock.waiters.length };
    }
    if (!lock) {
      lock = { holder: undefined, waiters: [], lastToken: 0 };
      this.locks.set(lockName, lock);
    }
    const grants: LockGrant[] = [];
    this.grant(lockName, lock, session, at, grants);
    return { ok: true, grants, granted: true, token: lock.lastToken, since: at };
  }

  private grant(lockName: string, lock: Lock, session: string, at: number, grants: LockGrant[]): void {
    const token = ++this.lastToken;
    lock.holder = { session, token, since: at };
    lock.lastToken = token;
    this.index(this.sessionLocks, session).add(lockName);
    grants.push({ lock: lockName, session, node: this.sessionMap.get(session)!.node, token });
  }

  /** The holder lets go; the first waiter (if any) gets the lock. */
  private release(lockName: string, lock: Lock, at: number, grants: LockGrant[]): void {
    const holder = lock.holder;
    if (!holder) return;
    lock.holder = undefined;
    this.sessionLocks.get(holder.session)?.delete(lockName);
    const next = lock.waiters.shift();
    if (next !== undefined) this.grant(lockName, lock, next, at, grants);
  }

  private closeSessions(list: string[], at: number): SystemOk {
    const grants: LockGrant[] = [];
    const deletedKeys: string[] = [];
    const held: [string, string][] = [];
    // leave every queue first, so a lock released below is never granted to a session being closed
    for (const sid of list) {
      for (const n of [...(this.sessionLocks.get(sid) ?? [])].sort(cmp)) {
        const lock = this.locks.get(n)!;
        const i = lock.waiters.indexOf(sid);
        if (i >= 0) lock.waiters.splice(i, 1);
        if (lock.holder?.session === sid) held.push([sid, n]);
      }
    }
    for (const [, n] of held) this.release(n, this.locks.get(n)!, at, grants);
    for (const sid of list) {
      this.sessionLocks.delete(sid);
      for (const k of this.sessionKeys.get(sid) ?? []) deletedKeys.push(k);
      this.sessionKeys.delete(sid);
      this.sessionMap.delete(sid);
    }
    // one revision for the whole command, like a multi-key delete
    const result: SystemOk = { ok: true, grants, closed: list.slice().sort(cmp), deleted: deletedKeys.length, revision: this.rev };
    if (deletedKeys.length > 0) {
      this.rev++;
      for (const k of deletedKeys.sort(cmp)) this.removeKey(k);
      this.trimHistory();
      result.revision = this.rev;
    }
    return result;
  }

  private put(c: Extract<SystemCommand, { op: 'kv-put' }>): SystemResult {
    if (c.session !== undefined && !this.sessionMap.has(c.session)) return fail('unknown_session', `no open session ${c.session}`);
    const cur = this.kv.get(c.key);
    if (c.prevRevision !== undefined && (cur?.modRevision ?? 0) !== c.prevRevision) {
      return fail('revision_mismatch', `${c.key} is at revision ${cur?.modRevision ?? 0}, not ${c.prevRevision}`, { current: cur?.modRevision ?? 0 });
    }
    const rev = ++this.rev;
    if (cur?.session !== undefined) this.sessionKeys.get(cur.session)?.delete(c.key);
    if (c.session !== undefined) this.index(this.sessionKeys, c.session).add(c.key);
    this.kv.set(c.key, {
      value: c.value,
      createRevision: cur ? cur.createRevision : rev,
      modRevision: rev,
      version: cur ? cur.version + 1 : 1,
      session: c.session,
    });
    this.events.push({ revision: rev, type: 'put', key: c.key, value: c.value, modRevision: rev });
    this.trimHistory();
    return { ok: true, grants: [], revision: rev };
  }

  private del(c: Extract<SystemCommand, { op: 'kv-delete' }>): SystemResult {
    let doomed: string[];
    if (c.prefix) {
      doomed = sortedKeys(this.kv).filter((k) => k.startsWith(c.key));
    } else {
      const cur = this.kv.get(c.key);
      if (c.prevRevision !== undefined) {
        if (!cur) return fail('key_not_found', `no key ${c.key}`, { current: 0 });
        if (cur.modRevision !== c.prevRevision) {
          return fail('revision_mismatch', `${c.key} is at revision ${cur.modRevision}, not ${c.prevRevision}`, { current: cur.modRevision });
        }
      }
      doomed = cur ? [c.key] : [];
    }
    if (doomed.length === 0) return { ok: true, grants: [], deleted: 0, revision: this.rev };
    this.rev++;
    for (const k of doomed) this.removeKey(k);
    this.trimHistory();
    return { ok: true, grants: [], deleted: doomed.length, revision: this.rev };
  }

  /** Deletes an existing key at the current revision and records the event. */
  private removeKey(k: string): void {
    const cur = this.kv.get(k);
    if (!cur) return;
    if (cur.session !== undefined) this.sessionKeys.get(cur.session)?.delete(k);
    this.kv.delete(k);
    this.events.push({ revision: this.rev, type: 'delete', key: k, modRevision: this.rev });
  }

  private trimHistory(): void {
    if (this.events.length <= this.historyLimit) return;
    let drop = this.events.length - this.historyLimit;
    // never keep part of a revision's events
    const through = this.events[drop - 1]!.revision;
    while (drop < this.events.length && this.events[drop]!.revision === through) drop++;
    this.compactedThrough = Math.max(this.compactedThrough, through);
    this.events = this.events.slice(drop);
  }

  private index(m: Map<string, Set<string>>, k: string): Set<string> {
    let s = m.get(k);
    if (!s) {
      s = new Set();
      m.set(k, s);
    }
    return s;
  }

  // ---- queries (read-only; every answer is a fresh copy) ----

  get revision(): number {
    return this.rev;
  }

  database(dbName: string): DatabaseInfo | undefined {
    const db = this.dbs.get(dbName);
    return db ? { name: dbName, redundancy: db.redundancy, voters: db.voters.slice(), founder: db.founder, founded: db.founded } : undefined;
  }

  databases(): DatabaseInfo[] {
    return sortedKeys(this.dbs).map((n) => this.database(n)!);
  }

  lock(lockName: string): LockInfo | undefined {
    const lock = this.locks.get(lockName);
    if (!lock) return undefined;
    const info: LockInfo = { name: lockName, waiters: lock.waiters.slice(), lastToken: lock.lastToken };
    if (lock.holder) {
      const h = lock.holder;
      info.holder = { session: h.session, node: this.sessionMap.get(h.session)!.node, token: h.token, since: h.since };
    }
    return info;
  }

  /** The last fencing token handed out, by any lock. */
  lastTokenIssued(): number {
    return this.lastToken;
  }

  /** Boards removed from the cluster for good. */
  removed(): string[] {
    return [...this.removedNodes].sort();
  }

  /** Every lock that is held or waited for, by name. */
  lockList(): LockInfo[] {
    return sortedKeys(this.locks)
      .map((n) => this.lock(n)!)
      .filter((l) => l.holder !== undefined || l.waiters.length > 0);
  }

  session(sid: string): SessionInfo | undefined {
    const s = this.sessionMap.get(sid);
    if (!s) return undefined;
    const held = [...(this.sessionLocks.get(sid) ?? [])].filter((n) => this.locks.get(n)?.holder?.session === sid).sort(cmp);
    return { id: s.id, node: s.node, ttlMs: s.ttlMs, openedAt: s.openedAt, locks: held, keys: [...(this.sessionKeys.get(sid) ?? [])].sort(cmp) };
  }

  sessions(): SessionInfo[] {
    return sortedKeys(this.sessionMap).map((s) => this.session(s)!);
  }

  kvGet(k: string): KvEntry | undefined {
    const e = this.kv.get(k);
    if (!e) return undefined;
    const out: KvEntry = { key: k, value: e.value, createRevision: e.createRevision, modRevision: e.modRevision, version: e.version };
    if (e.session !== undefined) out.session = e.session;
    return out;
  }

  kvList(prefix = ''): KvEntry[] {
    return sortedKeys(this.kv)
      .filter((k) => k.startsWith(prefix))
      .map((k) => this.kvGet(k)!);
  }

  /** Watch: the events after `revision` (optionally for one key, or with `prefix: true` for keys starting with `key`). */
  eventsSince(revision: number, filter: { key?: string; prefix?: boolean } = {}): EventsSince {
    const from = Number.isNaN(revision) ? 0 : Math.max(0, revision);
    if (from < this.compactedThrough) return { compacted: true, oldest: this.compactedThrough + 1 };
    const { key: k, prefix } = filter;
    const match = (e: KvEvent): boolean => k === undefined || (prefix ? e.key.startsWith(k) : e.key === k);
    // events are in revision order: binary search for the first one after `revision`
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.revision <= from) lo = mid + 1;
      else hi = mid;
    }
    const events: KvEvent[] = [];
    for (let i = lo; i < this.events.length; i++) {
      const e = this.events[i]!;
      if (match(e)) events.push({ ...e });
    }
    return { compacted: false, events };
  }

  // ---- snapshots ----

  snapshot(): Uint8Array {
    const image: Image = {
      format: SNAPSHOT_FORMAT,
      revision: this.rev,
      lastToken: this.lastToken,
      compactedThrough: this.compactedThrough,
      databases: sortedKeys(this.dbs).map((n) => {
        const d = this.dbs.get(n)!;
        return [n, d.redundancy, d.voters.slice(), d.founded ? 1 : 0, d.founder];
      }),
      sessions: sortedKeys(this.sessionMap).map((sid) => {
        const s = this.sessionMap.get(sid)!;
        return [sid, s.node, s.ttlMs, s.openedAt];
      }),
      locks: sortedKeys(this.locks).map((n) => {
        const l = this.locks.get(n)!;
        return [n, l.holder ? [l.holder.session, l.holder.token, l.holder.since] : null, l.waiters.slice(), l.lastToken];
      }),
      kv: sortedKeys(this.kv).map((k) => {
        const e = this.kv.get(k)!;
        return [k, e.value, e.createRevision, e.modRevision, e.version, e.session ?? null];
      }),
      events: this.events.map((e) => [e.revision, e.type === 'put' ? 0 : 1, e.key, e.value ?? null, e.modRevision]),
      removed: [...this.removedNodes].sort(),
    };
    return new TextEncoder().encode(JSON.stringify(image));
  }

  /** Rebuilds a state from `snapshot()` bytes. Throws on bytes that are not a valid snapshot. */
  static restore(bytes: Uint8Array, options: SystemStateOptions = {}): SystemState {
    const image = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Image;
    const bad = (what: string): never => {
      throw new Error(`invalid system snapshot: ${what}`);
    };
    const int = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${JSON.stringify(v)} is not a count`));
    const str = (v: unknown): string => (typeof v === 'string' ? v : bad('expected a string'));
    const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : bad('expected an array'));
    if (typeof image !== 'object' || image === null || image.format !== SNAPSHOT_FORMAT) bad('unknown format');
    const st = new SystemState(options);
    st.rev = int(image.revision);
    st.lastToken = int(image.lastToken);
    st.compactedThrough = int(image.compactedThrough);
    for (const n of image.removed === undefined ? [] : arr(image.removed)) st.removedNodes.add(str(n));
    for (const d of arr(image.databases)) {
      const [n, redundancy, voters, founded, founder] = arr(d);
      const list = arr(voters).map(str);
      // images from before founding was tracked: every database in them was founded
      st.dbs.set(str(n), {
        redundancy: int(redundancy),
        voters: list,
        founded: founded === undefined || int(founded) === 1,
        founder: founder === undefined ? (list[0] ?? '') : str(founder),
      });
    }
    for (const s of arr(image.sessions)) {
      const [sid, node, ttlMs, openedAt] = arr(s);
      st.sessionMap.set(str(sid), { id: str(sid), node: str(node), ttlMs: int(ttlMs), openedAt: int(openedAt) });
    }
    for (const l of arr(image.locks)) {
      const [n, holder, waiters, lastToken] = arr(l);
      const lockName = str(n);
      let h: Lock['holder'];
      if (holder !== null) {
        const [session, token, since] = arr(holder);
        h = { session: str(session), token: int(token), since: int(since) };
        if (!st.sessionMap.has(h.session)) bad(`lock ${lockName} held by unknown session`);
        st.index(st.sessionLocks, h.session).add(lockName);
      }
      const w = arr(waiters).map(str);
      for (const sid of w) {
        if (!st.sessionMap.has(sid)) bad(`lock ${lockName} awaited by unknown session`);
        st.index(st.sessionLocks, sid).add(lockName);
      }
      st.locks.set(lockName, { holder: h, waiters: w, lastToken: int(lastToken) });
    }
    for (const e of arr(image.kv)) {
      const [k, value, createRevision, modRevision, version, session] = arr(e);
      const entry: Kv = {
        value: str(value),
        createRevision: int(createRevision),
        modRevision: int(modRevision),
        version: int(version),
        session: session === null ? undefined : str(session),
      };
      if (entry.session !== undefined) {
        if (!st.sessionMap.has(entry.session)) bad(`key bound to unknown session`);
        st.index(st.sessionKeys, entry.session).add(str(k));
      }
      st.kv.set(str(k), entry);
    }
    st.events = arr(image.events).map((e) => {
      const [revision, type, k, value, modRevision] = arr(e);
      const ev: KvEvent = {
        revision: int(revision),
        type: type === 0 ? 'put' : type === 1 ? 'delete' : bad('event type'),
        key: str(k),
        modRevision: int(modRevision),
      };
      if (value !== null) ev.value = str(value);
      return ev;
    });
    st.trimHistory();
    return st;
  }
}
