/**
 * Forwarding to a group's leader, so that any board accepts any request: run
 * the work here when this board's replica leads, else send the RPC to the
 * board believed to lead, follow redirects, skip boards membership calls
 * dead, stop waiting on one once this board's replica learns of a newer
 * leader, and answer `no_quorum` at once when too few voters are up for any
 * election to end. `asLeader` is the far side: it serves only as leader.
 */
import { sleep, type Clock, type TimerHandle } from '../core/clock';
import { GandalfError } from '../core/errors';
import { NotLeaderError, type ReplicaGroup } from './group';
import type { MembershipView } from './membership-view';
import { nodeOfReplica } from './replica-id';
import { isRedirect, RPC_TIMEOUT_MS, type LeaderMethod, type Redirect, type ReplicationRpc, type Req, type Res } from './rpc-methods';
import { RpcUnreachableError } from './wire';

/** How often a forwarded call checks whether this node's replica learned of a newer leader. */
const LEADER_WATCH_MS = 100;

export interface ForwardingOptions<R extends { group: ReplicaGroup }> {
  self: string;
  clock: Clock;
  rpc: ReplicationRpc;
  view: MembershipView;
  /** This board's replica of `group`, if it holds one. */
  replica: (group: string) => R | undefined;
  closed: () => boolean;
  /** How long the far side of `method` may work (a query, a write's trial) before it answers. */
  farSideMs: <M extends LeaderMethod>(method: M, body: Req<M>) => number;
}

export class LeaderForwarder<R extends { group: ReplicaGroup }> {
  /** Per group: the board that last led it, as far as this board knows. */
  private readonly hints = new Map<string, string>();

  constructor(private readonly options: ForwardingOptions<R>) {}

  /** The last leader of `group` a forwarded call found (undefined: none known). */
  hint(group: string): string | undefined {
    return this.hints.get(group);
  }

  /**
   * Runs `work` on the leader of `group`: here when this replica leads, else
   * through RPC `method` on the node believed to lead, following redirects
   * and moving on from unreachable nodes until `deadline`.
   */
  async onLeader<T, M extends LeaderMethod = LeaderMethod>(
    group: string,
    method: M,
    body: Req<M>,
    work: (r: R) => Promise<T>,
    timeoutMs: number,
    candidates: () => string[],
    idempotent = true,
    signal?: AbortSignal,
  ): Promise<T> {
    const { clock, self } = this.options;
    const deadline = clock.monotonic() + timeoutMs;
    let lastError: Error | undefined;
    let tried = 0;
    // a redirect from the node asked wins over this node's own replica, whose view of the leader may be stale
    let redirectedTo: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - clock.monotonic();
      if (remaining <= 0 || this.options.closed()) break;
      if (signal?.aborted) throw new GandalfError('query_canceled', 'the client went away');
      const local = this.options.replica(group);
      if (local?.group.isLeader) {
        try {
          return await work(local);
        } catch (err) {
          if (!(err instanceof NotLeaderError) && !(err instanceof GandalfError && err.code === 'leader_changed')) throw err;
          lastError = err as Error;
          // leadership is moving (a transfer, a pending change): wait for it instead of spinning
          await sleep(clock, Math.min(20 + attempt * 20, 200, Math.max(0, deadline - clock.monotonic())));
          continue;
        }
      }
      // This board's own member replica knows no leader: an election is under way, or no quorum is left. With fewer
      // than a quorum of its voters up (membership's view; suspects do not count) no election can end: say so now,
      // instead of sending the request to a leader that is gone (which could only end as outcome_unknown).
      if (local?.group.isMember && local.group.leader === null && !redirectedTo) {
        const voters = [...new Set(local.group.voters().map(nodeOfReplica))];
        const upIn = (ids: string[]) => ids.filter((v) => v === self || this.options.view.members().some((m) => m.id === v && m.state === 'alive'));
        const up = upIn(voters);
        // (unless placement names voters enough that are up: this replica may be a stale one the group went on without)
        const placed = [...new Set(candidates())];
        if (up.length < Math.floor(voters.length / 2) + 1 && upIn(placed).length < Math.floor(placed.length / 2) + 1) {
          throw new GandalfError(
            'no_quorum',
            `${group}: no leader, and only ${up.length} of its ${voters.length} voters are reachable (up: ${up.join(', ')}; down or suspected: ${voters.filter((v) => !up.includes(v)).join(', ')}); the request was not sent anywhere`,
          );
        }
        await sleep(clock, Math.min(50 + attempt * 20, 200, remaining));
        // An election among these voters is under way: wait for it (asking a voter that just died would end as
        // outcome_unknown). Unless placement names voters this replica's configuration lacks: then the group went
        // on without it, and the placed voters are asked, who answer with the leader they know.
        if (placed.every((p) => voters.includes(p))) continue;
        if (clock.monotonic() >= deadline) break;
      }
      // Membership's verdict first: a node it declared dead is not asked (a request to it could only end as outcome_unknown).
      const hint = redirectedTo ?? local?.group.leader ?? this.hints.get(group);
      const known = hint && this.options.view.isAlive(hint) ? hint : undefined;
      const list = candidates().filter((c) => (c !== self || local) && this.options.view.isAlive(c));
      const target = known && known !== self ? known : list.length > 0 ? list[tried++ % list.length]! : undefined;
      if (!target || target === self) {
        await sleep(clock, Math.min(100 + attempt * 20, 500, remaining));
        continue;
      }
      // While waiting on `target`, our own replica may learn of a newer leader: then stop waiting on the old one.
      const abandon = new AbortController();
      const watch = local ? this.watchLeader(local.group, target, abandon) : undefined;
      const onGone = () => abandon.abort();
      signal?.addEventListener('abort', onGone, { once: true });
      // the far side may first run a query or a write's trial (bounded by --query-timeout) and wait for a commit (by timeoutMs)
      const farSide = this.options.farSideMs(method, body);
      try {
        const reply: Res<M> = await this.options.rpc.call(target, method, body, Math.min(remaining, RPC_TIMEOUT_MS + farSide), abandon.signal);
        if (isRedirect(reply)) {
          if (reply.redirect && reply.redirect !== target) {
            this.hints.set(group, reply.redirect);
            redirectedTo = reply.redirect;
          } else {
            redirectedTo = undefined;
            this.hints.delete(group);
            await sleep(clock, Math.min(100 + attempt * 20, 500, Math.max(0, deadline - clock.monotonic())));
          }
          continue;
        }
        this.hints.set(group, target);
        return reply as T;
      } catch (err) {
        lastError = err as Error;
        redirectedTo = undefined;
        this.hints.delete(group);
        if (!idempotent && err instanceof RpcUnreachableError && err.sent) {
          throw new GandalfError(
            'outcome_unknown',
            `${group}: node ${target} took the request and stopped answering (${err.message}); it may or may not have been applied`,
          );
        }
        if (err instanceof GandalfError && (err.code === 'peer_unreachable' || err.code === 'leader_changed' || err.code === 'stopping')) {
          // an unlinked peer fails at once: back off rather than spin through the candidates
          if (!abandon.signal.aborted) await sleep(clock, Math.min(20 + attempt * 20, 200, Math.max(0, deadline - clock.monotonic())));
          continue;
        }
        throw err;
      } finally {
        if (watch) clock.clearTimeout(watch.timer);
        signal?.removeEventListener('abort', onGone);
      }
    }
    const voters = candidates();
    const alive = voters.filter((v) => this.options.view.isAlive(v));
    throw new GandalfError(
      'no_quorum',
      `${group}: no leader could take the request within ${timeoutMs} ms; ${alive.length} of its ${voters.length} voters are reachable` +
        ` (${voters.join(', ') || 'none known'})${lastError ? `; last error: ${lastError.message}` : ''}`,
    );
  }

  /** Aborts `abandon` once `group` learns of a new leader, other than `target` (checked every LEADER_WATCH_MS). */
  private watchLeader(group: ReplicaGroup, target: string, abandon: AbortController): { timer: TimerHandle } {
    const watch = { timer: undefined as unknown as TimerHandle };
    const initial = group.leader;
    const check = () => {
      const leader = group.leader;
      if (leader !== null && leader !== target && leader !== initial) return abandon.abort(`${leader} leads ${group.name} now`);
      watch.timer = this.options.clock.setTimeout(check, LEADER_WATCH_MS);
      watch.timer.unref?.();
    };
    watch.timer = this.options.clock.setTimeout(check, LEADER_WATCH_MS);
    watch.timer.unref?.();
    return watch;
  }

  /** Serves `work` if this node leads `group`, else redirects the caller. */
  async asLeader<T>(group: string, work: (r: R) => Promise<T>): Promise<T | Redirect> {
    const r = this.options.replica(group);
    if (!r?.group.isLeader) return { redirect: r?.group.leader ?? null };
    try {
      return await work(r);
    } catch (err) {
      if (err instanceof NotLeaderError) return { redirect: err.leader };
      throw err;
    }
  }
}
