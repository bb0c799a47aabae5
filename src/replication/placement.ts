/**
 * Where replicas live. Rendezvous (highest random weight) hashing: each
 * (group, node) pair gets a score and a group's replicas go to the highest
 * scoring nodes, so placement spreads groups over the boards, is the same on
 * every node, and moves few groups when a board joins or leaves.
 */
import { createHash } from 'node:crypto';

/** A database's placement, as the system group records it. */
export interface DbRecord {
  name: string;
  /** 0: automatic, min(3, cluster size). */
  redundancy: number;
  /** Desired voters, maintained by the system group's leader. */
  voters: string[];
  /** The one board that may found the group. */
  founder: string;
  /** The founder reported the group open. */
  founded: boolean;
}

export function score(group: string, node: string): bigint {
  return createHash('sha256').update(group).update('\0').update(node).digest().readBigUInt64BE(0);
}

/** The `count` highest scoring of `nodes` for `group`, best first. */
export function rendezvous(group: string, nodes: readonly string[], count: number): string[] {
  return [...new Set(nodes)]
    .map((n) => ({ n, s: score(group, n) }))
    .sort((a, b) => (a.s === b.s ? (a.n < b.n ? -1 : 1) : a.s > b.s ? -1 : 1))
    .slice(0, Math.max(0, count))
    .map((x) => x.n);
}

/**
 * The voters a group should have: `seated`, the current voters that are still
 * usable (alive, or unreachable for less than --replace-after: a rebooting
 * board keeps its seat, and nothing moves while its boards live), filled up
 * to `count` with the best ranked `alive` nodes that hold no seat.
 */
export function desiredVoters(group: string, seated: readonly string[], alive: readonly string[], count: number): string[] {
  const keep = seated.slice(0, count);
  const fill = rendezvous(
    group,
    alive.filter((n) => !keep.includes(n)),
    count - keep.length,
  );
  return [...keep, ...fill];
}

/** Voters of the system group for a cluster of `size` usable nodes: odd, at most 5. */
export function systemVoterCount(size: number): number {
  if (size <= 1) return 1;
  return Math.min(5, size % 2 === 1 ? size : size - 1);
}

/** Effective redundancy: the database's own, else min(3, cluster size); never more than the usable nodes. */
export function effectiveRedundancy(requested: number, size: number): number {
  const r = requested > 0 ? requested : 3;
  return Math.max(1, Math.min(r, size));
}

/** The Raft group of database `name`. */
export function dbGroup(name: string): string {
  return `db.${name}`;
}
