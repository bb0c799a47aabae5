/**
 * Founding a database's group in simulated time (whole replicators): the
 * creation crash window (placement committed, group never founded) is closed
 * by the system leader, and a founding whose answer was lost never makes a
 * second group on another board.
 */
import { describe, expect, it } from 'vitest';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { rendezvous } from '../../../src/replication/placement';
import { RpcUnreachableError, type Rpc } from '../../../src/replication/wire';
import { NodeSim } from '../../helpers/raft-sim/node-sim';

const IDS = ['a', 'b', 'c', 'd'];
const OPTIONS = { redundancy: 3, replaceAfterMs: 120_000, writeTimeoutMs: 5_000, snapshotEntries: 1000 };
const insert = (v: number) => ({ kind: 'execute' as const, statements: [{ sql: 'INSERT INTO t VALUES (?)', params: [v] }], transaction: false });

/** Wraps a board's `group-open` calls: `onCall` decides what becomes of each. */
function interceptFounding(rpc: Rpc, onCall: (real: () => Promise<unknown>) => Promise<unknown>): void {
  const real = rpc.call.bind(rpc);
  rpc.call = ((to, method, body, timeoutMs, signal) =>
    method === 'group-open' ? onCall(() => real(to, method, body, timeoutMs, signal)) : real(to, method, body, timeoutMs, signal)) as Rpc['call'];
}

async function settledSim(seed: number): Promise<NodeSim> {
  const sim = new NodeSim(seed, IDS, await loadSqlEngine(), OPTIONS);
  for (const id of IDS) await sim.start(id);
  await sim.run(8_000);
  expect(IDS.some((id) => sim.board(id).replicator!.systemLeader)).toBe(true);
  return sim;
}

/** Every replica of `db` on a serving board: its voters and its leader as it sees them. */
function groupViews(sim: NodeSim, db: string): { board: string; voters: string[]; leader: string | undefined }[] {
  return IDS.filter((id) => sim.board(id).serving).flatMap((id) =>
    sim
      .board(id)
      .replicator!.status()
      .filter((r) => r.group === `db.${db}`)
      .map((r) => ({ board: id, voters: [...r.voter_replicas].sort(), leader: r.leader ?? undefined })),
  );
}

describe('founding database groups (simulated time)', () => {
  const founder = rendezvous('db.main', IDS, 3)[0]!;
  const cases = [
    { seed: 1, creator: IDS.find((id) => id !== founder)!, what: 'another board' },
    { seed: 2, creator: [...IDS].reverse().find((id) => id !== founder)!, what: 'another board' },
    { seed: 3, creator: founder, what: 'the founder itself, back 10 s later' },
  ];
  for (const { seed, creator, what } of cases) {
    it(`seed ${seed}: a creation cut short after its placement committed (creator: ${what}) is founded by the system leader`, async () => {
      const sim = await settledSim(seed);
      // the creator dies the moment it would ask the founder to open the group
      interceptFounding(sim.board(creator).rpc!, () => {
        sim.kill(creator);
        return new Promise(() => undefined);
      });
      void sim
        .board(creator)
        .replicator!.execute('main', { kind: 'execute', statements: [{ sql: 'CREATE TABLE t(v)' }], transaction: false })
        .catch(() => undefined);
      await sim.run(2_000);
      expect(sim.board(creator).up).toBe(false);
      const via = IDS.find((id) => id !== creator)!;
      const rec = sim
        .board(via)
        .replicator!.databases()
        .find((d) => d.name === 'main');
      expect(rec).toMatchObject({ founded: false, founder });
      if (creator === founder) {
        await sim.run(8_000);
        expect(groupViews(sim, 'main')).toEqual([]);
        await sim.start(creator);
      }
      // no write comes: the system leader founds it on its own
      await sim.run(OPTIONS.writeTimeoutMs + 10_000);
      const views = groupViews(sim, 'main');
      expect(views.length).toBeGreaterThan(0);
      expect(views.some((v) => v.leader !== undefined)).toBe(true);
      expect(
        sim
          .board(via)
          .replicator!.databases()
          .find((d) => d.name === 'main'),
      ).toMatchObject({ founded: true });
      // and it takes writes
      let ok = false;
      void sim
        .board(via)
        .replicator!.execute('main', { kind: 'execute', statements: [{ sql: 'CREATE TABLE IF NOT EXISTS t(v)' }], transaction: false })
        .then(
          () => (ok = true),
          () => undefined,
        );
      await sim.run(6_000);
      expect(ok).toBe(true);
    }, 120_000);
  }

  for (const seed of [4, 5, 6]) {
    it(`seed ${seed}: a founding whose answer was lost is asked again of the same founder, never of a second board`, async () => {
      const sim = await settledSim(seed);
      const creator = 'a';
      let lost = 0;
      interceptFounding(sim.board(creator).rpc!, async (real) => {
        const answer = await real();
        if (lost++ < 2) throw new RpcUnreachableError('the answer was lost (test)', true);
        return answer;
      });
      let created = false;
      void sim
        .board(creator)
        .replicator!.execute('main', { kind: 'execute', statements: [{ sql: 'CREATE TABLE t(v)' }], transaction: false })
        .then(
          () => (created = true),
          () => undefined,
        );
      await sim.run(10_000);
      expect(lost).toBeGreaterThanOrEqual(3);
      expect(created).toBe(true);
      const acked: number[] = [];
      for (let i = 0; i < 20; i++) {
        const via = sim.board(IDS[i % IDS.length]!).replicator!;
        void via.execute('main', insert(i)).then(
          () => acked.push(i),
          () => undefined,
        );
        await sim.run(300);
      }
      await sim.run(20_000);
      // one group: every replica sees the same voters and the same leader
      const views = groupViews(sim, 'main');
      expect(views).toHaveLength(3);
      expect(new Set(views.map((v) => v.voters.join(','))).size).toBe(1);
      expect(new Set(views.map((v) => v.leader)).size).toBe(1);
      expect(acked.length).toBeGreaterThan(10);
      let rows: unknown[] | undefined;
      void sim
        .board('d')
        .replicator!.query('main', [{ sql: 'SELECT v FROM t ORDER BY v' }], 'strong')
        .then(
          (r) => (rows = 'values' in r[0]! ? r[0].values.map((x) => x[0]) : undefined),
          () => undefined,
        );
      await sim.run(3_000);
      expect(rows).toEqual(expect.arrayContaining(acked));
    }, 120_000);
  }
});
