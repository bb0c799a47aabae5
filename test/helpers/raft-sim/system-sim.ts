/**
 * The system Raft group in simulation: `SystemState` as the replicated state
 * machine of a `RaftCluster` (3, 5 or 7 nodes, simulated time, partitions,
 * loss, duplication, reordering, crashes and torn writes, slow disks,
 * leadership transfers), with simulated clients:
 *
 * - KV clients put, compare-and-set and delete a few keys through the leader
 *   and get them through ReadIndex;
 * - lock clients open a session, acquire a lock (waiting), hold it, release
 *   it, now and then close the session; some stall (stop their keepalives)
 *   while holding, so the leader, which tracks session deadlines in memory,
 *   proposes `session-close` 'expired' mid-hold; a node down for long has its
 *   sessions closed (`sessions-of-node-close`).
 *
 * Composition, not modification: the cluster replicates entries
 * `{ value: <command id>, cmd: <command> }`, so its own list state machine is
 * the sequence of command ids (its invariants — Election Safety, Log
 * Matching, Leader Completeness, State Machine Safety by index — keep running
 * unchanged), and each node's `SystemState` replica follows that list after
 * every event: it applies the commands in order (the 1-based position in the
 * command sequence is the `index` given to `apply`), and after a restart it is
 * restored from a `SystemState` snapshot taken at a checkpoint and replays the
 * rest. Reads use the cluster's ReadIndex: a read served when the node had
 * applied `len` commands returns the key as it was after command `len`.
 * Replicas catch up after every simulated event (the cluster clock's
 * setTimeout is wrapped). The cluster's own Raft snapshots carry the id list,
 * not a SystemState snapshot (their format belongs to cluster.ts);
 * SystemState's snapshot/restore runs through the checkpoints instead.
 *
 * Checks: (a) per key, the KV history is linearizable (register/CAS model);
 * (b) mutex safety: the hold intervals clients believed in (grant position to
 * the position of the release/cancel/close that ended it in the command log)
 * never overlap, and fencing tokens strictly increase in grant order; (c)
 * every replica applied the same command at every position with the same
 * result, checkpoint snapshots are byte-identical, and the replicas end with
 * byte-identical snapshots after healing, equal to a replay from scratch.
 */
import { SystemState, type SystemResult } from '../../../src/replication/system-state';
import { chaosCluster } from './chaos';
import { RaftCluster, type SimRaftNode } from './cluster';
import { checkLinearizable, type CheckResult, type Model, type Operation } from './linearizability';

// ---- (a) the KV register/CAS model ----

export type KvInput =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'cas'; key: string; prev: number; value: string }
  | { kind: 'del'; key: string }
  | { kind: 'get'; key: string };
export type KvOutput =
  | { kind: 'put'; rev: number }
  | { kind: 'cas'; ok: true; rev: number }
  | { kind: 'cas'; ok: false; current: number }
  | { kind: 'del'; deleted: number }
  | { kind: 'get'; value: string | null; rev: number };
export type KvOperation = Operation<KvInput, KvOutput>;
/**
 * One key: its value (null: absent) and modRevision (0 when absent). rev -1: written by an
 * operation whose answer was lost, at a revision not known yet but above `floor`; the next
 * answer that shows it (a get, a CAS's outcome) pins it.
 */
export interface KvRegister {
  value: string | null;
  rev: number;
  floor?: number;
}

const UNKNOWN = -1;
/** The register's revision as `rev` if that is consistent with what is known of it, else undefined. */
function pin(state: KvRegister, rev: number): KvRegister | undefined {
  if (state.rev !== UNKNOWN) return state.rev === rev ? state : undefined;
  return rev > state.floor! ? { value: state.value, rev } : undefined;
}
const below = (state: KvRegister): number => (state.rev === UNKNOWN ? state.floor! : state.rev);

/**
 * One key as a register with etcd revisions: a write's revision is above the key's current one
 * (revisions are global and follow the log order); a CAS succeeds iff `prev` is the current
 * modRevision (0: absent); a get returns the current value and modRevision. A put or CAS whose
 * answer never came took effect at a revision above the current one (a CAS only where its
 * revision matched: elsewhere it failed), or never (the checker places it after everything).
 */
export const kvRegisterModel: Model<KvRegister, KvInput, KvOutput> = {
  init: () => ({ value: null, rev: 0 }),
  step(state, input, output) {
    if (output === undefined) {
      if (input.kind === 'get') return state;
      if (input.kind === 'put') return { value: input.value, rev: UNKNOWN, floor: below(state) };
      // it found another revision and failed, or (as late as the checker places it) took effect
      if (input.kind === 'cas') return pin(state, input.prev) ? { value: input.value, rev: UNKNOWN, floor: input.prev } : state;
      return undefined;
    }
    switch (input.kind) {
      case 'put':
        return output.kind === 'put' && output.rev > below(state) ? { value: input.value, rev: output.rev } : undefined;
      case 'cas':
        if (output.kind !== 'cas') return undefined;
        if (output.ok) return pin(state, input.prev) && output.rev > input.prev ? { value: input.value, rev: output.rev } : undefined;
        return output.current !== input.prev ? pin(state, output.current) : undefined;
      case 'del':
        if (output.kind !== 'del') return undefined;
        if (output.deleted === 1) return state.value !== null ? { value: null, rev: 0 } : undefined;
        return output.deleted === 0 && state.value === null ? state : undefined;
      case 'get':
        return output.kind === 'get' && output.value === state.value ? pin(state, output.rev) : undefined;
    }
  },
  key: (s) => `${s.rev}:${s.floor ?? ''}:${s.value ?? ''}`,
};

/** Partitions the history by key and checks each key's history against the register model. */
export function checkKvHistory(history: KvOperation[]): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const o of history) {
    let h = byKey.get(o.input.key);
    if (!h) byKey.set(o.input.key, (h = []));
    h.push(o);
  }
  for (const [key, h] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const res = checkLinearizable(h, kvRegisterModel, 2_000_000);
    if (!res.ok) return { ok: false, reason: `key ${key} (${h.length} operations): ${res.reason}` };
  }
  return { ok: true };
}

// ---- (b) mutex safety ----

/** A client believed it held `lock` with `token` from command position `grantedAt` on. */
export interface Hold {
  lock: string;
  session: string;
  token: number;
  grantedAt: number;
}

/**
 * Each hold ends at the first command after its grant in `log` (position p is log[p - 1]) that
 * ends it whatever the state machine says: a release or cancel of that lock by that session, a
 * close of the session, or a close of every session of the session's node. Per lock, holds
 * ordered by grant must not overlap (the next grant at or after the previous end) and their
 * tokens must strictly increase; one token, one hold.
 */
/** Where each hold ends in `log` (Infinity: still held): the first later release/cancel of the lock by the session, close of the session, or close of its node's sessions. */
export function holdEnds(holds: readonly Hold[], log: readonly unknown[]): number[] {
  const nodeOf = new Map<string, string>();
  const endersOf = new Map<string, number[]>(); // session -> positions of commands that may end its holds
  const byNode = new Map<string, number[]>();
  log.forEach((cmd, i) => {
    const c = cmd as Record<string, unknown>;
    if (typeof c !== 'object' || c === null) return;
    const push = (m: Map<string, number[]>, k: string): void => {
      let l = m.get(k);
      if (!l) m.set(k, (l = []));
      l.push(i + 1);
    };
    if (c.op === 'session-open' && typeof c.id === 'string' && !nodeOf.has(c.id)) nodeOf.set(c.id, String(c.node));
    if ((c.op === 'lock-release' || c.op === 'lock-cancel' || c.op === 'session-close') && typeof (c.session ?? c.id) === 'string')
      push(endersOf, String(c.session ?? c.id));
    if (c.op === 'sessions-of-node-close' && typeof c.node === 'string') push(byNode, c.node);
  });
  const endOf = (h: Hold): number => {
    let end = Infinity;
    for (const p of endersOf.get(h.session) ?? []) {
      if (p <= h.grantedAt || p >= end) continue;
      const c = log[p - 1] as Record<string, unknown>;
      if (c.op === 'session-close' || c.name === h.lock) end = p;
    }
    const node = nodeOf.get(h.session);
    for (const p of node !== undefined ? (byNode.get(node) ?? []) : []) if (p > h.grantedAt && p < end) end = p;
    return end;
  };
  return holds.map(endOf);
}
export function checkMutex(holds: readonly Hold[], log: readonly unknown[]): CheckResult {
  const ends = holdEnds(holds, log);
  const endOf = new Map(holds.map((h, i) => [h, ends[i]!]));
  const byLock = new Map<string, Map<number, Hold>>();
  for (const h of holds) {
    let m = byLock.get(h.lock);
    if (!m) byLock.set(h.lock, (m = new Map()));
    const seen = m.get(h.token);
    if (seen && (seen.session !== h.session || seen.grantedAt !== h.grantedAt)) {
      return { ok: false, reason: `${h.lock}: token ${h.token} held by ${seen.session} from ${seen.grantedAt} and by ${h.session} from ${h.grantedAt}` };
    }
    m.set(h.token, h);
  }
  for (const [lock, m] of byLock) {
    const sorted = [...m.values()].sort((a, b) => a.grantedAt - b.grantedAt || a.token - b.token);
    let prev: (Hold & { end: number }) | undefined;
    for (const h of sorted) {
      const end = endOf.get(h)!;
      if (prev) {
        if (h.token <= prev.token)
          return { ok: false, reason: `${lock}: token ${h.token} granted at ${h.grantedAt} after token ${prev.token} granted at ${prev.grantedAt}` };
        if (h.grantedAt < prev.end) {
          return {
            ok: false,
            reason: `${lock}: ${h.session} (token ${h.token}) holds from ${h.grantedAt} while ${prev.session} (token ${prev.token}) holds from ${prev.grantedAt} to ${prev.end}`,
          };
        }
      }
      prev = { ...h, end };
    }
  }
  return { ok: true };
}

// ---- the simulation ----

export interface SystemSimOptions {
  size: number;
  /** Simulated ms of faults (default 3000). */
  chaosMs?: number;
  kvClients?: number;
  lockClients?: number;
  /**
   * A deliberate bug, for tests that show the checks catch it: 'local-reads' answers gets from a
   * random live node's state at once (no ReadIndex); 'queued-is-granted' makes lock clients take
   * a queued answer for a grant.
   */
  bug?: 'local-reads' | 'queued-is-granted';
}

export interface SystemSimResult {
  cluster: RaftCluster;
  /** Commands in the agreed log. */
  commands: number;
  kvOps: number;
  reads: number;
  holds: number;
  /** Sessions closed as 'expired' / by sessions-of-node-close (in the log). */
  expired: number;
  nodeCloses: number;
  /** Holds that ended by the session closing rather than a release. */
  holdsLost: number;
  restores: number;
}

const CONVERGE_MS = 30_000;
const CHECKPOINT_EVERY = 16;
/** Watch history kept by the replicas (the simulation only reads the events of the command just applied). */
const SYS_OPTIONS = { historyLimit: 64 };
const OP_TIMEOUT_MS = 400;
const LOCKS = ['L0', 'L1'];
const LOCK_CLIENTS = 4;
const KEYS = ['k0', 'k1', 'k2'];

interface Replica {
  sys: SystemState;
  /** Commands applied. */
  count: number;
  generation: number;
}

interface Lease {
  term: number;
  generation: number;
  deadlines: Map<string, number>;
  proposed: Map<string, number>;
}

type Pending = { node: string; generation: number; done: (res: SystemResult, position: number) => void };

export function runSystemSim(seed: number, opts: SystemSimOptions): SystemSimResult {
  const chaosMs = opts.chaosMs ?? 3000;
  const c = chaosCluster(seed, opts.size, 0x5bd1e995);
  const r = c.random;
  const pick = <T>(xs: readonly T[]): T | undefined => (xs.length === 0 ? undefined : xs[Math.floor(r() * xs.length)]);
  const later = (fn: () => void, ms: number): void => void c.clock.setTimeout(fn, ms);
  let lt = 0; // logical time of client observations
  let nextCmd = 0;
  const cmdOf = new Map<string, unknown>();

  // ---- the replicated state machine, following each node's list of command ids ----
  const seq: string[] = [];
  const resultsAt: string[] = [];
  const checkpoints = new Map<number, Uint8Array>();
  const replicas = new Map<string, Replica>();
  /** key -> its changes in command order (0-based position, value or null when deleted, modRevision) */
  const changes = new Map<string, { pos: number; value: string | null; rev: number }[]>();
  const pending = new Map<string, Pending>();
  const grantWatch = new Map<string, (lock: string, token: number, position: number, node: string, generation: number) => void>();
  let restores = 0;

  const rebuild = (node: SimRaftNode): Replica => {
    let best = 0;
    for (const k of checkpoints.keys()) if (k <= node.values.length && k > best) best = k;
    const sys = best > 0 ? SystemState.restore(checkpoints.get(best)!, SYS_OPTIONS) : new SystemState(SYS_OPTIONS);
    if (best > 0) restores++;
    const rep = { sys, count: best, generation: node.generation };
    replicas.set(node.id, rep);
    return rep;
  };

  const sync = (node: SimRaftNode): void => {
    if (!node.raft) return;
    let rep = replicas.get(node.id);
    if (!rep || rep.generation !== node.generation) rep = rebuild(node);
    if (rep.count > node.values.length) throw new Error(`${node.id}: applied list shrank from ${rep.count} to ${node.values.length} without a restart`);
    while (rep.count < node.values.length) {
      const p = rep.count;
      const cid = node.values[p]!;
      if (seq.length > p && seq[p] !== cid)
        throw new Error(`State Machine Safety: ${node.id} applies ${cid} as command ${p + 1}, another replica applied ${seq[p]}`);
      const revBefore = rep.sys.revision;
      const res = rep.sys.apply(cmdOf.get(cid), p + 1);
      const resJson = JSON.stringify(res);
      if (seq.length === p) {
        seq.push(cid);
        resultsAt.push(resJson);
        if (rep.sys.revision !== revBefore) {
          const ev = rep.sys.eventsSince(revBefore);
          if (ev.compacted) throw new Error('history too short for the simulation');
          for (const e of ev.events) {
            let l = changes.get(e.key);
            if (!l) changes.set(e.key, (l = []));
            l.push({ pos: p, value: e.type === 'put' ? e.value! : null, rev: e.type === 'put' ? e.modRevision : 0 });
          }
        }
      } else if (resultsAt[p] !== resJson) {
        throw new Error(`${node.id}: command ${p + 1} (${cid}) gave ${resJson}, another replica ${resultsAt[p]}`);
      }
      rep.count++;
      if (rep.count % CHECKPOINT_EVERY === 0) {
        const bytes = rep.sys.snapshot();
        const seen = checkpoints.get(rep.count);
        if (!seen) checkpoints.set(rep.count, bytes);
        else if (!Buffer.from(seen).equals(Buffer.from(bytes)))
          throw new Error(`${node.id}: snapshot after command ${rep.count} differs from another replica's`);
      }
      const w = pending.get(cid);
      if (w && w.node === node.id && w.generation === node.generation) {
        pending.delete(cid);
        later(() => w.done(res, p + 1), 0);
      }
      if (res.ok) {
        for (const g of res.grants) {
          const watch = grantWatch.get(g.session);
          const gen = node.generation;
          if (watch) later(() => watch(g.lock, g.token, p + 1, node.id, gen), 0);
        }
      }
    }
  };

  /** The key after the first `len` commands. */
  const kvAt = (key: string, len: number): { value: string | null; rev: number } => {
    if (len > seq.length) throw new Error(`a read saw ${len} commands, only ${seq.length} known`);
    let out = { value: null as string | null, rev: 0 };
    for (const ch of changes.get(key) ?? []) {
      if (ch.pos >= len) break;
      out = { value: ch.value, rev: ch.rev };
    }
    return out;
  };

  // ---- clients' plumbing ----
  const kvHistory: KvOperation[] = [];
  const kvCmd = new Map<KvOperation, string>();
  const reads: { list: { ret: number; output: unknown }; op: KvOperation; done: () => void }[] = [];
  let clientsOn = true;

  /** Proposes through the current leader; `done` runs when that node applies it (unless it restarts first). */
  const propose = (cmd: unknown, done: (res: SystemResult, position: number) => void): string | undefined => {
    const L = c.leader();
    if (!L?.raft) return undefined;
    const cid = `c${++nextCmd}`;
    cmdOf.set(cid, cmd);
    const res = L.raft.propose({ value: cid, cmd });
    if (!('index' in res)) return undefined;
    pending.set(cid, { node: L.id, generation: L.generation, done });
    c.poke(L);
    return cid;
  };

  const afterEvent = (): void => {
    for (const n of c.nodes.values()) sync(n);
    for (let i = reads.length - 1; i >= 0; i--) {
      const rd = reads[i]!;
      if (!Number.isFinite(rd.list.ret)) continue;
      reads.splice(i, 1);
      const len = (rd.list.output as { len: number }).len;
      const at = kvAt(rd.op.input.key, len);
      rd.op.output = { kind: 'get', value: at.value, rev: at.rev };
      rd.op.ret = ++lt;
      later(rd.done, 0);
    }
  };
  const baseSetTimeout = c.clock.setTimeout.bind(c.clock);
  c.clock.setTimeout = (fn, ms) =>
    baseSetTimeout(() => {
      fn();
      afterEvent();
    }, ms);

  // ---- KV clients ----
  const known = new Map<string, number>();
  let kvOps = 0;
  let nReads = 0;
  const kvClient = (ci: number): void => {
    if (!clientsOn) return;
    let settled = false;
    const next = (): void => {
      if (settled) return;
      settled = true;
      later(() => kvClient(ci), 2 + Math.floor(r() * 30));
    };
    const key = pick(KEYS)!;
    const x = r();
    if (x < 0.35 && opts.bug === 'local-reads') {
      const n = pick(c.live());
      const e = n ? replicas.get(n.id)?.sys.kvGet(key) : undefined;
      if (n) {
        const call = ++lt;
        kvHistory.push({ input: { kind: 'get', key }, output: { kind: 'get', value: e?.value ?? null, rev: e?.modRevision ?? 0 }, call, ret: ++lt });
        nReads++;
      }
      return void later(() => kvClient(ci), 2 + Math.floor(r() * 30));
    }
    if (x < 0.35) {
      const L = c.leader();
      const call = ++lt;
      if (!L || !c.read(L)) return void later(() => kvClient(ci), 20);
      const op: KvOperation = { input: { kind: 'get', key }, output: undefined, call, ret: Infinity };
      kvHistory.push(op);
      nReads++;
      const list = c.history[c.history.length - 1]!;
      reads.push({
        list,
        op,
        done: () => {
          const o = op.output as { rev: number } | undefined;
          if (o) known.set(key, o.rev);
          next();
        },
      });
      later(() => {
        const i = reads.findIndex((rd) => rd.op === op);
        if (i >= 0) reads.splice(i, 1);
        next();
      }, OP_TIMEOUT_MS);
      return;
    }
    const value = `${key}=${ci}.${++kvOps}`;
    let input: KvInput;
    let cmd: Record<string, unknown>;
    if (x < 0.65) {
      input = { kind: 'put', key, value };
      cmd = { op: 'kv-put', key, value };
    } else if (x < 0.9) {
      const prev = r() < 0.2 ? 0 : (known.get(key) ?? 0);
      input = { kind: 'cas', key, prev, value };
      cmd = { op: 'kv-put', key, value, prevRevision: prev };
    } else {
      input = { kind: 'del', key };
      cmd = { op: 'kv-delete', key };
    }
    const op: KvOperation = { input, output: undefined, call: ++lt, ret: Infinity };
    const cid = propose(cmd, (res) => {
      op.output = kvOutput(input, res);
      op.ret = ++lt;
      if (res.ok && res.revision !== undefined && input.kind !== 'del') known.set(key, res.revision);
      if (!res.ok && res.current !== undefined) known.set(key, res.current);
      next();
    });
    if (cid === undefined) return void later(() => kvClient(ci), 20);
    kvHistory.push(op);
    kvCmd.set(op, cid);
    later(() => {
      pending.delete(cid);
      next();
    }, OP_TIMEOUT_MS);
  };

  // ---- lock clients ----
  const holds: Hold[] = [];
  interface LockClient {
    i: number;
    session: string | undefined;
    lock: string;
    phase: 'idle' | 'opening' | 'acquiring' | 'holding' | 'releasing';
    stalledUntil: number;
    attempt: number;
    via: { node: string; generation: number } | undefined;
    sessions: number;
  }
  const lockClients: LockClient[] = [];
  const ttlOf = new Map<string, number>();

  const step = (lc: LockClient, ms: number): void => {
    const attempt = ++lc.attempt;
    later(() => {
      if (lc.attempt === attempt) lockStep(lc);
    }, ms);
  };
  const granted = (lc: LockClient, lock: string, token: number, position: number): void => {
    if (lc.phase !== 'acquiring' || lock !== lc.lock || lc.session === undefined) return;
    holds.push({ lock, session: lc.session, token, grantedAt: position });
    lc.phase = 'holding';
    const session = lc.session;
    propose({ op: 'kv-put', key: `owner/${lock}`, value: `${session}:${token}`, session }, () => {});
    let holdMs = 20 + Math.floor(r() * 250);
    if (r() < 0.2) {
      // a pause long enough for the session to expire while the client thinks it holds the lock
      const stall = ttlOf.get(session)! + 200 + Math.floor(r() * 1200);
      lc.stalledUntil = c.clock.monotonic() + stall;
      holdMs = stall + 50;
    }
    step(lc, holdMs);
  };
  const lockStep = (lc: LockClient): void => {
    if (!clientsOn) return;
    if (lc.session === undefined) {
      lc.phase = 'opening';
      const id = `s${lc.i}x${++lc.sessions}`;
      const ttlMs = 1000 + Math.floor(r() * 800);
      ttlOf.set(id, ttlMs);
      const cid = propose({ op: 'session-open', id, node: pick(c.bootstrap)!, ttlMs }, (res) => {
        if (lc.phase !== 'opening') return;
        if (res.ok) {
          lc.session = id;
          grantWatch.set(id, (lock, token, position, node, generation) => {
            if (lc.session === id && lc.via?.node === node && lc.via.generation === generation) granted(lc, lock, token, position);
          });
          lc.phase = 'idle';
          step(lc, 1);
        }
      });
      step(lc, cid === undefined ? 20 : 500);
      return;
    }
    const session = lc.session;
    const lost = (res: SystemResult): boolean => {
      if (!res.ok && res.code === 'unknown_session' && lc.session === session) {
        lc.session = undefined;
        lc.phase = 'idle';
        step(lc, 5);
        return true;
      }
      return false;
    };
    if (lc.phase === 'idle' || lc.phase === 'opening') {
      lc.phase = 'acquiring';
      lc.lock = pick(LOCKS)!;
    }
    if (lc.phase === 'acquiring') {
      // (re)acquire: idempotent for a waiter or the holder, so it doubles as the retry after a lost answer or notification
      const L = c.leader();
      const lock = lc.lock;
      // the answer may come late, after the client gave up on this lock: granted() ignores it unless it still wants `lock`
      const cid = propose({ op: 'lock-acquire', name: lock, session, wait: true }, (res, position) => {
        if (lost(res)) return;
        if (res.ok && res.granted) granted(lc, lock, res.token!, res.since ?? position);
        else if (res.ok && opts.bug === 'queued-is-granted') granted(lc, lock, replicas.get(L!.id)?.sys.lock(lock)?.lastToken ?? 0, position);
      });
      if (cid !== undefined && L) lc.via = { node: L.id, generation: L.generation };
      step(lc, cid === undefined ? 20 : 300);
      return;
    }
    if (lc.phase === 'holding' || lc.phase === 'releasing') {
      lc.phase = 'releasing';
      const lock = lc.lock;
      const cid = propose({ op: 'lock-release', name: lock, session }, (res) => {
        if (lost(res) || lc.phase !== 'releasing' || lc.lock !== lock || lc.session !== session) return;
        // ok, or not_holder: the hold ended (released by an earlier attempt, or taken away)
        lc.phase = 'idle';
        if (r() < 0.25) {
          propose({ op: 'session-close', id: session, reason: 'closed' }, () => {});
          lc.session = undefined;
        }
        step(lc, 5 + Math.floor(r() * 80));
      });
      step(lc, cid === undefined ? 20 : OP_TIMEOUT_MS);
    }
  };
  const keepalive = (): void => {
    if (!clientsOn) return;
    const L = c.leader();
    const lease = L ? leases.get(L.id) : undefined;
    for (const lc of lockClients) {
      if (lc.session === undefined || c.clock.monotonic() < lc.stalledUntil || !lease) continue;
      if (lease.deadlines.has(lc.session)) lease.deadlines.set(lc.session, c.clock.monotonic() + ttlOf.get(lc.session)!);
    }
    later(keepalive, 100 + Math.floor(r() * 100));
  };

  // ---- the leader's session deadlines (memory only) ----
  const leases = new Map<string, Lease>();
  const crashedAt = new Map<string, number>();
  const nodeClosed = new Set<string>();
  const leaseKeeper = (): void => {
    const now = c.clock.monotonic();
    for (const n of c.live()) {
      if (n.raft!.state !== 'leader') {
        leases.delete(n.id);
        continue;
      }
      const sys = replicas.get(n.id)?.sys;
      if (!sys) continue;
      let lease = leases.get(n.id);
      if (!lease || lease.term !== n.raft!.term || lease.generation !== n.generation) {
        lease = { term: n.raft!.term, generation: n.generation, deadlines: new Map(), proposed: new Map() };
        leases.set(n.id, lease);
      }
      const open = sys.sessions();
      const openIds = new Set(open.map((s) => s.id));
      for (const id of [...lease.deadlines.keys()]) if (!openIds.has(id)) lease.deadlines.delete(id);
      for (const s of open) {
        const d = lease.deadlines.get(s.id);
        if (d === undefined) lease.deadlines.set(s.id, now + s.ttlMs);
        else if (d < now && (lease.proposed.get(s.id) ?? -Infinity) < now - 300) {
          lease.proposed.set(s.id, now);
          const cid = `c${++nextCmd}`;
          const cmd = { op: 'session-close', id: s.id, reason: 'expired' };
          cmdOf.set(cid, cmd);
          n.raft!.propose({ value: cid, cmd });
          c.poke(n);
        }
      }
      // membership declared a node dead: it is down for long
      for (const [id, since] of crashedAt) {
        if (now - since < 1500 || nodeClosed.has(`${id}@${since}`)) continue;
        nodeClosed.add(`${id}@${since}`);
        const cid = `c${++nextCmd}`;
        const cmd = { op: 'sessions-of-node-close', node: id };
        cmdOf.set(cid, cmd);
        n.raft!.propose({ value: cid, cmd });
        c.poke(n);
      }
    }
    later(leaseKeeper, 50);
  };

  // ---- faults ----
  let chaos = true;
  const fault = (): void => {
    if (!chaos) return;
    const x = r();
    const ids = c.bootstrap;
    if (x < 0.22) {
      const shuffled = ids.slice();
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const cut = 1 + Math.floor(r() * (shuffled.length - 1));
      c.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
    } else if (x < 0.4) {
      c.heal();
    } else if (x < 0.6) {
      const victim = pick(c.live());
      if (victim) {
        c.crash(victim.id, r() < 0.5);
        crashedAt.set(victim.id, c.clock.monotonic());
        later(
          () => {
            c.restart(victim.id);
            crashedAt.delete(victim.id);
          },
          50 + Math.floor(r() * (r() < 0.2 ? 2500 : 800)),
        );
      }
    } else if (x < 0.7) {
      const slow = pick(c.live());
      if (slow) {
        slow.diskDelayMs = 3 + Math.floor(r() * 30);
        later(() => (slow.diskDelayMs = 0), 100 + Math.floor(r() * 800));
      }
    } else if (x < 0.8) {
      const L = c.leader();
      const to = L ? pick(L.raft!.voters().filter((v) => v !== L.id)) : undefined;
      if (L && to) {
        L.raft!.transferLeadership(to);
        c.poke(L);
      }
    } else {
      c.loss = r() < 0.5 ? 0 : r() * 0.15;
    }
    later(fault, 30 + Math.floor(r() * 250));
  };

  // ---- run ----
  for (let i = 0; i < (opts.kvClients ?? 3); i++) later(() => kvClient(i), 50 + i);
  for (let i = 0; i < (opts.lockClients ?? LOCK_CLIENTS); i++) {
    const lc: LockClient = { i, session: undefined, lock: LOCKS[0]!, phase: 'idle', stalledUntil: 0, attempt: 0, via: undefined, sessions: 0 };
    lockClients.push(lc);
    later(() => lockStep(lc), 60 + i);
  }
  later(keepalive, 100);
  later(leaseKeeper, 50);
  later(fault, 200 + Math.floor(r() * 300));
  c.run(chaosMs);

  chaos = false;
  c.heal();
  c.loss = 0;
  c.duplicate = 0;
  for (const n of c.nodes.values()) {
    n.diskDelayMs = 0;
    c.restart(n.id);
  }
  crashedAt.clear();
  c.run(300);
  clientsOn = false;
  const converged = (): boolean => {
    const L = c.leader();
    if (!L) return false;
    const raft = L.raft!;
    if (raft.commitIndex !== raft.lastIndex || raft.termAt(raft.commitIndex) !== raft.term) return false;
    return [...c.nodes.values()].every((n) => n.raft && n.queue.length === 0 && n.applied === raft.commitIndex);
  };
  if (!c.runUntil(converged, CONVERGE_MS)) throw new Error(`no convergence within ${CONVERGE_MS} ms after healing:\n${c.describe()}`);
  // let late answers and the expiry of the now idle sessions through, then settle again
  c.run(OP_TIMEOUT_MS + 100);
  if (!c.runUntil(converged, CONVERGE_MS)) throw new Error(`no convergence within ${CONVERGE_MS} ms after the clients stopped:\n${c.describe()}`);
  afterEvent();

  // ---- (c) identical replicas, equal to a replay from scratch ----
  const nodes = [...c.nodes.values()];
  const fresh = new SystemState(SYS_OPTIONS);
  seq.forEach((cid, p) => fresh.apply(cmdOf.get(cid), p + 1));
  const expected = Buffer.from(fresh.snapshot());
  for (const n of nodes) {
    const rep = replicas.get(n.id)!;
    if (rep.count !== seq.length) throw new Error(`${n.id} applied ${rep.count} of ${seq.length} commands after healing`);
    if (!Buffer.from(rep.sys.snapshot()).equals(expected)) throw new Error(`${n.id}'s final state differs from a replay of the log`);
  }

  // ---- (a) KV linearizability: writes that never returned took effect as the log says, or never ----
  const position = new Map(seq.map((cid, p) => [cid, p]));
  const history: KvOperation[] = [];
  for (const op of kvHistory) {
    if (op.input.kind === 'get') {
      if (op.output !== undefined) history.push(op);
      continue;
    }
    const p = position.get(kvCmd.get(op)!);
    if (p === undefined) {
      if (Number.isFinite(op.ret)) throw new Error(`acknowledged ${op.input.kind} of ${op.input.key} is not in the log`);
      continue;
    }
    const output = kvOutput(op.input, JSON.parse(resultsAt[p]!) as SystemResult);
    if (op.output !== undefined && JSON.stringify(op.output) !== JSON.stringify(output))
      throw new Error(`a client got ${JSON.stringify(op.output)}, the log says ${JSON.stringify(output)}`);
    history.push({ ...op, output });
  }
  // a final read of every key, after everything
  for (const key of KEYS) {
    const e = fresh.kvGet(key);
    const call = ++lt;
    history.push({ input: { kind: 'get', key }, output: { kind: 'get', value: e?.value ?? null, rev: e?.modRevision ?? 0 }, call, ret: ++lt });
  }
  const lin = checkKvHistory(history);
  if (!lin.ok) throw new Error(`KV history of ${history.length} operations is not linearizable: ${lin.reason}`);

  // ---- (b) mutex safety, and tokens of every grant in the log increasing per lock ----
  const log = seq.map((cid) => cmdOf.get(cid));
  const mutex = checkMutex(holds, log);
  if (!mutex.ok) throw new Error(`mutex safety: ${mutex.reason}`);
  const lastToken = new Map<string, number>();
  let expired = 0;
  let nodeCloses = 0;
  resultsAt.forEach((json, p) => {
    const res = JSON.parse(json) as SystemResult;
    const cmd = log[p] as { op: string; reason?: string };
    if (cmd.op === 'session-close' && cmd.reason === 'expired' && res.ok) expired++;
    if (cmd.op === 'sessions-of-node-close' && res.ok && (res.closed?.length ?? 0) > 0) nodeCloses++;
    if (!res.ok) return;
    for (const g of res.grants) {
      if (g.token <= (lastToken.get(g.lock) ?? 0)) throw new Error(`${g.lock}: token ${g.token} granted at ${p + 1} after token ${lastToken.get(g.lock)}`);
      lastToken.set(g.lock, g.token);
    }
  });
  const ends = holdEnds(holds, log);
  const holdsLost = ends.filter((e) => Number.isFinite(e) && (log[e - 1] as { op: string }).op.startsWith('session')).length;

  return { cluster: c, commands: seq.length, kvOps: history.length, reads: nReads, holds: holds.length, expired, nodeCloses, holdsLost, restores };
}

function kvOutput(input: KvInput, res: SystemResult): KvOutput {
  switch (input.kind) {
    case 'put':
      if (!res.ok) throw new Error(`put failed: ${res.code}`);
      return { kind: 'put', rev: res.revision! };
    case 'cas':
      if (res.ok) return { kind: 'cas', ok: true, rev: res.revision! };
      if (res.code !== 'revision_mismatch') throw new Error(`cas failed: ${res.code}`);
      return { kind: 'cas', ok: false, current: res.current! };
    case 'del':
      if (!res.ok) throw new Error(`delete failed: ${res.code}`);
      return { kind: 'del', deleted: res.deleted! };
    case 'get':
      throw new Error('a get is not a command');
  }
}
