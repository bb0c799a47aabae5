import { spawn } from 'node:child_process';

/**
 * Runs a long command without blocking the test worker's event loop (a blocked
 * worker misses vitest's RPC deadline and the run fails with "Timeout calling
 * onTaskUpdate"). Output goes to the test's stdout/stderr; rejects on a non-zero
 * exit or when `timeoutMs` passes (the process is killed).
 */
export function runLong(cmd: string, args: string[], options: { cwd?: string; timeoutMs: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish in ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}
