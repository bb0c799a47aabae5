import { defineConfig } from 'vitest/config';

/** Long or memory-heavy runs kept out of `npm test` (see package.json "soak:*"). */
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
    testTimeout: 600_000,
    hookTimeout: 60_000,
    allowOnly: false,
  },
});
