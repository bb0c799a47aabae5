/**
 * Admission of routing peers by their secrets, on simulated time and a
 * simulated network (scrypt itself runs for real): an open cluster admits by
 * the published identity; once a tenant exists, a node is admitted only with
 * a valid secret of its tenant, presented only to cluster members and its
 * own tenant; a wrong secret is refused and traced; revocation cuts off; a
 * receiver that forgot (restarted) asks again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import type { Role, RoutingIdentity } from '../../../src/core/routing-identity';
import type { Directory } from '../../../src/routing/directory';
import { PeerAdmission, type AdmissionFrame } from '../../../src/routing/peer-admission';
import type { AdmissionRecord } from '../../../src/routing/ports';
import { TenantRegistry } from '../../../src/routing/tenant-registry';
import { memoryKv } from '../../helpers/memory-kv';
import { SimClock } from '../../helpers/sim/sim-clock';

type Spec = { id: string; roles: Role[]; tenant: string; secret?: string };

function rack(specs: Spec[]) {
  const clock = new SimClock();
  const kv = memoryKv();
  const frames: { from: string; to: string; frame: AdmissionFrame; at: number }[] = [];
  const traces: AdmissionRecord[] = [];
  const identity = (s: Spec): RoutingIdentity => ({ roles: s.roles, tenant: s.tenant, logicalName: s.id, connectorType: 'default', product: undefined });
  /** Nodes membership does not know yet (nobody's directory lists them). */
  const unknown = new Set<string>();
  const directory: Directory = { peers: () => specs.filter((s) => !unknown.has(s.id)).map((s) => ({ id: s.id, identity: identity(s) })) };
  const nodes = new Map<string, { admission: PeerAdmission; registry: TenantRegistry }>();
  const boot = (s: Spec) => {
    const registry = new TenantRegistry(kv, clock, silentLogger);
    const admission = new PeerAdmission({
      self: s.id,
      identity: identity(s),
      secret: s.secret,
      registry,
      directory,
      clock,
      logger: silentLogger,
      send: (to, frame) => {
        frames.push({ from: s.id, to, frame, at: clock.monotonic() });
        clock.setTimeout(() => nodes.get(to)?.admission.receive(s.id, frame), 2);
        return true;
      },
      trace: (r) => traces.push(r),
    });
    nodes.get(s.id)?.admission.stop();
    nodes.get(s.id)?.registry.stop();
    nodes.set(s.id, { admission, registry });
    registry.start();
    admission.start();
  };
  /** Advances simulated time in steps, giving scrypt (real time) room, until `done` or `simMs` (what is asserted never depends on scrypt's speed). */
  const run = async (simMs: number, done: () => boolean = () => false) => {
    for (let t = 0; t < simMs && !done(); t += 100) {
      clock.advance(100);
      await sleep(10);
    }
  };
  const admin = new TenantRegistry(kv, clock, silentLogger);
  return { clock, kv, frames, traces, nodes, boot, run, admin, unknown, at: (id: string) => nodes.get(id)!.admission };
}

const cluster: Spec = { id: 'c1', roles: ['cluster'], tenant: 'default' };

describe('peer admission', () => {
  it('admits by the published identity while no tenant exists', async () => {
    const r = rack([cluster, { id: 'a1', roles: ['aggregator', 'connector'], tenant: 'acme' }]);
    r.boot(cluster);
    r.boot({ id: 'a1', roles: ['aggregator', 'connector'], tenant: 'acme' });
    await r.run(3000);
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
    expect(r.at('a1').tenantOf('c1', 'cluster')).toBe('*');
    expect(r.at('c1').tenantOf('a1', 'cluster')).toBeUndefined();
    expect(r.frames.filter((f) => f.frame.t === 'admit')).toEqual([]);
  });

  it('admits a node with a valid secret and refuses one with a wrong key, with traces; secrets go only to cluster members and the own tenant', async () => {
    const specs: Spec[] = [cluster, { id: 'a1', roles: ['aggregator', 'connector'], tenant: 'acme' }, { id: 'b1', roles: ['aggregator'], tenant: 'umbrella' }];
    const r = rack(specs);
    await r.admin.createTenant('acme');
    await r.admin.createTenant('umbrella');
    const good = await r.admin.createSecret('acme', ['aggregator', 'connector'], undefined);
    const other = await r.admin.createSecret('umbrella', ['aggregator'], undefined);
    specs[1]!.secret = good.secret;
    specs[2]!.secret = other.secret.slice(0, -4) + (other.secret.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const s of specs) r.boot(s);
    await r.run(
      30_000,
      () =>
        r.at('c1').tenantOf('a1', 'aggregator') === 'acme' &&
        r.at('a1').tenantOf('a1', 'connector') === 'acme' &&
        r.at('b1').standing().c1?.state === 'refused',
    );
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
    expect(r.at('c1').tenantOf('a1', 'connector')).toBe('acme');
    expect(r.at('a1').tenantOf('a1', 'connector')).toBe('acme');
    expect(r.at('c1').tenantOf('b1', 'aggregator')).toBeUndefined();
    expect(r.at('b1').standing().c1).toMatchObject({ state: 'refused', reason: `wrong key for secret ${other.id} of tenant umbrella` });
    expect(r.traces).toContainEqual(expect.objectContaining({ tenant: 'acme', node: 'c1', name: 'a1', outcome: 'admitted', secretId: good.id }));
    expect(r.traces).toContainEqual(expect.objectContaining({ tenant: 'umbrella', node: 'c1', name: 'b1', outcome: 'refused', secretId: other.id }));
    // a1's secret never went to b1 (another tenant), nor b1's to a1
    const admits = r.frames.filter((f) => f.frame.t === 'admit');
    expect(admits.some((f) => f.from === 'a1' && f.to === 'b1')).toBe(false);
    expect(admits.some((f) => f.from === 'b1' && f.to === 'a1')).toBe(false);
    expect(JSON.stringify(r.traces)).not.toContain(good.secret);
  });

  it('refuses a secret of another tenant, a missing one and one without the role', async () => {
    const specs: Spec[] = [
      cluster,
      { id: 'a1', roles: ['aggregator'], tenant: 'acme' },
      { id: 'a2', roles: ['connector'], tenant: 'acme' },
      { id: 'a3', roles: ['aggregator'], tenant: 'acme' },
    ];
    const r = rack(specs);
    await r.admin.createTenant('acme');
    await r.admin.createTenant('umbrella');
    specs[1]!.secret = (await r.admin.createSecret('umbrella', ['aggregator'], undefined)).secret;
    specs[2]!.secret = (await r.admin.createSecret('acme', ['worker'], undefined)).secret;
    for (const s of specs) r.boot(s);
    await r.run(30_000, () => r.at('a1').standing().c1?.state === 'refused' && r.at('a2').standing().c1?.state === 'refused');
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBeUndefined();
    expect(r.at('a1').standing().c1?.reason).toBe('the secret is of tenant umbrella, not acme');
    expect(r.at('c1').tenantOf('a2', 'connector')).toBeUndefined();
    expect(r.at('a2').standing().c1?.reason).toMatch(/admits worker, not a connector/);
    // a3 has no secret: it presents nothing, and is not admitted
    expect(r.frames.some((f) => f.from === 'a3' && f.frame.t === 'admit')).toBe(false);
    expect(r.at('c1').tenantOf('a3', 'aggregator')).toBeUndefined();
  });

  it('cuts a node off when its secret is revoked, and admits it again with a new one only after a restart with it', async () => {
    const specs: Spec[] = [cluster, { id: 'a1', roles: ['aggregator'], tenant: 'acme' }];
    const r = rack(specs);
    await r.admin.createTenant('acme');
    const s = await r.admin.createSecret('acme', ['aggregator'], undefined);
    specs[1]!.secret = s.secret;
    for (const x of specs) r.boot(x);
    await r.run(30_000, () => r.at('c1').tenantOf('a1', 'aggregator') === 'acme');
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
    await r.admin.revokeSecret('acme', s.id);
    await r.run(3000);
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBeUndefined();
    await r.run(15_000);
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBeUndefined();
    specs[1]!.secret = (await r.admin.createSecret('acme', ['aggregator'], undefined)).secret;
    r.boot(specs[1]!);
    await r.run(30_000, () => r.at('c1').tenantOf('a1', 'aggregator') === 'acme');
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
  });

  it('a receiver that restarted asks for the secret again and admits the peer without waiting for its next presentation', async () => {
    const specs: Spec[] = [cluster, { id: 'a1', roles: ['aggregator'], tenant: 'acme' }];
    const r = rack(specs);
    await r.admin.createTenant('acme');
    specs[1]!.secret = (await r.admin.createSecret('acme', ['aggregator'], undefined)).secret;
    for (const x of specs) r.boot(x);
    await r.run(30_000, () => r.at('c1').tenantOf('a1', 'aggregator') === 'acme');
    await r.run(1000);
    expect(r.at('a1').standing().c1?.state).toBe('admitted');
    r.boot(cluster);
    // the restarted receiver knows nothing: its first check fails and asks a1, which presents again at once
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBeUndefined();
    const asked = r.clock.monotonic();
    await r.run(30_000, () => r.at('c1').tenantOf('a1', 'aggregator') === 'acme');
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
    // a1 presented again within its next tick of the ask, not at its own next presentation (30 s later)
    const again = r.frames.find((f) => f.from === 'a1' && f.frame.t === 'admit' && f.at >= asked);
    expect(again!.at - asked).toBeLessThanOrEqual(1100);
    expect(r.frames.some((f) => f.from === 'c1' && f.frame.t === 'admit_needed')).toBe(true);
  });

  it('a presentation from a peer membership does not know yet is not refused: it is admitted soon after membership knows it', async () => {
    const specs: Spec[] = [cluster, { id: 'a1', roles: ['aggregator'], tenant: 'acme' }];
    const r = rack(specs);
    await r.admin.createTenant('acme');
    specs[1]!.secret = (await r.admin.createSecret('acme', ['aggregator'], undefined)).secret;
    r.unknown.add('a1');
    for (const x of specs) r.boot(x);
    await r.run(2000);
    expect(r.frames.some((f) => f.from === 'a1' && f.frame.t === 'admit')).toBe(true);
    expect(r.frames.some((f) => f.from === 'c1' && f.frame.t === 'refused')).toBe(false);
    r.unknown.delete('a1');
    const known = r.clock.monotonic();
    await r.run(30_000, () => r.at('c1').tenantOf('a1', 'aggregator') === 'acme');
    expect(r.at('c1').tenantOf('a1', 'aggregator')).toBe('acme');
    // its next presentation came after RETRY_MS (3 s), not after a refusal's 10 s
    const next = r.frames.find((f) => f.from === 'a1' && f.to === 'c1' && f.frame.t === 'admit' && f.at >= known);
    expect(next!.at - known).toBeLessThanOrEqual(3100);
  });
});
