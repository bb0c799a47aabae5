/**
 * The replicated store with real processes on 127.0.0.1:
 * - 3 nodes: SIGKILL of a database's leader under concurrent write load loses
 *   no acknowledged write, writes resume, the killed node restarts and catches up;
 * - 5 nodes: an R=2 database lives on exactly 2 boards; a voter of an R=3
 *   database stays dead, it is replaced and R is restored with the data;
 * - `gandalf-node lock` from two shells never overlaps, tokens increase.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rendezvous } from '../../src/replication/placement';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'replication-test-cookie-42';
let nodes: NodeProcess[] = [];
let dirs: string[] = [];
const clusterArgs = (i: number, join?: string, extra: string[] = []) => [
  '--node-id',
  `n${i}`,
  '--discovery',
  'manual',
  '--cluster-cookie',
  COOKIE,
  '--replace-after',
  '4s',
  ...extra,
  ...(join ? ['--join', join] : []),
];

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

async function cluster(count: number, extra: string[] = []): Promise<NodeProcess[]> {
  dirs = Array.from({ length: count }, () => tempDir());
  nodes.push(await startNode({ dataDir: dirs[0]!, args: clusterArgs(0, undefined, extra) }));
  const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
  for (let i = 1; i < count; i++) nodes.push(await startNode({ dataDir: dirs[i]!, args: clusterArgs(i, seed, extra) }));
  await until(
    `the system group to have ${Math.min(count, 5) - (count % 2 === 0 ? 1 : 0)} voters`,
    async () => {
      const s = (await nodes[0]!.get('/status')).body;
      const sys = s.replicas.find((r: { group: string }) => r.group === 'system');
      return sys && sys.voters.length === Math.min(5, count % 2 === 1 ? count : count - 1);
    },
    40_000,
  );
  return nodes;
}

type Replica = { group: string; state: string; leader: string | null; voters: string[]; learners: string[]; applied_index: number };
async function replicas(node: NodeProcess): Promise<Replica[]> {
  return (await node.get('/status')).body.replicas;
}

async function exec(node: NodeProcess, statements: unknown[], query = ''): Promise<{ status: number; body: any }> {
  return node.post(`/db/execute${query}`, statements);
}

async function count(node: NodeProcess, sql: string, level: string, db = 'main'): Promise<number> {
  const r = await node.get(`/db/query?db=${db}&level=${level}&q=${encodeURIComponent(sql)}`);
  if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
  return r.body.results[0].values[0][0];
}

describe('replicated store (real processes)', () => {
  it('3 nodes: SIGKILL of the leader under load loses no acknowledged write; writes resume; the node restarts and catches up', async () => {
    const dirs: string[] = [];
    const args = (i: number, join?: string) => ['--node-id', `n${i}`, '--discovery', 'manual', '--cluster-cookie', COOKIE, ...(join ? ['--join', join] : [])];
    for (let i = 0; i < 3; i++) dirs.push(tempDir());
    nodes.push(await startNode({ dataDir: dirs[0]!, args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (let i = 1; i < 3; i++) nodes.push(await startNode({ dataDir: dirs[i]!, args: args(i, seed) }));
    const first = await until('the first write', async () => (await exec(nodes[1]!, ['CREATE TABLE k(id TEXT PRIMARY KEY)'])).status === 200, 40_000);
    expect(first).toBe(true);
    const main = await until(
      'db main on 3 voters',
      async () => {
        const r = (await replicas(nodes[0]!)).find((x) => x.group === 'db.main');
        return r && r.voters.length === 3 && r.leader ? r : undefined;
      },
      30_000,
    );
    const leader = Number(main.leader!.slice(1));
    const others = [0, 1, 2].filter((i) => i !== leader);

    // Concurrent clients on the two survivors; every acknowledged key is remembered.
    const acked = new Set<string>();
    const failures: string[] = [];
    let stop = false;
    let firstAfterKill = 0;
    let killedAt = 0;
    const client = async (c: number) => {
      for (let seq = 0; !stop && seq < 5000; seq++) {
        const node = nodes[others[c % 2]!]!;
        const key = `c${c}-${seq}`;
        try {
          const r = await exec(node, [['INSERT INTO k VALUES(?)', key]]);
          if (r.status === 200 && !r.body.results[0].error) {
            acked.add(key);
            if (killedAt && !firstAfterKill) firstAfterKill = Date.now();
          } else failures.push(`${r.status} ${r.body.code ?? r.body.results?.[0]?.error}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(client));
    await new Promise((r) => setTimeout(r, 1500));
    const before = acked.size;
    await nodes[leader]!.stop('SIGKILL');
    killedAt = Date.now();
    await until('writes to resume after the kill', async () => acked.size > before + 50, 30_000);
    stop = true;
    await load;
    console.log(
      `leader n${leader} killed after ${before} acknowledged writes; first write acknowledged after the kill: ${firstAfterKill - killedAt} ms; ${acked.size} acknowledged in all; failures: ${failures.length} (${[...new Set(failures)].slice(0, 3).join('; ')})`,
    );

    // Every acknowledged write is there, read linearizably through either survivor.
    const rows = (await nodes[others[0]!]!.get(`/db/query?level=strong&q=${encodeURIComponent('SELECT id FROM k')}`)).body.results[0].values.map(
      (r: string[]) => r[0],
    );
    const present = new Set(rows);
    expect([...acked].filter((k) => !present.has(k))).toEqual([]);
    expect(rows.length).toBe(present.size);

    // The killed node restarts from its disk and catches up.
    nodes[leader] = await startNode({ dataDir: dirs[leader]!, args: args(leader, seed) });
    const total = rows.length;
    await until('the restarted node to catch up', async () => (await count(nodes[leader]!, 'SELECT count(*) FROM k', 'none')) >= total, 30_000);
    expect(await count(nodes[leader]!, 'SELECT count(*) FROM k', 'none')).toBe(total);
  }, 180_000);

  it('5 nodes: R=2 puts a database on exactly 2 boards; a voter of an R=3 database that stays dead is replaced and R is restored', async () => {
    await cluster(5);
    const holders = async (alive: NodeProcess[], group: string) => {
      const all = await Promise.all(alive.map(async (n) => ((await replicas(n)).find((r) => r.group === group) ? n : undefined)));
      return all.filter((n): n is NodeProcess => n !== undefined);
    };
    const settled = async (alive: NodeProcess[], group: string, r: number, without?: string) => {
      const h = await holders(alive, group);
      if (h.length !== r) return false;
      const rs = await Promise.all(h.map(async (n) => (await replicas(n)).find((x) => x.group === group)!));
      return rs.every((x) => x.voters.length === r && x.learners.length === 0 && (!without || !x.voters.includes(without)));
    };
    expect((await exec(nodes[2]!, ['CREATE TABLE t(v)'], '?db=pair&redundancy=2')).status).toBe(200);
    expect((await exec(nodes[3]!, ['CREATE TABLE t(v)'], '?db=trio')).status).toBe(200); // default: min(3, cluster size)
    await until('exactly 2 boards to hold db pair', () => settled(nodes, 'db.pair', 2), 30_000);
    await until('exactly 3 boards to hold db trio', () => settled(nodes, 'db.trio', 3), 30_000);
    for (let i = 1; i <= 50; i++) expect((await exec(nodes[i % 5]!, [['INSERT INTO t VALUES(?)', i]], '?db=trio')).status).toBe(200);

    // One board holding trio dies for good.
    const trio = (await nodes[0]!.get('/status')).body.databases.find((d: { name: string }) => d.name === 'trio').voters as string[];
    const victimId = trio[trio.length - 1]!;
    const victim = nodes[Number(victimId.slice(1))]!;
    await victim.stop('SIGKILL');
    const alive = nodes.filter((n) => n !== victim);
    const started = Date.now();
    await until('R=3 restored on live boards', () => settled(alive, 'db.trio', 3, victimId), 60_000);
    console.log(`a dead voter of db trio was replaced and R=3 restored ${Date.now() - started} ms after SIGKILL (--replace-after 4s)`);
    for (const n of await holders(alive, 'db.trio')) {
      await until('the new replica to catch up', async () => (await count(n, 'SELECT count(*) FROM t', 'none', 'trio')) === 50, 20_000);
    }
    expect(await count(alive[0]!, 'SELECT count(*) FROM t', 'strong', 'trio')).toBe(50);
    expect((await exec(alive[1]!, [['INSERT INTO t VALUES(?)', 51]], '?db=trio')).status).toBe(200);

    // The replaced board comes back: it rejoins the cluster and drops its stale replica of trio.
    const back = Number(victimId.slice(1));
    nodes[back] = await startNode({ dataDir: dirs[back]!, args: clusterArgs(back, `http://127.0.0.1:${nodes[back === 0 ? 1 : 0]!.mgmtPort}`) });
    await until('the returning board to drop its stale replica', async () => !(await replicas(nodes[back]!)).some((r) => r.group === 'db.trio'), 40_000);
    expect(await holders(nodes, 'db.trio')).toHaveLength(3);
  }, 240_000);

  it('joins rebalance gradually: databases whose rendezvous choice is a new board move there, the others stay', async () => {
    const extra = ['--rebalance-interval', '3s'];
    await cluster(3, extra);
    const before = ['n0', 'n1', 'n2'];
    const after = [...before, 'n3', 'n4'];
    // Pick, deterministically, two names that should move to a new board and two that should stay.
    const names = Array.from({ length: 40 }, (_, i) => `r${i}`);
    const moving = names.filter((n) => ['n3', 'n4'].includes(rendezvous(`db.${n}`, after, 1)[0]!)).slice(0, 2);
    const staying = names.filter((n) => !['n3', 'n4'].includes(rendezvous(`db.${n}`, after, 1)[0]!)).slice(0, 2);
    expect(moving).toHaveLength(2);
    for (const n of [...moving, ...staying]) {
      expect((await exec(nodes[0]!, ['CREATE TABLE t(v)', ['INSERT INTO t VALUES(?)', n]], `?db=${n}&redundancy=1`)).status).toBe(200);
    }
    const placement = async () =>
      new Map(((await nodes[0]!.get('/status')).body.databases as { name: string; voters: string[] }[]).map((d) => [d.name, d.voters]));
    const initial = await placement();
    for (const n of [...moving, ...staying]) expect(initial.get(n)).toEqual(rendezvous(`db.${n}`, before, 1));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [3, 4]) {
      dirs.push(tempDir());
      nodes.push(await startNode({ dataDir: dirs[i]!, args: clusterArgs(i, seed, extra) }));
    }
    await until(
      'the moving databases on their new boards',
      async () => {
        const p = await placement();
        return moving.every((n) => JSON.stringify(p.get(n)) === JSON.stringify(rendezvous(`db.${n}`, after, 1)));
      },
      90_000,
    );
    for (const n of moving) {
      const home = nodes[Number(rendezvous(`db.${n}`, after, 1)[0]!.slice(1))]!;
      await until(
        `db ${n} served by its new board alone`,
        async () => {
          const r = (await replicas(home)).find((x) => x.group === `db.${n}`);
          return r?.state === 'leader' && r.voters.length === 1;
        },
        30_000,
      );
      expect((await home.get(`/db/query?db=${n}&level=strong&q=SELECT+v+FROM+t`)).body.results[0].values).toEqual([[n]]);
    }
    const final = await placement();
    for (const n of staying) expect(final.get(n)).toEqual(initial.get(n)); // nothing else moved
  }, 240_000);

  it('`gandalf-node lock` from two shells never overlaps and hands out increasing fencing tokens', async () => {
    await cluster(3);
    const dir = tempDir();
    const journal = path.join(dir, 'journal');
    // Each critical section appends "start TOKEN", sleeps, appends "end TOKEN".
    const section = `echo "start $GANDALF_LOCK_TOKEN" >> ${journal}; sleep 0.2; echo "end $GANDALF_LOCK_TOKEN" >> ${journal}`;
    const shell = async (node: NodeProcess, rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        const r = await runCli(['lock', 'printer', '--timeout', '60s', '--http-bind', `127.0.0.1:${node.httpPort}`, '--', 'sh', '-c', section]);
        expect(r.code, r.stderr).toBe(0);
      }
    };
    await Promise.all([shell(nodes[0]!, 4), shell(nodes[1]!, 4), shell(nodes[2]!, 4)]);
    const lines = readFileSync(journal, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(24);
    let last = 0;
    for (let i = 0; i < lines.length; i += 2) {
      const [s, t1] = lines[i]!.split(' ');
      const [e, t2] = lines[i + 1]!.split(' ');
      expect([s, e]).toEqual(['start', 'end']); // never two sections interleaved
      expect(t1).toBe(t2);
      expect(Number(t1)).toBeGreaterThan(last); // fencing tokens strictly increase
      last = Number(t1);
    }
    // A command that fails passes its exit code through; the lock is free afterwards.
    const failing = await runCli(['lock', 'printer', '--http-bind', `127.0.0.1:${nodes[0]!.httpPort}`, '--', 'sh', '-c', 'exit 7']);
    expect(failing.code).toBe(7);
    expect((await nodes[2]!.get('/lock/printer')).body.held).toBe(false);

    // A lone survivor keeps the data, serves level=none reads and says why writes fail.
    expect((await exec(nodes[0]!, ['CREATE TABLE s(v)', ['INSERT INTO s VALUES(?)', 'kept']], '?db=solo')).status).toBe(200);
    await until('db solo on 3 voters', async () => (await replicas(nodes[0]!)).find((r) => r.group === 'db.solo')?.voters.length === 3, 30_000);
    await until('db solo replicated to n0', async () => (await count(nodes[0]!, 'SELECT count(*) FROM s', 'none', 'solo')) === 1, 30_000);
    // The others leave for good (a prompt, certain verdict; SIGKILL's is covered by the first test).
    expect((await nodes[1]!.stop('SIGTERM')).code).toBe(0);
    expect((await nodes[2]!.stop('SIGTERM')).code).toBe(0);
    await until(
      'n0 to see both peers gone',
      async () => {
        const rows = (await nodes[0]!.get('/cluster/nodes')).body.nodes as { 'node-id': string; state: string }[];
        return rows.filter((r) => r.state === 'left' || r.state === 'dead').length === 2;
      },
      30_000,
    );
    // readiness: the survivor serves, but its database has no leader; liveness never depends on one
    await until('n0 to report itself not ready', async () => (await nodes[0]!.get('/readyz')).status === 503, 15_000);
    expect((await nodes[0]!.get('/readyz')).body.checks).toMatchObject({ node: 'ok', 'db.solo': 'no reachable leader' });
    expect((await nodes[0]!.get('/readyz?noleader')).status).toBe(200);
    expect((await nodes[0]!.get('/livez')).status).toBe(200);
    const refused = await exec(nodes[0]!, [['INSERT INTO s VALUES(?)', 'lost']], '?db=solo');
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('no_quorum');
    expect(refused.body.message).toMatch(/of its \d+ voters are reachable|voters reachable/);
    expect(await count(nodes[0]!, "SELECT count(*) FROM s WHERE v = 'kept'", 'none', 'solo')).toBe(1);
  }, 180_000);

  it('the survivor of a double crash answers no_quorum, never outcome_unknown, and keeps serving level=none reads', async () => {
    await cluster(3, ['--replace-after', '60s']);
    expect((await exec(nodes[0]!, ['CREATE TABLE d(v)', "INSERT INTO d VALUES('kept')"], '?db=dc')).status).toBe(200);
    await until(
      'db dc on 3 voters, with a leader',
      async () => {
        const r = (await replicas(nodes[0]!)).find((x) => x.group === 'db.dc');
        return r?.voters.length === 3 && r.leader !== null;
      },
      30_000,
    );
    // the survivor follows: its database's leader is among the two killed
    const leader = (await replicas(nodes[0]!)).find((x) => x.group === 'db.dc')!.leader!;
    const survivor = nodes.find((_, i) => `n${i}` !== leader)!;
    await until('the survivor to hold db dc', async () => (await count(survivor, 'SELECT count(*) FROM d', 'none', 'dc')) === 1, 30_000);
    await Promise.all(nodes.filter((n) => n !== survivor).map((n) => n.stop('SIGKILL')));
    await new Promise((r) => setTimeout(r, 4000)); // past an election timeout and SWIM's suspicion
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const r = await exec(survivor, [['INSERT INTO d VALUES(?)', `lost-${i}`]], '?db=dc');
      answers.push(`${r.status} ${r.body.code} after ${Date.now() - started} ms: ${r.body.message}`);
      expect(r.status, answers.join('\n')).toBe(503);
      expect(r.body.code, answers.join('\n')).toBe('no_quorum');
    }
    console.log(`double crash, writes to the survivor:\n${answers.join('\n')}`);
    expect(await count(survivor, 'SELECT count(*) FROM d', 'none', 'dc')).toBe(1);
  }, 120_000);
});
