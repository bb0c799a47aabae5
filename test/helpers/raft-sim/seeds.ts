/**
 * Runs a property over many seeds and names the failing seed in the error.
 * RAFT_SEED=<n> runs that one seed only (to replay a failure);
 * RAFT_SEEDS=<count> runs that many seeds instead of the test's own count (a soak run).
 * `base` keeps the seeds of different tests apart.
 */
export function forEachRaftSeed(count: number, base: number, property: (seed: number) => void): number {
  const { RAFT_SEED: only, RAFT_SEEDS: soak } = process.env;
  const total = soak !== undefined ? Number(soak) : count;
  const seeds = only !== undefined ? [Number(only)] : Array.from({ length: total }, (_, i) => base + i + 1);
  for (const seed of seeds) {
    try {
      property(seed);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const failure = new Error(`seed ${seed} (replay with RAFT_SEED=${seed}): ${message}`);
      if (err instanceof Error && err.stack) failure.stack = `${failure.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
      throw failure;
    }
  }
  return seeds.length;
}
