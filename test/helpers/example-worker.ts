/**
 * The example worker (dist/example-worker.cjs, built from examples/worker/) as
 * a process beside a test's node: what it prints, one JSON object per line,
 * collected for the test to wait on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { requireBuilt, ROOT } from './node-process';

export const EXAMPLE_WORKER = path.join(ROOT, 'dist/example-worker.cjs');

const started = new Set<ChildProcess>();
afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

export class WorkerProcess {
  readonly lines: Record<string, any>[] = [];
  readonly exited: Promise<number | null>;
  private partial = '';
  stderr = '';

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => {
      const text = this.partial + d.toString();
      const parts = text.split('\n');
      this.partial = parts.pop()!;
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p));
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  of(type: string): Record<string, any>[] {
    return this.lines.filter((l) => l.type === type);
  }

  async waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; worker printed:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/** Runs `example-worker VERB --socket SOCKET ...args`. */
export function startWorker(verb: 'serve' | 'send' | 'publish', socket: string, args: Record<string, string | number>): WorkerProcess {
  const argv = [requireBuilt(EXAMPLE_WORKER), verb, '--socket', socket, ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)])];
  const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  proc.once('exit', () => started.delete(proc));
  return new WorkerProcess(proc);
}

/** Runs `example-worker send` to its end and returns what it printed. */
export async function sendCommand(socket: string, args: Record<string, string | number>): Promise<Record<string, any>[]> {
  const w = startWorker('send', socket, args);
  await w.exited;
  return w.lines;
}
