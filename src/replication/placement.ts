/**
 * Where replicas live. Rendezvous (highest random weight) hashing: each
 * (group, node) pair gets a score and a group's replicas go to the highest
 * scoring nodes, so placement spreads groups over the boards, is the same on
 * every node, and moves few groups when a board joins or leaves.
 */
import { createHash } from 'node:crypto';

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
 * The voters a group should have: the current voters that are still usable
 * (stability: nothing moves while its boards live), filled up to `count` with
 * the best ranked other usable nodes.
 */
export function desiredVoters(group: string, current: readonly string[], usable: readonly string[], count: number): string[] {
  const ok = new Set(usable);
  const keep = current.filter((n) => ok.has(n)).slice(0, count);
  const fill = rendezvous(group, usable.filter((n) => !keep.includes(n)), count - keep.length);
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
