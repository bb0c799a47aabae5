/**
 * Rotating the cluster cookie with no downtime, on a 3-node cluster under
 * write load: every board's cookie file gets the new cookie below the old
 * (accepted), then first (signing), then alone; the boards take each file
 * change without a restart. A board restarted midway reconnects, a board
 * with only the old cookie is refused at the end, one with the new cookie
 * joins, and every acknowledged write is there.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const OLD = 'old-cookie-of-this-rack';
const NEW = 'new-cookie-of-this-rack';
const nodes: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

type Member = { 'node-id': string; state: string };

describe('cookie rotation', () => {
  it('rotates board by board while writes go on', async () => {
    const dirs = [0, 1, 2, 3, 4].map(() => tempDir());
    const files = dirs.map((d) => path.join(d, 'cookie'));
    const args = (i: number, join?: string) => [
      '--node-id',
      `k${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie-file',
      files[i]!,
      ...(join ? ['--join', join] : []),
    ];
    writeFileSync(files[0]!, `${OLD}\n`);
    nodes.push(await startNode({ dataDir: dirs[0]!, args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [1, 2]) {
      writeFileSync(files[i]!, `${OLD}\n`);
      nodes.push(await startNode({ dataDir: dirs[i]!, args: args(i, seed) }));
    }
    const alive = async (n: NodeProcess) =>
      ((await n.get('/cluster/nodes')).body.nodes as Member[])
        .filter((m) => m.state === 'alive')
        .map((m) => m['node-id'])
        .sort();
    await until('three members', async () => (await alive(nodes[0]!)).length === 3, 40_000);
    expect((await nodes[0]!.post('/db/execute', ['CREATE TABLE t(v)'])).status).toBe(200);

    let acked = 0;
    let stop = false;
    const failures: string[] = [];
    const writer = (async () => {
      for (let i = 1; i <= 5000 && !stop; i++) {
        const r = await nodes[0]!.post('/db/execute', [['INSERT INTO t VALUES(?)', i]]);
        if (r.status === 200) acked++;
        else failures.push(`${r.status} ${JSON.stringify(r.body)}`);
        await new Promise((res) => setTimeout(res, 10));
      }
    })();

    const step = async (content: string, what: string) => {
      for (const i of [0, 1, 2]) {
        const before = nodes[i]!.log.split('cluster cookie file reloaded').length;
        writeFileSync(files[i]!, content);
        await until(`k${i} reloaded its cookie file (${what})`, async () => nodes[i]!.log.split('cluster cookie file reloaded').length > before, 15_000);
      }
    };
    await step(`${OLD}\n${NEW}\n`, 'new accepted');
    await step(`${NEW}\n${OLD}\n`, 'new signs');
    // a board restarted now signs with the new cookie and is taken back
    await nodes[2]!.stop('SIGTERM');
    nodes[2] = await startNode({ dataDir: dirs[2]!, args: args(2, seed) });
    await until('k2 back among three alive members', async () => (await alive(nodes[0]!)).length === 3 && (await alive(nodes[2]!)).length === 3, 40_000);
    await step(`${NEW}\n`, 'old dropped');

    // a board that still has only the old cookie is refused; one with the new cookie joins
    writeFileSync(files[3]!, `${OLD}\n`);
    const stale = await startNode({ dataDir: dirs[3]!, args: args(3, seed) });
    nodes.push(stale);
    writeFileSync(files[4]!, `${NEW}\n`);
    const fresh = await startNode({ dataDir: dirs[4]!, args: args(4, seed) });
    nodes.push(fresh);
    await until('k4 joined', async () => (await alive(nodes[0]!)).includes('k4'), 40_000);
    await until('k3 was refused', async () => /refused a signal/.test(nodes[0]!.log) && /401 unauthorized/.test(stale.log), 20_000);
    expect(await alive(nodes[0]!)).not.toContain('k3');

    stop = true;
    await writer;
    // A write in flight on the leader that SIGTERM stops may end as outcome_unknown (it may or may not have
    // applied; before, it was retried elsewhere and could apply twice); nothing else may fail.
    const unknown = failures.filter((f) => f.startsWith('503 ') && f.includes('"outcome_unknown"'));
    expect(failures.filter((f) => !unknown.includes(f))).toEqual([]);
    expect(unknown.length).toBeLessThanOrEqual(2);
    expect(acked).toBeGreaterThan(20);
    const count = (await nodes[1]!.get('/db/query?level=strong&q=SELECT+count(*)+FROM+t')).body.results[0].values[0][0];
    expect(count).toBeGreaterThanOrEqual(acked);
    expect(count).toBeLessThanOrEqual(acked + unknown.length);
  }, 240_000);
});
