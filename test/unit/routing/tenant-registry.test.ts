/**
 * Tenants and secrets in the replicated key/value container: a secret is
 * shown once and stored as an scrypt hash only; what a presented secret
 * admits (its tenant, roles, expiry); revocation and tenant deletion.
 */
import { describe, expect, it } from 'vitest';
import { GandalfError } from '../../../src/core/errors';
import { silentLogger } from '../../../src/core/logger';
import { parseSecret } from '../../../src/core/routing-identity';
import { ADMISSION_KEY, SECRET_PREFIX, TenantRegistry } from '../../../src/routing/tenant-registry';
import { memoryKv } from '../../helpers/memory-kv';
import { SimClock } from '../../helpers/sim/sim-clock';

function registry() {
  const kv = memoryKv();
  const clock = new SimClock();
  return { kv, clock, reg: new TenantRegistry(kv, clock, silentLogger) };
}

describe('tenant registry', () => {
  it('is open until the first tenant is created, and requires admission from then on, even with every tenant deleted', async () => {
    const { reg, kv } = registry();
    await reg.refresh();
    expect(reg.required()).toBe(false);
    await reg.createTenant('acme');
    expect(reg.required()).toBe(true);
    expect(kv.data.has(ADMISSION_KEY)).toBe(true);
    await reg.deleteTenant('acme');
    expect(reg.required()).toBe(true);
    expect(reg.tenants()).toEqual([]);
  });

  it('refuses a tenant twice and a bad tenant name', async () => {
    const { reg } = registry();
    await reg.createTenant('acme');
    await expect(reg.createTenant('acme')).rejects.toMatchObject({ code: 'conflict' });
    await expect(reg.createTenant('Bad Name')).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(reg.createSecret('nobody', ['worker'], undefined)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('shows a secret once and stores only its scrypt hash', async () => {
    const { reg, kv } = registry();
    await reg.createTenant('acme');
    const s = await reg.createSecret('acme', ['connector', 'aggregator'], undefined);
    const parsed = parseSecret(s.secret)!;
    expect(parsed).toMatchObject({ tenant: 'acme', id: s.id });
    expect(s.roles).toEqual(['aggregator', 'connector']);
    const stored = kv.data.get(`${SECRET_PREFIX}acme/${s.id}`)!;
    expect(stored).not.toContain(parsed.key);
    expect(JSON.parse(stored).hash).toMatch(/^scrypt\$16384\$8\$1\$/);
    const listed = await reg.listSecrets('acme');
    expect(listed).toEqual([{ tenant: 'acme', id: s.id, roles: ['aggregator', 'connector'], created_at: s.created_at, expires_at: null }]);
    expect(JSON.stringify(listed)).not.toContain('scrypt');
  });

  it('says why a presented secret admits nothing', async () => {
    const { reg, clock } = registry();
    await reg.createTenant('acme');
    await reg.createTenant('umbrella');
    const s = await reg.createSecret('acme', ['worker'], 60_000);
    expect(reg.lookup(undefined, 'acme', 'worker')).toMatch(/requires a secret/);
    expect(reg.lookup('hunter2', 'acme', 'worker')).toMatch(/not a secret as/);
    expect(reg.lookup(s.secret, 'umbrella', 'worker')).toBe('the secret is of tenant acme, not umbrella');
    expect(reg.lookup(s.secret, 'acme', 'connector')).toBe(`secret ${s.id} admits worker, not a connector`);
    expect(reg.lookup(s.secret, 'acme', 'worker')).toMatchObject({ id: s.id, tenant: 'acme' });
    const forged = s.secret.replace(s.id, '0123456789ab');
    expect(reg.lookup(forged, 'acme', 'worker')).toMatch(/does not exist or was revoked/);
    clock.advance(60_001);
    expect(reg.lookup(s.secret, 'acme', 'worker')).toBe(`secret ${s.id} of tenant acme expired`);
    expect(reg.secret('acme', s.id)).toBeUndefined();
  });

  it('revokes one secret, and every secret of a deleted tenant', async () => {
    const { reg, kv } = registry();
    await reg.createTenant('acme');
    const a = await reg.createSecret('acme', ['worker'], undefined);
    const b = await reg.createSecret('acme', ['connector'], undefined);
    await reg.revokeSecret('acme', a.id);
    expect(reg.secret('acme', a.id)).toBeUndefined();
    expect(reg.secret('acme', b.id)).toBeDefined();
    await expect(reg.revokeSecret('acme', a.id)).rejects.toBeInstanceOf(GandalfError);
    expect(await reg.deleteTenant('acme')).toEqual({ tenant: 'acme', secrets_revoked: 1 });
    expect([...kv.data.keys()].filter((k) => k.startsWith(SECRET_PREFIX))).toEqual([]);
    expect(reg.secret('acme', b.id)).toBeUndefined();
  });

  it('tells its listeners after each refresh, and skips a malformed record', async () => {
    const { reg, kv } = registry();
    let calls = 0;
    reg.onChange(() => calls++);
    await reg.createTenant('acme');
    kv.data.set(`${SECRET_PREFIX}acme/0123456789ab`, '{"roles": ["worker"], "hash": "nope", "created_at": 1, "expires_at": null}');
    await reg.refresh();
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(reg.secret('acme', '0123456789ab')).toBeUndefined();
  });

  it('reads at the leader on a miss at most once a second, and a miss in between waits for the next read instead of going unread', async () => {
    const { reg, kv, clock } = registry();
    let fresh = 0;
    const list = kv.list;
    kv.list = (prefix, isFresh) => {
      if (isFresh) fresh++;
      return list(prefix, isFresh);
    };
    await reg.refreshForMiss();
    expect(fresh).toBe(1);
    const second = reg.refreshForMiss();
    const third = reg.refreshForMiss();
    // a tenant created meanwhile (by another board) is seen by the read they share
    kv.data.set('gandalf/tenants/late', '{}');
    await Promise.resolve();
    expect(fresh).toBe(1);
    clock.advance(1000);
    await Promise.all([second, third]);
    expect(fresh).toBe(2);
    expect(reg.tenants()).toEqual(['late']);
  });
});
