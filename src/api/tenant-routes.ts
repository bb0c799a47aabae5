/**
 * Tenants and their secrets over HTTP (permission admin):
 *   POST   /gandalf/tenants {"tenant": NAME}                    -> 201 {tenant, created_at}
 *   GET    /gandalf/tenants                                     -> {admission_required, tenants: [{tenant, created_at, secrets}]}
 *   DELETE /gandalf/tenants/NAME                                -> {tenant, secrets_revoked}
 *   POST   /gandalf/secrets {"tenant", "roles"?, "expires_in"?} -> 201 {tenant, id, roles, created_at, expires_at, secret}
 *          (the secret's text is in this answer only)
 *   GET    /gandalf/secrets[?tenant=NAME]                       -> {secrets: [{tenant, id, roles, created_at, expires_at}]}
 *   DELETE /gandalf/secrets/TENANT/ID                           -> {tenant, id, revoked: true}
 *   GET    /gandalf/admission   this node's standing: {required, tenant, secret, peers: {ID: {state, reason?}}}
 */
import { parseDuration } from '../config/settings';
import { GandalfError } from '../core/errors';
import type { PeerAdmission } from '../routing/peer-admission';
import { isSecretRole, SECRET_ROLES, type SecretRole, type TenantRegistry } from '../routing/tenant-registry';
import type { Routes } from './http-server';

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) invalid('the body must be a JSON object');
  return body as Record<string, unknown>;
}

const MAX_EXPIRY_MS = 3650 * 86_400_000;

function rolesOf(v: unknown): SecretRole[] {
  if (v === undefined) return [...SECRET_ROLES];
  const list = typeof v === 'string' ? v.split(',').map((r) => r.trim()) : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every(isSecretRole)) invalid(`roles must be a list of ${SECRET_ROLES.join(', ')}`);
  return list;
}

function expiryOf(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  if (ms === undefined || ms < 60_000 || ms > MAX_EXPIRY_MS) invalid('expires_in must be a duration from 1m to 3650d (e.g. "90d")');
  return ms;
}

export function tenantRoutes(routing: () => { tenants: TenantRegistry; admission: PeerAdmission }): Routes {
  const tenants = () => routing().tenants;
  return {
    'GET /gandalf/admission': () => {
      const { admission } = routing();
      return {
        status: 200,
        body: { required: tenants().required(), tenant: admission.tenant, secret: admission.hasSecret, peers: admission.standing() },
      };
    },
    'POST /gandalf/tenants': async (req) => {
      const o = object(req.body);
      if (typeof o.tenant !== 'string') invalid('the body must be {"tenant": NAME}');
      return { status: 201, body: await tenants().createTenant(o.tenant) };
    },
    'GET /gandalf/tenants': async () => {
      const list = await tenants().listTenants();
      return { status: 200, body: { admission_required: tenants().required(), tenants: list } };
    },
    'DELETE /gandalf/tenants/*': async (req) => {
      if (req.rest === '' || req.rest.includes('/')) invalid('use DELETE /gandalf/tenants/NAME');
      return { status: 200, body: await tenants().deleteTenant(req.rest) };
    },
    'POST /gandalf/secrets': async (req) => {
      const o = object(req.body);
      if (typeof o.tenant !== 'string') invalid('the body must be {"tenant": NAME, "roles"?: [...], "expires_in"?: DURATION}');
      return { status: 201, body: await tenants().createSecret(o.tenant, rolesOf(o.roles), expiryOf(o.expires_in)) };
    },
    'GET /gandalf/secrets': async (req) => ({
      status: 200,
      body: { secrets: await tenants().listSecrets(req.url.searchParams.get('tenant') ?? undefined) },
    }),
    'DELETE /gandalf/secrets/*': async (req) => {
      const m = /^([^/]+)\/([^/]+)$/.exec(req.rest);
      if (!m) invalid('use DELETE /gandalf/secrets/TENANT/ID');
      await tenants().revokeSecret(m[1]!, m[2]!);
      return { status: 200, body: { tenant: m[1], id: m[2], revoked: true } };
    },
  };
}
