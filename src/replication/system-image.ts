/**
 * The system state's snapshot image: canonical (every collection sorted by
 * code unit, tuples rather than objects keyed by user strings), so equal
 * states give equal bytes on every replica, and checked when read back
 * (references between sessions, locks and keys must hold).
 */
import type { KvEvent } from './system-state';

export interface Session {
  id: string;
  node: string;
  ttlMs: number;
  openedAt: number;
}

/**
 * `attempt`: the index of the session's latest lock-acquire for this lock, so
 * a cancel from an earlier attempt that timed out leaves a later one alone.
 */
export interface Lock {
  holder: { session: string; token: number; since: number; attempt: number } | undefined;
  waiters: { session: string; attempt: number }[];
  lastToken: number;
}

export interface Kv {
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  session: string | undefined;
}

export interface DbRecordData {
  redundancy: number;
  voters: string[];
  founder: string;
  founded: boolean;
}

/** A merge of this system group into another (`into`, finished once `done`), and the groups merged into this one. */
export interface MergeState {
  into: string | undefined;
  done: boolean;
  from: Set<string>;
}

/** Everything a system state holds, as its snapshot carries it. */
export interface SystemData {
  /** Undefined until set (and in images from before it existed). */
  clusterId: string | undefined;
  rev: number;
  lastToken: number;
  compactedThrough: number;
  dbs: Map<string, DbRecordData>;
  sessions: Map<string, Session>;
  removed: Set<string>;
  locks: Map<string, Lock>;
  kv: Map<string, Kv>;
  events: KvEvent[];
  merge: MergeState;
}

const SNAPSHOT_FORMAT = 1;

/** Code-unit order: the same everywhere (unlike localeCompare). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortedKeys<T>(m: Map<string, T>): string[] {
  return [...m.keys()].sort(cmp);
}

interface Image {
  format: number;
  revision: number;
  lastToken: number;
  compactedThrough: number;
  /** name, redundancy, voters, founded (1/0), founder; older images have only the first three. */
  databases: [string, number, string[], number?, string?][];
  sessions: [string, string, number, number][];
  locks: [string, [string, number, number, number] | null, [string, number][], number][];
  kv: [string, string, number, number, number, string | null][];
  events: [number, 0 | 1, string, string | null, number][];
  /** Absent in snapshots from before removal existed. */
  removed?: string[];
  /** Absent until set, and in snapshots from before it existed. */
  cluster?: string;
  /** Absent unless a merge began here or a group merged into this one. */
  merge?: { into: string | null; done: number; from: string[] };
}

export function encodeImage(d: SystemData): Uint8Array {
  const image: Image = {
    format: SNAPSHOT_FORMAT,
    revision: d.rev,
    lastToken: d.lastToken,
    compactedThrough: d.compactedThrough,
    databases: sortedKeys(d.dbs).map((n) => {
      const db = d.dbs.get(n)!;
      return [n, db.redundancy, db.voters.slice(), db.founded ? 1 : 0, db.founder];
    }),
    sessions: sortedKeys(d.sessions).map((sid) => {
      const s = d.sessions.get(sid)!;
      return [sid, s.node, s.ttlMs, s.openedAt];
    }),
    locks: sortedKeys(d.locks).map((n) => {
      const l = d.locks.get(n)!;
      return [
        n,
        l.holder ? [l.holder.session, l.holder.token, l.holder.since, l.holder.attempt] : null,
        l.waiters.map((w): [string, number] => [w.session, w.attempt]),
        l.lastToken,
      ];
    }),
    kv: sortedKeys(d.kv).map((k) => {
      const e = d.kv.get(k)!;
      return [k, e.value, e.createRevision, e.modRevision, e.version, e.session ?? null];
    }),
    events: d.events.map((e) => [e.revision, e.type === 'put' ? 0 : 1, e.key, e.value ?? null, e.modRevision]),
    removed: [...d.removed].sort(cmp),
    ...(d.clusterId !== undefined ? { cluster: d.clusterId } : {}),
    ...(d.merge.into !== undefined || d.merge.from.size > 0
      ? { merge: { into: d.merge.into ?? null, done: d.merge.done ? 1 : 0, from: [...d.merge.from].sort(cmp) } }
      : {}),
  };
  return new TextEncoder().encode(JSON.stringify(image));
}

/** Reads `encodeImage()` bytes back. Throws on bytes that are not a valid image. */
export function decodeImage(bytes: Uint8Array): SystemData {
  const image = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Image;
  const bad = (what: string): never => {
    throw new Error(`invalid system snapshot: ${what}`);
  };
  const int = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${JSON.stringify(v)} is not a count`));
  const str = (v: unknown): string => (typeof v === 'string' ? v : bad('expected a string'));
  const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : bad('expected an array'));
  if (typeof image !== 'object' || image === null || image.format !== SNAPSHOT_FORMAT) bad('unknown format');
  const d: SystemData = {
    clusterId: image.cluster === undefined ? undefined : str(image.cluster),
    rev: int(image.revision),
    lastToken: int(image.lastToken),
    compactedThrough: int(image.compactedThrough),
    dbs: new Map(),
    sessions: new Map(),
    removed: new Set((image.removed === undefined ? [] : arr(image.removed)).map(str)),
    locks: new Map(),
    kv: new Map(),
    events: [],
    merge: { into: undefined, done: false, from: new Set() },
  };
  if (image.merge !== undefined) {
    const m = image.merge as unknown;
    if (typeof m !== 'object' || m === null) bad('merge must be an object');
    const { into, done, from } = m as { into: unknown; done: unknown; from: unknown };
    d.merge = { into: into === null ? undefined : str(into), done: int(done) === 1, from: new Set(arr(from).map(str)) };
    if (d.merge.done && d.merge.into === undefined) bad('merge done without a target');
  }
  for (const db of arr(image.databases)) {
    const [n, redundancy, voters, founded, founder] = arr(db);
    const list = arr(voters).map(str);
    // images from before founding was tracked: every database in them was founded
    d.dbs.set(str(n), {
      redundancy: int(redundancy),
      voters: list,
      founded: founded === undefined || int(founded) === 1,
      founder: founder === undefined ? (list[0] ?? '') : str(founder),
    });
  }
  for (const s of arr(image.sessions)) {
    const [sid, node, ttlMs, openedAt] = arr(s);
    d.sessions.set(str(sid), { id: str(sid), node: str(node), ttlMs: int(ttlMs), openedAt: int(openedAt) });
  }
  for (const l of arr(image.locks)) {
    const [n, holder, waiters, lastToken] = arr(l);
    const lockName = str(n);
    let h: Lock['holder'];
    if (holder !== null) {
      // images before attempts: [session, token, since], the grant's index standing in for the attempt
      const [session, token, since, attempt] = arr(holder);
      h = { session: str(session), token: int(token), since: int(since), attempt: int(attempt ?? since) };
      if (!d.sessions.has(h.session)) bad(`lock ${lockName} held by unknown session`);
    }
    // images before attempts: a waiter is its session id alone
    const w = arr(waiters).map((x) => (typeof x === 'string' ? { session: x, attempt: 0 } : { session: str(arr(x)[0]), attempt: int(arr(x)[1]) }));
    if (w.some((x) => !d.sessions.has(x.session))) bad(`lock ${lockName} awaited by unknown session`);
    d.locks.set(lockName, { holder: h, waiters: w, lastToken: int(lastToken) });
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
    if (entry.session !== undefined && !d.sessions.has(entry.session)) bad(`key bound to unknown session`);
    d.kv.set(str(k), entry);
  }
  d.events = arr(image.events).map((e) => {
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
  return d;
}
