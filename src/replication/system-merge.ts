/**
 * Two system groups that met under one cluster name become one (split-watch.ts
 * finds them). The group with the higher identity gives itself up into the
 * lowest one in sight; its leader drives it, one step per maintenance pass,
 * from replicated state so a new leader carries on:
 *
 * 1. Both sides' databases and keys are compared (the other side's read from
 *    its leader). A database name both hold, or a key both hold with other
 *    values, blocks the merge: the split stays contained (split-watch.ts) and
 *    `/status` names what collides, for the operator to resolve.
 * 2. `merge-begin` freezes this group: no new databases, placements,
 *    sessions, lock acquisitions or keys (`merging`), and keepalives are
 *    refused, so every session ends by its TTL. No lease outlives the group,
 *    so a lock never has two holders across the merge.
 * 3. With no session left, one `merge-import` on the other side takes every
 *    database record (the groups themselves stay where they run), every key
 *    and the fencing-token counter, or nothing if something collides by then
 *    (`merge-abort` thaws this group; tried again after ABORT_BACKOFF_MS).
 * 4. `merge-done` closes this group; its boards drop their system replicas,
 *    advertise the other identity (SWIM meta `sysid`, and `merged` = the old
 *    one, so boards that missed the end follow), and are added to the other
 *    group by its placement like any new board.
 *
 * Database writes never stop: each database is its own group throughout.
 */
import type { Clock } from '../core/clock';
import type { Logger } from '../core/logger';
import type { MembershipView } from './membership-view';
import { isRedirect, RPC_TIMEOUT_MS, type ReplicationRpc } from './rpc-methods';
import type { MergeExport, SystemMachine } from './system-client';

/** After an import that collided, this long before freezing the group again. */
const ABORT_BACKOFF_MS = 5 * 60_000;
/** A merge whose other side stays out of sight this long is called off. */
const LOST_SIGHT_MS = 60_000;
/** The system query that gives what a merge would hand over (registered by the replicator). */
export const MERGE_EXPORT_QUERY = 'merge-export';

export interface MergeReport {
  into: string;
  state: 'blocked' | 'waiting_for_sessions' | 'importing';
  /** waiting_for_sessions: how many are still open. */
  sessions?: number;
  /** blocked: the databases (`db:NAME`) and keys (`kv:KEY`) both sides hold. */
  collisions?: string[];
}

/** What the merge needs of the local system leader. */
export interface MergeLeader {
  machine: SystemMachine;
  propose(command: Record<string, unknown>, timeoutMs: number): Promise<unknown>;
}

export interface SystemMergeOptions {
  rpc: ReplicationRpc;
  view: MembershipView;
  clock: Clock;
  logger: Logger;
  writeTimeoutMs: number;
}

type Reply = { ok?: boolean; code?: string; message?: string; collisions?: string[] };

export class SystemMerge {
  private last: MergeReport | undefined;
  private backoffUntil = -Infinity;
  private lostSince: number | undefined;
  private busy = false;

  constructor(private readonly options: SystemMergeOptions) {}

  /** The merge under way or blocked, as the last pass saw it. */
  report(): MergeReport | undefined {
    return this.last;
  }

  /** One step, on the system leader (never waits on the other side within the pass: it runs in the background). */
  step(leader: MergeLeader, ours: string | undefined): void {
    if (this.busy || ours === undefined) return;
    this.busy = true;
    void this.run(leader, ours)
      .catch((err: unknown) => this.options.logger.debug('merge step failed', { err: err as Error }))
      .finally(() => (this.busy = false));
  }

  private async run(leader: MergeLeader, ours: string): Promise<void> {
    const m = leader.machine.mergeState();
    if (m.done) return;
    const now = this.options.clock.monotonic();
    const target = this.options.view
      .foreignClusters()
      .filter((c) => c.cluster < ours)
      .at(0);
    if (m.into === undefined) {
      this.lostSince = undefined;
      if (!target) {
        this.last = undefined;
        return;
      }
      if (now < this.backoffUntil) return;
      const theirs = (await this.read(target.boards)) as Partial<MergeExport> | undefined;
      if (!Array.isArray(theirs?.databases) || !Array.isArray(theirs.kv)) return;
      const collisions = this.collisions(leader.machine.mergeExport(), theirs.databases, theirs.kv);
      if (collisions.length > 0) {
        if (this.last?.state !== 'blocked' || this.last.collisions?.join() !== collisions.join()) {
          this.options.logger.error('two system groups cannot merge: both hold these; see README "Two system groups"', { into: target.cluster, collisions });
        }
        this.last = { into: target.cluster, state: 'blocked', collisions };
        return;
      }
      this.options.logger.warn('merging this system group into another one under the same cluster name', { from: ours, into: target.cluster });
      await leader.propose({ op: 'merge-begin', into: target.cluster }, this.options.writeTimeoutMs);
      return;
    }
    const into = m.into;
    const boards = this.options.view.foreignClusters().find((c) => c.cluster === into)?.boards ?? [];
    if (boards.length === 0) {
      this.lostSince ??= now;
      if (now - this.lostSince >= LOST_SIGHT_MS) await this.abort(leader, into, 'the other system group is out of sight');
      return;
    }
    this.lostSince = undefined;
    const data = leader.machine.mergeExport();
    if (data.sessions > 0) {
      this.last = { into, state: 'waiting_for_sessions', sessions: data.sessions };
      return;
    }
    this.last = { into, state: 'importing' };
    const command = { op: 'merge-import', from: ours, databases: data.databases, kv: data.kv, token: data.token };
    const reply = (await this.propose(boards, command)) as Reply | undefined;
    if (reply?.ok === true) {
      await leader.propose({ op: 'merge-done', into }, this.options.writeTimeoutMs);
      this.options.logger.warn('this system group merged into another one; its boards join it', {
        from: ours,
        into,
        databases: data.databases.length,
        keys: data.kv.length,
      });
      return;
    }
    if (reply?.code === 'merge_conflict' || reply?.code === 'merging') {
      this.last = { into, state: 'blocked', collisions: reply.collisions ?? [] };
      await this.abort(leader, into, reply.message ?? reply.code);
    }
  }

  private collisions(ours: MergeExport, theirDbs: { name: string }[], theirKeys: { key: string; value: string }[]): string[] {
    const dbs = new Set(theirDbs.map((d) => d.name));
    const kv = new Map(theirKeys.map((e) => [e.key, e.value]));
    return [
      ...ours.databases.filter((d) => dbs.has(d.name)).map((d) => `db:${d.name}`),
      ...ours.kv.filter((e) => kv.has(e.key) && kv.get(e.key) !== e.value).map((e) => `kv:${e.key}`),
    ].sort();
  }

  private async abort(leader: MergeLeader, into: string, why: string): Promise<void> {
    this.options.logger.error('merging this system group was called off; it serves on its own again', { into, why });
    this.backoffUntil = this.options.clock.monotonic() + ABORT_BACKOFF_MS;
    this.lostSince = undefined;
    await leader.propose({ op: 'merge-abort', into }, this.options.writeTimeoutMs);
  }

  /** The other side's databases and keys (its leader's `merge-export`). */
  private read(boards: string[]): Promise<unknown> {
    const body = { query: MERGE_EXPORT_QUERY, args: {}, level: 'weak' as const, timeoutMs: RPC_TIMEOUT_MS };
    return this.onLeader(boards, (to) => this.options.rpc.call(to, 'sys-read', body, RPC_TIMEOUT_MS));
  }

  private propose(boards: string[], command: Record<string, unknown>): Promise<unknown> {
    const body = { command, timeoutMs: this.options.writeTimeoutMs };
    return this.onLeader(boards, (to) => this.options.rpc.call(to, 'sys-propose', body, RPC_TIMEOUT_MS + this.options.writeTimeoutMs));
  }

  /** A leader method of the other system group, through one of its boards (following one redirect). */
  private async onLeader(boards: string[], send: (to: string) => Promise<unknown>): Promise<unknown> {
    for (const board of boards) {
      try {
        let reply = await send(board);
        if (isRedirect(reply) && reply.redirect) reply = await send(reply.redirect);
        if (!isRedirect(reply)) return reply;
      } catch {
        // the next board of that side
      }
    }
    return undefined;
  }
}
