/**
 * Real processes on 127.0.0.1: five nodes form a cluster through --join
 * (mixing node-datachannel and werift), a node with a wrong cookie never
 * appears in any view, SIGKILL makes a member dead everywhere within the
 * detection bound, SIGTERM makes one "left" promptly.
 */
import { describe, expect, it } from 'vitest';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

const COOKIE = 'system-test-cookie-0123456789';
/** SWIM defaults: probe 1 s; worst case to "dead" ≈ one probe round over 4 peers + suspicion (≤ 6 s) + slack. */
const DEAD_BOUND_MS = 20_000;
const LEFT_BOUND_MS = 4_000;

type Row = { 'node-id': string; state: string; transport: string; arch: string; incarnation: number; endpoint: string; 'rtt-ms': number | null };

async function view(node: NodeProcess): Promise<Row[]> {
  return (await node.get('/cluster/nodes')).body.nodes;
}

async function until(what: string, cond: () => Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - start;
}

function stateOf(rows: Row[], id: string): string | undefined {
  return rows.find((r) => r['node-id'] === id)?.state;
}

describe('cluster of real processes', () => {
  it('forms, refuses a wrong cookie, detects a crash and a graceful leave', async () => {
    const nodes: NodeProcess[] = [];
    const args = (i: number, join?: string) => [
      '--node-id',
      `n${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      COOKIE,
      '--webrtc',
      i % 2 === 0 ? 'native' : 'werift',
      ...(join ? ['--join', join] : []),
    ];
    const dirs = [0, 1, 2, 3, 4].map(() => tempDir());
    nodes.push(await startNode({ dataDir: dirs[0]!, args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (let i = 1; i < 5; i++) nodes.push(await startNode({ dataDir: dirs[i]!, args: args(i, seed) }));

    const ids = nodes.map((_, i) => `n${i}`);
    await until(
      'all five to see five alive members',
      async () => {
        const views = await Promise.all(nodes.map(view));
        return views.every((v) => ids.every((id) => stateOf(v, id) === 'alive'));
      },
      30_000,
    );
    const v0 = await view(nodes[0]!);
    expect(v0.find((r) => r['node-id'] === 'n1')).toMatchObject({
      transport: 'werift',
      arch: process.arch,
      endpoint: `http://127.0.0.1:${nodes[1]!.mgmtPort}`,
    });
    expect(v0.find((r) => r['node-id'] === 'n2')!.transport).toBe('native');

    // The CLI shows the same view.
    const cli = await runCli(['nodes', '--json', '--http-bind', `127.0.0.1:${nodes[3]!.httpPort}`]);
    expect(cli.code).toBe(0);
    expect(
      JSON.parse(cli.stdout)
        .nodes.map((n: Row) => n['node-id'])
        .sort(),
    ).toEqual(ids);

    // A node with the wrong cookie is refused and never appears anywhere.
    const intruder = await startNode({
      dataDir: tempDir(),
      args: ['--node-id', 'intruder', '--discovery', 'manual', '--cluster-cookie', 'wrong-cookie-xyz', '--join', seed],
    });
    await new Promise((r) => setTimeout(r, 4000));
    for (const n of nodes) expect((await view(n)).map((r) => r['node-id'])).not.toContain('intruder');
    expect((await view(intruder)).map((r) => r['node-id'])).toEqual(['intruder']);
    expect(nodes[0]!.log).toMatch(/refused a signal.*unauthorized|"code":"unauthorized"/);
    await intruder.stop();

    // SIGKILL n4: dead everywhere within the bound.
    await nodes[4]!.stop('SIGKILL');
    const detect = await until(
      'n4 dead on every survivor',
      async () => {
        const views = await Promise.all(nodes.slice(0, 4).map(view));
        return views.every((v) => stateOf(v, 'n4') === 'dead');
      },
      DEAD_BOUND_MS,
    );
    console.log(`SIGKILL -> dead on all 4 survivors in ${detect} ms`);
    for (const v of await Promise.all(nodes.slice(0, 4).map(view))) {
      for (const id of ids.slice(0, 4)) expect(stateOf(v, id), `${id} is alive`).toBe('alive');
    }

    // n4 comes back (same id, data dir and ports): it refutes its death and is alive everywhere again.
    const deadAt = (await view(nodes[0]!)).find((r) => r['node-id'] === 'n4')!.incarnation;
    nodes[4] = await startNode({ dataDir: dirs[4]!, args: args(4, seed), httpPort: nodes[4]!.httpPort, mgmtPort: nodes[4]!.mgmtPort });
    const rejoin = await until(
      'n4 alive again on every node',
      async () => {
        const views = await Promise.all(nodes.map(view));
        return views.every((v) => ids.every((id) => stateOf(v, id) === 'alive'));
      },
      30_000,
    );
    console.log(`restarted n4 alive everywhere again in ${rejoin} ms`);
    expect((await view(nodes[1]!)).find((r) => r['node-id'] === 'n4')!.incarnation).toBeGreaterThan(deadAt);
    await nodes[4]!.stop('SIGKILL');
    await until('n4 dead again', async () => (await Promise.all(nodes.slice(0, 4).map(view))).every((v) => stateOf(v, 'n4') === 'dead'), DEAD_BOUND_MS);

    // SIGTERM n3: "left" everywhere, promptly; the process exits as soon as it logged "stopped".
    let stoppedAt = 0;
    nodes[3]!.proc.stderr!.on('data', (d: Buffer) => {
      if (!stoppedAt && /"msg":"stopped"/.test(d.toString())) stoppedAt = performance.now();
    });
    const exit = nodes[3]!.stop('SIGTERM');
    const exitedAt = exit.then(() => performance.now());
    const leave = await until(
      'n3 left on every survivor',
      async () => {
        const views = await Promise.all(nodes.slice(0, 3).map(view));
        return views.every((v) => stateOf(v, 'n3') === 'left');
      },
      LEFT_BOUND_MS,
    );
    console.log(`SIGTERM -> left on all 3 survivors in ${leave} ms`);
    expect((await exit).code).toBe(0);
    expect(stoppedAt).toBeGreaterThan(0);
    const lingered = (await exitedAt) - stoppedAt;
    console.log(`n3 exited ${Math.round(lingered)} ms after logging "stopped"`);
    expect(lingered).toBeLessThan(1_000);
    for (const n of nodes.slice(0, 3)) expect((await n.stop()).code).toBe(0);
  }, 120_000);
});
