/**
 * Whole replicators (placement, replica creation and removal, forwarding,
 * drivers, Raft) under a seeded nemesis in simulated time: pauses past
 * --replace-after, isolations, partitions, kills and restarts, a lost disk.
 * NODE_SIM_SEED=<n> replays one seed; NODE_SIM_SEEDS=<count> runs a longer soak.
 */
import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { runNodeNemesis } from '../../helpers/raft-sim/node-nemesis';

const COUNT = Number(process.env.NODE_SIM_SEEDS ?? 12);
const SEEDS = process.env.NODE_SIM_SEED ? [Number(process.env.NODE_SIM_SEED)] : Array.from({ length: COUNT }, (_, i) => i + 1);

describe('replicators under a nemesis (simulated time)', () => {
  it.each(SEEDS)(
    'seed %i: strong reads hold every acknowledged write, one leader per term, no wedged group',
    async (seed) => {
      const engine = await loadSqlEngine();
      const result = await runNodeNemesis(seed, engine);
      expect(result.violations, `seed ${seed} (replay with NODE_SIM_SEED=${seed}); faults:\n${result.faults.join('\n')}`).toEqual([]);
      // the run did real work: writes were acknowledged and checked by strong reads
      expect(result.acked).toBeGreaterThan(100);
      expect(result.strongReads).toBeGreaterThan(10);
    },
    300_000,
  );
});
