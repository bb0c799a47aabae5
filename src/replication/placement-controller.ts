/**
 * The placement controller: what a group's leader does, pass after pass, to
 * keep its members where placement wants them. The system leader keeps the
 * system group's voters (an odd count, at most 5) and each database's desired
 * voters on usable boards, and rebalances slowly; every group's leader moves
 * its members toward the desired voters one single-server change at a time
 * (learner -> caught up -> voter -> old voter removed), never to a
 * configuration without a live quorum. The replicator calls it from its
 * maintenance loop; it holds no replicas itself.
 */
import type { Clock } from '../core/clock';
import type { Logger } from '../core/logger';
import type { ReplicaGroup } from './group';
import type { MembershipView } from './membership-view';
import { dbGroup, desiredVoters, effectiveRedundancy, rendezvous, systemVoterCount } from './placement';
import { nodeOfReplica } from './replica-id';
import { RPC_TIMEOUT_MS, SYSTEM_GROUP, type ReplicationRpc } from './rpc-methods';

/** What placement says of a database. */
export interface PlacedDatabase {
  name: string;
  /** 0: automatic, min(3, cluster size). */
  redundancy: number;
  /** Desired voters (boards). */
  voters: string[];
}

export interface PlacementControllerOptions {
  clock: Clock;
  logger: Logger;
  view: MembershipView;
  rpc: ReplicationRpc;
  writeTimeoutMs: number;
  /** How long the members must hold still before a database moves toward its ideal boards, and how often. */
  rebalanceMs: number;
  /** A member replica whose board said it no longer holds it. */
  isGone(group: string, replica: string): boolean;
  /** A member replica that can take part: its board is alive and did not say the replica is gone. */
  replicaLive(group: string, replica: string): boolean;
  /** This board's system group identity, sent with group-prepare. */
  clusterId(): string | undefined;
  /** When the set of present members last changed (monotonic ms). */
  lastMembershipChange(): number;
}

const unique = (ids: string[]): string[] => [...new Set(ids)];

export class PlacementController {
  private lastRebalance = 0;

  constructor(private readonly options: PlacementControllerOptions) {}

  /** System leader: the system group's voters on usable boards, as many as the cluster's size calls for. */
  async placeSystem(group: ReplicaGroup): Promise<void> {
    const { view } = this.options;
    const alive = view.aliveIds();
    const keep = unique(
      group
        .voters()
        .filter((v) => !this.options.isGone(group.name, v))
        .map(nodeOfReplica),
    ).filter((v) => view.usable(v));
    const pool = unique([...keep, ...alive]);
    // Live voters are never dropped just because the target shrank: only unusable ones go.
    const count = Math.min(5, Math.max(systemVoterCount(pool.length), keep.filter((v) => view.isAlive(v)).length));
    await this.moveMembers(group, desiredVoters(SYSTEM_GROUP, keep, alive, count));
  }

  /**
   * System leader: keeps each database's desired voters on usable boards (one
   * database per pass: gradual), then rebalances: once the members have held
   * still for `rebalanceMs`, at most one voter of one database moves toward
   * the rendezvous choice over the live boards, once per `rebalanceMs`.
   * `place` commits a database's new desired voters.
   */
  async placeDatabases(records: readonly PlacedDatabase[], place: (name: string, voters: string[]) => Promise<unknown>): Promise<void> {
    const { view, logger } = this.options;
    const alive = view.aliveIds();
    const move = async (name: string, from: string[], to: string[], why: string) => {
      logger.info(why, { db: name, from, to });
      await place(name, to).catch((err: unknown) => logger.debug('re-placing failed', { db: name, err: err as Error }));
    };
    for (const rec of records) {
      view.trackMissing(rec.voters);
      const keep = rec.voters.filter((v) => view.usable(v));
      const pool = [...new Set([...keep, ...alive])];
      const desired = desiredVoters(dbGroup(rec.name), keep, alive, effectiveRedundancy(rec.redundancy, pool.length));
      if (desired.length === 0 || (desired.length === rec.voters.length && desired.every((v, i) => v === rec.voters[i]))) continue;
      return move(rec.name, rec.voters, desired, 're-placing a database');
    }
    const now = this.options.clock.monotonic();
    const { rebalanceMs } = this.options;
    if (now - this.options.lastMembershipChange() < rebalanceMs || now - this.lastRebalance < rebalanceMs) return;
    for (const rec of records) {
      const count = effectiveRedundancy(rec.redundancy, alive.length);
      if (rec.voters.length !== count || !rec.voters.every((v) => view.isAlive(v))) continue;
      const ideal = rendezvous(dbGroup(rec.name), alive, count);
      const leaving = rec.voters.filter((v) => !ideal.includes(v));
      const coming = ideal.filter((v) => !rec.voters.includes(v));
      if (leaving.length === 0 || coming.length === 0) continue;
      // The worst-ranked voter makes way for the best-ranked board that lacks the database.
      const worst = leaving[leaving.length - 1]!;
      this.lastRebalance = now;
      return move(
        rec.name,
        rec.voters,
        rec.voters.map((v) => (v === worst ? coming[0]! : v)),
        'rebalancing a database',
      );
    }
  }

  /**
   * Leader of a group: one membership change toward `desired` voters (boards).
   * Order: drop a learner nobody wants, promote a caught-up learner, add a
   * missing board as a learner (under the fresh replica id it prepares), then
   * remove voters placement no longer wants, or whose board said they are gone,
   * only once every desired board votes.
   */
  async moveMembers(group: ReplicaGroup, desired: string[], observers: string[] = []): Promise<void> {
    // one change at a time: nothing to do (and no replica to prepare) until the last one committed
    if (group.confChangeBlocked) return;
    const { view, logger } = this.options;
    const voters = group.voters();
    const learners = group.learners();
    const want = new Set(desired);
    // non-voting boards keep a learner replica, never promoted
    const watching = new Set(observers.filter((o) => !want.has(o)));
    const observer = (replica: string) => watching.has(nodeOfReplica(replica));
    const timeout = this.options.writeTimeoutMs;
    const quiet = (err: unknown) => logger.debug('membership change not made', { group: group.name, err: err as Error });
    const live = (replica: string) => this.options.replicaLive(group.name, replica);
    const gone = (replica: string) => this.options.isGone(group.name, replica);
    // A single-server change takes effect at once: the new configuration must still have a live quorum.
    const liveQuorum = (config: string[]) => config.filter(live).length >= Math.floor(config.length / 2) + 1;
    for (const l of learners) {
      if ((!want.has(nodeOfReplica(l)) && !observer(l)) || gone(l)) return void (await group.changeConf({ type: 'remove', node: l }, timeout).catch(quiet));
      if (observer(l)) continue;
      const match = group.matchIndex(l) ?? 0;
      if (match > 0 && match >= group.commitIndex - 64 && live(l) && liveQuorum([...voters, l])) {
        logger.info('promoting a caught-up learner', { group: group.name, replica: l });
        return void (await group.changeConf({ type: 'promote', node: l }, timeout).catch(quiet));
      }
    }
    const present = new Set([...voters, ...learners].filter((r) => !gone(r)).map(nodeOfReplica));
    const missing = desired.filter((d) => !present.has(d) && view.isAlive(d));
    const pending = learners.filter((l) => !observer(l));
    // a board gets a fresh replica id of its own, which joins as a learner
    const addLearner = async (node: string, what: string): Promise<void> => {
      const replica = await this.prepareReplica(group, node, [...voters, ...learners]);
      if (!replica) return;
      logger.info(what, { group: group.name, node, replica });
      await group.changeConf({ type: 'add-learner', node: replica }, timeout).catch(quiet);
    };
    if (missing.length > 0 && pending.length === 0) return addLearner(missing[0]!, 'adding a replica');
    if (!desired.every((d) => voters.some((v) => nodeOfReplica(v) === d && live(v)) || !view.isAlive(d))) return;
    const unwatched = [...watching].filter((o) => !present.has(o));
    if (unwatched.length > 0 && pending.length === 0) return addLearner(unwatched[0]!, 'adding a non-voting replica');
    const extra = voters.filter((v) => !want.has(nodeOfReplica(v)) || gone(v));
    if (extra.length === 0) return;
    // Never below the target while a desired board's seat waits (it is down for less than --replace-after, or
    // its replica is still being added): one more loss would then leave no quorum for good.
    if (voters.length - 1 < desired.length && !extra.some((v) => gone(v))) return;
    // Dead ones first; never a removal that leaves no live quorum.
    const victim = extra.find((v) => v !== group.id && !live(v)) ?? extra.find((v) => v !== group.id) ?? extra[0]!;
    if (!liveQuorum(voters.filter((v) => v !== victim))) return;
    if (victim === group.id) {
      const to = voters.find((v) => v !== group.id && want.has(nodeOfReplica(v)) && live(v));
      if (to) group.transferLeadership(to);
      return;
    }
    logger.info('removing a replica', { group: group.name, replica: victim, alive: live(victim) });
    await group.changeConf({ type: 'remove', node: victim }, timeout).catch(quiet);
  }

  /** Asks `node` to open an empty replica of the group under a fresh id (it checks that placement names it); undefined on failure. */
  private async prepareReplica(group: ReplicaGroup, node: string, members: string[]): Promise<string | undefined> {
    const { logger } = this.options;
    try {
      // a slow board (a Pi Zero) may need a while to ask the system leader and open the replica
      const cluster = this.options.clusterId();
      const request = { group: group.name, members, ...(cluster ? { cluster } : {}) };
      const reply = await this.options.rpc.call(node, 'group-prepare', request, Math.max(RPC_TIMEOUT_MS, this.options.writeTimeoutMs));
      // checked: a peer's answer, whatever the table says
      const replica: unknown = reply?.replica;
      if (typeof replica === 'string' && nodeOfReplica(replica) === node && !members.includes(replica)) return replica;
      logger.warn('a board answered group-prepare with an unusable replica id', { group: group.name, node, replica: String(replica) });
    } catch (err) {
      logger.debug('a board did not prepare a replica', { group: group.name, node, err: err as Error });
    }
    return undefined;
  }
}
