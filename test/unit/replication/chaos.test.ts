/**
 * Simulated Raft clusters of 3, 5 and 7 nodes under partitions, loss,
 * duplication, reordering, crashes, slow disks, leadership transfers and disk
 * loss: safety invariants at every step, convergence, no lost acknowledged
 * write and a linearizable client history at the end. A failure names its
 * seed (replay with RAFT_SEED=<seed>; RAFT_SEEDS=<count> for a soak).
 */
import { describe, expect, it } from 'vitest';
import { runChaos } from '../../helpers/raft-sim/chaos';
import { forEachRaftSeedAsync } from '../../helpers/raft-sim/seeds';

/** A soak run (RAFT_SEEDS) may take long. */
const TIMEOUT_MS = process.env.RAFT_SEEDS !== undefined ? 3_600_000 : 60_000;

describe('raft chaos simulation', () => {
  for (const [size, seeds, diskLoss] of [
    [3, 300, false],
    [3, 300, true],
    [5, 250, true],
    [7, 150, true],
  ] as const) {
    it(
      `${size} nodes${diskLoss ? ' with disk loss' : ''}: safe, converges, linearizable (${seeds} seeds)`,
      async () => {
        let acked = 0;
        let replaced = 0;
        const ran = await forEachRaftSeedAsync(seeds, size * 100_000 + (diskLoss ? 50_000 : 0), (seed) => {
          const res = runChaos(seed, { size, diskLoss });
          acked += res.acked;
          if (res.diskLossDone) replaced++;
        });
        expect(ran).toBeGreaterThan(0);
        expect(acked).toBeGreaterThan(0);
        if (diskLoss && ran >= 20) expect(replaced).toBeGreaterThan(0);
      },
      TIMEOUT_MS,
    );
  }

  it('catches the unsafe handling of a lost disk (the node rejoins empty under its old id)', () => {
    const violations: string[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      try {
        runChaos(seed, { size: 3, unsafeWipe: true });
      } catch (err) {
        violations.push(String(err));
      }
    }
    expect(violations.length).toBeGreaterThan(0);
    expect(violations.some((v) => /Election Safety|Leader Completeness|State Machine Safety|Log Matching|linearizable|lost/.test(v))).toBe(true);
  });
});
