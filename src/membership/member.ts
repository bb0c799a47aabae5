/**
 * What membership knows about one node. Plain data: copies of these leave the
 * state machine (members(), onChange), never the records it mutates.
 */

/**
 * - `alive`: answering probes (or not yet found otherwise);
 * - `suspect`: a probe failed; it has a suspicion timeout to refute;
 * - `dead`: the suspicion timed out; remembered (and told) for a while, then forgotten;
 * - `left`: it announced a graceful leave; never probed again.
 */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Small string attributes a node publishes about itself, e.g. `{ arch: 'x64', transport: 'native', roles: 'cluster' }`. */
export interface MemberMeta {
  [key: string]: string;
}

export interface Member {
  /** Node id. */
  id: string;
  /** Management URL, e.g. 'http://127.0.0.1:8421'. Opaque to membership. */
  endpoint: string;
  meta: MemberMeta;
  state: MemberState;
  /** Only the member itself raises it (to refute a rumor, to change its meta, to leave). */
  incarnation: number;
  /** clock.now() when this node last changed the member's state. */
  since: number;
}

export function copyMember(member: Member): Member {
  const { id, endpoint, meta, state, incarnation, since } = member;
  return { id, endpoint, meta: { ...meta }, state, incarnation, since };
}

export function sameMeta(a: MemberMeta, b: MemberMeta): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}
