/**
 * Simulated clusters (test/helpers/sim): joining, partitions healing, graceful
 * leave, duplication and reordering, restarts. Each property runs over many
 * seeds; a failure names its seed (replay with SWIM_SEED=<seed>).
 */
import { describe, expect, it } from 'vitest';
import { shuffle } from '../../../src/membership/random';
import { DEFAULT_SWIM_CONFIG } from '../../../src/membership/swim';
import { CLUSTER_SIZE, JOIN_BOUND_MS, convergedCluster, deaths, formatEvents } from '../../helpers/sim/cluster';
import { forEachSeed } from '../../helpers/sim/seeds';
import { SimNetwork } from '../../helpers/sim/sim-network';

const SEEDS = 100;
const { probeIntervalMs, gossipToTheDeadMs } = DEFAULT_SWIM_CONFIG;
/** How long the 4/4 partition lasts. */
const PARTITION_MS = 30_000;
/**
 * After the partition heals, every node sees all members alive again within this. Healing starts within a
 * probe interval: each node tells one member it holds dead so each tick, which refutes and answers (observed
 * at most 11 s over 300 seeds).
 */
const HEAL_BOUND_MS = 20_000;
/** A graceful leave is seen everywhere within two probe intervals (it is sent straight to every member). */
const LEAVE_BOUND_MS = 2 * probeIntervalMs;

describe('membership simulation: convergence', () => {
  it(`join: ${CLUSTER_SIZE} nodes joining through n0 all see each other alive, with endpoint and meta, within ${JOIN_BOUND_MS} ms`, () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = new SimNetwork({ seed, size: CLUSTER_SIZE });
      sim.startAndJoinViaFirst();
      const took = sim.runUntil(() => sim.converged(), JOIN_BOUND_MS);
      expect(took, `not converged:\n${sim.describe()}`).toBeDefined();
      for (const node of sim.nodes) {
        for (const member of node.swim.members()) {
          const index = Number(member.id.slice(1));
          expect(member.endpoint).toBe(`http://10.0.0.${index + 1}:8421`);
          expect(member.meta).toEqual({ arch: index % 2 ? 'arm64' : 'x64', roles: 'cluster' });
        }
        // onChange announced every other member's first sighting as alive.
        const firstSightings = sim.events.filter((e) => e.observer === node.id && e.previous === undefined && e.state === 'alive');
        expect(firstSightings.map((e) => e.member).sort()).toEqual(sim.ids.filter((id) => id !== node.id).sort());
      }
      expect(sim.errors).toEqual([]);
    });
  });

  it(`partition: split 4/4 for ${PARTITION_MS} ms each side gives the other up; after healing all see all alive within ${HEAL_BOUND_MS} ms`, () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const order = shuffle(sim.ids, sim.random);
      const sides = [order.slice(0, CLUSTER_SIZE / 2), order.slice(CLUSTER_SIZE / 2)];
      sim.partition(...sides);
      sim.run(PARTITION_MS);
      for (const [mine, other] of [sides, [...sides].reverse()] as [string[], string[]][]) {
        for (const id of mine) {
          const view = sim.view(id);
          const states = other.map((o) => view.get(o));
          expect(
            states.every((s) => s === 'suspect' || s === 'dead'),
            `${id} sees the other side as ${states.join(',')}`,
          ).toBe(true);
          expect(states.includes('dead'), `${id} declared nobody on the other side dead: ${states.join(',')}`).toBe(true);
        }
      }
      sim.heal();
      const took = sim.runUntil(() => sim.converged(), HEAL_BOUND_MS);
      expect(took, `not healed:\n${sim.describe()}`).toBeDefined();
      expect(sim.errors).toEqual([]);
    });
  });

  it(`leave: the others see a leaving node as left (never dead) within ${LEAVE_BOUND_MS} ms, and forget it after ${gossipToTheDeadMs} ms`, () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const leaver = sim.ids[sim.randomInt(CLUSTER_SIZE)]!;
      const mark = sim.events.length;
      sim.node(leaver).swim.leave();
      expect(sim.node(leaver).swim.member(leaver)?.state).toBe('left');
      // The process exits shortly after leaving.
      sim.run(100);
      sim.crash(leaver);
      const others = sim.live();
      const took = sim.runUntil(() => others.every((n) => n.swim.member(leaver)?.state === 'left'), LEAVE_BOUND_MS);
      expect(took, `leave not seen:\n${sim.describe()}`).toBeDefined();
      sim.run(gossipToTheDeadMs + 2 * probeIntervalMs);
      expect(
        others.every((n) => n.swim.member(leaver) === undefined),
        `left member not forgotten:\n${sim.describe()}`,
      ).toBe(true);
      expect(formatEvents(deaths(sim, mark))).toEqual([]);
      expect(sim.converged()).toBe(true);
      expect(sim.errors).toEqual([]);
    });
  });

  it('duplication (10%) and reordering (latency 1..150 ms) neither slow joining nor cause false deaths', () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = new SimNetwork({ seed, size: CLUSTER_SIZE, duplicate: 0.1, latencyMs: { min: 1, max: 150 } });
      sim.startAndJoinViaFirst();
      const took = sim.runUntil(() => sim.converged(), JOIN_BOUND_MS);
      expect(took, `not converged:\n${sim.describe()}`).toBeDefined();
      sim.run(30_000);
      expect(formatEvents(deaths(sim))).toEqual([]);
      expect(sim.converged(), sim.describe()).toBe(true);
      expect(sim.stats.duplicated).toBeGreaterThan(0);
      expect(sim.errors).toEqual([]);
    });
  });

  it('restart: a crashed node that comes back (fresh, incarnation 0) is alive again everywhere, whether or not it was forgotten', () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const victim = `n${1 + sim.randomInt(CLUSTER_SIZE - 1)}`;
      sim.crash(victim);
      const survivors = sim.live();
      // Comes back while still listed as dead (half the seeds) or after everyone forgot it.
      const forgotten = seed % 2 === 0;
      const gone = () => survivors.every((n) => (forgotten ? n.swim.member(victim) === undefined : n.swim.member(victim)?.state === 'dead'));
      expect(sim.runUntil(gone, 90_000), `not ${forgotten ? 'forgotten' : 'dead'}:\n${sim.describe()}`).toBeDefined();
      const incarnation = Math.max(-1, ...survivors.map((n) => n.swim.member(victim)?.incarnation ?? -1));
      const via = survivors[sim.randomInt(survivors.length)]!.id;
      sim.restart(victim, via);
      const took = sim.runUntil(() => sim.converged(), JOIN_BOUND_MS);
      expect(took, `restarted ${victim} (via ${via}) not alive everywhere:\n${sim.describe()}`).toBeDefined();
      expect(sim.node(victim).swim.member(victim)!.incarnation).toBeGreaterThan(incarnation);
      expect(sim.errors).toEqual([]);
    });
  });
});
