/**
 * Gandalf routing, simulated (test/helpers/routing-sim): real routers, worker
 * hubs and command queues on a simulated clock and network, two tenants.
 * Checked on every seed: no message crosses tenants, no command is finished
 * by two workers, every command ends for its sender with exactly one result
 * or error event by its deadline (and nothing after), no worker gets an
 * event twice, and every routed command is in the sink. A failing seed
 * replays with ROUTING_SEED=<n>; ROUTING_SEEDS=<from>:<to> sweeps more.
 */
import { describe, expect, it } from 'vitest';
import type { Role } from '../../../src/core/routing-identity';
import { RECEIPT } from '../../../src/routing/answers';
import { isEnd, RoutingSim, type SimNodeSpec } from '../../helpers/routing-sim/routing-sim';

const ALL: Role[] = ['cluster', 'aggregator', 'connector'];

/** Two cluster members; tenant acme: two aggregators, connectors alpha x2 and beta; tenant zeta: one aggregator, one connector alpha. */
function rack(): SimNodeSpec[] {
  return [
    { id: 'k1', roles: ['cluster'], tenant: 'default', logicalName: 'core' },
    { id: 'k2', roles: ['cluster'], tenant: 'default', logicalName: 'core' },
    { id: 'a1', roles: ['aggregator'], tenant: 'acme', logicalName: 'agg' },
    { id: 'a2', roles: ['aggregator'], tenant: 'acme', logicalName: 'agg' },
    { id: 'c1', roles: ['connector'], tenant: 'acme', logicalName: 'alpha' },
    { id: 'c2', roles: ['connector'], tenant: 'acme', logicalName: 'alpha' },
    { id: 'c3', roles: ['connector'], tenant: 'acme', logicalName: 'beta', connectorType: 'vm' },
    { id: 'z1', roles: ['aggregator'], tenant: 'zeta', logicalName: 'agg' },
    { id: 'y1', roles: ['connector'], tenant: 'zeta', logicalName: 'alpha' },
  ];
}

const connectors = ['c1', 'c2', 'c3', 'y1'];

/** The properties that hold on every run, faults or not. */
function checkInvariants(sim: RoutingSim): void {
  // no message crosses tenants
  for (const e of sim.executions) expect(sim.sent.get(e.uuid)?.env.tenant, `command ${e.uuid} ran in tenant ${e.tenant}`).toBe(e.tenant);
  for (const d of sim.eventDeliveries) expect(sim.published.get(d.uuid)?.env.tenant, `event ${d.uuid} reached tenant ${d.tenant}`).toBe(d.tenant);
  // no command is finished twice (a worker's result is recorded under the claim in force only)
  const finished = new Map<string, number>();
  for (const e of sim.executions) if (e.finished) finished.set(e.uuid, (finished.get(e.uuid) ?? 0) + 1);
  for (const [uuid, n] of finished) expect(n, `command ${uuid} finished by ${n} workers`).toBe(1);
  // every command ends once, by its deadline, and nothing comes after its end
  for (const [uuid, s] of sim.sent) {
    if (s.senderLost) continue;
    const ends = s.answers.filter((a) => isEnd(a.env));
    expect(ends.length, `command ${uuid}: ${ends.length} ends (${s.answers.map((a) => `${a.env.topic}/${a.env.event}`).join(', ')})`).toBe(1);
    expect(ends[0]!.at, `command ${uuid} ended after its deadline`).toBeLessThanOrEqual(s.deadline);
    expect(s.answers[s.answers.length - 1], `command ${uuid}: an answer after its end`).toBe(ends[0]);
    expect(s.answers.filter((a) => a.env.event === RECEIPT).length, `command ${uuid}: receipts`).toBeLessThanOrEqual(2);
  }
  // no worker (process) gets an event twice
  const seen = new Set<string>();
  for (const d of sim.eventDeliveries) {
    const key = `${d.uuid} ${d.worker}@${d.node}#${d.life}`;
    expect(seen.has(key), `event delivered twice: ${key}`).toBe(false);
    seen.add(key);
  }
  // every command a worker ran passed the cluster, which traced it
  for (const e of sim.executions) expect(sim.sink.messages.has(e.uuid), `command ${e.uuid} ran but is not in the sink`).toBe(true);
}

describe('Gandalf routing (simulated)', () => {
  it('without faults: every command gets a receipt and its result, every event reaches each other subscribed worker of its tenant once', async () => {
    const sim = new RoutingSim({ seed: 1, nodes: rack() });
    await sim.run(100);
    for (let i = 0; i < 40; i++) {
      const from = connectors[i % connectors.length]!;
      sim.sendCommand(
        from,
        `w${i % 2}`,
        i % 3 === 2 && from !== 'y1'
          ? { connector_type: 'vm', timeout: 2000 }
          : i % 3 === 1
            ? { connector_type: 'default', timeout: 2000 }
            : { target: 'alpha', timeout: 2000 },
      );
      sim.publish(from, `w${i % 2}`, 'news');
      await sim.run(20);
    }
    await sim.run(3000);
    checkInvariants(sim);
    for (const [uuid, s] of sim.sent) {
      // its receipt, unless the result overtook it (then the receipt finds the command ended)
      expect(
        s.answers.map((a) => a.env.event).filter((e) => e !== RECEIPT),
        `command ${uuid}`,
      ).toEqual(['SUCCESS']);
      expect(s.answers.filter((a) => a.env.event === RECEIPT).length).toBeLessThanOrEqual(1);
      const ran = sim.executions.filter((e) => e.uuid === uuid);
      expect(ran).toHaveLength(1);
      // by type: vm is beta (c3); default is alpha (c1, c2) in acme and y1 in zeta
      const expected = s.env.connector_type === 'vm' ? ['c3'] : s.env.tenant === 'zeta' ? ['y1'] : ['c1', 'c2'];
      expect(expected).toContain(ran[0]!.node);
    }
    const workersOf = (tenant: string) =>
      [...sim.nodes.values()]
        .filter((n) => n.identity.tenant === tenant && n.identity.roles.includes('connector'))
        .flatMap((n) => n.workers.map((w) => `${w.name}@${n.spec.id}`));
    for (const [uuid, p] of sim.published) {
      const got = sim.eventDeliveries
        .filter((d) => d.uuid === uuid)
        .map((d) => `${d.worker}@${d.node}`)
        .sort();
      const want = workersOf(p.env.tenant)
        .filter((w) => w !== `${p.worker}@${p.node}`)
        .sort();
      expect(got, `event ${uuid} from ${p.worker}@${p.node}`).toEqual(want);
    }
    expect(sim.sink.messages.size).toBeGreaterThanOrEqual(sim.sent.size + sim.published.size);
  });

  it('a single node with all three roles routes a command from one of its workers to another', async () => {
    const sim = new RoutingSim({ seed: 2, nodes: [{ id: 'solo', roles: ALL, tenant: 'default', logicalName: 'default' }] });
    const s = sim.sendCommand('solo', 'w0', { target: 'default', timeout: 1000 })!;
    await sim.run(1500);
    expect(s.answers.map((a) => a.env.event)).toEqual([RECEIPT, 'SUCCESS']);
    const p = sim.publish('solo', 'w0', 'news')!;
    await sim.run(100);
    expect(sim.eventDeliveries.filter((d) => d.uuid === p.uuid).map((d) => d.worker)).toEqual(['w1']);
    checkInvariants(sim);
  });

  it('a command taken by a connector that then crashes completes on a brother before its deadline', async () => {
    const sim = new RoutingSim({ seed: 3, nodes: rack(), workMs: { min: 400, max: 400 }, detectMs: { min: 300, max: 300 } });
    await sim.run(100);
    const s = sim.sendCommand('c3', 'w0', { target: 'alpha', timeout: 4000 })!;
    while (!s.answers.some((a) => a.env.event === RECEIPT)) await sim.run(1);
    const holder = s.answers[0]!.env.source.node;
    expect(['c1', 'c2']).toContain(holder);
    sim.crash(holder);
    await sim.run(4000);
    expect(s.answers.map((a) => a.env.event)).toEqual([RECEIPT, RECEIPT, 'SUCCESS']);
    const finishedOn = sim.executions.filter((e) => e.uuid === s.env.uuid && e.finished).map((e) => e.node);
    expect(finishedOn).toEqual([holder === 'c1' ? 'c2' : 'c1']);
    expect(sim.nodes.get('c3')!.router.resent).toBe(1);
    checkInvariants(sim);
  });

  it('a worker that crashes holding a command: another worker of the connector runs it', async () => {
    const sim = new RoutingSim({ seed: 4, nodes: rack(), workMs: { min: 300, max: 300 } });
    await sim.run(100);
    const s = sim.sendCommand('c1', 'w0', { target: 'beta', timeout: 3000 })!;
    while (!s.answers.some((a) => a.env.event === RECEIPT)) await sim.run(1);
    await sim.run(20);
    expect(sim.crashBusyWorker('c3')).toBe(true);
    await sim.run(3000);
    expect(s.answers.map((a) => a.env.event)).toEqual([RECEIPT, 'SUCCESS']);
    expect(sim.executions.filter((e) => e.uuid === s.env.uuid).map((e) => e.finished)).toEqual([false, true]);
    expect(sim.nodes.get('c3')!.hub.queue.redelivered).toBe(1);
    checkInvariants(sim);
  });

  it('when no aggregator can be reached, the sender gets a timeout error event at the deadline, not later', async () => {
    const sim = new RoutingSim({ seed: 5, nodes: rack() });
    await sim.run(100);
    sim.partition([['c1'], ['k1', 'k2', 'a1', 'a2', 'c2', 'c3', 'z1', 'y1']]);
    const s = sim.sendCommand('c1', 'w0', { target: 'beta', timeout: 1000 })!;
    await sim.run(2000);
    expect(s.answers).toHaveLength(1);
    expect(s.answers[0]!.env.topic).toBe('error');
    expect(s.answers[0]!.env.event).toBe('timeout');
    expect(s.answers[0]!.at).toBeLessThanOrEqual(s.deadline);
    expect(s.answers[0]!.at).toBeGreaterThanOrEqual(s.deadline - 1);
    expect(sim.sink.hops.some((h) => h.uuid === s.env.uuid && h.outcome === 'retried' && h.peer === 'a1')).toBe(true);
    expect(sim.sink.hops.some((h) => h.uuid === s.env.uuid && h.outcome === 'retried' && h.peer === 'a2')).toBe(true);
  });

  it('a command to a logical name that does not exist gets a no_target error event from the cluster', async () => {
    const sim = new RoutingSim({ seed: 6, nodes: rack() });
    await sim.run(100);
    const s = sim.sendCommand('c1', 'w0', { connector_type: 'printer', timeout: 1000 })!;
    await sim.run(1500);
    expect(s.answers.map((a) => `${a.env.topic}/${a.env.event}`)).toEqual(['error/no_target']);
    expect((s.answers[0]!.env.payload as { error: string }).error).toMatch(/no connector of type printer in tenant acme/);
    expect(s.answers[0]!.at).toBeLessThan(s.deadline - 500);
  });

  it('a foreign tenant is refused at every hop, from the tenant the peer was admitted with, and the refusal is traced', async () => {
    const sim = new RoutingSim({ seed: 7, nodes: rack() });
    await sim.run(100);
    // a zeta worker claims tenant acme
    const forged = {
      uuid: sim.newUuid(),
      tenant: 'acme',
      kind: 'command',
      command: 'RUN',
      target: 'alpha',
      timestamp: 0,
      source: { node: 'y1', role: 'connector', logical_name: 'alpha', worker: 'w0' },
      context: {},
      payload: null,
      timeout: 1000,
      major: 0,
      minor: 0,
      attempt: 1,
      hops: 0,
      hop_limit: 8,
    } as const;
    const r = sim.submitRaw('y1', forged);
    expect(r).toMatchObject({ ok: false, reason: 'foreign_tenant' });
    // zeta's aggregator hands acme's aggregator a message claiming acme; and a zeta connector talks to acme's aggregator
    sim.inject('z1', 'k1', { t: 'msg', hop: 1, from: 'aggregator', to: 'cluster', env: forged });
    sim.inject('y1', 'a1', { t: 'msg', hop: 2, from: 'connector', to: 'aggregator', env: forged });
    const zetaAsAcme = { ...forged, uuid: sim.newUuid(), tenant: 'zeta' };
    sim.inject('k1', 'a1', { t: 'msg', hop: 3, from: 'cluster', to: 'aggregator', env: zetaAsAcme });
    await sim.run(500);
    expect(sim.executions).toHaveLength(0);
    const drops = sim.sink.hops.filter((h) => h.outcome === 'dropped' && h.reason?.startsWith('foreign_tenant'));
    expect(drops.map((h) => `${h.node}:${h.role}`).sort()).toEqual(['a1:aggregator', 'a1:aggregator', 'k1:cluster', 'y1:connector']);
    expect(sim.nodes.get('k1')!.router.refused.get('foreign_tenant')).toBe(1);
    // each refusal was reported to the cluster as an error event, recorded in the sink
    const reports = [...sim.sink.messages.values()].filter((m) => m.kind === 'event' && m.topic === 'error' && m.event === 'foreign_tenant');
    expect(reports.length).toBeGreaterThanOrEqual(2);
  });

  it('a node hands messages only to peers it admits: an aggregator whose secret failed never gets one, and commands go around it', async () => {
    const nodes = rack().map((n) => (n.id === 'a2' ? { ...n, admitted: false } : n));
    const sim = new RoutingSim({ seed: 11, nodes });
    await sim.run(100);
    const sent = Array.from({ length: 20 }, (_, i) => sim.sendCommand(connectors[i % 3]!, 'w0', { command: 'RUN', target: 'alpha', timeout: 2000 })!);
    await sim.run(3000);
    for (const s of sent) expect(s.answers.filter((a) => isEnd(a.env)).map((a) => a.env.topic)).toEqual(['result']);
    expect(sim.sink.hops.filter((h) => h.node === 'a2')).toEqual([]);
    checkInvariants(sim);
  });

  it('the cluster keeps a connector\u2019s logical configuration (SAVE, GET) and confirms its admission (secret VALIDATE), each answered by a result', async () => {
    const sim = new RoutingSim({ seed: 13, nodes: rack() });
    await sim.run(100);
    const result = (s: ReturnType<typeof sim.sendConfig>) => {
      const ends = s!.answers.filter((a) => isEnd(a.env));
      expect(ends).toHaveLength(1);
      return { event: ends[0]!.env.event, payload: ends[0]!.env.payload as Record<string, unknown> };
    };
    const saved = sim.sendConfig('c1', 'w0', 'configuration', 'SAVE', { vms: 3 });
    await sim.run(1000);
    expect(result(saved)).toMatchObject({ event: 'SUCCESS', payload: { logical_name: 'alpha', configuration: { vms: 3 }, version: 1 } });
    // its brother (same logical name) reads it back; another logical name has none
    const read = sim.sendConfig('c2', 'w1', 'configuration', 'GET', null);
    const other = sim.sendConfig('c3', 'w0', 'configuration', 'GET', null);
    await sim.run(1000);
    expect(result(read)).toMatchObject({ event: 'SUCCESS', payload: { configuration: { vms: 3 }, version: 1 } });
    expect(result(other)).toMatchObject({ event: 'SUCCESS', payload: { logical_name: 'beta', configuration: null, version: 0 } });
    const again = sim.sendConfig('c2', 'w0', 'configuration', 'SAVE', { vms: 4 });
    await sim.run(1000);
    expect(result(again).payload).toMatchObject({ configuration: { vms: 4 }, version: 2 });
    expect(sim.configurations.get('zeta/alpha')).toBeUndefined();
    const bad = sim.sendConfig('c1', 'w0', 'configuration', 'DROP', null);
    const secret = sim.sendConfig('y1', 'w0', 'secret', 'VALIDATE', null);
    await sim.run(1000);
    expect(result(bad)).toMatchObject({ event: 'FAIL', payload: { error: "a configuration's command is SAVE or GET, not DROP" } });
    expect(result(secret)).toMatchObject({ event: 'SUCCESS', payload: { admitted: true, tenant: 'zeta', node: 'y1' } });
    // no worker ran any of them: the cluster answered them itself
    expect(sim.executions).toHaveLength(0);
    checkInvariants(sim);
  });

  it('malformed frames and envelopes are refused with the reason, counted, and the node goes on routing', async () => {
    const sim = new RoutingSim({ seed: 8, nodes: rack() });
    await sim.run(100);
    sim.inject('c1', 'a1', 'garbage');
    sim.inject('c1', 'a1', { t: 'msg', hop: 1, from: 'connector', to: 'connector', env: {} });
    sim.inject('c1', 'a1', { t: 'msg', hop: 2, from: 'connector', to: 'aggregator', env: { uuid: 'nope' } });
    expect(sim.nodes.get('a1')!.router.malformed).toBe(3);
    const s = sim.sendCommand('c1', 'w0', { target: 'beta', timeout: 1000 })!;
    await sim.run(1500);
    expect(s.answers.map((a) => a.env.event)).toEqual([RECEIPT, 'SUCCESS']);
  });

  // ROUTING_SEED=n replays one seed; ROUTING_SEEDS=from:to sweeps a range
  const range = (process.env.ROUTING_SEEDS ?? '100:123').split(':').map(Number) as [number, number];
  const seeds = process.env.ROUTING_SEED ? [Number(process.env.ROUTING_SEED)] : Array.from({ length: range[1] - range[0] + 1 }, (_, i) => range[0] + i);
  it.each(seeds)('under lost frames, partitions, node and worker crashes (seed %i) nothing crosses tenants, runs twice or ends late', async (seed) => {
    const sim = new RoutingSim({ seed, nodes: rack(), loss: 0.03, workMs: { min: 5, max: 150 } });
    const r = sim.random;
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    await sim.run(100);
    for (let step = 0; step < 120; step++) {
      const from = pick(connectors);
      const roll = r();
      if (roll < 0.5) sim.sendCommand(from, pick(['w0', 'w1']), { target: pick(['alpha', 'beta']), timeout: 500 + Math.floor(r() * 2500) });
      else if (roll < 0.8) sim.publish(from, pick(['w0', 'w1']), 'news');
      else if (roll < 0.85) sim.crash(pick(['c1', 'c2', 'c3', 'a1', 'a2', 'k1']));
      else if (roll < 0.9) for (const id of sim.nodes.keys()) sim.restart(id);
      else if (roll < 0.93)
        sim.partition([
          ['k1', 'a1', 'c1'],
          ['k2', 'a2', 'c2', 'c3', 'z1', 'y1'],
        ]);
      else if (roll < 0.96) sim.heal();
      else sim.crashBusyWorker(pick(connectors));
      await sim.run(Math.floor(r() * 60));
    }
    sim.heal();
    for (const id of sim.nodes.keys()) sim.restart(id);
    await sim.run(5000);
    // once the faults end (frames are still lost), every command gets its result again
    const after = [];
    for (let i = 0; i < 8; i++) after.push(sim.sendCommand(pick(['c1', 'c2', 'c3']), 'w0', { target: pick(['alpha', 'beta']), timeout: 2000 })!);
    await sim.run(3000);
    checkInvariants(sim);
    for (const s of after)
      expect(
        s.answers.filter((a) => isEnd(a.env)).map((a) => a.env.event),
        `command ${s.env.uuid} after the faults`,
      ).toEqual(['SUCCESS']);
    // and during them, a share did
    const results = [...sim.sent.values()].filter((s) => s.answers.some((a) => a.env.event === 'SUCCESS')).length;
    expect(results).toBeGreaterThan(8);
    expect(sim.eventDeliveries.length).toBeGreaterThan(sim.published.size);
  });
});
