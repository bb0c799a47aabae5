/**
 * Real gandalf-node processes for system tests, on 127.0.0.1 only.
 * By default runs the built bundle (dist/gandalf-node.cjs) with this Node;
 * `command` runs something else (the single executable, a chroot).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll } from 'vitest';

export const ROOT = path.resolve(__dirname, '../..');
export const BUNDLE = path.join(ROOT, 'dist/gandalf-node.cjs');
export const SEA = path.join(ROOT, 'dist/gandalf-node-linux-x64');

export function requireBuilt(file: string): string {
  if (!existsSync(file)) throw new Error(`${path.relative(ROOT, file)} is missing: run "npm run build" first (npm test does)`);
  return file;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Every process a test started; whatever still runs when its file ends is killed, pass or fail. */
const started = new Set<ChildProcess>();
afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class NodeProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<Exit>;

  constructor(
    readonly proc: ChildProcess,
    readonly httpPort: number,
    readonly mgmtPort: number,
  ) {
    proc.stdout?.on('data', (d: Buffer) => this.stdout.push(d.toString()));
    proc.stderr?.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get log(): string {
    return this.stderr.join('');
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`node exited before it was healthy:\n${this.log}`);
      try {
        const r = await fetch(`${this.url}/health`);
        if (r.status === 200) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`node not healthy after ${timeoutMs} ms:\n${this.log}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }

  async post(pathname: string, body: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(this.url + pathname, { method: 'POST', body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  }

  async get(pathname: string): Promise<{ status: number; body: any }> {
    const r = await fetch(this.url + pathname);
    return { status: r.status, body: await r.json() };
  }
}

export interface StartOptions {
  dataDir: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  /** Program and leading arguments; default: this Node running the bundle. */
  command?: string[];
  httpPort?: number;
  mgmtPort?: number;
  /** Resolve before the node is healthy (for tests of failing starts). */
  noWait?: boolean;
}

export async function startNode(options: StartOptions): Promise<NodeProcess> {
  const httpPort = options.httpPort ?? (await freePort());
  const mgmtPort = options.mgmtPort ?? (await freePort());
  const [cmd, ...pre] = options.command ?? [process.execPath, requireBuilt(BUNDLE)];
  const args = [
    ...pre,
    'start',
    '--data-dir',
    options.dataDir,
    '--http-bind',
    `127.0.0.1:${httpPort}`,
    '--mgmt-bind',
    `127.0.0.1:${mgmtPort}`,
    '--log-format',
    'json',
    // Never multicast on this machine's interfaces: tests that want discovery say so.
    ...(options.args?.includes('--discovery') ? [] : ['--discovery', 'none']),
    ...(options.args ?? []),
  ];
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  delete env.NOTIFY_SOCKET;
  if (options.env?.NOTIFY_SOCKET) env.NOTIFY_SOCKET = options.env.NOTIFY_SOCKET;
  const proc = spawn(cmd!, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  proc.once('exit', () => started.delete(proc));
  const node = new NodeProcess(proc, httpPort, mgmtPort);
  if (!options.noWait) await node.waitHealthy();
  return node;
}

/** Runs the CLI to completion. */
export function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  command?: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd, ...pre] = command ?? [process.execPath, requireBuilt(BUNDLE)];
  return new Promise((resolve) => {
    const p = spawn(cmd!, [...pre, ...args], { env: { ...process.env, ...env } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
