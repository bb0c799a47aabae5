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
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt } from '../helpers/node-process';
import { createLab, type Lab } from '../helpers/netns';
import { tempDir } from '../helpers/tmp';

const IDS = ['a', 'b', 'c', 'd', 'e'];
const CLIENT = path.join(__dirname, '../helpers/netns-client.mjs');
const HTTP_PORT = 8420;
const MGMT_PORT = 9000;
const COOKIE = 'raft-safety-netns-cookie';
const RUNS = Number(process.env.RAFT_NETNS_RUNS ?? 1);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Board {
  id: string;
  ns: string;
  address: string;
  dir: string;
  proc?: ChildProcess;
  log: string;
}

class Rack {
  readonly boards: Board[];
  readonly acked = new Set<string>();
  readonly writerErrors = new Map<string, number>();
  private writers: ChildProcess[] = [];

  constructor(
    readonly lab: Lab,
    root: string,
  ) {
    this.boards = IDS.map((id, i) => {
      const dir = path.join(root, id);
      mkdirSync(dir, { recursive: true });
      return { id, ns: lab.hosts[i]!.ns, address: lab.hosts[i]!.address, dir, log: path.join(root, `${id}.log`) };
    });
  }

  board(id: string): Board {
    return this.boards.find((b) => b.id === id)!;
  }

  start(b: Board): void {
    const join = b.id === 'a' ? [] : ['--join', `http://${this.boards[0]!.address}:${MGMT_PORT}`];
    const args = [process.execPath, BUNDLE, 'start', '--node-id', b.id, '--data-dir', b.dir, '--http-bind', `127.0.0.1:${HTTP_PORT}`];
    args.push(
      '--mgmt-bind',
      `${b.address}:${MGMT_PORT}`,
      '--discovery',
      'manual',
      ...join,
      '--cluster-cookie',
      COOKIE,
      '--redundancy',
      '3',
      '--log-format',
      'json',
    );
    b.proc = this.lab.spawn(b.ns, args);
    b.proc.stderr!.pipe(createWriteStream(b.log, { flags: 'a' }));
  }

  client(b: Board, args: string[]): string {
    return this.lab.exec(b.ns, [process.execPath, CLIENT, args[0]!, String(HTTP_PORT), ...args.slice(1)]);
  }

  status(b: Board): { replicas: { group: string; state: string; leader: string | null; voters: string[] }[] } | undefined {
    try {
      return JSON.parse(this.client(b, ['get', '/status']));
    } catch {
      return undefined;
    }
  }

  leaderOf(group: string): Board | undefined {
    for (const b of this.boards) {
      const r = this.status(b)?.replicas.find((x) => x.group === group && x.state === 'leader');
      if (r) return b;
    }
    return undefined;
  }

  startWriters(seconds: number): void {
    for (const b of this.boards) {
      const w = this.lab.spawn(b.ns, [process.execPath, CLIENT, 'write', String(HTTP_PORT), 'nem', `${b.id}${Date.now() % 100000}`, String(seconds)], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let rest = '';
      w.stdout!.on('data', (d: Buffer) => {
        const lines = (rest + d.toString()).split('\n');
        rest = lines.pop()!;
        for (const line of lines) {
          if (line.startsWith('ack ')) this.acked.add(line.slice(4));
          else if (line.startsWith('err ')) this.writerErrors.set(line, (this.writerErrors.get(line) ?? 0) + 1);
        }
      });
      this.writers.push(w);
    }
  }

  async stopWriters(): Promise<void> {
    await Promise.all(
      this.writers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null) return resolve();
            w.once('exit', () => resolve());
            w.stdin!.end();
          }),
      ),
    );
    this.writers = [];
  }

  /** Cuts every link between the two sides (blackhole routes in each namespace: nothing leaves for the other side). */
  partition(left: string[], right: string[]): void {
    for (const [from, to] of [
      [left, right],
      [right, left],
    ] as const) {
      for (const f of from) for (const t of to) this.lab.exec(this.board(f).ns, ['ip', 'route', 'add', 'blackhole', `${this.board(t).address}/32`]);
    }
  }

  heal(): void {
    for (const b of this.boards) {
      for (const o of this.boards) {
        if (o === b) continue;
        try {
          this.lab.exec(b.ns, ['ip', 'route', 'del', 'blackhole', `${o.address}/32`]);
        } catch {
          /* no such route */
        }
      }
    }
  }

  /** A strong read through `b`, retried until it succeeds or `ms` passes (a wedged group fails here). */
  async strongRead(b: Board, ms: number): Promise<Set<string>> {
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      try {
        return new Set(JSON.parse(this.client(b, ['read', 'nem', 'strong'])) as string[]);
      } catch (err) {
        last = String((err as { stdout?: Buffer }).stdout ?? err);
      }
      await sleep(500);
    }
    throw new Error(`no strong read through ${b.id} within ${ms} ms (${last.slice(0, 300)})`);
  }

  async waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(300);
    }
  }
}

async function runSequence(run: number): Promise<void> {
  requireBuilt(BUNDLE);
  const lab = createLab(5, '10.214.0');
  const root = tempDir();
  const rack = new Rack(lab, root);
  const faults: string[] = [];
  try {
    for (const b of rack.boards) rack.start(b);
    await rack.waitFor(
      'a system group of 5 voters',
      () => rack.status(rack.boards[0]!)?.replicas.find((r) => r.group === 'system')?.voters.length === 5,
      90_000,
    );
    expect(rack.client(rack.boards[1]!, ['exec', 'nem', 'CREATE TABLE t (v TEXT PRIMARY KEY)'])).toContain('results');
    rack.startWriters(400);
    const progress = async (what: string) => {
      const before = rack.acked.size;
      await rack.waitFor(`writes to go on after ${what}`, () => rack.acked.size > before + 20, 60_000);
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
    const probe = (p: string) =>
      new Promise<string>((resolve) => {
        const c = spawn('ip', ['netns', 'exec', paused.ns, process.execPath, CLIENT, 'first-answer', String(HTTP_PORT), p, '30000'], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.on('exit', () => resolve(out.trim()));
      });
    const answers = Promise.all([probe('/health'), probe('/status')]);
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
    await rack.stopWriters();

    const acked = [...rack.acked];
    const report = `run ${run}: ${acked.length} acknowledged writes; ${faults.join('; ')}; writer errors: ${JSON.stringify(Object.fromEntries([...rack.writerErrors].slice(0, 6)))}`;
    console.log(report);
    for (const b of rack.boards) {
      const rows = await rack.strongRead(b, 60_000);
      const missing = acked.filter((v) => !rows.has(v));
      expect(missing.length, `strong read through ${b.id} misses ${missing.length} acknowledged writes (${missing.slice(0, 3).join(', ')}); ${report}`).toBe(0);
    }
    expect(Number(health), report).toBeLessThan(2_300);
    expect(Number(status), report).toBeLessThan(2_300);
  } catch (err) {
    const tails = rack.boards.map((b) => {
      try {
        return `--- ${b.id}\n${readFileSync(b.log, 'utf8').split('\n').slice(-15).join('\n')}`;
      } catch {
        return `--- ${b.id}: no log`;
      }
    });
    throw new Error(`${(err as Error).message}\nfaults: ${faults.join('; ')}\n${tails.join('\n')}`, { cause: err });
  } finally {
    await rack.stopWriters().catch(() => undefined);
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
