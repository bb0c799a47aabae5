/**
 * Placement in simulated time (whole replicators, membership as an oracle):
 * a voter that membership declares dead keeps its seat until --replace-after,
 * as a rebooting board must; past it, the voter is replaced and R restored.
 */
import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { DEAD_MS, NodeSim } from '../../helpers/raft-sim/node-sim';

const IDS = ['a', 'b', 'c', 'd'];
const REPLACE_AFTER_MS = 30_000;

describe('placement in simulated time', () => {
  it('a dead voter keeps its seat until --replace-after, then is replaced', async () => {
    const sim = new NodeSim(7, IDS, await loadSqlEngine(), { redundancy: 3, replaceAfterMs: REPLACE_AFTER_MS, writeTimeoutMs: 5_000, snapshotEntries: 1000 });
    for (const id of IDS) await sim.start(id);
    await sim.run(6_000);
    let created = false;
    for (let i = 0; i < 20 && !created; i++) {
      const via = sim.board(IDS[i % IDS.length]!).replicator!;
      void via.execute('main', { kind: 'execute', statements: [{ sql: 'CREATE TABLE t(v)' }], transaction: false }).then(
        () => (created = true),
        () => undefined,
      );
      await sim.run(3_000);
    }
    expect(created).toBe(true);
    const placed = () =>
      sim
        .board('a')
        .replicator!.databases()
        .find((d) => d.name === 'main')?.voters ?? [];
    await sim.run(5_000);
    const before = placed();
    expect(before).toHaveLength(3);
    const system = sim.board('a').replicator!.systemLeader;
    const victim = before.find((v) => v !== system && v !== 'a')!;
    expect(victim).toBeDefined();
    sim.kill(victim);
    // membership says dead after DEAD_MS; the seat is kept well past that
    await sim.run(DEAD_MS + 15_000);
    expect(placed()).toEqual(before);
    // past --replace-after it is replaced by the board that had no copy
    await sim.run(REPLACE_AFTER_MS);
    const after = placed();
    expect(after).toHaveLength(3);
    expect(after).not.toContain(victim);
    expect(after).toContain(IDS.find((id) => !before.includes(id)));
  }, 120_000);
});
