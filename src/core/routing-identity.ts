/**
 * The one rule for the names of Gandalf's routing (tenants, logical names,
 * connector types, products), and the three roles a node can run. Used by the
 * settings, membership metadata, the routing layer and the API alike.
 */

export const ROLES = ['cluster', 'aggregator', 'connector'] as const;
export type Role = (typeof ROLES)[number];

export const ROUTING_NAME_RULE = '1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit';
const ROUTING_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isRoutingName(v: unknown): v is string {
  return typeof v === 'string' && ROUTING_NAME_RE.test(v);
}

/**
 * Tenants are stricter: each has its replicated database `gandalf-<tenant>`
 * (the data sink and the command ledger), and database names are lower case.
 */
export const TENANT_RULE = '1-48 characters of a-z 0-9 _ -, starting with a letter or digit';
const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,47}$/;

export function isTenant(v: unknown): v is string {
  return typeof v === 'string' && TENANT_RE.test(v);
}

/** The replicated database of a tenant: its data sink and command ledger. */
export function tenantDatabase(tenant: string): string {
  return `gandalf-${tenant}`;
}

/** A tenant secret as shown once at its creation: `gandalf.<tenant>.<id>.<key>`. */
export const SECRET_RULE = 'a secret as "gandalf-node secret create" prints it (gandalf.<tenant>.<id>.<key>)';
const SECRET_RE = /^gandalf\.([a-z0-9][a-z0-9_-]{0,47})\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

export function parseSecret(text: string): { tenant: string; id: string; key: string } | undefined {
  const m = SECRET_RE.exec(text);
  return m ? { tenant: m[1]!, id: m[2]!, key: m[3]! } : undefined;
}

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** `cluster,connector` -> the roles in ROLES order, no duplicates; undefined when empty or when one is unknown. */
export function parseRoles(raw: string): Role[] | undefined {
  const parts = raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0 || !parts.every(isRole)) return undefined;
  return ROLES.filter((r) => parts.includes(r));
}

/** What a node is in Gandalf's routing: published in membership metadata (and `roles` in mDNS TXT). */
export interface RoutingIdentity {
  roles: Role[];
  /** The tenant its aggregator and connector belong to (a cluster member serves every tenant). */
  tenant: string;
  /** Nodes of one role with one logical name are interchangeable ("brothers"). */
  logicalName: string;
  /** A connector's type (what its workers' commands are checked against), and its product. */
  connectorType: string;
  product: string | undefined;
}

/** Membership metadata keys of a routing identity. */
export const IDENTITY_META = { roles: 'roles', tenant: 'tenant', logicalName: 'lname', connectorType: 'ctype', product: 'product' } as const;

export function identityMeta(id: RoutingIdentity): Record<string, string> {
  const meta: Record<string, string> = {
    [IDENTITY_META.roles]: id.roles.join(','),
    [IDENTITY_META.tenant]: id.tenant,
    [IDENTITY_META.logicalName]: id.logicalName,
    [IDENTITY_META.connectorType]: id.connectorType,
  };
  if (id.product !== undefined) meta[IDENTITY_META.product] = id.product;
  return meta;
}

/** The identity a member published, or undefined when it publishes none or an invalid one (a node before routing). */
export function identityFromMeta(meta: Readonly<Record<string, string>>): RoutingIdentity | undefined {
  const roles = parseRoles(meta[IDENTITY_META.roles] ?? '');
  const tenant = meta[IDENTITY_META.tenant];
  const logicalName = meta[IDENTITY_META.logicalName];
  const connectorType = meta[IDENTITY_META.connectorType];
  const product = meta[IDENTITY_META.product];
  if (!roles || !isTenant(tenant) || !isRoutingName(logicalName) || !isRoutingName(connectorType)) return undefined;
  if (product !== undefined && !isRoutingName(product)) return undefined;
  return { roles, tenant, logicalName, connectorType, product };
}
