/**
 * A non-voting board (--voter false, real processes): beside three voters it
 * holds a learner replica of every database and answers level=none reads
 * from it, takes writes (forwarded to the leader), and is never a voter of
 * any group; with two of the three voters down, writes fail with no_quorum
 * although it is up: it never counts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const nodes: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

type Replica = { group: string; voters: string[]; learners: string[]; applied_index: number };

describe('a non-voting board', () => {
  it('holds every database as a learner, serves level=none reads, and never counts for quorum', async () => {
    const args = (i: number, join?: string, extra: string[] = []) => [
      '--node-id',
      `v${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      'non-voter-cookie',
      ...extra,
      ...(join ? ['--join', join] : []),
    ];
    nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [1, 2]) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
    const weak = await startNode({ dataDir: tempDir(), args: args(3, seed, ['--voter', 'false']) });
    nodes.push(weak);
    const replicas = async (n: NodeProcess): Promise<Replica[]> => (await n.get('/status')).body.replicas;
    await until('a system group of 3 voters', async () => (await replicas(nodes[0]!)).find((r) => r.group === 'system')?.voters.length === 3, 40_000);
    // writes through the non-voter: forwarded, and the database is placed on the voters only
    for (const db of ['a', 'b']) expect((await weak.post(`/db/execute?db=${db}`, ['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)'])).status).toBe(200);
    for (const db of ['a', 'b']) {
      await until(
        `v3 holds a learner replica of db.${db}`,
        async () => (await replicas(weak)).find((r) => r.group === `db.${db}`)?.learners.includes('v3') === true,
        40_000,
      );
    }
    expect((await weak.post('/db/execute?db=a', ['INSERT INTO t VALUES(2)'])).status).toBe(200);
    await until(
      'v3 applied the second write',
      async () => {
        const r = await weak.get(`/db/query?db=a&level=none&q=${encodeURIComponent('SELECT count(*) FROM t')}`);
        return r.status === 200 && r.body.results[0].values[0][0] === 2;
      },
      20_000,
    );
    for (const n of nodes) {
      for (const r of await replicas(n)) expect(r.voters, `${r.group} on a board`).not.toContain('v3');
    }
    expect((await weak.get('/status')).body.databases.every((d: { voters: string[] }) => !d.voters.includes('v3'))).toBe(true);

    // two voters down: the non-voter is up, but does not make a quorum
    await nodes[1]!.stop('SIGKILL');
    await nodes[2]!.stop('SIGKILL');
    const w = await nodes[0]!.post('/db/execute?db=a', ['INSERT INTO t VALUES(3)']);
    expect(w.status).toBe(503);
    expect(w.body.code).toBe('no_quorum');
    // and it still answers level=none reads from its own replica
    const r = await weak.get(`/db/query?db=b&level=none&q=${encodeURIComponent('SELECT v FROM t')}`);
    expect(r.status).toBe(200);
    expect(r.body.results[0].values).toEqual([[1]]);
  }, 180_000);
});
