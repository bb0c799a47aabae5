/**
 * Runs a property over many seeds and names the failing seed in the error.
 * RAFT_SEED=<n> runs that one seed only (to replay a failure);
 * RAFT_SEEDS=<count> runs that many seeds instead of the test's own count (a soak run).
 * `base` keeps the seeds of different tests apart. Yields to the event loop between seeds now and
 * then, so the test worker stays responsive (vitest's RPC times out if a test blocks it for long).
 */
export async function forEachRaftSeedAsync(count: number, base: number, property: (seed: number) => void): Promise<number> {
  const { RAFT_SEED: only, RAFT_SEEDS: soak } = process.env;
  const total = soak !== undefined ? Number(soak) : count;
  const seeds = only !== undefined ? [Number(only)] : Array.from({ length: total }, (_, i) => base + i + 1);
  let since = performance.now();
  for (const seed of seeds) {
    forEachSeedOnly(seed, property);
    if (performance.now() - since > 200) {
      await new Promise((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
  return seeds.length;
}

function forEachSeedOnly(seed: number, property: (seed: number) => void): void {
  try {
    property(seed);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const failure = new Error(`seed ${seed} (replay with RAFT_SEED=${seed}): ${message}`);
    if (err instanceof Error && err.stack) failure.stack = `${failure.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
    throw failure;
  }
}
