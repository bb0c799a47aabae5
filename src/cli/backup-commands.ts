/**
 * `gandalf-node backup` and `restore`, and the sql shell's .backup, .restore,
 * .dump, .tables and .schema: GET /db/backup and POST /db/load, with a
 * progress line on a terminal. A backup file is written whole or not at all
 * (a temporary file renamed into place).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseJson } from '../core/json';
import { readClusterBackup, writeClusterBackup, type ClusterSource } from '../node/cluster-backup';
import { rawRequest, request, type ClientTarget } from './api-client';
import type { CliIo } from './coordination-commands';
import { CommandFailed } from './errors';

/** A backup or load may take minutes on a board: the connection may stay silent that long. */
const TRANSFER_TIMEOUT_MS = 15 * 60_000;

export interface BackupOptions {
  db: string;
  format: 'sqlite' | 'sql';
  level?: string;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

function failure(status: number, bytes: Buffer): CommandFailed {
  let detail = bytes.toString('utf8').slice(0, 500);
  try {
    const body = parseJson(detail) as { code?: string; message?: string };
    if (body?.message) detail = `${body.code ?? ''} ${body.message}`.trim();
  } catch {
    /* not JSON: show the text */
  }
  return new CommandFailed(`the node answered ${status}: ${detail}`);
}

/** A progress line on a terminal's stderr, updated at most every 200 ms. */
function progress(io: CliIo, verb: string): { update: (n: number, total?: number) => void; done: () => void } {
  if (!io.isTTY) return { update: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    update: (n, total) => {
      const now = performance.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      io.err(`\r${verb} ${mib(n)}${total ? ` of ${mib(total)} (${Math.floor((100 * n) / total)}%)` : ''}   `);
    },
    done: () => {
      if (shown) io.err('\n');
    },
  };
}

/** Fetches a backup of `db`; `file` "-" writes it to stdout. Returns its size. */
export async function runBackup(bind: ClientTarget, file: string, opts: BackupOptions, io: CliIo): Promise<number> {
  const q = new URLSearchParams({ db: opts.db, ...(opts.format === 'sql' ? { fmt: 'sql' } : {}), ...(opts.level ? { level: opts.level } : {}) });
  const shown = progress(io, 'received');
  const reply = await rawRequest(bind, 'GET', `/db/backup?${q}`, undefined, { timeoutMs: TRANSFER_TIMEOUT_MS, onProgress: shown.update });
  shown.done();
  if (reply.status !== 200) throw failure(reply.status, reply.bytes);
  if (file === '-') {
    io.out(reply.bytes.toString(opts.format === 'sql' ? 'utf8' : 'latin1'));
    return reply.bytes.length;
  }
  const tmp = `${file}.partial`;
  try {
    writeFileSync(tmp, reply.bytes, { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CommandFailed(`cannot write ${file}: ${(err as Error).message}`);
  }
  return reply.bytes.length;
}

/** Loads `file` (an SQLite file or SQL text) into `db`, replacing what it holds. */
export async function runRestore(bind: ClientTarget, file: string, db: string, redundancy: string | undefined, io: CliIo): Promise<{ bytes: number }> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new CommandFailed(`cannot read ${file}: ${(err as Error).message}`);
  }
  const q = new URLSearchParams({ db, ...(redundancy ? { redundancy } : {}) });
  if (io.isTTY) io.err(`loading ${mib(bytes.length)} into ${db}…\n`);
  const reply = await rawRequest(bind, 'POST', `/db/load?${q}`, bytes, { timeoutMs: TRANSFER_TIMEOUT_MS });
  if (reply.status !== 200) throw failure(reply.status, reply.bytes);
  const body = parseJson(reply.bytes.toString('utf8')) as { loaded_bytes?: number };
  return { bytes: Number(body.loaded_bytes ?? 0) };
}

/** The cluster as seen through a node's client API, for `backup --all`. */
function httpSource(bind: ClientTarget): ClusterSource {
  return {
    databases: async () => {
      const reply = await request(bind, 'GET', '/status');
      if (reply.status !== 200) throw new CommandFailed(`GET /status: the node answered ${reply.status}`);
      return ((reply.body as { databases?: { name: string }[] }).databases ?? []).map((d) => d.name);
    },
    backup: async (db) => {
      const reply = await rawRequest(bind, 'GET', `/db/backup?${new URLSearchParams({ db })}`, undefined, { timeoutMs: TRANSFER_TIMEOUT_MS });
      if (reply.status !== 200) throw failure(reply.status, reply.bytes);
      return reply.bytes;
    },
    kv: async () => {
      const reply = await request(bind, 'GET', '/kv/?prefix');
      if (reply.status !== 200) throw new CommandFailed(`GET /kv/?prefix: the node answered ${reply.status}`);
      const body = reply.body as { kvs: { key: string; value: string; session?: string }[]; revision: number };
      return { kvs: body.kvs.filter((k) => !k.session).map((k) => ({ key: k.key, value: k.value })), revision: body.revision };
    },
    lastToken: async () => {
      const reply = await request(bind, 'GET', '/lock-tokens');
      if (reply.status !== 200) throw new CommandFailed(`GET /lock-tokens: the node answered ${reply.status}`);
      return Number((reply.body as { last_token: number }).last_token);
    },
  };
}

/** `backup --all DIR`: a whole-cluster backup (every database and the key/value container) in a new directory under DIR. */
export async function runClusterBackup(bind: ClientTarget, dir: string, io: CliIo): Promise<string> {
  const status = (await request(bind, 'GET', '/status')).body as { node_id?: string; cluster?: { name?: string } };
  try {
    const { path, manifest } = await writeClusterBackup(
      dir,
      httpSource(bind),
      { cluster: status.cluster?.name ?? 'gandalf', node: status.node_id ?? 'cli', at: new Date() },
      (db, n) => {
        if (io.isTTY) io.err(`saved ${db} (${mib(n)})\n`);
      },
    );
    io.err(`backed up ${manifest.databases.length} databases and ${manifest.kv.keys} keys to ${path}\n`);
    return path;
  } catch (err) {
    if (err instanceof CommandFailed) throw err;
    throw new CommandFailed(`the backup failed: ${(err as Error).message}`);
  }
}

/** `restore --all PATH`: every database and key of a cluster backup, after checking every file. */
export async function runClusterRestore(bind: ClientTarget, dir: string, io: CliIo): Promise<void> {
  let backup: Awaited<ReturnType<typeof readClusterBackup>>;
  try {
    backup = await readClusterBackup(dir);
  } catch (err) {
    throw new CommandFailed((err as Error).message);
  }
  for (const db of backup.databases) {
    const q = new URLSearchParams({ db: db.name });
    const reply = await rawRequest(bind, 'POST', `/db/load?${q}`, Buffer.from(db.bytes), { timeoutMs: TRANSFER_TIMEOUT_MS });
    if (reply.status !== 200) throw failure(reply.status, reply.bytes);
    if (io.isTTY) io.err(`restored ${db.name} (${mib(db.bytes.length)})\n`);
  }
  for (const kv of backup.kvs) {
    const reply = await request(bind, 'PUT', `/kv/${encodeURIComponent(kv.key)}`, { value: kv.value });
    if (reply.status !== 200) throw new CommandFailed(`PUT /kv/${kv.key}: the node answered ${reply.status}`);
  }
  const tokens = await request(bind, 'POST', '/lock-tokens', { at_least: backup.lastToken });
  if (tokens.status !== 200) throw new CommandFailed(`POST /lock-tokens: the node answered ${tokens.status}`);
  io.err(
    `restored ${backup.databases.length} databases and ${backup.kvs.length} keys from ${dir} (taken ${backup.manifest.taken_at}); fencing tokens continue above ${backup.lastToken}\n`,
  );
}

async function querySql(bind: ClientTarget, db: string, sql: string, params: unknown[] = []): Promise<unknown[][]> {
  const reply = await request(bind, 'POST', `/db/query?db=${encodeURIComponent(db)}`, [[sql, ...params]]);
  const body = reply.body as { results?: { values?: unknown[][]; error?: string }[]; message?: string };
  if (reply.status !== 200) throw new CommandFailed(`the node answered ${reply.status}: ${body?.message ?? ''}`);
  const first = body.results?.[0];
  if (first?.error) throw new CommandFailed(first.error);
  return first?.values ?? [];
}

/** The shell's dot-commands about a database; false if `cmd` is none of them. */
export async function shellCommand(bind: ClientTarget, db: string, cmd: string, arg: string | undefined, io: CliIo): Promise<boolean> {
  switch (cmd) {
    case '.tables': {
      const rows = await querySql(bind, db, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name");
      io.out(rows.map((r) => String(r[0])).join('\n') + (rows.length ? '\n' : ''));
      return true;
    }
    case '.schema': {
      const rows = await querySql(
        bind,
        db,
        `SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'${arg ? ' AND tbl_name = ?' : ''} ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, name`,
        arg ? [arg] : [],
      );
      io.out(rows.map((r) => `${String(r[0])};\n`).join(''));
      return true;
    }
    case '.dump':
      await runBackup(bind, '-', { db, format: 'sql' }, io);
      return true;
    case '.backup': {
      if (!arg) throw new CommandFailed('usage: .backup FILE');
      const n = await runBackup(bind, arg, { db, format: arg.endsWith('.sql') ? 'sql' : 'sqlite' }, io);
      io.out(`backed up ${db} to ${arg} (${mib(n)})\n`);
      return true;
    }
    case '.restore': {
      if (!arg) throw new CommandFailed('usage: .restore FILE');
      const { bytes } = await runRestore(bind, arg, db, undefined, io);
      io.out(`restored ${db} from ${arg} (${mib(bytes)})\n`);
      return true;
    }
    default:
      return false;
  }
}
