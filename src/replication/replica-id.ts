/**
 * Replica identities. A Raft group's members are replicas, not boards: the id
 * a replica votes and is counted under is `<node id>~<generation>`, made fresh
 * every time a board opens a new, empty replica of a group (founding it, or
 * being added to it). A board that dropped its replica, or lost its disk,
 * therefore never comes back under an identity that once voted: its new
 * replica is a stranger to every stale configuration, and a message addressed
 * to the old identity finds nobody (etcd gives every member a fresh id for the
 * same reason). Node ids cannot contain `~` (settings' node-id rule), so the
 * board of a replica is always recoverable. Replicas created before
 * generations existed carry the bare node id; they keep it.
 */

export const REPLICA_SEPARATOR = '~';

/** The board a replica lives on. */
export function nodeOfReplica(replica: string): string {
  const at = replica.indexOf(REPLICA_SEPARATOR);
  return at < 0 ? replica : replica.slice(0, at);
}

/** A fresh replica identity on `node` (32 random bits; unique per board and group in practice, checked by the caller). */
export function newReplicaId(node: string, random32: () => number): string {
  return `${node}${REPLICA_SEPARATOR}${(random32() >>> 0).toString(16).padStart(8, '0')}`;
}
