/**
 * The deterministic state machine of the cluster's "system" Raft group
 * (commands and their validation in `system-commands.ts`, the snapshot image
 * in `system-image.ts`):
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
 * - Merging (see system-merge.ts): once `merge-begin` is applied the group
 *   takes no new databases, placements, sessions, lock acquisitions or keys
 *   (`merging`); once `merge-done` is applied it takes nothing at all. A
 *   `merge-import` applies whole or not at all: any database name or key
 *   (with another value) both sides hold fails it with `merge_conflict`
 *   naming them; one repeated from the same side changes nothing.
 * - `snapshot()` / `SystemState.restore()` round-trip exactly: state, watch
 *   history, token counter, FIFO order and revision. The encoding is canonical
 *   (sorted), so equal states give equal bytes.
 */
import { fail, Invalid, parseCommand, type LockGrant, type SystemCommand, type SystemOk, type SystemResult } from './system-commands';
import type { MergeState } from './system-image';
import { cmp, decodeImage, encodeImage, sortedKeys, type DbRecordData, type Kv, type Lock, type Session } from './system-image';

export {
  MAX_KEY_BYTES,
  MAX_TTL_MS,
  MAX_VALUE_BYTES,
  MIN_TTL_MS,
  type LockGrant,
  type SystemCommand,
  type SystemError,
  type SystemErrorCode,
  type SystemOk,
  type SystemResult,
} from './system-commands';

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

export class SystemState {
  private readonly historyLimit: number;
  private rev = 0;
  private cluster: string | undefined;
  /** The last fencing token handed out (any lock). */
  private lastToken = 0;
  /** The highest revision some of whose events were dropped from the history. */
  private compactedThrough = 0;
  private dbs = new Map<string, DbRecordData>();
  private sessionMap = new Map<string, Session>();
  private removedNodes = new Set<string>();
  private locks = new Map<string, Lock>();
  private kv = new Map<string, Kv>();
  private events: KvEvent[] = [];
  private merge: MergeState = { into: undefined, done: false, from: new Set() };
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
    const frozen = this.frozen(c);
    if (frozen) return frozen;
    switch (c.op) {
      case 'db-create':
        if (this.dbs.has(c.name)) return fail('database_exists', `database ${c.name} exists`);
        this.dbs.set(c.name, { redundancy: c.redundancy, voters: c.voters, founder: c.voters[0] ?? '', founded: false });
        return { ok: true, grants: [] };
      case 'cluster-id':
        if (this.cluster !== undefined) return { ok: true, grants: [], existing: true };
        this.cluster = c.id;
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
        if (c.token !== undefined && lock.holder.token !== c.token) {
          return fail('not_holder', `session ${c.session} holds ${c.name} with token ${lock.holder.token}, not ${c.token}`);
        }
        const grants: LockGrant[] = [];
        this.release(c.name, lock, at, grants);
        return { ok: true, grants };
      }
      case 'lock-cancel': {
        if (!this.sessionMap.has(c.session)) return fail('unknown_session', `no open session ${c.session}`);
        const lock = this.locks.get(c.name);
        const grants: LockGrant[] = [];
        if (!lock) return { ok: true, grants, cancelled: false };
        // an attempt's cancel that lands after a later attempt of the same session took over changes nothing
        const mine = (x: { session: string; attempt: number }) => x.session === c.session && (c.attempt === undefined || x.attempt === c.attempt);
        if (lock.holder && mine(lock.holder)) {
          this.release(c.name, lock, at, grants);
          return { ok: true, grants, cancelled: true };
        }
        const i = lock.waiters.findIndex(mine);
        if (i < 0) return { ok: true, grants, cancelled: false };
        lock.waiters.splice(i, 1);
        this.sessionLocks.get(c.session)?.delete(c.name);
        return { ok: true, grants, cancelled: true };
      }
      case 'kv-put':
        return this.put(c);
      case 'kv-delete':
        return this.del(c);
      case 'merge-begin':
        if (this.cluster === undefined || c.into === this.cluster)
          return fail('invalid_command', `cannot merge ${this.cluster ?? 'an unnamed group'} into ${c.into}`);
        if (this.merge.into !== undefined && this.merge.into !== c.into) return fail('merging', `merging into ${this.merge.into} already`);
        this.merge.into = c.into;
        return { ok: true, grants: [] };
      case 'merge-abort':
        if (this.merge.into !== c.into) return fail('merging', `not merging into ${c.into}`);
        this.merge.into = undefined;
        return { ok: true, grants: [] };
      case 'merge-done':
        if (this.merge.into !== c.into) return fail('merging', `not merging into ${c.into}`);
        this.merge.done = true;
        return { ok: true, grants: [] };
      case 'merge-import':
        return this.importMerged(c);
    }
  }

  /** While merging, only what runs the group down (closes, releases, founding) is taken; once merged, nothing. */
  private frozen(c: SystemCommand): SystemResult | undefined {
    if (this.merge.into === undefined) return undefined;
    if (this.merge.done) return fail('merging', `this system group merged into ${this.merge.into}`);
    switch (c.op) {
      case 'db-create':
      case 'db-place':
      case 'db-drop':
      case 'session-open':
      case 'lock-acquire':
      case 'kv-put':
      case 'kv-delete':
      case 'merge-import':
        return fail('merging', `this system group is merging into ${this.merge.into}: it takes no new state; retry once the merge is done`);
      default:
        return undefined;
    }
  }

  private importMerged(c: Extract<SystemCommand, { op: 'merge-import' }>): SystemResult {
    if (c.from === this.cluster) return fail('invalid_command', 'a system group does not merge into itself');
    if (this.merge.from.has(c.from)) return { ok: true, grants: [], existing: true, revision: this.rev };
    const collisions = [
      ...c.databases.filter((d) => this.dbs.has(d.name)).map((d) => `db:${d.name}`),
      ...c.kv.filter((e) => this.kv.has(e.key) && this.kv.get(e.key)!.value !== e.value).map((e) => `kv:${e.key}`),
    ].sort(cmp);
    if (collisions.length > 0) {
      return fail('merge_conflict', `both system groups hold ${collisions.slice(0, 10).join(', ')}${collisions.length > 10 ? ', …' : ''}`, { collisions });
    }
    for (const d of c.databases) this.dbs.set(d.name, { redundancy: d.redundancy, voters: d.voters.slice(), founder: d.founder, founded: d.founded });
    const fresh = c.kv.filter((e) => !this.kv.has(e.key)).sort((a, b) => cmp(a.key, b.key));
    // the keys arrive in one revision, like one multi-key transaction
    if (fresh.length > 0) {
      const rev = ++this.rev;
      for (const e of fresh) {
        this.kv.set(e.key, { value: e.value, createRevision: rev, modRevision: rev, version: 1, session: undefined });
        this.events.push({ revision: rev, type: 'put', key: e.key, value: e.value, modRevision: rev });
      }
      this.trimHistory();
    }
    this.lastToken = Math.max(this.lastToken, c.token);
    this.merge.from.add(c.from);
    return { ok: true, grants: [], revision: this.rev };
  }

  private acquire(lockName: string, session: string, wait: boolean, at: number): SystemResult {
    const s = this.sessionMap.get(session);
    if (!s) return fail('unknown_session', `no open session ${session}`);
    let lock = this.locks.get(lockName);
    // asked again: this attempt takes over the hold or the place in the queue
    if (lock?.holder?.session === session) {
      lock.holder.attempt = at;
      return { ok: true, grants: [], granted: true, token: lock.holder.token, since: lock.holder.since, attempt: at };
    }
    if (lock?.holder) {
      const i = lock.waiters.findIndex((w) => w.session === session);
      if (i >= 0) {
        lock.waiters[i]!.attempt = at;
        return { ok: true, grants: [], granted: false, position: i + 1, attempt: at };
      }
      if (!wait) return fail('lock_busy', `${lockName} is held`, { holder: lock.holder.session });
      lock.waiters.push({ session, attempt: at });
      this.index(this.sessionLocks, session).add(lockName);
      return { ok: true, grants: [], granted: false, position: lock.waiters.length, attempt: at };
    }
    if (!lock) {
      lock = { holder: undefined, waiters: [], lastToken: 0 };
      this.locks.set(lockName, lock);
    }
    const grants: LockGrant[] = [];
    this.grant(lockName, lock, { session, attempt: at }, at, grants);
    return { ok: true, grants, granted: true, token: lock.lastToken, since: at, attempt: at };
  }

  private grant(lockName: string, lock: Lock, { session, attempt }: { session: string; attempt: number }, at: number, grants: LockGrant[]): void {
    const token = ++this.lastToken;
    lock.holder = { session, token, since: at, attempt };
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
        const i = lock.waiters.findIndex((w) => w.session === sid);
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

  /** The system group's identity (cluster-id), once set. */
  clusterId(): string | undefined {
    return this.cluster;
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
    const info: LockInfo = { name: lockName, waiters: lock.waiters.map((w) => w.session), lastToken: lock.lastToken };
    if (lock.holder) {
      const h = lock.holder;
      info.holder = { session: h.session, node: this.sessionMap.get(h.session)!.node, token: h.token, since: h.since };
    }
    return info;
  }

  /** Where this group merges (or merged) into another, and which groups merged into it. */
  mergeState(): { into: string | undefined; done: boolean; from: string[] } {
    return { into: this.merge.into, done: this.merge.done, from: [...this.merge.from].sort(cmp) };
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
    return encodeImage({
      clusterId: this.cluster,
      rev: this.rev,
      lastToken: this.lastToken,
      compactedThrough: this.compactedThrough,
      dbs: this.dbs,
      sessions: this.sessionMap,
      removed: this.removedNodes,
      locks: this.locks,
      kv: this.kv,
      events: this.events,
      merge: this.merge,
    });
  }

  /** Rebuilds a state from `snapshot()` bytes. Throws on bytes that are not a valid snapshot. */
  static restore(bytes: Uint8Array, options: SystemStateOptions = {}): SystemState {
    const d = decodeImage(bytes);
    const st = new SystemState(options);
    st.cluster = d.clusterId;
    st.rev = d.rev;
    st.lastToken = d.lastToken;
    st.compactedThrough = d.compactedThrough;
    st.dbs = d.dbs;
    st.sessionMap = d.sessions;
    st.removedNodes = d.removed;
    st.locks = d.locks;
    st.kv = d.kv;
    st.events = d.events;
    st.merge = d.merge;
    for (const [lockName, l] of d.locks) {
      if (l.holder) st.index(st.sessionLocks, l.holder.session).add(lockName);
      for (const w of l.waiters) st.index(st.sessionLocks, w.session).add(lockName);
    }
    for (const [k, e] of d.kv) if (e.session !== undefined) st.index(st.sessionKeys, e.session).add(k);
    st.trimHistory();
    return st;
  }
}
