/**
 * Whole-cluster backups with real processes: a board with --backup-dir
 * writes a checksummed backup of every database and the key/value container
 * every --backup-interval and keeps --backup-retain of them; `backup --all`
 * writes the same from the CLI; `restore --all` puts every database and key
 * onto a fresh cluster; a damaged backup is refused before anything loads.
 */
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const nodes: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

async function cluster(name: string, extra: (i: number) => string[] = () => []): Promise<NodeProcess[]> {
  const args = (i: number, join?: string) => [
    '--node-id',
    `${name}${i}`,
    '--discovery',
    'manual',
    '--cluster-cookie',
    `cluster-backup-${name}`,
    ...extra(i),
    ...(join ? ['--join', join] : []),
  ];
  const first = await startNode({ dataDir: tempDir(), args: args(0) });
  const seed = `http://127.0.0.1:${first.mgmtPort}`;
  const all = [first, ...(await Promise.all([1, 2].map((i) => startNode({ dataDir: tempDir(), args: args(i, seed) }))))];
  nodes.push(...all);
  await until(
    `${name}: a system group of 3 voters`,
    async () => (await first.get('/status')).body.replicas.find((r: { group: string }) => r.group === 'system')?.voters.length === 3,
    40_000,
  );
  return all;
}

const bind = (n: NodeProcess) => ['--http-bind', `127.0.0.1:${n.httpPort}`];
const rows = async (n: NodeProcess, db: string) =>
  (await n.get(`/db/query?db=${db}&level=strong&q=${encodeURIComponent('SELECT * FROM t ORDER BY 1')}`)).body.results?.[0]?.values;

describe('whole-cluster backups', () => {
  it('are scheduled, pruned, written by the CLI, restored onto a fresh cluster, and refused when damaged', async () => {
    const dir = tempDir('gandalf-cluster-backups-');
    const a = await cluster('a', (i) => (i === 0 ? ['--backup-dir', dir, '--backup-interval', '2s', '--backup-retain', '2'] : []));
    expect(
      (await a[1]!.post('/db/execute?db=orders', ['CREATE TABLE t(id INTEGER PRIMARY KEY, item TEXT)', "INSERT INTO t(item) VALUES('bolt'), ('nut')"])).status,
    ).toBe(200);
    expect((await a[2]!.post('/db/execute?db=sensors', ['CREATE TABLE t(at INTEGER, c REAL)', 'INSERT INTO t VALUES(1, 20.5), (2, 21.25)'])).status).toBe(200);
    for (const [k, v] of [
      ['config/site', 'north'],
      ['config/owner', 'ops team'],
    ]) {
      expect((await fetch(`${a[0]!.url}/kv/${k}`, { method: 'PUT', body: JSON.stringify({ value: v }) })).status).toBe(200);
    }
    // fencing tokens handed out before the backup: a restored cluster must go on above them
    let highest = 0;
    for (let i = 0; i < 3; i++) {
      const got = (await a[1]!.post('/lock/pump/acquire?ttl=30s', {})).body as { token: number; session: string };
      highest = Math.max(highest, got.token);
      await a[1]!.post(`/lock/pump/release?session=${got.session}`, {});
    }
    expect(highest).toBeGreaterThanOrEqual(3);
    const session = (await a[0]!.post('/session?ttl=60s', {})).body.session as string;
    expect((await fetch(`${a[0]!.url}/kv/ephemeral`, { method: 'PUT', body: JSON.stringify({ value: 'x', session }) })).status).toBe(200);

    // three scheduled backups after the data is in: the directory keeps the newest two
    const written = () => a[0]!.log.split('"cluster backup written"').length - 1;
    const before = written();
    await until('three more scheduled backups', async () => written() >= before + 3, 60_000);
    const own = readdirSync(dir).filter((n) => n.startsWith('gandalf-'));
    expect(own).toHaveLength(2);
    expect(readdirSync(dir).some((n) => n.startsWith('.partial'))).toBe(false);
    const newest = path.join(dir, own.sort()[1]!);
    expect((await a[0]!.get('/status')).body.backups.last.path).toMatch(/gandalf-gandalf-\d{8}T\d{6}Z-a0$/);
    // the schedule goes on (and prunes): work on a copy
    const latest = path.join(tempDir('gandalf-kept-'), 'kept');
    cpSync(newest, latest, { recursive: true });
    const manifest = JSON.parse(readFileSync(path.join(latest, 'manifest.json'), 'utf8'));
    expect(manifest.databases.map((d: { name: string }) => d.name)).toEqual(['orders', 'sensors']);
    expect(manifest.kv.keys).toBe(2); // the session-bound key is not in it
    expect(manifest.locks.last_token).toBe(highest);

    // the CLI writes the same format through any board
    const cliDir = tempDir('gandalf-cli-backup-');
    const b1 = await runCli(['backup', '--all', ...bind(a[2]!), cliDir]);
    expect(b1.code, b1.stderr).toBe(0);
    expect(b1.stderr).toMatch(/backed up 2 databases and 2 keys to/);

    // a damaged copy is refused before anything loads
    const fresh = await cluster('b');
    const damaged = path.join(tempDir('gandalf-damaged-'), 'copy');
    cpSync(latest, damaged, { recursive: true });
    const file = path.join(damaged, 'orders.sqlite');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(file, bytes);
    const bad = await runCli(['restore', '--all', ...bind(fresh[0]!), damaged]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/orders\.sqlite does not match its checksum \(damaged\)/);
    expect((await fresh[0]!.get('/status')).body.databases).toEqual([]);

    // the scheduled backup restores onto the fresh cluster
    const ok = await runCli(['restore', '--all', ...bind(fresh[1]!), latest]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/restored 2 databases and 2 keys/);
    for (const n of fresh) {
      expect(await rows(n, 'orders')).toEqual([
        [1, 'bolt'],
        [2, 'nut'],
      ]);
      expect(await rows(n, 'sensors')).toEqual([
        [1, 20.5],
        [2, 21.25],
      ]);
    }
    expect(ok.stderr).toContain(`fencing tokens continue above ${highest}`);
    const next = (await fresh[0]!.post('/lock/pump/acquire?ttl=30s', {})).body as { token: number };
    expect(next.token).toBeGreaterThan(highest);
    const site = await fresh[2]!.get('/kv/config/site?level=strong');
    expect(site.body.value).toBe('north');
    expect((await fresh[2]!.get('/kv/ephemeral')).status).toBe(404);
    // and so does the one the CLI wrote
    const third = await cluster('c');
    const fromCli = path.join(cliDir, readdirSync(cliDir)[0]!);
    const ok2 = await runCli(['restore', '--all', ...bind(third[0]!), fromCli]);
    expect(ok2.code, ok2.stderr).toBe(0);
    expect(await rows(third[2]!, 'orders')).toEqual([
      [1, 'bolt'],
      [2, 'nut'],
    ]);
  }, 300_000);
});
