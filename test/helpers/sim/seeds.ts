/**
 * Runs a property over many seeds and names the failing seed in the error.
 * SWIM_SEED=<n> runs that one seed only (to replay a failure);
 * SWIM_SEEDS=<count> runs that many seeds instead of the test's own count (a soak run).
 */
export function forEachSeed(count: number, property: (seed: number) => void): void {
  const { SWIM_SEED: only, SWIM_SEEDS: soak } = process.env;
  const total = soak !== undefined ? Number(soak) : count;
  const seeds = only !== undefined ? [Number(only)] : Array.from({ length: total }, (_, i) => i + 1);
  for (const seed of seeds) {
    try {
      property(seed);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const failure = new Error(`seed ${seed} (replay with SWIM_SEED=${seed}): ${message}`);
      if (err instanceof Error && err.stack) failure.stack = `${failure.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
      throw failure;
    }
  }
}
