/**
 * Tenants and their secrets, kept in the replicated system state (the
 * key/value container, under the reserved prefix `gandalf/`, which the public
 * /kv API cannot write) and read by every node every REFRESH_MS:
 *
 *   gandalf/admission                  {"required": true}, from the first tenant created on
 *   gandalf/tenants/<tenant>           {"created_at": ms}
 *   gandalf/secrets/<tenant>/<id>      {"roles": [...], "hash": "scrypt$…", "created_at": ms, "expires_at": ms | null}
 *
 * A secret is `gandalf.<tenant>.<id>.<key>`: shown once when it is created,
 * stored only as the scrypt hash of its key, with its tenant, the roles it
 * admits (aggregator, connector, worker) and its expiry. Revoking deletes it.
 *
 * Until the first tenant is created the cluster is open: every board under
 * the cluster cookie routes for the tenant it publishes (a zero-configuration
 * rack, the tenant `default`). From then on only created tenants route, and
 * every aggregator, connector and worker presents a secret of its tenant.
 */
import { randomBytes } from 'node:crypto';
import { repeatAfter, sleep, type Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import { RESERVED_PREFIX } from '../core/reserved-keys';
import { isTenant, parseSecret, SECRET_RULE, TENANT_RULE } from '../core/routing-identity';
import { hashScrypt, parseScrypt, type ScryptHash } from '../core/scrypt-hash';
import type { KvPort } from './ports';

export const ADMISSION_KEY = `${RESERVED_PREFIX}admission`;
export const TENANT_PREFIX = `${RESERVED_PREFIX}tenants/`;
export const SECRET_PREFIX = `${RESERVED_PREFIX}secrets/`;
const REFRESH_MS = 2000;
const FRESH_EVERY_MS = 1000;

/** Who presents a secret: a node's aggregator or connector, or a worker of a connector. */
export const SECRET_ROLES = ['aggregator', 'connector', 'worker'] as const;
export type SecretRole = (typeof SECRET_ROLES)[number];

export interface SecretRecord {
  tenant: string;
  id: string;
  roles: SecretRole[];
  hash: ScryptHash;
  createdAt: number;
  expiresAt: number | null;
}

/** A secret as the API lists it: never its hash. */
export interface SecretInfo {
  tenant: string;
  id: string;
  roles: SecretRole[];
  created_at: number;
  expires_at: number | null;
}

export function isSecretRole(v: unknown): v is SecretRole {
  return typeof v === 'string' && (SECRET_ROLES as readonly string[]).includes(v);
}

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function parseRecord(tenant: string, id: string, raw: string): SecretRecord | undefined {
  try {
    const v = JSON.parse(raw) as { roles?: unknown; hash?: unknown; created_at?: unknown; expires_at?: unknown };
    const hash = typeof v.hash === 'string' ? parseScrypt(v.hash) : undefined;
    if (!hash || !Array.isArray(v.roles) || !v.roles.every(isSecretRole) || typeof v.created_at !== 'number') return undefined;
    if (v.expires_at !== null && typeof v.expires_at !== 'number') return undefined;
    return { tenant, id, roles: v.roles, hash, createdAt: v.created_at, expiresAt: v.expires_at };
  } catch {
    return undefined;
  }
}

export class TenantRegistry {
  private isRequired = false;
  private tenantSet = new Set<string>();
  private secretMap = new Map<string, SecretRecord>();
  /** What the container held at the last refresh: unchanged secrets are not parsed again. */
  private stored = new Map<string, string>();
  private refresher: { stop(): void } | undefined;
  private freshAt = -Infinity;
  private nextFresh: Promise<void> | undefined;
  private readonly listeners: (() => void)[] = [];
  /** Whether a refresh succeeded once (until then nothing is known). */
  loaded = false;

  constructor(
    private readonly kv: KvPort,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.refresher = repeatAfter(
      this.clock,
      REFRESH_MS,
      () => this.refresh(),
      (err: unknown) => this.logger.debug('tenants: could not refresh', { err: err as Error }),
    );
  }

  stop(): void {
    this.refresher?.stop();
  }

  /** Called after each refresh (revocations take effect there). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async refresh(fresh = false): Promise<void> {
    const entries = await this.kv.list(RESERVED_PREFIX, fresh);
    let required = false;
    const tenants = new Set<string>();
    const secrets = new Map<string, SecretRecord>();
    const stored = new Map<string, string>();
    for (const { key, value } of entries) {
      if (key === ADMISSION_KEY) required = true;
      else if (key.startsWith(TENANT_PREFIX)) {
        const t = key.slice(TENANT_PREFIX.length);
        if (isTenant(t)) tenants.add(t);
      } else if (key.startsWith(SECRET_PREFIX)) {
        const [tenant, id, ...rest] = key.slice(SECRET_PREFIX.length).split('/');
        if (!tenant || !id || rest.length > 0) continue;
        const before = this.stored.get(key) === value ? this.secretMap.get(key) : undefined;
        const record = before ?? parseRecord(tenant, id, value);
        if (!record) {
          this.logger.warn('tenants: ignored a malformed secret record', { key });
          continue;
        }
        secrets.set(key, record);
        stored.set(key, value);
      }
    }
    this.isRequired = required || tenants.size > 0;
    this.tenantSet = tenants;
    this.secretMap = secrets;
    this.stored = stored;
    this.loaded = true;
    for (const l of this.listeners) l();
  }

  /**
   * A fresh read (at the system leader) for a secret this board has not seen yet: one created a
   * moment ago admits at once. At most one per FRESH_EVERY_MS, so unknown secrets cannot flood the
   * leader: a miss within that time waits for the next read (started after it), shared by every
   * miss until it starts.
   */
  refreshForMiss(): Promise<void> {
    if (!this.nextFresh) {
      const wait = Math.max(0, this.freshAt + FRESH_EVERY_MS - this.clock.monotonic());
      this.nextFresh = (wait === 0 ? Promise.resolve() : sleep(this.clock, wait)).then(() => {
        this.nextFresh = undefined;
        this.freshAt = this.clock.monotonic();
        return this.refresh(true).catch((err: unknown) => this.logger.debug('tenants: could not refresh', { err: err as Error }));
      });
    }
    return this.nextFresh;
  }

  /** Whether admission is required (a tenant was created once). */
  required(): boolean {
    return this.isRequired;
  }

  /** A secret that is in force now: created, not revoked, not expired, its tenant not deleted. */
  secret(tenant: string, id: string): SecretRecord | undefined {
    const s = this.secretMap.get(`${SECRET_PREFIX}${tenant}/${id}`);
    if (!s || !this.tenantSet.has(tenant)) return undefined;
    if (s.expiresAt !== null && s.expiresAt <= this.clock.now()) return undefined;
    return s;
  }

  /** Why a presented secret admits nothing (before its key is checked), or its record. */
  lookup(text: string | undefined, tenant: string, role: SecretRole): SecretRecord | string {
    if (text === undefined || text === '') return `tenant ${tenant} requires a secret (--secret) for its ${role}s`;
    const p = parseSecret(text);
    if (!p) return `not ${SECRET_RULE}`;
    if (p.tenant !== tenant) return `the secret is of tenant ${p.tenant}, not ${tenant}`;
    if (!this.tenantSet.has(tenant)) return `tenant ${tenant} does not exist (gandalf-node tenant create ${tenant})`;
    const stored = this.secretMap.get(`${SECRET_PREFIX}${tenant}/${p.id}`);
    if (!stored) return `secret ${p.id} of tenant ${tenant} does not exist or was revoked`;
    if (stored.expiresAt !== null && stored.expiresAt <= this.clock.now()) return `secret ${p.id} of tenant ${tenant} expired`;
    if (!stored.roles.includes(role)) return `secret ${p.id} admits ${stored.roles.join(', ')}, not a ${role}`;
    return stored;
  }

  // --- management (the API's) ------------------------------------------------

  tenants(): string[] {
    return [...this.tenantSet].sort();
  }

  async listTenants(): Promise<{ tenant: string; created_at: number; secrets: number }[]> {
    await this.refresh(true);
    const created = new Map<string, number>();
    for (const { key, value } of await this.kv.list(TENANT_PREFIX, true)) {
      try {
        created.set(key.slice(TENANT_PREFIX.length), Number((JSON.parse(value) as { created_at?: unknown }).created_at) || 0);
      } catch {
        created.set(key.slice(TENANT_PREFIX.length), 0);
      }
    }
    return this.tenants().map((tenant) => ({
      tenant,
      created_at: created.get(tenant) ?? 0,
      secrets: [...this.secretMap.values()].filter((s) => s.tenant === tenant).length,
    }));
  }

  async createTenant(tenant: string): Promise<{ tenant: string; created_at: number }> {
    if (!isTenant(tenant)) invalid(`tenant must be ${TENANT_RULE}`);
    const created_at = Math.floor(this.clock.now());
    try {
      await this.kv.put(`${TENANT_PREFIX}${tenant}`, JSON.stringify({ created_at }), 0);
    } catch (err) {
      if (err instanceof GandalfError && err.code === 'revision_mismatch') throw new GandalfError('conflict', `tenant ${tenant} exists already`);
      throw err;
    }
    await this.kv.put(ADMISSION_KEY, JSON.stringify({ required: true }));
    await this.refresh(true);
    return { tenant, created_at };
  }

  /** Deletes a tenant and every secret of it: what they admitted is cut off. Its database (the sink) stays. */
  async deleteTenant(tenant: string): Promise<{ tenant: string; secrets_revoked: number }> {
    await this.refresh(true);
    if (!this.tenantSet.has(tenant)) throw new GandalfError('not_found', `tenant ${tenant} does not exist`);
    const revoked = [...this.secretMap.values()].filter((s) => s.tenant === tenant).length;
    await this.kv.delete(`${SECRET_PREFIX}${tenant}/`, true);
    await this.kv.delete(`${TENANT_PREFIX}${tenant}`);
    await this.refresh(true);
    return { tenant, secrets_revoked: revoked };
  }

  /** A new secret: its text is in the answer and nowhere else. */
  async createSecret(tenant: string, roles: SecretRole[], expiresInMs: number | undefined): Promise<SecretInfo & { secret: string }> {
    await this.refresh(true);
    if (!this.tenantSet.has(tenant)) throw new GandalfError('not_found', `tenant ${tenant} does not exist (gandalf-node tenant create ${tenant})`);
    if (roles.length === 0 || !roles.every(isSecretRole)) invalid(`roles must be some of ${SECRET_ROLES.join(', ')}`);
    const id = randomBytes(6).toString('hex');
    const key = randomBytes(32).toString('base64url');
    const now = Math.floor(this.clock.now());
    const info: SecretInfo = {
      tenant,
      id,
      roles: SECRET_ROLES.filter((r) => roles.includes(r)),
      created_at: now,
      expires_at: expiresInMs ? now + expiresInMs : null,
    };
    const hash = await hashScrypt(key);
    await this.kv.put(`${SECRET_PREFIX}${tenant}/${id}`, JSON.stringify({ roles: info.roles, hash, created_at: now, expires_at: info.expires_at }), 0);
    await this.refresh(true);
    return { ...info, secret: `gandalf.${tenant}.${id}.${key}` };
  }

  async listSecrets(tenant: string | undefined): Promise<SecretInfo[]> {
    await this.refresh(true);
    return [...this.secretMap.values()]
      .filter((s) => tenant === undefined || s.tenant === tenant)
      .sort((a, b) => (a.tenant === b.tenant ? a.createdAt - b.createdAt : a.tenant < b.tenant ? -1 : 1))
      .map((s) => ({ tenant: s.tenant, id: s.id, roles: s.roles, created_at: s.createdAt, expires_at: s.expiresAt }));
  }

  async revokeSecret(tenant: string, id: string): Promise<void> {
    await this.refresh(true);
    if (!this.secretMap.has(`${SECRET_PREFIX}${tenant}/${id}`)) throw new GandalfError('not_found', `secret ${id} of tenant ${tenant} does not exist`);
    await this.kv.delete(`${SECRET_PREFIX}${tenant}/${id}`);
    await this.refresh(true);
  }
}
