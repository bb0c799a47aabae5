/**
 * The key/value container's reserved namespace: the node keeps its own
 * replicated tables there (Gandalf's tenants, secrets and connector types).
 * The public /kv API neither writes nor deletes under it, and never shows
 * the secrets' hashes.
 */
export const RESERVED_PREFIX = 'gandalf/';
const HIDDEN_PREFIX = 'gandalf/secrets/';

export function isReservedKey(key: string): boolean {
  return key.startsWith(RESERVED_PREFIX);
}

/** A prefix operation on `prefix` reaches reserved keys (`gandalf/` itself or any shorter prefix of it, `""` included). */
export function prefixReachesReserved(prefix: string): boolean {
  return prefix.startsWith(RESERVED_PREFIX) || RESERVED_PREFIX.startsWith(prefix);
}

/** Keys the public API never shows (the secrets' scrypt hashes). */
export function isHiddenKey(key: string): boolean {
  return key.startsWith(HIDDEN_PREFIX);
}
