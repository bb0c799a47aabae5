/**
 * Operator recovery of a group whose quorum is lost for good (whole
 * replicators in simulated time): refused while a quorum is up; once the only
 * other voter of an R=2 database is gone, the survivor re-forms the group
 * alone, keeps every acknowledged write, takes writes again, and placement
 * restores R on another board.
 */
import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { DEAD_MS, NodeSim } from '../../helpers/raft-sim/node-sim';

const IDS = ['a', 'b', 'c'];
const REPLACE_AFTER_MS = 20_000;

describe('recovering a group that lost its quorum for good', () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: an R=2 database whose other voter died re-forms on the survivor and gets its redundancy back`, async () => {
      const sim = new NodeSim(seed, IDS, await loadSqlEngine(), {
        redundancy: 2,
        replaceAfterMs: REPLACE_AFTER_MS,
        writeTimeoutMs: 4_000,
        snapshotEntries: 1000,
      });
      for (const id of IDS) await sim.start(id);
      await sim.run(8_000);
      const rep = (id: string) => sim.board(id).replicator!;
      const exec = (id: string, sql: string, params?: number[]) =>
        rep(id).execute('main', { kind: 'execute', statements: [{ sql, ...(params ? { params } : {}) }], transaction: false });
      expect(await sim.settle(exec('a', 'CREATE TABLE t(v)'), 10_000)).not.toBeInstanceOf(Error);
      const acked: number[] = [];
      for (let i = 0; i < 10; i++) if (!((await sim.settle(exec(IDS[i % 3]!, 'INSERT INTO t VALUES (?)', [i]), 2_000)) instanceof Error)) acked.push(i);
      expect(acked).toHaveLength(10);
      const voters = rep('a')
        .databases()
        .find((d) => d.name === 'main')!.voters;
      expect(voters).toHaveLength(2);
      const [survivor, victim] = voters as [string, string];
      const third = IDS.find((id) => !voters.includes(id))!;

      // a healthy group is never re-formed
      expect(await sim.settle(rep(survivor).recoverGroup('db.main'))).toMatchObject({ code: 'conflict' });
      expect(await sim.settle(rep(third).recoverGroup('db.main'))).toMatchObject({ code: 'not_found' });

      sim.kill(victim); // for good: it never comes back
      await sim.run(DEAD_MS + 1_000);
      expect(await sim.settle(exec(third, 'INSERT INTO t VALUES (100)'))).toMatchObject({
        code: expect.stringMatching(/no_quorum|outcome_unknown|peer_unreachable/),
      });

      const out = await sim.settle(rep(survivor).recoverGroup('db.main'));
      expect(out).toMatchObject({ group: 'db.main', voters: [survivor], lost: [victim] });
      expect(await sim.settle(exec(third, 'INSERT INTO t VALUES (101)'))).not.toBeInstanceOf(Error);
      acked.push(101);

      // past --replace-after the dead voter's seat goes to the third board, which gets the data
      await sim.run(REPLACE_AFTER_MS + 15_000);
      const group = rep(third)
        .status()
        .find((r) => r.group === 'db.main');
      expect(group?.voters.sort()).toEqual([survivor, third].sort());
      const rows = await sim.settle(rep(third).query('main', [{ sql: 'SELECT v FROM t ORDER BY v' }], 'strong'));
      if (rows instanceof Error) throw rows;
      const values = 'values' in rows[0]! ? rows[0].values.map((r) => r[0]) : [];
      expect(values).toEqual(expect.arrayContaining(acked));
    }, 120_000);
  }

  it('the system group, two of its three voters dead for good, re-forms on the survivor, which creates databases again', async () => {
    const sim = new NodeSim(3, IDS, await loadSqlEngine(), { redundancy: 3, replaceAfterMs: REPLACE_AFTER_MS, writeTimeoutMs: 4_000, snapshotEntries: 1000 });
    for (const id of IDS) await sim.start(id);
    await sim.run(10_000);
    const a = sim.board('a').replicator!;
    expect(a.status().find((r) => r.group === 'system')?.voters).toHaveLength(3);
    sim.kill('b');
    sim.kill('c');
    await sim.run(DEAD_MS + 1_000);
    const create = () => a.execute('other', { kind: 'execute', statements: [{ sql: 'CREATE TABLE t(v)' }], transaction: false });
    expect(await sim.settle(create())).toBeInstanceOf(Error);
    expect(await sim.settle(a.recoverGroup('system'))).toMatchObject({ voters: ['a'], lost: ['b', 'c'] });
    expect(a.systemLeader).toBe('a');
    expect(await sim.settle(create(), 10_000)).not.toBeInstanceOf(Error);
  }, 120_000);
});
