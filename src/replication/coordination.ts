/**
 * Sessions, the cluster mutex and the key/value container, on the system
 * group. The state lives in SystemState (replicated, deterministic); what is
 * about time lives on the system leader only: session deadlines (reset to a
 * full TTL whenever leadership moves, so a session never expires early; only
 * its TTL ends it, not a membership verdict) and the clients waiting for a
 * lock or for watch events.
 */
import type { Clock, TimerHandle } from '../core/clock';
import { GandalfError, type ErrorCode } from '../core/errors';
import type { Logger } from '../core/logger';
import type { Entry } from './raft';
import type { Replicator, SystemLeader } from './replicator';
import type { KvEntry, KvEvent, LockGrant, LockInfo, SessionInfo, SystemResult } from './system-state';
import type { SystemStateMachine } from './system-machine';

export const DEFAULT_SESSION_TTL_MS = 10_000;
export const MIN_SESSION_TTL_MS = 1_000;
export const MAX_SESSION_TTL_MS = 3_600_000;
const SWEEP_MS = 250;
/** Longest wait of one watch poll; the stream polls again. */
export const WATCH_POLL_MS = 15_000;

/** What coordination uses of the replicator. */
export type CoordinationReplicator = Pick<
  Replicator,
  | 'systemPropose'
  | 'systemProposeAsLeader'
  | 'systemCall'
  | 'systemRead'
  | 'registerSystemQuery'
  | 'registerSystemCall'
  | 'systemLeaderMachine'
  | 'systemLeaderTerm'
>;

export interface CoordinationOptions {
  self: string;
  replicator: CoordinationReplicator;
  clock: Clock;
  logger: Logger;
  random32: () => number;
  timeoutMs: number;
}

type Waiter = { resolve: (token: number) => void; timer: TimerHandle };

function fail(result: SystemResult): never {
  const r = result as { code?: string; message?: string };
  const code = (r.code ?? 'internal') as ErrorCode;
  throw new GandalfError(code === ('invalid_command' as ErrorCode) ? 'invalid_request' : code, r.message ?? code);
}

function stateOf(leader: SystemLeader) {
  return (leader.machine as SystemStateMachine).state;
}

export class Coordination {
  /** System leader only: session id -> monotonic deadline. */
  private readonly deadlines = new Map<string, number>();
  /** The system group's term in which this node leads and keeps `deadlines` (undefined: not the leader). */
  private leaderTerm: number | undefined;
  private readonly lockWaiters = new Map<string, Waiter>();
  private readonly changeWaiters = new Set<() => void>();
  private sweepTimer: TimerHandle | undefined;
  private sweeping = false;
  private closed = false;

  /** Clients of this node waiting for a lock now. */
  get waitingForLocks(): number {
    return this.lockWaiters.size;
  }

  constructor(private readonly options: CoordinationOptions) {
    const r = options.replicator;
    r.registerSystemQuery('lock', (m, a) => (m as SystemStateMachine).state.lock(String(a.name)) ?? { name: String(a.name), waiters: [], lastToken: 0 });
    r.registerSystemQuery('lock-list', (m) => (m as SystemStateMachine).state.lockList());
    r.registerSystemQuery('last-token', (m) => (m as SystemStateMachine).state.lastTokenIssued());
    r.registerSystemQuery('session', (m, a) => (m as SystemStateMachine).state.session(String(a.id)) ?? null);
    r.registerSystemQuery('kv-get', (m, a) => (m as SystemStateMachine).state.kvGet(String(a.key)) ?? null);
    r.registerSystemQuery('kv-list', (m, a) => ({
      kvs: (m as SystemStateMachine).state.kvList(String(a.prefix)),
      revision: (m as SystemStateMachine).state.revision,
    }));
    r.registerSystemCall('session-keepalive', async (leader, a, timeoutMs) => {
      // A deposed leader that has not noticed yet must not extend a lease: the new leader started every session's TTL
      // when it took over, and would end this one before the client's lease. A quorum confirms this leader first (ReadIndex),
      // so any newer leader took over after the client sent this keepalive (found by the nemesis: two holders for 64 ms).
      await leader.readBarrier(timeoutMs);
      const s = stateOf(leader).session(String(a.id));
      if (!s) throw new GandalfError('unknown_session', `session ${String(a.id)} does not exist (expired or closed)`);
      // Past its deadline the session is over here, though its close may not be committed yet (the sweep proposes it,
      // and a slow commit lands after this answer): a keepalive now would promise a lease the close then breaks.
      this.followTerm();
      const deadline = this.deadlines.get(s.id);
      if (deadline !== undefined && deadline <= this.options.clock.monotonic()) {
        throw new GandalfError('unknown_session', `session ${s.id} expired (its TTL of ${s.ttlMs} ms passed without a keepalive); open a new one`);
      }
      // a system group merging into another lets its sessions run out (system-merge.ts): no lease outlives it
      const merge = leader.machine.mergeState();
      if (merge.into !== undefined) {
        throw new GandalfError('merging', `this system group is merging into ${merge.into}: sessions end by their TTL; open a new one once it is done`);
      }
      this.deadlines.set(s.id, this.options.clock.monotonic() + s.ttlMs);
      return { session: s.id, ttl_ms: s.ttlMs };
    });
    r.registerSystemCall('lock-acquire', (leader, a, timeoutMs) =>
      this.acquireOnLeader(leader, String(a.name), String(a.session), Number(a.waitMs), timeoutMs),
    );
    r.registerSystemCall('kv-events', (leader, a) => this.eventsOnLeader(leader, a));
  }

  start(): void {
    this.scheduleSweep();
  }

  get stopped(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    if (this.sweepTimer) this.options.clock.clearTimeout(this.sweepTimer);
    for (const w of this.lockWaiters.values()) this.options.clock.clearTimeout(w.timer);
    this.lockWaiters.clear();
    for (const wake of this.changeWaiters) wake();
  }

  /** Wired to the replicator's onSystemApplied: wakes lock waiters and watchers. */
  onSystemApplied(_entry: Entry, result: unknown): void {
    const grants = (result as { grants?: LockGrant[] } | undefined)?.grants;
    for (const g of grants ?? []) {
      const key = `${g.lock}\0${g.session}`;
      const w = this.lockWaiters.get(key);
      if (!w) continue;
      this.lockWaiters.delete(key);
      this.options.clock.clearTimeout(w.timer);
      w.resolve(g.token);
    }
    for (const wake of [...this.changeWaiters]) wake();
  }

  // ---- sessions ----

  async openSession(ttlMs = DEFAULT_SESSION_TTL_MS): Promise<{ session: string; ttl_ms: number }> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_SESSION_TTL_MS || ttlMs > MAX_SESSION_TTL_MS) {
      throw new GandalfError('invalid_request', `session ttl must be from ${MIN_SESSION_TTL_MS} ms to ${MAX_SESSION_TTL_MS} ms`);
    }
    const r32 = this.options.random32;
    const id = [r32(), r32(), r32()].map((n) => (n >>> 0).toString(16).padStart(8, '0')).join('');
    const result = await this.options.replicator.systemPropose<SystemResult>({ op: 'session-open', id, node: this.options.self, ttlMs });
    if (!result.ok) fail(result);
    return { session: id, ttl_ms: ttlMs };
  }

  keepAlive(session: string): Promise<{ session: string; ttl_ms: number }> {
    return this.options.replicator.systemCall('session-keepalive', { id: session }, this.options.timeoutMs, true);
  }

  async closeSession(session: string): Promise<void> {
    const result = await this.options.replicator.systemPropose<SystemResult>({ op: 'session-close', id: session, reason: 'closed' });
    if (!result.ok) fail(result);
  }

  session(id: string, level: 'none' | 'weak' | 'strong' = 'weak'): Promise<SessionInfo | null> {
    return this.options.replicator.systemRead('session', { id }, level);
  }

  // ---- locks ----

  /** Acquires `name` for `session`, waiting up to `waitMs` (0: try once). Resolves with the fencing token. */
  async acquire(name: string, session: string, waitMs: number): Promise<number> {
    return this.options.replicator.systemCall<number>('lock-acquire', { name, session, waitMs }, waitMs + this.options.timeoutMs);
  }

  /** `token`: only the hold with this fencing token (a release that arrives late never ends a later hold of the session). */
  async release(name: string, session: string, token?: number): Promise<void> {
    const result = await this.options.replicator.systemPropose<SystemResult>({ op: 'lock-release', name, session, ...(token !== undefined ? { token } : {}) });
    if (!result.ok) fail(result);
  }

  lock(name: string, level: 'none' | 'weak' | 'strong' = 'weak'): Promise<LockInfo> {
    return this.options.replicator.systemRead('lock', { name }, level);
  }

  private async acquireOnLeader(leader: SystemLeader, name: string, session: string, waitMs: number, timeoutMs: number): Promise<number> {
    if (!Number.isSafeInteger(waitMs) || waitMs < 0) throw new GandalfError('invalid_request', 'timeout must be a non-negative number of milliseconds');
    const key = `${name}\0${session}`;
    // Register before proposing: the grant may be applied before propose() resolves.
    let granted: ((token: number) => void) | undefined;
    const grant = new Promise<number>((resolve) => (granted = resolve));
    const result = (await leader.propose({ op: 'lock-acquire', name, session, wait: waitMs > 0 }, timeoutMs)) as SystemResult & {
      granted?: boolean;
      token?: number;
    };
    if (!result.ok) fail(result);
    if (result.granted) return result.token!;
    const attempt = result.attempt;
    const current = stateOf(leader).lock(name);
    if (current?.holder?.session === session) return current.holder.token;
    const timer = this.options.clock.setTimeout(() => {
      this.lockWaiters.delete(key);
      granted!(-1);
    }, waitMs);
    timer.unref?.();
    this.lockWaiters.set(key, { resolve: (t) => granted!(t), timer });
    const token = await grant;
    if (token >= 0) return token;
    // Timed out: leave the queue (through whoever leads now). If the grant raced the timeout, the cancel releases it again.
    // It names this attempt: a cancel committed late (its proposal timed out, the client asked again
    // meanwhile and got the lock) must not take the later attempt's lock away.
    await this.options.replicator
      .systemPropose({ op: 'lock-cancel', name, session, ...(attempt !== undefined ? { attempt } : {}) }, timeoutMs)
      .catch((err: unknown) =>
        this.options.logger.warn('could not leave a lock queue; the session stays queued until it ends', { lock: name, session, err: err as Error }),
      );
    throw new GandalfError('lock_timeout', `lock ${name} is held by another session; not acquired within ${waitMs} ms`);
  }

  // ---- key/value ----

  get(key: string, level: 'none' | 'weak' | 'strong' = 'weak'): Promise<KvEntry | null> {
    return this.options.replicator.systemRead('kv-get', { key }, level);
  }

  /** The last fencing token handed out, by any lock. */
  lastToken(level: 'none' | 'weak' | 'strong' = 'weak'): Promise<number> {
    return this.options.replicator.systemRead('last-token', {}, level);
  }

  /** Fencing tokens continue above `token` (restoring a backup); resolves with the last token now. */
  async tokensAtLeast(token: number): Promise<number> {
    const r = await this.options.replicator.systemPropose<SystemResult>({ op: 'tokens-at-least', token });
    if (!r.ok) throw new GandalfError('invalid_request', r.message);
    return this.lastToken('strong');
  }

  /** Every lock held or waited for. */
  locks(level: 'none' | 'weak' | 'strong' = 'weak'): Promise<LockInfo[]> {
    return this.options.replicator.systemRead('lock-list', {}, level);
  }

  list(prefix: string, level: 'none' | 'weak' | 'strong' = 'weak'): Promise<{ kvs: KvEntry[]; revision: number }> {
    return this.options.replicator.systemRead('kv-list', { prefix }, level);
  }

  async put(key: string, value: string, options: { session?: string; prevRevision?: number } = {}): Promise<SystemResult> {
    const command: Record<string, unknown> = { op: 'kv-put', key, value };
    if (options.session !== undefined) command.session = options.session;
    if (options.prevRevision !== undefined) command.prevRevision = options.prevRevision;
    const result = await this.options.replicator.systemPropose<SystemResult>(command);
    if (!result.ok) fail(result);
    return result;
  }

  async delete(key: string, options: { prefix?: boolean; prevRevision?: number } = {}): Promise<SystemResult> {
    const command: Record<string, unknown> = { op: 'kv-delete', key };
    if (options.prefix) command.prefix = true;
    if (options.prevRevision !== undefined) command.prevRevision = options.prevRevision;
    const result = await this.options.replicator.systemPropose<SystemResult>(command);
    if (!result.ok) fail(result);
    return result;
  }

  /** Events after `from` for a key or prefix; waits up to `waitMs` for the first one. */
  events(from: number, filter: { key: string; prefix: boolean }, waitMs: number): Promise<{ events: KvEvent[]; revision: number }> {
    return this.options.replicator.systemCall('kv-events', { from, ...filter, waitMs }, waitMs + this.options.timeoutMs, true);
  }

  private async eventsOnLeader(leader: SystemLeader, a: Record<string, unknown>): Promise<{ events: KvEvent[]; revision: number }> {
    const from = Number(a.from);
    const waitMs = Math.min(Number(a.waitMs) || 0, WATCH_POLL_MS);
    if (!Number.isSafeInteger(from) || from < 0) throw new GandalfError('invalid_request', 'the start revision must be a non-negative integer');
    const filter = { key: String(a.key ?? ''), prefix: a.prefix === true };
    const deadline = this.options.clock.monotonic() + waitMs;
    for (;;) {
      const state = stateOf(leader);
      const got = state.eventsSince(from, filter);
      if (got.compacted) {
        throw new GandalfError(
          'compacted',
          `revision ${from} is older than the retained history (oldest ${got.oldest}); read the current value and watch from its revision`,
        );
      }
      const remaining = deadline - this.options.clock.monotonic();
      if (got.events.length > 0 || remaining <= 0 || this.closed || !leader.isLeader()) return { events: got.events, revision: state.revision };
      await new Promise<void>((resolve) => {
        const done = () => {
          this.changeWaiters.delete(done);
          this.options.clock.clearTimeout(timer);
          resolve();
        };
        const timer = this.options.clock.setTimeout(done, remaining);
        timer.unref?.();
        this.changeWaiters.add(done);
      });
    }
  }

  // ---- the leader's clock: session expiry ----

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = this.options.clock.setTimeout(() => void this.sweep().finally(() => this.scheduleSweep()), SWEEP_MS);
    this.sweepTimer.unref?.();
  }

  /** Leadership moved here (or away): nobody's keepalives reached this leader yet, every session gets a full TTL. */
  private followTerm(): void {
    const term = this.options.replicator.systemLeaderTerm();
    if (term === this.leaderTerm) return;
    this.deadlines.clear();
    this.leaderTerm = term;
  }

  private async sweep(): Promise<void> {
    this.followTerm();
    const term = this.leaderTerm;
    // Not the leader, or a leader not ready this moment (applying what it committed, checking
    // its quorum): the deadlines stay, or a busy leader would give every session a new TTL.
    const machine = this.options.replicator.systemLeaderMachine() as SystemStateMachine | undefined;
    if (!machine || term === undefined || this.sweeping) return;
    this.sweeping = true;
    try {
      // Only the TTL ends a session, never a membership verdict: a board that the others call
      // dead may be cut off, not gone, and its clients may still rely on their lease (a
      // keepalive confirmed less than a TTL ago) while they hold a lock.
      for (const s of machine.state.sessions()) {
        // These deadlines are this term's: once leadership moved (and maybe came back) while a close
        // was being committed, they say nothing (the nemesis saw a leader resumed from SIGSTOP end
        // sessions another leader had kept alive meanwhile, their closes forwarded to the new leader).
        if (this.options.replicator.systemLeaderTerm() !== term) break;
        const now = this.options.clock.monotonic();
        if (!this.deadlines.has(s.id)) this.deadlines.set(s.id, now + s.ttlMs);
        if (this.deadlines.get(s.id)! <= now) {
          this.options.logger.info('session expired', { session: s.id, node: s.node, ttlMs: s.ttlMs });
          // Proposed here in this term only, never forwarded. A close that failed is tried again at the next sweep (the deadline stays).
          await this.options.replicator
            .systemProposeAsLeader(term, { op: 'session-close', id: s.id, reason: 'expired' }, this.options.timeoutMs)
            .catch(() => undefined);
        }
      }
      const live = new Set(machine.state.sessions().map((s) => s.id));
      for (const id of this.deadlines.keys()) if (!live.has(id)) this.deadlines.delete(id);
    } finally {
      this.sweeping = false;
    }
  }
}
