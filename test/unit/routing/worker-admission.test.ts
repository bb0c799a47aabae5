/**
 * Workers are admitted by a secret of their connector's tenant once tenants
 * exist: refused (and traced) without one or with a wrong one, and cut off
 * (their streams end `unauthorized`) when it is revoked.
 */
import { describe, expect, it } from 'vitest';
import type { GandalfError } from '../../../src/core/errors';
import { silentLogger } from '../../../src/core/logger';
import type { AdmissionRecord } from '../../../src/routing/ports';
import type { Router } from '../../../src/routing/router';
import { TenantRegistry } from '../../../src/routing/tenant-registry';
import { WorkerHub } from '../../../src/routing/worker-hub';
import { WorkerSessions } from '../../../src/routing/worker-sessions';
import { memoryKv } from '../../helpers/memory-kv';
import { SimClock } from '../../helpers/sim/sim-clock';

function connector() {
  const clock = new SimClock();
  const kv = memoryKv();
  const tenants = new TenantRegistry(kv, clock, silentLogger);
  const admin = new TenantRegistry(kv, clock, silentLogger);
  const traces: AdmissionRecord[] = [];
  const workers = new WorkerSessions({
    self: 'n1',
    identity: { roles: ['connector'], tenant: 'acme', logicalName: 'c1', connectorType: 'default', product: undefined },
    // registration, admission and command streams never reach the router
    router: {} as Router,
    hub: new WorkerHub('n1', clock),
    clock,
    newUuid: () => '00000000-0000-4000-8000-000000000001',
    tenants,
    trace: (r) => traces.push(r),
  });
  return { clock, tenants, admin, traces, workers };
}

const reg = (name: string, secret?: string) => ({ name, major: 1, minor: 0, commands: [], ...(secret ? { secret } : {}) });

describe('worker admission', () => {
  it('refuses to register before the tenants are read, and registers anyone in an open cluster', async () => {
    const c = connector();
    await expect(c.workers.register(reg('w1'))).rejects.toMatchObject({ code: 'starting' });
    await c.tenants.refresh();
    expect(c.workers.anonymousAllowed()).toBe(true);
    await expect(c.workers.register(reg('w1'))).resolves.toEqual({ id: 'w1' });
    expect(c.traces).toEqual([]);
  });

  it('once tenants exist, refuses a worker without a secret, with a wrong key or a connector-only secret, and traces each refusal', async () => {
    const c = connector();
    await c.admin.createTenant('acme');
    const connectorOnly = await c.admin.createSecret('acme', ['connector'], undefined);
    const good = await c.admin.createSecret('acme', ['worker'], undefined);
    await c.tenants.refresh();
    expect(c.workers.anonymousAllowed()).toBe(false);
    await expect(c.workers.register(reg('w1'))).rejects.toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/requires a secret/) });
    const wrong = good.secret.slice(0, -4) + (good.secret.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await expect(c.workers.register(reg('w1', wrong))).rejects.toMatchObject({ message: `worker w1 refused: wrong key for secret ${good.id} of tenant acme` });
    await expect(c.workers.register(reg('w1', connectorOnly.secret))).rejects.toMatchObject({
      message: expect.stringMatching(/admits connector, not a worker/),
    });
    expect(c.traces.map((t) => [t.name, t.outcome, t.secretId])).toEqual([
      ['w1', 'refused', undefined],
      ['w1', 'refused', good.id],
      ['w1', 'refused', connectorOnly.id],
    ]);
    await expect(c.workers.register(reg('w1', good.secret))).resolves.toEqual({ id: 'w1' });
    expect(c.traces.at(-1)).toMatchObject({ tenant: 'acme', subject: 'worker', name: 'w1', outcome: 'admitted', secretId: good.id });
    expect(JSON.stringify(c.traces)).not.toContain(good.secret);
  });

  it('cuts a worker off when its secret is revoked: its streams end unauthorized and its session is gone', async () => {
    const c = connector();
    await c.admin.createTenant('acme');
    const good = await c.admin.createSecret('acme', ['worker'], undefined);
    await c.tenants.refresh();
    await c.workers.register(reg('w1', good.secret));
    const cuts: GandalfError[] = [];
    c.workers.takeCommands(
      'w1',
      1,
      () => undefined,
      (err) => cuts.push(err),
    );
    c.workers.subscribe(
      'w1',
      ['news'],
      () => undefined,
      (err) => cuts.push(err),
    );
    await c.admin.revokeSecret('acme', good.id);
    await c.tenants.refresh();
    expect(cuts.map((e) => e.code)).toEqual(['unauthorized', 'unauthorized']);
    expect(() => c.workers.grant('w1', 1)).toThrow(/no worker w1/);
  });
});
