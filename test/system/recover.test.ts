/**
 * gandalf-node recover (real processes, 3 boards, --replace-after far off):
 * an R=2 database is refused recovery while both voters are up; once one is
 * SIGKILLed for good, writes fail with no quorum, `recover` on the survivor
 * re-forms the group alone, and writes go on with every acknowledged row kept.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const nodes: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

type Member = { 'node-id': string; state: string };

describe('recovering a group whose quorum is lost for good', () => {
  it('is refused while a quorum is up, then re-forms the database on its survivor', async () => {
    const args = (i: number, join?: string) => [
      '--node-id',
      `r${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      'recover-cookie',
      '--replace-after',
      '10m',
      ...(join ? ['--join', join] : []),
    ];
    nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [1, 2]) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
    const members = async (n: NodeProcess) => ((await n.get('/cluster/nodes')).body.nodes as Member[]).map((m) => `${m['node-id']}=${m.state}`);
    await until('three members alive', async () => (await members(nodes[0]!)).filter((m) => m.endsWith('=alive')).length === 3, 40_000);
    const created = await nodes[0]!.post('/db/execute?db=d&redundancy=2', ['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)', 'INSERT INTO t VALUES(2)']);
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const rec = ((await nodes[0]!.get('/status')).body.databases as { name: string; voters: string[] }[]).find((d) => d.name === 'd')!;
    expect(rec.voters).toHaveLength(2);
    const byId = (id: string) => nodes[Number(id.slice(1))]!;
    const [survivorId, victimId] = rec.voters as [string, string];
    const survivor = byId(survivorId);
    const spare = nodes.find((_n, i) => !rec.voters.includes(`r${i}`))!;
    const at = (n: NodeProcess) => ['--http-bind', `127.0.0.1:${n.httpPort}`];

    const healthy = await runCli(['recover', ...at(survivor), 'd']);
    expect(healthy.code).toBe(1);
    expect(healthy.stderr).toMatch(/409 conflict: db\.d has 2 of 2 voters up, a quorum: nothing to recover/);
    const elsewhere = await runCli(['recover', ...at(spare), 'd']);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/404 not_found: this board holds no replica of db\.d/);

    await byId(victimId).stop('SIGKILL');
    await until(`${victimId} dead`, async () => (await members(survivor)).includes(`${victimId}=dead`), 30_000);
    const stuck = await spare.post('/db/execute?db=d', ['INSERT INTO t VALUES(3)']);
    expect(stuck.status).toBeGreaterThanOrEqual(500);

    const done = await runCli(['recover', ...at(survivor), 'd', '--json']);
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ group: 'db.d', voters: [survivorId], lost: [victimId] });
    expect((await spare.post('/db/execute?db=d', ['INSERT INTO t VALUES(4)'])).status).toBe(200);
    const rows = await spare.get('/db/query?db=d&level=strong&q=' + encodeURIComponent('SELECT v FROM t ORDER BY v'));
    expect(rows.status).toBe(200);
    const values = (rows.body.results[0].values as number[][]).map((r) => r[0]);
    expect(values).toEqual(expect.arrayContaining([1, 2, 4]));
  }, 150_000);
});
