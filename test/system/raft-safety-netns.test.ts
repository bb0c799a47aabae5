/**
 * The fault sequence that once let a stale leader win an election and made
 * linearizable reads miss thousands of acknowledged writes, on five real
 * processes, each in its own network namespace on a private bridge (created
 * and removed here), `--redundancy 3`, default `--replace-after`, one writer
 * per board:
 *   1. partition {a,b} | {c,d,e} for 20 s;
 *   2. the leader of db.nem isolated for 20 s;
 *   3. SIGSTOP of the system group's leader for 15 s (past its removal from
 *      database groups), then SIGCONT;
 *   4. SIGKILL of db.nem's leader, restarted 10 s later.
 * Checked: strong reads through every board (after healing, and retried so a
 * wedged group fails the test) hold every acknowledged write; the paused
 * board answers /health and /status within 2 s of SIGCONT; writes go on after
 * every fault. RAFT_NETNS_RUNS=<n> repeats the sequence n times.
 */
import { describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt } from '../helpers/node-process';
import { createLab } from '../helpers/netns';
import { Rack, sleep } from '../helpers/netns-rack';
import { tempDir } from '../helpers/tmp';

const IDS = ['a', 'b', 'c', 'd', 'e'];
const COOKIE = 'raft-safety-netns-cookie';
const RUNS = Number(process.env.RAFT_NETNS_RUNS ?? 1);

async function runSequence(run: number): Promise<void> {
  requireBuilt(BUNDLE);
  const lab = createLab(5, '10.214.0');
  const root = tempDir();
  const rack = new Rack(lab, root, IDS, { cookie: COOKIE, redundancy: 3 });
  const acked = new Set<string>();
  const writerErrors = new Map<string, number>();
  const startWriters = (seconds: number) => {
    for (const b of rack.boards) {
      rack.spawnClient(b, ['write', 'nem', `${b.id}${Date.now() % 100000}`, String(seconds)], (line) => {
        const [kind, value] = line.split(' ');
        if (kind === 'ack') acked.add(value!);
        else if (kind === 'err') {
          const key = line.split(' ').slice(0, 3).join(' ');
          writerErrors.set(key, (writerErrors.get(key) ?? 0) + 1);
        }
      });
    }
  };
  const faults: string[] = [];
  try {
    for (const b of rack.boards) rack.start(b);
    await rack.waitFor(
      'a system group of 5 voters',
      () => rack.status(rack.boards[0]!)?.replicas.find((r) => r.group === 'system')?.voters.length === 5,
      90_000,
    );
    expect(rack.client(rack.boards[1]!, ['exec', 'nem', 'CREATE TABLE t (v TEXT PRIMARY KEY)'])).toContain('results');
    startWriters(400);
    const progress = async (what: string) => {
      const before = acked.size;
      await rack.waitFor(`writes to go on after ${what}`, () => acked.size > before + 20, 60_000);
    };
    await progress('start');

    faults.push('partition ab|cde 20 s');
    rack.partition(['a', 'b'], ['c', 'd', 'e']);
    await sleep(20_000);
    rack.heal();
    await progress('the partition');

    const isolated = rack.leaderOf('db.nem') ?? rack.board('e');
    faults.push(`isolate the db.nem leader ${isolated.id} 20 s`);
    rack.partition(
      [isolated.id],
      IDS.filter((x) => x !== isolated.id),
    );
    await sleep(20_000);
    rack.heal();
    await progress('the isolation');

    const paused = rack.leaderOf('system') ?? rack.board('c');
    faults.push(`SIGSTOP the system leader ${paused.id} 15 s`);
    paused.proc!.kill('SIGSTOP');
    await sleep(15_000);
    // measure from SIGCONT: a client in the board's namespace polls /health and /status
    const answers = Promise.all([rack.firstAnswer(paused, '/health', 30_000), rack.firstAnswer(paused, '/status', 30_000)]);
    await sleep(300); // the probes are running
    paused.proc!.kill('SIGCONT');
    const [health, status] = await answers;
    faults.push(`after SIGCONT: /health in ${health} ms, /status in ${status} ms (probe start included)`);
    await progress('the pause');

    const killed = rack.leaderOf('db.nem') ?? rack.board('e');
    faults.push(`SIGKILL the db.nem leader ${killed.id}, restart 10 s later`);
    killed.proc!.kill('SIGKILL');
    await sleep(10_000);
    rack.start(killed);
    await progress('the kill');
    await sleep(10_000);
    await rack.stopClients();

    const ackedList = [...acked];
    const report = `run ${run}: ${ackedList.length} acknowledged writes; ${faults.join('; ')}; writer errors: ${JSON.stringify(Object.fromEntries([...writerErrors].slice(0, 6)))}`;
    console.log(report);
    for (const b of rack.boards) {
      const rows = await rack.strongRead(b, 'nem', 60_000);
      const missing = ackedList.filter((v) => !rows.has(v));
      expect(missing.length, `strong read through ${b.id} misses ${missing.length} acknowledged writes (${missing.slice(0, 3).join(', ')}); ${report}`).toBe(0);
    }
    expect(Number(health), report).toBeLessThan(2_300);
    expect(Number(status), report).toBeLessThan(2_300);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nfaults: ${faults.join('; ')}\n${rack.logTails()}`, { cause: err });
  } finally {
    await rack.stopClients().catch(() => undefined);
    lab.destroy();
  }
}

describe('Raft safety under the pause / removal / restart sequence (five namespaces)', () => {
  it(
    'strong reads through every board hold every acknowledged write; a paused board answers within 2 s of SIGCONT',
    async () => {
      for (let run = 1; run <= RUNS; run++) await runSequence(run);
    },
    RUNS * 400_000,
  );
});
