/**
 * Simulated clusters (test/helpers/sim): failure detection, false positives
 * under loss, Lifeguard with a slow node, refutation. Each property runs over
 * many seeds; a failure names its seed (replay with SWIM_SEED=<seed>).
 */
import { describe, expect, it } from 'vitest';
import { suspicionBounds } from '../../../src/membership/suspicion';
import { DEFAULT_SWIM_CONFIG, type MemberUpdate } from '../../../src/membership/swim';
import { CLUSTER_SIZE, convergedCluster, deaths, formatEvents } from '../../helpers/sim/cluster';
import { forEachSeed } from '../../helpers/sim/seeds';
import type { SimNetwork } from '../../helpers/sim/sim-network';

const SEEDS = 100;
const config = DEFAULT_SWIM_CONFIG;
/**
 * Crash detection bound: every survivor probes the crashed member within two round-robin passes
 * (2 (n - 1) intervals: first in one pass, last in the next) and then waits at most the maximum
 * suspicion timeout (no confirmations); gossip only makes it sooner. Plus two intervals of slack for
 * delivery. With the defaults and n = 8: 14 s + 24 s + 2 s = 40 s (observed: at most 11.5 s over 300 seeds,
 * since the other survivors' confirmations bring the timeout down to its 4 s minimum).
 */
const DETECTION_BOUND_MS = 2 * (CLUSTER_SIZE - 1) * config.probeIntervalMs + suspicionBounds(config, CLUSTER_SIZE).maxMs + 2 * config.probeIntervalMs;
const LOSS = 0.1;
const LOSSY_MS = 60_000;
/** Once loss stops, pending suspicions are refuted and every view is all alive again within this. */
const SETTLE_BOUND_MS = 20_000;
/**
 * Nobody holds a refuted rumor any more after this: every holder's messages to the member carry the rumor
 * and get the refutation back, and each holder probes it within two passes (14 s).
 */
const REFUTE_BOUND_MS = 20_000;
/**
 * Everyone has the refutation's higher incarnation after this. Gossip usually brings it within seconds; a
 * node it missed (which never heard the rumor either) gets it at its next push-pull, within one interval.
 */
const INCARNATION_BOUND_MS = config.pushPullIntervalMs + 5_000;

function rumor(sim: SimNetwork, about: string, state: 'suspect' | 'dead', by: string): MemberUpdate {
  const member = sim.node(about).swim.member(about)!;
  return { id: about, endpoint: member.endpoint, meta: member.meta, state, incarnation: member.incarnation, by };
}

/** `target`, alive at `before`, is seen alive everywhere within REFUTE_BOUND_MS, at a higher incarnation within INCARNATION_BOUND_MS. */
function expectRefuted(sim: SimNetwork, target: string, before: number): void {
  const start = sim.clock.monotonic();
  const alive = () => sim.live().every((n) => n.swim.member(target)?.state === 'alive');
  expect(sim.runUntil(alive, REFUTE_BOUND_MS), `rumor still held:\n${sim.describe()}`).toBeDefined();
  const newer = () => sim.live().every((n) => n.swim.member(target)?.state === 'alive' && n.swim.member(target)!.incarnation > before);
  const left = INCARNATION_BOUND_MS - (sim.clock.monotonic() - start);
  expect(sim.runUntil(newer, left), `refutation not everywhere:\n${sim.describe()}`).toBeDefined();
}

/** Three distinct random nodes. */
function threeNodes(sim: SimNetwork): [string, string, string] {
  const ids = [...sim.ids];
  const pick = () => ids.splice(sim.randomInt(ids.length), 1)[0]!;
  return [pick(), pick(), pick()];
}

describe('membership simulation: failures', () => {
  it(`crash: every survivor marks a crashed node dead within ${DETECTION_BOUND_MS} ms, and nobody else dead`, () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const victim = sim.ids[sim.randomInt(CLUSTER_SIZE)]!;
      const mark = sim.events.length;
      sim.crash(victim);
      const survivors = sim.live();
      const declared = () => survivors.every((n) => deaths(sim, mark).some((e) => e.observer === n.id && e.member === victim));
      const took = sim.runUntil(declared, DETECTION_BOUND_MS);
      expect(took, `not detected:\n${sim.describe()}`).toBeDefined();
      expect(formatEvents(deaths(sim, mark).filter((e) => e.member !== victim))).toEqual([]);
      expect(sim.errors).toEqual([]);
    });
  });

  it(`no false positives: ${LOSS * 100}% datagram loss for ${LOSSY_MS} ms declares nobody dead; suspicions are refuted`, () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      sim.loss = LOSS;
      sim.run(LOSSY_MS);
      expect(sim.stats.lost).toBeGreaterThan(0);
      expect(formatEvents(deaths(sim))).toEqual([]);
      sim.loss = 0;
      const took = sim.runUntil(() => sim.converged(), SETTLE_BOUND_MS);
      expect(took, `suspicions left:\n${sim.describe()}`).toBeDefined();
      expect(formatEvents(deaths(sim))).toEqual([]);
      expect(sim.errors).toEqual([]);
    });
  });

  it('Lifeguard: a slow node (replies late by 2x the probe timeout) gets an unhealthy score and gets no healthy node declared dead', () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const slow = sim.ids[sim.randomInt(CLUSTER_SIZE)]!;
      sim.slow(slow, 2 * config.probeTimeoutMs);
      let worstHealth = 0;
      sim.runUntil(() => {
        worstHealth = Math.max(worstHealth, sim.node(slow).swim.health());
        return false;
      }, 60_000);
      expect(worstHealth).toBeGreaterThan(0);
      expect(formatEvents(deaths(sim).filter((e) => e.member !== slow))).toEqual([]);
      expect(sim.errors).toEqual([]);
    });
  });

  it('refutation: a suspicion of a live node is refuted; it stays alive everywhere with a higher incarnation', () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const [target, observer, accuser] = threeNodes(sim);
      const before = sim.node(target).swim.member(target)!.incarnation;
      sim.node(observer).swim.handle(accuser, { type: 'gossip', updates: [rumor(sim, target, 'suspect', accuser)] });
      expect(sim.node(observer).swim.member(target)?.state).toBe('suspect');
      expectRefuted(sim, target, before);
      expect(formatEvents(deaths(sim))).toEqual([]);
      expect(sim.converged()).toBe(true);
      expect(sim.errors).toEqual([]);
    });
  });

  it('refutation: a live node declared dead learns it and is alive again everywhere with a higher incarnation', () => {
    forEachSeed(SEEDS, (seed) => {
      const sim = convergedCluster(seed);
      const [target, observer, accuser] = threeNodes(sim);
      const before = sim.node(target).swim.member(target)!.incarnation;
      sim.node(observer).swim.handle(accuser, { type: 'gossip', updates: [rumor(sim, target, 'dead', accuser)] });
      expect(sim.node(observer).swim.member(target)?.state).toBe('dead');
      expectRefuted(sim, target, before);
      expect(formatEvents(deaths(sim).filter((e) => e.member !== target))).toEqual([]);
      expect(sim.errors).toEqual([]);
    });
  });
});
