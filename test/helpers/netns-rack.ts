/**
 * Five (or n) real gandalf-node boards, each in its own network namespace of a
 * Lab (test/helpers/netns.ts), joined by manual discovery, with the node's HTTP
 * API on the namespace's own 127.0.0.1; clients (test/helpers/netns-client.mjs)
 * run inside a board's namespace. Faults: blackhole routes between boards,
 * signals to a board's process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BUNDLE } from './node-process';
import type { Lab } from './netns';

export const CLIENT = path.join(__dirname, 'netns-client.mjs');
export const HTTP_PORT = 8420;
const MGMT_PORT = 9000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Board {
  id: string;
  ns: string;
  address: string;
  dir: string;
  proc?: ChildProcess;
  log: string;
  /** Extra environment of the node process (libfaketime for the clock-jump board). */
  env?: NodeJS.ProcessEnv;
}

export interface RackOptions {
  cookie: string;
  redundancy: number;
  /** 'mdns': the boards find each other with no flags (default: manual, every board joins the first). */
  discovery?: 'manual' | 'mdns';
}

export type BoardStatus = { replicas: { group: string; state: string; leader: string | null; voters: string[] }[] };

export class Rack {
  readonly boards: Board[];
  private clients: ChildProcess[] = [];

  constructor(
    readonly lab: Lab,
    root: string,
    ids: readonly string[],
    private readonly options: RackOptions,
  ) {
    this.boards = ids.map((id, i) => {
      const dir = path.join(root, id);
      mkdirSync(dir, { recursive: true });
      return { id, ns: lab.hosts[i]!.ns, address: lab.hosts[i]!.address, dir, log: path.join(root, `${id}.log`) };
    });
  }

  board(id: string): Board {
    const b = this.boards.find((x) => x.id === id);
    if (!b) throw new Error(`no board ${id}`);
    return b;
  }

  start(b: Board): void {
    const first = this.boards[0]!;
    const join = b === first ? [] : ['--join', `http://${first.address}:${MGMT_PORT}`];
    const args = [process.execPath, BUNDLE, 'start', '--node-id', b.id, '--data-dir', b.dir, '--http-bind', `127.0.0.1:${HTTP_PORT}`];
    args.push('--mgmt-bind', `${b.address}:${MGMT_PORT}`);
    if (this.options.discovery !== 'mdns') args.push('--discovery', 'manual', ...join);
    args.push('--cluster-cookie', this.options.cookie, '--redundancy', String(this.options.redundancy), '--log-format', 'json');
    b.proc = this.lab.spawn(b.ns, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...b.env } });
    b.proc.stderr!.pipe(createWriteStream(b.log, { flags: 'a' }));
  }

  /** Runs one client command in `b`'s namespace and returns its output (throws on a non-zero exit). */
  client(b: Board, args: string[]): string {
    return this.lab.exec(b.ns, [process.execPath, CLIENT, args[0]!, String(HTTP_PORT), ...args.slice(1)]);
  }

  /** Starts a long-running client in `b`'s namespace; `onLine` gets each line it prints. Stopped by stopClients(). */
  spawnClient(b: Board, args: string[], onLine: (line: string) => void): ChildProcess {
    const c = this.lab.spawn(b.ns, [process.execPath, CLIENT, args[0]!, String(HTTP_PORT), ...args.slice(1)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let rest = '';
    c.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (line) onLine(line);
    });
    this.clients.push(c);
    return c;
  }

  /** Closes every client's stdin (they finish the operation in flight and exit) and waits for them. */
  async stopClients(): Promise<void> {
    await Promise.all(
      this.clients.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.stdin!.end();
          }),
      ),
    );
    this.clients = [];
  }

  status(b: Board): BoardStatus | undefined {
    try {
      return JSON.parse(this.client(b, ['get', '/status'])) as BoardStatus;
    } catch {
      return undefined;
    }
  }

  /** The board whose replica of `group` says it leads (asked in order). */
  leaderOf(group: string): Board | undefined {
    for (const b of this.boards) {
      const r = this.status(b)?.replicas.find((x) => x.group === group && x.state === 'leader');
      if (r) return b;
    }
    return undefined;
  }

  /** Cuts every link between the two sides (blackhole routes in each namespace: nothing leaves for the other side). */
  partition(left: readonly string[], right: readonly string[]): void {
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

  /** A strong read of db's table t through `b`, retried until it succeeds or `ms` passes (a wedged group fails here). */
  async strongRead(b: Board, db: string, ms: number): Promise<Set<string>> {
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      try {
        return new Set(JSON.parse(this.client(b, ['read', db, 'strong'])) as string[]);
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

  /** Polls `path` in `b`'s namespace until it answers 200: resolves the ms it took, or "never" after `ms`. */
  firstAnswer(b: Board, p: string, ms: number): Promise<string> {
    return new Promise<string>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', b.ns, process.execPath, CLIENT, 'first-answer', String(HTTP_PORT), p, String(ms)], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', () => resolve(out.trim()));
    });
  }

  /** The last lines of every board's log, for a failure message. */
  logTails(lines = 15): string {
    return this.boards
      .map((b) => {
        try {
          return `--- ${b.id}\n${readFileSync(b.log, 'utf8').split('\n').slice(-lines).join('\n')}`;
        } catch {
          return `--- ${b.id}: no log`;
        }
      })
      .join('\n');
  }
}
