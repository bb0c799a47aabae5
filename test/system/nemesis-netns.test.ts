/**
 * The nemesis on real processes (test/helpers/nemesis/run.ts), bounded for
 * CI: five boards in network namespaces, every kind of fault once (partition,
 * isolation, a bridge board, SIGSTOP past an election timeout, SIGKILL and
 * restart, a wall-clock jump of 5 min, a full disk) and then rounds the seed
 * chooses, some combining a network fault with a node fault; SQL writers,
 * strong count readers, key/value CAS and mutex clients on every board.
 * Checked: no acknowledged write lost, no violation (stale or phantom reads,
 * a non-linearizable key/value history, overlapping mutex holds or falling
 * fencing tokens), writes go on after every fault.
 * NEMESIS_SEED=<n> replays a seed's schedule; NEMESIS_ROUNDS=<n>; the soak
 * (npm run soak:nemesis) runs many seeds.
 */
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { runNemesis } from '../helpers/nemesis/run';
import { ROOT } from '../helpers/node-process';

const SEED = Number(process.env.NEMESIS_SEED ?? 1);
const ROUNDS = Number(process.env.NEMESIS_ROUNDS ?? 9);

describe('nemesis on real processes (five namespaces)', () => {
  it(
    `seed ${SEED}: every fault kind, then combined faults; nothing acknowledged lost, no violation`,
    async () => {
      const dumpTo = path.join(ROOT, 'test-results', 'nemesis', `seed-${SEED}.json`);
      const report = await runNemesis({ seed: SEED, rounds: ROUNDS, everyKind: true, log: (l) => console.log(l), dumpTo });
      console.log(report.text);
      expect(report.lost, report.text).toEqual([]);
      expect(report.violations, report.text).toEqual([]);
      expect(Object.keys(report.unavailability).sort(), report.text).toEqual(['bridge', 'clock', 'disk-full', 'isolate', 'kill', 'partition', 'pause']);
      // the clients did work through the faults
      expect(report.operations.sqlAcked, report.text).toBeGreaterThan(ROUNDS * 20);
      expect(report.operations.holds, report.text).toBeGreaterThan(ROUNDS * 5);
      expect(report.operations.countReads, report.text).toBeGreaterThan(ROUNDS * 10);
      expect(report.operations.kvOps, report.text).toBeGreaterThan(ROUNDS * 20);
    },
    (ROUNDS * 90 + 240) * 1000,
  );
});
