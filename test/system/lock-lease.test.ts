/**
 * The lock holder knows before anyone else can hold the lock: three nodes on
 * 127.0.0.1; a client holds `lock shared` through node c while a second client
 * waits for it through node a; the two critical sections must never overlap.
 *   - c runs a long statement meanwhile: SQL runs on worker threads, so c's
 *     keepalives go on, the first section keeps the lock to its end, and only
 *     then does the second start.
 *   - c stops altogether (SIGSTOP: no keepalive is confirmed): the first
 *     command's whole process group is stopped before the second section
 *     starts, and the first CLI says the lock was lost and exits non-zero.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'lock-lease-test-cookie';
let nodes: NodeProcess[] = [];

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

async function cluster(extra: string[] = []): Promise<{ a: NodeProcess; c: NodeProcess }> {
  const args = (i: number, join?: string) => [
    '--node-id',
    `l${i}`,
    '--discovery',
    'manual',
    '--cluster-cookie',
    COOKIE,
    ...extra,
    ...(join ? ['--join', join] : []),
  ];
  nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
  const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
  for (let i = 1; i < 3; i++) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
  await until(
    'a system group of 3 voters',
    async () => (await nodes[0]!.get('/status')).body.replicas.find((r: { group: string }) => r.group === 'system')?.voters.length === 3,
    40_000,
  );
  expect((await nodes[0]!.post('/db/execute?db=busy', ['CREATE TABLE t(v)'])).status).toBe(200);
  // the holder's node: not the system leader, so the session can expire while it is stalled
  const leader = (await nodes[0]!.get('/status')).body.system_leader as string;
  const c = nodes.find((_, i) => `l${i}` !== leader)!;
  const a = nodes.find((n) => n !== c)!;
  return { a, c };
}

const ns = () => '$(date +%s%N)';
const LONG_READ = `/db/query?db=busy&level=none&q=${encodeURIComponent('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1e12) SELECT count(*) FROM n')}`;

function sections(file: string): { lines: string[]; at: (tag: string) => bigint } {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
  return { lines, at: (tag) => BigInt(lines.find((l) => l.startsWith(`${tag} `))?.split(' ')[1] ?? '-1') };
}

describe('lock lease on the client side', () => {
  it('a long statement on the holder\u2019s node: the holder keeps the lock to its end; the sections never overlap', async () => {
    const { a, c } = await cluster(['--query-timeout', '20s']);
    const file = path.join(tempDir(), 'sections');
    // the first section outlives several TTLs while c runs a statement of up to 20 s
    const first = runCli([
      'lock',
      'shared',
      '--ttl',
      '3s',
      '--http-bind',
      `127.0.0.1:${c.httpPort}`,
      '--',
      'sh',
      '-c',
      `echo start1 ${ns()} >> ${file}; sleep 10; echo end1 ${ns()} >> ${file}`,
    ]);
    await until('the first section to start', () => existsSync(file), 20_000);
    const long = fetch(c.url + LONG_READ).then((r) => r.json() as Promise<{ code?: string }>);
    await new Promise((r) => setTimeout(r, 200));
    const second = runCli(['lock', 'shared', '--timeout', '60s', '--http-bind', `127.0.0.1:${a.httpPort}`, '--', 'sh', '-c', `echo start2 ${ns()} >> ${file}`]);
    const [r1, r2] = await Promise.all([first, second]);
    const { lines, at } = sections(file);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r2.code, r2.stderr).toBe(0);
    expect(at('end1'), lines.join('\n')).toBeGreaterThan(0n);
    expect(at('start2'), lines.join('\n')).toBeGreaterThan(at('end1'));
    expect((await long).code).toBe('query_timeout');
  }, 120_000);

  it('the holder\u2019s node stops: its whole process group is stopped before the lock can pass on', async () => {
    const { a, c } = await cluster();
    const file = path.join(tempDir(), 'sections');
    // the section leaves a child (sleep) in its group: the lease must stop it too
    const first = runCli([
      'lock',
      'shared',
      '--ttl',
      '3s',
      '--http-bind',
      `127.0.0.1:${c.httpPort}`,
      '--',
      'sh',
      '-c',
      `echo start1 ${ns()} >> ${file}; trap 'echo end1 ${ns()} >> ${file}; exit 143' TERM; sleep 120 & echo sleep $! >> ${file}; wait`,
    ]);
    await until('the first section to start', () => existsSync(file) && /sleep \d+/.test(readFileSync(file, 'utf8')), 20_000);
    c.proc.kill('SIGSTOP'); // no keepalive is answered from here on
    try {
      await new Promise((r) => setTimeout(r, 200));
      const second = runCli([
        'lock',
        'shared',
        '--timeout',
        '60s',
        '--http-bind',
        `127.0.0.1:${a.httpPort}`,
        '--',
        'sh',
        '-c',
        `echo start2 ${ns()} >> ${file}`,
      ]);
      const [r1, r2] = await Promise.all([first, second]);
      const { lines, at } = sections(file);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r1.code).not.toBe(0);
      expect(r1.stderr).toMatch(/lock shared lost/);
      expect(at('end1'), lines.join('\n')).toBeGreaterThan(0n);
      expect(at('start2'), lines.join('\n')).toBeGreaterThan(at('end1'));
      // the section's child went with it
      const sleepPid = Number(lines.find((l) => l.startsWith('sleep '))!.split(' ')[1]);
      const gone = () => {
        try {
          process.kill(sleepPid, 0);
          return false;
        } catch {
          return true;
        }
      };
      await until(`the section's sleep (pid ${sleepPid}) to be gone`, gone, 5_000);
    } finally {
      c.proc.kill('SIGCONT');
    }
  }, 120_000);

  it('a board the others call dead keeps its sessions, and the locks they hold, to the end of their TTL', async () => {
    // A board called dead may only be cut off, with clients that still rely on their lease.
    const { a, c } = await cluster();
    const session = (await c.post('/session?ttl=20s', undefined)).body.session as string;
    expect((await c.post(`/lock/held/acquire?session=${session}`, undefined)).status).toBe(200);
    const keptAt = Date.now();
    expect((await c.post(`/session/${session}/keepalive`, undefined)).status).toBe(200);
    const lease = keptAt + 20_000; // what the holder may rely on
    c.proc.kill('SIGSTOP');
    try {
      await until(
        'the stopped board to be called dead',
        async () => ((await a.get('/cluster/nodes')).body.nodes as { state: string }[]).some((m) => m.state === 'dead'),
        15_000,
      );
      const deadAt = Date.now();
      expect(deadAt, 'the verdict must come well inside the TTL for this test to mean anything').toBeLessThan(lease - 5_000);
      const got = await a.post('/lock/held/acquire?timeout=40s&ttl=60s', undefined);
      const grantedAt = Date.now();
      expect(got.status, JSON.stringify(got.body)).toBe(200);
      expect(grantedAt, `granted ${grantedAt - deadAt} ms after the verdict, ${lease - grantedAt} ms before the holder's lease ended`).toBeGreaterThanOrEqual(
        lease,
      );
    } finally {
      c.proc.kill('SIGCONT');
    }
  }, 120_000);
});
