/**
 * A soak, not part of `npm test` (memory-heavy: four nodes holding 200 MiB
 * each, in up to three copies): `npm run soak:large`.
 *
 * A large database heals: 4 nodes, a 200 MiB database on 3 of them, its log
 * compacted into a snapshot; a voter is SIGKILLed and its replacement gets the
 * whole database as a snapshot streamed over the mesh (paced by the link's
 * backlog: a mesh link closes past 32 MiB of it) while writes go on. Checked:
 * the new voter holds every row and every byte, and every acknowledged write.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'large-database-test-cookie';
const MIB_ROWS = 200; // rows of 1 MiB
let nodes: NodeProcess[] = [];

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

type Replica = { group: string; voters: string[]; learners: string[]; applied_index: number; snapshot_index: number };
const replica = async (n: NodeProcess, group: string) => ((await n.get('/status')).body.replicas as Replica[]).find((r) => r.group === group);

describe('a large database (real processes)', () => {
  it('a 200 MiB database gets a new voter by a streamed snapshot while writes go on', async () => {
    const args = (i: number, join?: string) => [
      '--node-id',
      `g${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      COOKIE,
      '--replace-after',
      '4s',
      '--snapshot-entries',
      '20',
      ...(join ? ['--join', join] : []),
    ];
    nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (let i = 1; i < 4; i++) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
    await until('a system group of 3 voters', async () => (await replica(nodes[0]!, 'system'))?.voters.length === 3, 40_000);
    const exec = async (n: NodeProcess, statements: unknown[]) => {
      const r = await n.post('/db/execute?db=big', statements);
      if (r.status !== 200 || r.body.results.some((x: { error?: string }) => x.error)) throw new Error(`${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return r;
    };
    // setup writes are idempotent and retried: a loaded machine may answer outcome_unknown or no_quorum now and then
    const setup = async (statements: unknown[]) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await exec(nodes[attempt % nodes.length]!, statements);
        } catch (err) {
          if (attempt >= 10) throw err;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    await setup(['CREATE TABLE IF NOT EXISTS b(k INTEGER PRIMARY KEY, v BLOB)', 'CREATE TABLE IF NOT EXISTS w(v)']);
    // 200 rows of 1 MiB, 20 MiB per entry
    for (let k = 0; k < MIB_ROWS; k += 20) {
      await setup([
        [
          `WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT OR REPLACE INTO b SELECT x, randomblob(1048576) FROM c`,
          k,
          k + 19,
        ],
      ]);
    }
    const voters = (await nodes[0]!.get('/status')).body.databases.find((d: { name: string }) => d.name === 'big').voters as string[];
    expect(voters).toHaveLength(3);
    // enough small writes that every voter compacts its log into a snapshot
    for (let i = 0; i < 30; i++) await setup([['INSERT INTO w VALUES(?)', `before-${i}`]]);
    const holder = nodes[Number(voters[0]!.slice(1))]!;
    await until('a snapshot on the voters', async () => ((await replica(holder, 'db.big'))?.snapshot_index ?? 0) > 20, 30_000);
    const checksum = async (n: NodeProcess) => {
      const r = await n.get(`/db/query?db=big&level=none&q=${encodeURIComponent('SELECT count(*), sum(length(v)), sum(unicode(substr(v, 1000, 1))) FROM b')}`);
      return JSON.stringify(r.body.results?.[0]?.values);
    };
    const expected = await checksum(holder);
    expect(expected).toContain(`[${MIB_ROWS},${MIB_ROWS * 1048576},`);

    // one voter dies for good; a writer goes on through a surviving board
    const victimId = voters[voters.length - 1]!;
    const victim = nodes[Number(victimId.slice(1))]!;
    const spare = nodes.find((_, i) => !voters.includes(`g${i}`))!;
    const writerVia = nodes.find((n) => n !== victim && n !== spare)!;
    await victim.stop('SIGKILL');
    const started = Date.now();
    let stop = false;
    const acked: string[] = [];
    const writer = (async () => {
      for (let i = 0; !stop && i < 2000; i++) {
        try {
          await exec(writerVia, [['INSERT INTO w VALUES(?)', `during-${i}`]]);
          acked.push(`during-${i}`);
        } catch {
          /* not acknowledged */
        }
        await new Promise((r) => setTimeout(r, 250)); // gently: every 20 entries each voter snapshots 200 MiB
      }
    })();
    const dump = async () => {
      for (const n of nodes.filter((x) => x !== victim)) {
        console.log(n === spare ? 'SPARE' : 'node', JSON.stringify(await replica(n, 'db.big').catch(() => undefined)));
        console.log(
          n.log
            .split('\n')
            .filter((l) => /snapshot|error|warn|replica|learner/i.test(l))
            .slice(-25)
            .join('\n'),
        );
      }
    };
    const peakMib = (n: NodeProcess) => Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${n.proc.pid}/status`, 'utf8'))?.[1]) / 1024);
    let peakAtVoter: number | undefined;
    const healed = until(
      'the spare board to become a voter holding the whole database',
      async () => {
        const r = await replica(spare, 'db.big');
        const voter = r !== undefined && r.voters.length === 3 && !r.voters.includes(victimId) && r.learners.length === 0;
        // before the first read: a read starts a reader thread with a copy of its own
        if (voter) peakAtVoter ??= peakMib(spare);
        return voter && (await checksum(spare)) === expected;
      },
      180_000,
    );
    await healed.catch(async (err: unknown) => {
      stop = true;
      await dump();
      throw err;
    });
    stop = true;
    await writer;
    console.log(`a 200 MiB database got a new voter ${Date.now() - started} ms after SIGKILL of one; ${acked.length} writes acknowledged meanwhile`);
    // what receiving and installing the snapshot cost the new voter's process at its peak (it held nothing before)
    console.log(`the new voter's peak resident memory: ${peakAtVoter} MiB once a voter, ${peakMib(spare)} MiB after reads on it`);
    expect(acked.length).toBeGreaterThan(0);
    const rows = await spare.get(`/db/query?db=big&level=strong&q=${encodeURIComponent("SELECT count(*) FROM w WHERE v LIKE 'during-%'")}`);
    expect(rows.body.results[0].values[0][0]).toBeGreaterThanOrEqual(acked.length);
  }, 300_000);
});
