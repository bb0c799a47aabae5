/**
 * Two system groups under one cluster name (whole replicators, simulated
 * time): two sides cut apart from the start each found one; when they meet,
 * each says so (the other group, its boards, the databases both hold), no
 * side takes the other's boards or replicas, writes to a database both hold
 * are refused with split_cluster, and every other database goes on.
 */
import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { NodeSim } from '../../helpers/raft-sim/node-sim';

const IDS = ['a', 'b', 'c', 'd'];

describe('two system groups under one cluster name (simulated time)', () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: they meet, say so, keep to themselves, and refuse writes only to the database both hold`, async () => {
      const sim = new NodeSim(seed, IDS, await loadSqlEngine(), {
        meetOnLink: true,
        redundancy: 2,
        replaceAfterMs: 20_000,
        writeTimeoutMs: 4_000,
        snapshotEntries: 1000,
      });
      sim.partition([
        ['a', 'b'],
        ['c', 'd'],
      ]);
      for (const id of IDS) await sim.start(id);
      await sim.run(10_000);
      const rep = (id: string) => sim.board(id).replicator!;
      const exec = (id: string, db: string, sql: string) => rep(id).execute(db, { kind: 'execute', statements: [{ sql }], transaction: false });
      for (const [via, db] of [
        ['a', 'left'],
        ['a', 'shared'],
        ['c', 'right'],
        ['c', 'shared'],
      ] as const) {
        expect(await sim.settle(exec(via, db, 'CREATE TABLE t(v)'), 10_000)).not.toBeInstanceOf(Error);
        expect(await sim.settle(exec(via, db, `INSERT INTO t VALUES ('${via}')`))).not.toBeInstanceOf(Error);
      }
      const sysVoters = (id: string) =>
        rep(id)
          .status()
          .find((r) => r.group === 'system')
          ?.voters.slice()
          .sort();
      const left = sysVoters('a')!;
      const right = sysVoters('c')!;
      expect(left.every((v) => ['a', 'b'].includes(v))).toBe(true);
      expect(right.every((v) => ['c', 'd'].includes(v))).toBe(true);
      expect(rep('a').splitReport()).toBeUndefined();

      sim.heal();
      await sim.run(20_000);
      for (const [id, other] of [
        ['a', ['c', 'd']],
        ['d', ['a', 'b']],
      ] as const) {
        const report = rep(id).splitReport();
        expect(report?.others.map((o) => o.boards)).toEqual([other]);
        expect(report?.collisions).toEqual(['shared']);
      }
      // nobody took the other side's boards or replicas
      expect(sysVoters('a')).toEqual(left);
      expect(sysVoters('c')).toEqual(right);
      expect(
        rep('a')
          .databases()
          .map((d) => d.name),
      ).toEqual(['left', 'shared']);
      expect(
        rep('d')
          .databases()
          .map((d) => d.name),
      ).toEqual(['right', 'shared']);
      // the database both hold takes no writes, through any board; the others go on
      expect(await sim.settle(exec('b', 'shared', "INSERT INTO t VALUES ('x')"))).toMatchObject({ code: 'split_cluster' });
      expect(await sim.settle(exec('d', 'shared', "INSERT INTO t VALUES ('x')"))).toMatchObject({ code: 'split_cluster' });
      expect(await sim.settle(exec('b', 'left', "INSERT INTO t VALUES ('b')"))).not.toBeInstanceOf(Error);
      expect(await sim.settle(exec('d', 'right', "INSERT INTO t VALUES ('d')"))).not.toBeInstanceOf(Error);
      const rows = await sim.settle(rep('a').query('left', [{ sql: 'SELECT v FROM t ORDER BY v' }], 'strong'));
      if (rows instanceof Error) throw rows;
      expect('values' in rows[0]! ? rows[0].values : []).toEqual([['a'], ['b']]);
    }, 120_000);
  }
});
