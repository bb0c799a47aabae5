/**
 * Two system groups under one cluster name. Sides that could not see each
 * other while they started each found one; when they meet, SWIM shows boards
 * advertising another system group (meta `sysid`). Neither side then counts
 * the other's boards (`MembershipView.isForeign`), so neither places on,
 * adds or takes replicas from the other. This watch says so loudly (status,
 * an error in the log while it lasts) and finds the databases both sides hold
 * under one name: writes to those are refused with `split_cluster`, since two
 * groups would take them. The operator's way out is in the README.
 */
import type { Clock } from '../core/clock';
import type { Logger } from '../core/logger';
import type { MembershipView } from './membership-view';
import { isRedirect, RPC_TIMEOUT_MS, type ReplicationRpc } from './rpc-methods';

/** How often the other side's databases are asked for while a split lasts. */
const POLL_MS = 5_000;
/** How often the log says it again while a split lasts. */
const REPEAT_LOG_MS = 60_000;

export interface SplitReport {
  /** This board's system group. */
  cluster: string | null;
  /** The others in sight, with their boards and the databases they hold. */
  others: { cluster: string; boards: string[]; databases: string[] | null }[];
  /** Databases both sides hold under one name (writes to them: 503 split_cluster). */
  collisions: string[];
}

export interface SplitWatchOptions {
  rpc: ReplicationRpc;
  view: MembershipView;
  clock: Clock;
  logger: Logger;
  cluster: () => string | undefined;
  /** The databases of this board's system group. */
  databases: () => string[];
}

export class SplitWatch {
  private readonly theirs = new Map<string, string[]>();
  private lastPoll = -Infinity;
  private lastLog = -Infinity;
  private polling = false;

  constructor(private readonly options: SplitWatchOptions) {}

  /** The split in sight, or undefined when there is none. */
  report(): SplitReport | undefined {
    const others = this.options.view.foreignClusters();
    if (others.length === 0) return undefined;
    const ours = new Set(this.options.databases());
    const collisions = new Set<string>();
    const list = others.map((o) => {
      const dbs = this.theirs.get(o.cluster);
      for (const d of dbs ?? []) if (ours.has(d)) collisions.add(d);
      return { ...o, databases: dbs ?? null };
    });
    return { cluster: this.options.cluster() ?? null, others: list, collisions: [...collisions].sort() };
  }

  collides(db: string): boolean {
    return this.report()?.collisions.includes(db) ?? false;
  }

  /** Called on every maintenance pass: asks the other sides for their databases (throttled) and logs while a split lasts. */
  poll(): void {
    const others = this.options.view.foreignClusters();
    for (const c of [...this.theirs.keys()]) if (!others.some((o) => o.cluster === c)) this.theirs.delete(c);
    if (others.length === 0) return;
    const now = this.options.clock.monotonic();
    if (now - this.lastLog >= REPEAT_LOG_MS) {
      this.lastLog = now;
      const r = this.report()!;
      this.options.logger.error('two system groups run under one cluster name: boards of another one are in sight; see README "Two system groups"', {
        cluster: r.cluster,
        others: r.others.map((o) => `${o.cluster} (${o.boards.join(', ')})`),
        collisions: r.collisions,
      });
    }
    if (this.polling || now - this.lastPoll < POLL_MS) return;
    this.polling = true;
    this.lastPoll = now;
    void Promise.all(others.map((o) => this.fetch(o.cluster, o.boards)))
      .catch((err: unknown) => this.options.logger.debug('could not read the other system group', { err: err as Error }))
      .finally(() => (this.polling = false));
  }

  /** The other group's database names, from one of its boards (following one redirect to its leader). */
  private async fetch(cluster: string, boards: string[]): Promise<void> {
    const body = { query: 'databases', args: {}, level: 'weak' as const, timeoutMs: RPC_TIMEOUT_MS };
    for (const board of boards) {
      try {
        let reply = await this.options.rpc.call(board, 'sys-read', body, RPC_TIMEOUT_MS);
        if (isRedirect(reply) && reply.redirect) reply = await this.options.rpc.call(reply.redirect, 'sys-read', body, RPC_TIMEOUT_MS);
        if (isRedirect(reply) || !Array.isArray(reply)) continue;
        this.theirs.set(
          cluster,
          reply
            .flatMap((d: unknown) =>
              typeof d === 'object' && d !== null && typeof (d as { name?: unknown }).name === 'string' ? [(d as { name: string }).name] : [],
            )
            .sort(),
        );
        return;
      } catch {
        // try the next board of that side
      }
    }
  }
}
