/**
 * The nemesis soak, not part of `npm test`: `npm run soak:nemesis`.
 * NEMESIS_RUNS seeds (default 5) from NEMESIS_SEED (default: from the clock,
 * printed), NEMESIS_ROUNDS rounds each (default 30). Same checks as
 * test/system/nemesis-netns.test.ts; a failing seed replays there with
 * NEMESIS_SEED=<n> NEMESIS_ROUNDS=<n>.
 */
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { runNemesis } from '../helpers/nemesis/run';
import { ROOT } from '../helpers/node-process';

const FIRST = Number(process.env.NEMESIS_SEED ?? Date.now() % 100_000);
const RUNS = Number(process.env.NEMESIS_RUNS ?? 5);
const ROUNDS = Number(process.env.NEMESIS_ROUNDS ?? 30);

describe('nemesis soak (five namespaces)', () => {
  for (let seed = FIRST; seed < FIRST + RUNS; seed++) {
    it(
      `seed ${seed}, ${ROUNDS} rounds: nothing acknowledged lost, no violation`,
      async () => {
        const dumpTo = path.join(ROOT, 'test-results', 'nemesis', `seed-${seed}.json`);
        const report = await runNemesis({ seed, rounds: ROUNDS, everyKind: true, log: (l) => console.log(l), dumpTo });
        console.log(report.text);
        expect(report.lost, report.text).toEqual([]);
        expect(report.violations, report.text).toEqual([]);
      },
      (ROUNDS * 90 + 240) * 1000,
    );
  }
});
