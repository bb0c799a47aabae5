/**
 * gandalf-node remove (real processes, 4 boards, --replace-after far off):
 * removing an alive board is refused; with two of a database's three voters
 * dead, removing one is refused and the group named; with one dead, it is
 * removed: gone from the member list, its seat filled at once by the fourth
 * board, and when it comes back it is refused. Every acknowledged write is
 * there.
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

describe('removing a board', () => {
  it('is refused while alive or without a quorum, then takes the board out for good', async () => {
    const dirs = [0, 1, 2, 3].map(() => tempDir());
    const args = (i: number, join?: string) => [
      '--node-id',
      `m${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      'member-removal-cookie',
      '--replace-after',
      '10m',
      ...(join ? ['--join', join] : []),
    ];
    nodes.push(await startNode({ dataDir: dirs[0]!, args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [1, 2, 3]) nodes.push(await startNode({ dataDir: dirs[i]!, args: args(i, seed) }));
    const members = async (n: NodeProcess) => ((await n.get('/cluster/nodes')).body.nodes as Member[]).map((m) => `${m['node-id']}=${m.state}`).sort();
    await until('four members alive', async () => (await members(nodes[0]!)).filter((m) => m.endsWith('=alive')).length === 4, 40_000);
    expect((await nodes[0]!.post('/db/execute?db=d&redundancy=3', ['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)'])).status).toBe(200);
    const voters = async (n: NodeProcess): Promise<string[]> =>
      ((await n.get('/status')).body.databases as { name: string; voters: string[] }[])
        .find((d) => d.name === 'd')!
        .voters.slice()
        .sort();
    const dbVoters = await voters(nodes[0]!);
    expect(dbVoters).toHaveLength(3);
    const spare = ['m0', 'm1', 'm2', 'm3'].find((id) => !dbVoters.includes(id))!;
    const byId = (id: string) => nodes[Number(id.slice(1))]!;
    // the client talks to the spare board, which survives everything below
    const client = byId(spare);
    const bind = ['--http-bind', `127.0.0.1:${client.httpPort}`];

    const alive = await runCli(['remove', ...bind, dbVoters[0]!]);
    expect(alive.code).toBe(1);
    expect(alive.stderr).toMatch(/409 conflict: m\d is alive: stop it first/);

    // two of the database's three voters down: no quorum to agree to a removal
    const [v0, v1, v2] = dbVoters as [string, string, string];
    await byId(v0).stop('SIGKILL');
    await byId(v1).stop('SIGKILL');
    await until(
      `${v0} and ${v1} dead`,
      async () => {
        const m = await members(client);
        return m.includes(`${v0}=dead`) && m.includes(`${v1}=dead`);
      },
      30_000,
    );
    const stuck = await runCli(['remove', ...bind, v0]);
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toMatch(
      /503 no_quorum: removing m\d would leave groups without a quorum to agree to it: .*db\.d \(1 of its 3 voters up besides m\d; 2 must agree\)/,
    );

    // one back: now the dead one can go, and its seat is filled at once by the spare (not after --replace-after, 10 min)
    nodes[Number(v1.slice(1))] = await startNode({
      dataDir: dirs[Number(v1.slice(1))]!,
      args: args(Number(v1.slice(1)), `http://127.0.0.1:${client.mgmtPort}`),
    });
    await until(`${v1} alive again`, async () => (await members(client)).includes(`${v1}=alive`), 40_000);
    const removedAt = Date.now();
    const ok = await runCli(['remove', ...bind, v0, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ removed: v0 });
    expect(JSON.parse(ok.stdout).groups).toContain('db.d');
    await until(`${v0} gone from the member list`, async () => !(await members(client)).some((m) => m.startsWith(`${v0}=`)), 20_000);
    await until(`db.d voters ${v1}, ${v2}, ${spare}`, async () => (await voters(client)).join(',') === [v1, v2, spare].sort().join(','), 60_000);
    console.log(`member removal: ${v0}'s seat of db.d filled ${Date.now() - removedAt} ms after remove (--replace-after 10m)`);
    expect((await client.post('/db/execute?db=d', ['INSERT INTO t VALUES(2)'])).status).toBe(200);

    // the removed board comes back: refused
    const back = await startNode({ dataDir: dirs[Number(v0.slice(1))]!, args: args(Number(v0.slice(1)), `http://127.0.0.1:${client.mgmtPort}`) });
    nodes.push(back);
    await until('the returning board is refused', async () => /403 removed/.test(back.log), 30_000);
    expect((await members(client)).some((m) => m.startsWith(`${v0}=`))).toBe(false);
    const rows = (await client.get('/db/query?db=d&level=strong&q=SELECT+v+FROM+t+ORDER+BY+v')).body.results[0].values;
    expect(rows).toEqual([[1], [2]]);
  }, 300_000);
});
