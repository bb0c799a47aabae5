/**
 * Two system groups under one cluster name merge into one (whole replicators,
 * simulated time; system-merge.ts): the side with the higher identity freezes,
 * waits for its sessions to end, hands its databases, keys and token counter
 * to the other side and joins it; every database and key of both sides is
 * kept, and database writes never stop. A key both sides hold with other
 * values blocks the merge and is named.
 */
import { describe, expect, it } from 'vitest';
import { SystemStateMachine } from '../../../src/replication/system-machine';
import { loadSqlEngine } from '../../../src/store/sql-engine';
import { NodeSim } from '../../helpers/raft-sim/node-sim';

const IDS = ['a', 'b', 'c', 'd'];

async function twoSides(seed: number) {
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
  const exec = (id: string, db: string, sql: string) => sim.settle(rep(id).execute(db, { kind: 'execute', statements: [{ sql }], transaction: false }), 10_000);
  const propose = (id: string, command: Record<string, unknown>) => sim.settle(rep(id).systemPropose<{ ok: boolean; code?: string; token?: number }>(command));
  const rows = async (id: string, db: string) => {
    const r = await sim.settle(rep(id).query(db, [{ sql: 'SELECT v FROM t ORDER BY v' }], 'strong'));
    if (r instanceof Error) throw r;
    return 'values' in r[0]! ? r[0].values : [];
  };
  const systemGroup = (id: string) =>
    rep(id)
      .status()
      .find((r) => r.group === 'system');
  /** The system state of the leader of `id`'s system group. */
  const leaderState = () => {
    for (const id of IDS) {
      const m = rep(id).systemLeaderMachine();
      if (m) return (m as SystemStateMachine).state;
    }
    throw new Error('no system leader');
  };
  /** The merge as the boards that drive it (system leaders) report it. */
  const merges = () =>
    IDS.flatMap((id) => {
      const m = rep(id).splitReport()?.merge;
      return m ? [{ id, ...m }] : [];
    });
  return { sim, rep, exec, propose, rows, systemGroup, leaderState, merges };
}

describe('two system groups merge into one (simulated time)', () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: every database and key of both sides is kept, locks wait for the sessions to end, writes go on`, async () => {
      const { sim, rep, exec, propose, rows, systemGroup, leaderState, merges } = await twoSides(seed);
      for (const [via, db] of [
        ['a', 'left'],
        ['c', 'right'],
      ] as const) {
        expect(await exec(via, db, 'CREATE TABLE t(v)')).not.toBeInstanceOf(Error);
        expect(await exec(via, db, `INSERT INTO t VALUES ('${via}')`)).not.toBeInstanceOf(Error);
      }
      expect(await propose('a', { op: 'kv-put', key: 'k-left', value: '1' })).toMatchObject({ ok: true });
      expect(await propose('a', { op: 'kv-put', key: 'same', value: 'x' })).toMatchObject({ ok: true });
      expect(await propose('c', { op: 'kv-put', key: 'k-right', value: '2' })).toMatchObject({ ok: true });
      expect(await propose('c', { op: 'kv-put', key: 'same', value: 'x' })).toMatchObject({ ok: true });
      // a lock held on the right side, with a token above any of the left side's
      expect(await propose('c', { op: 'session-open', id: 's1', node: 'c', ttlMs: 10_000 })).toMatchObject({ ok: true });
      for (let i = 0; i < 5; i++) {
        expect(await propose('c', { op: 'lock-acquire', name: 'L', session: 's1', wait: false })).toMatchObject({ ok: true });
        if (i < 4) expect(await propose('c', { op: 'lock-release', name: 'L', session: 's1' })).toMatchObject({ ok: true });
      }
      const rightToken = (rep('c').systemLeaderMachine() ?? rep('d').systemLeaderMachine()) as SystemStateMachine;
      const tokenB = rightToken.state.lastTokenIssued();
      expect(tokenB).toBe(5);
      const left = systemGroup('a')!.voters.slice().sort();

      sim.heal();
      await sim.run(15_000);
      // the right side (higher identity) froze and waits for its session; the left side goes on
      const merging = merges();
      expect(merging).toHaveLength(1);
      expect(['c', 'd']).toContain(merging[0]!.id);
      expect(merging[0]).toMatchObject({ state: 'waiting_for_sessions', sessions: 1 });
      expect(await propose('d', { op: 'kv-put', key: 'k-late', value: '3' })).toMatchObject({ ok: false, code: 'merging' });
      expect(await propose('b', { op: 'kv-put', key: 'k-left2', value: '4' })).toMatchObject({ ok: true });
      // database writes never stop
      expect(await exec('d', 'right', "INSERT INTO t VALUES ('d')")).not.toBeInstanceOf(Error);
      expect(await exec('b', 'left', "INSERT INTO t VALUES ('b')")).not.toBeInstanceOf(Error);
      // its holder lets go (or its TTL would end it): the merge goes on
      expect(await propose('c', { op: 'session-close', id: 's1', reason: 'closed' })).toMatchObject({ ok: true });
      await sim.run(30_000);

      for (const id of IDS) {
        expect(rep(id).splitReport(), id).toBeUndefined();
        expect(
          rep(id)
            .databases()
            .map((d) => d.name),
          id,
        ).toEqual(['left', 'right']);
      }
      // one system group: the left side's, now with voters from both sides
      const voters = new Set(IDS.flatMap((id) => systemGroup(id)?.voters ?? []));
      expect(left.every((v) => voters.has(v))).toBe(true);
      expect([...voters].some((v) => v === 'c' || v === 'd')).toBe(true);
      const leaders = new Set(IDS.map((id) => rep(id).systemLeader).filter((l) => l !== null));
      expect(leaders.size).toBe(1);
      const st = leaderState();
      expect(st.kvList().map((e) => [e.key, e.value])).toEqual([
        ['k-left', '1'],
        ['k-left2', '4'],
        ['k-right', '2'],
        ['same', 'x'],
      ]);
      expect(st.lastTokenIssued()).toBeGreaterThanOrEqual(tokenB);
      // a new lock on either side's boards continues above every token either side handed out
      expect(await propose('b', { op: 'session-open', id: 's2', node: 'b', ttlMs: 10_000 })).toMatchObject({ ok: true });
      const grant = await propose('d', { op: 'lock-acquire', name: 'L', session: 's2', wait: false });
      expect(grant).toMatchObject({ ok: true });
      expect((grant as { token: number }).token).toBeGreaterThan(tokenB);
      // every database takes writes through every board, and kept all its rows
      expect(await exec('a', 'right', "INSERT INTO t VALUES ('x')")).not.toBeInstanceOf(Error);
      expect(await exec('d', 'left', "INSERT INTO t VALUES ('x')")).not.toBeInstanceOf(Error);
      expect(await rows('b', 'right')).toEqual([['c'], ['d'], ['x']]);
      expect(await rows('c', 'left')).toEqual([['a'], ['b'], ['x']]);
    }, 180_000);
  }

  it('a key both sides hold with other values blocks the merge, named in the report; both sides go on', async () => {
    const { sim, exec, propose, merges } = await twoSides(3);
    expect(await propose('a', { op: 'kv-put', key: 'same', value: 'left' })).toMatchObject({ ok: true });
    expect(await propose('c', { op: 'kv-put', key: 'same', value: 'right' })).toMatchObject({ ok: true });
    sim.heal();
    await sim.run(20_000);
    const blocked = merges();
    expect(blocked).toHaveLength(1);
    expect(['c', 'd']).toContain(blocked[0]!.id);
    expect(blocked[0]).toMatchObject({ state: 'blocked', collisions: ['kv:same'] });
    // not frozen: both sides take new state
    expect(await propose('d', { op: 'kv-put', key: 'k', value: 'r' })).toMatchObject({ ok: true });
    expect(await propose('b', { op: 'kv-put', key: 'k2', value: 'l' })).toMatchObject({ ok: true });
    expect(await exec('d', 'right', 'CREATE TABLE t(v)')).not.toBeInstanceOf(Error);
  }, 120_000);
});
