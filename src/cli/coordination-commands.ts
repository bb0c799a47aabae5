/**
 * `gandalf-node lock NAME -- COMMAND…` and `gandalf-node kv get|put|del|ls|watch`:
 * clients of the node's /session, /lock and /kv endpoints.
 */
import { spawn } from 'node:child_process';
import { parseDuration } from '../config/settings';
import { systemClock, type TimerHandle } from '../core/clock';
import { request, type ApiReply, type ClientTarget } from './api-client';
import { readSse } from './sse-client';
import { CommandFailed, UsageError } from './errors';
import { renderTable } from './table';

export { CommandFailed } from './errors';

/** Where a CLI command writes, and what it knows of its terminal and environment. */
export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
}

export function failure(what: string, reply: ApiReply): CommandFailed {
  const body = reply.body as { code?: string; message?: string } | undefined;
  return new CommandFailed(`${what}: ${reply.status} ${body?.code ?? ''}: ${body?.message ?? JSON.stringify(reply.body)}`);
}

function ms(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = parseDuration(raw);
  if (v === undefined) throw new UsageError(`--${name} must be a duration such as 500ms, 10s or 2m`);
  return v;
}

/** How often the lock client checks its own lease. */
const LEASE_CHECK_MS = 50;

/**
 * The holder's side of a session lease. The server's deadline for the session
 * is at least (send time of the last keepalive it confirmed) + TTL, so the
 * holder is sure of its lock until that time minus a safety margin (clock
 * rate drift, scheduling); past it, the server may expire the session and
 * grant the lock to someone else, so the holder must already have stopped.
 */
export function leaseEnd(lastConfirmedSendMs: number, ttlMs: number): number {
  return lastConfirmedSendMs + ttlMs - Math.max(250, Math.floor(ttlMs / 5));
}

/**
 * Runs `command` while holding lock `name`: opens a session, keeps it alive,
 * acquires (FIFO, up to `timeout`), runs the command with the fencing token in
 * GANDALF_LOCK_TOKEN, releases and closes the session when it exits. The
 * command runs in a process group of its own. If no keepalive was confirmed
 * within the TTL minus a margin (`leaseEnd`), or the node says the session is
 * gone, the whole group gets SIGTERM before the server can grant the lock to
 * anyone else. Resolves with the command's exit code.
 */
export async function runLocked(bind: ClientTarget, name: string, command: string[], options: { timeout?: string; ttl?: string }, io: CliIo): Promise<number> {
  const ttlMs = ms(options.ttl, 'ttl', 10_000);
  const timeoutMs = ms(options.timeout, 'timeout', 30_000);
  const clock = systemClock;
  let confirmed = clock.monotonic();
  const opened = await request(bind, 'POST', `/session?ttl=${ttlMs}ms`);
  if (opened.status !== 200) throw failure('opening a session', opened);
  const session = (opened.body as { session: string }).session;
  let lost: string | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  const signalGroup = (signal: NodeJS.Signals) => {
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };
  const lose = (why: string) => {
    if (lost) return;
    lost = why;
    io.err(`gandalf-node: lock ${name} lost (${why}); stopping the command\n`);
    signalGroup('SIGTERM');
  };
  const timers: TimerHandle[] = [];
  let stopped = false;
  const every = (ms: number, fn: () => void) => {
    const slot = timers.length;
    const tick = () => {
      if (stopped) return;
      fn();
      timers[slot] = clock.setTimeout(tick, ms);
    };
    timers[slot] = clock.setTimeout(tick, ms);
  };
  every(Math.max(200, Math.floor(ttlMs / 3)), () => {
    const sent = clock.monotonic();
    request(bind, 'POST', `/session/${session}/keepalive`).then(
      (r) => {
        if (r.status === 200) confirmed = Math.max(confirmed, sent);
        else if (r.status === 404) lose('the session expired');
      },
      () => {}, // the node is briefly unreachable: the next keepalive may still make it
    );
  });
  every(LEASE_CHECK_MS, () => {
    if (clock.monotonic() >= leaseEnd(confirmed, ttlMs))
      lose(`no keepalive confirmed for ${Math.round(clock.monotonic() - confirmed)} ms of a ${ttlMs} ms TTL`);
  });
  // after a lost lease the node may be stalled or gone: do not wait long on it (the session expires anyway)
  const closeSession = () => request(bind, 'DELETE', `/session/${session}`, undefined, lost ? 2_000 : 60_000).catch(() => undefined);
  try {
    const acquired = await request(bind, 'POST', `/lock/${encodeURIComponent(name)}/acquire?timeout=${timeoutMs}ms&session=${session}`);
    if (acquired.status !== 200) throw failure(`acquiring lock ${name}`, acquired);
    if (lost) throw new CommandFailed(`lock ${name} was granted too late: ${lost}`);
    const token = (acquired.body as { token: number }).token;
    const code = await new Promise<number>((resolve, reject) => {
      child = spawn(command[0]!, command.slice(1), {
        stdio: 'inherit',
        detached: true,
        env: { ...io.env, GANDALF_LOCK_NAME: name, GANDALF_LOCK_TOKEN: String(token), GANDALF_LOCK_SESSION: session },
      });
      const forward = (signal: NodeJS.Signals) => signalGroup(signal);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      child.on('error', (err) => reject(new CommandFailed(`cannot run ${command[0]}: ${err.message}`)));
      child.on('exit', (c, signal) => {
        process.off('SIGINT', forward);
        process.off('SIGTERM', forward);
        resolve(c ?? (signal ? 128 + ({ SIGTERM: 15, SIGINT: 2, SIGKILL: 9 } as Record<string, number>)[signal]! || 1 : 1));
      });
    });
    // whatever the command left running in its group goes with the lock
    if (lost) {
      signalGroup('SIGTERM');
    } else {
      const released = await request(bind, 'POST', `/lock/${encodeURIComponent(name)}/release?session=${session}&token=${token}`);
      if (released.status !== 200) io.err(`gandalf-node: releasing lock ${name}: ${JSON.stringify(released.body)}\n`);
    }
    return lost ? Math.max(code, 1) : code;
  } finally {
    stopped = true;
    for (const t of timers) clock.clearTimeout(t);
    await closeSession();
  }
}

function revision(raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--prev-revision must be a revision number (0: only if absent), not "${raw}"`);
  return n;
}

function printKv(io: CliIo, json: boolean, body: unknown, render: () => string): void {
  io.out(json || !io.isTTY ? JSON.stringify(body) + '\n' : render());
}

/** `kv get|put|del|ls|watch`. */
export async function runKv(
  bind: ClientTarget,
  sub: string,
  args: string[],
  options: { prefix?: boolean; level?: string; session?: string; 'prev-revision'?: string; from?: string; json?: boolean },
  io: CliIo,
): Promise<number> {
  const json = options.json === true;
  const key = args[0] ?? '';
  const path = `/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
  const level = options.level ? `level=${encodeURIComponent(options.level)}` : '';
  switch (sub) {
    case 'get': {
      if (!key) throw new UsageError('usage: gandalf-node kv get KEY');
      const r = await request(bind, 'GET', `${path}?${level}`);
      if (r.status !== 200) throw failure(`get ${key}`, r);
      const kv = r.body as { value: string; mod_revision: number };
      printKv(io, json, kv, () => `${kv.value}\n`);
      return 0;
    }
    case 'put': {
      if (!key || args[1] === undefined) throw new UsageError('usage: gandalf-node kv put KEY VALUE');
      const body: Record<string, unknown> = { value: args[1] };
      if (options.session) body.session = options.session;
      if (options['prev-revision'] !== undefined) body.prev_revision = revision(options['prev-revision']);
      const r = await request(bind, 'PUT', path, body);
      if (r.status !== 200) throw failure(`put ${key}`, r);
      printKv(io, json, r.body, () => `revision ${(r.body as { revision: number }).revision}\n`);
      return 0;
    }
    case 'del': {
      if (!key && !options.prefix) throw new UsageError('usage: gandalf-node kv del KEY (or --prefix PREFIX)');
      const q = [options.prefix ? 'prefix' : '', options['prev-revision'] !== undefined ? `prev_revision=${revision(options['prev-revision'])}` : '']
        .filter(Boolean)
        .join('&');
      const r = await request(bind, 'DELETE', `${path}?${q}`);
      if (r.status !== 200) throw failure(`del ${key}`, r);
      printKv(io, json, r.body, () => `deleted ${(r.body as { deleted: number }).deleted}\n`);
      return 0;
    }
    case 'ls': {
      const r = await request(bind, 'GET', `${path}?prefix&${level}`);
      if (r.status !== 200) throw failure(`ls ${key}`, r);
      const body = r.body as { kvs: { key: string; value: string; mod_revision: number }[] };
      printKv(io, json, body, () =>
        renderTable(
          ['key', 'value', 'revision'],
          body.kvs.map((k) => [k.key, k.value, k.mod_revision]),
        ),
      );
      return 0;
    }
    case 'watch':
      if (!key && !options.prefix) throw new UsageError('usage: gandalf-node kv watch KEY (or --prefix PREFIX)');
      return watch(bind, `${path}?watch${options.prefix ? '&prefix' : ''}${options.from ? `&from=${encodeURIComponent(options.from)}` : ''}`, json, io);
    default:
      throw new UsageError(`unknown kv command "${sub}": use get, put, del, ls or watch`);
  }
}

/** Prints events until interrupted; reconnects with Last-Event-ID after a dropped stream. */
async function watch(bind: ClientTarget, path: string, json: boolean, io: CliIo): Promise<number> {
  let lastId: string | undefined;
  for (;;) {
    const result = await readSse(bind, path, lastId, (block) => {
      const start = /^watching .* after revision (\d+)/.exec(block.comments[0] ?? '');
      if (start && lastId === undefined) lastId = start[1];
      if (!block.event) return;
      if (block.event === 'error') {
        io.err(`gandalf-node: watch: ${block.data}\n`);
        if (/"compacted"/.test(block.data ?? '')) return { retry: false, error: 'history compacted' };
        return;
      }
      if (block.id) lastId = block.id;
      const ev = JSON.parse(block.data ?? '{}') as { key: string; value: string | null; revision: number };
      io.out(
        json || !io.isTTY
          ? JSON.stringify({ type: block.event, ...ev }) + '\n'
          : `${block.event} ${ev.key}${ev.value !== null ? ` = ${ev.value}` : ''} (revision ${ev.revision})\n`,
      );
    });
    if (!result.retry) {
      io.err(`gandalf-node: watch: ${result.error}\n`);
      return 1;
    }
    await new Promise<void>((r) => systemClock.setTimeout(r, 1000)); // keeps the process alive between reconnects
  }
}
