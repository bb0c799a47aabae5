/**
 * `gandalf-node` command line: start, sql, status, nodes, lock, kv, backup, restore, version, help.
 * Exit codes: 0 success, 1 runtime failure (node unreachable, request failed),
 * 2 usage or configuration error.
 */
import { fetchTrace, renderTrace, runCommand, runEvent, watchEvents } from './routing-commands';
import { appendFileSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import { toJson } from '../core/json';
import { SETTINGS, envName, loadConfig, parseDuration } from '../config/settings';
import { ConfigError } from '../core/errors';
import { isSingleExecutable } from '../core/sea';
import { COMMIT, VERSION } from '../core/version';
import { runNode } from '../node/node';
import { isReadStatement } from '../store/statement-guard';
import { loadNativeRtc } from '../transport/native-rtc';
import { NodeUnreachableError, request, type ApiReply, type ClientTarget } from './api-client';
import { clientAuthorization, clientTls } from './credentials';
import { runHashPassword } from './password-command';
import { runBackup, runClusterBackup, runClusterRestore, runRestore, shellCommand } from './backup-commands';
import { runKv, runLocked, type CliIo } from './coordination-commands';
import { runConnectorType } from './connector-type-commands';
import { runSecret, runTenant } from './tenant-commands';
import { CommandFailed, UsageError } from './errors';
import { renderTable } from './table';

export { UsageError } from './errors';

type Io = CliIo;

/** Options every command that talks to a running node takes. */
const CLIENT_OPTIONS = `  --http-bind HOST:PORT  the node's client API (env ${envName('http-bind')}, default 127.0.0.1:8420)
  --config FILE          read --http-bind from a config file
  --user NAME:PASSWORD   credentials for a node with --auth-file (else GANDALF_USER,
                         else GANDALF_NETRC or ~/.netrc: "machine HOST login NAME password PW")
  --tls                  HTTPS (a node with --http-cert), trusting the system's CAs
  --ca-cert FILE         HTTPS, trusting this CA (env GANDALF_CA_CERT)
  --client-cert FILE, --client-key FILE
                         a client certificate (node with --http-client-ca; env GANDALF_CLIENT_CERT, GANDALF_CLIENT_KEY)
  --insecure             HTTPS without checking the node's certificate
  --json                 print JSON even on a terminal
`;
const CLIENT_FLAGS = {
  'http-bind': { type: 'string' },
  config: { type: 'string' },
  user: { type: 'string' },
  tls: { type: 'boolean' },
  'ca-cert': { type: 'string' },
  'client-cert': { type: 'string' },
  'client-key': { type: 'string' },
  insecure: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

const COMMANDS: Record<string, { summary: string; usage: string; run: (args: string[], io: Io) => Promise<number> }> = {
  start: { summary: 'Run a node in the foreground', usage: startUsage(), run: cmdStart },
  sql: {
    summary: 'Run SQL against a node (interactive shell when no SQL is given)',
    usage: `Usage: gandalf-node sql [--db NAME] [--http-bind HOST:PORT] [--json] ["SQL"]

Sends reads (SELECT, WITH, VALUES, EXPLAIN, PRAGMA) to /db/query and
everything else to /db/execute. Prints a table on a terminal, JSON otherwise.
Without SQL, starts an interactive shell: end statements with ";"; ".db NAME"
switches database, ".tables" and ".schema [TABLE]" show it, ".dump" prints it
as SQL, ".backup FILE" and ".restore FILE" save and load it (a FILE ending in
.sql as SQL text, else an SQLite file), ".exit" leaves.

Options:
  --db NAME              database (default main)
${CLIENT_OPTIONS}`,
    run: cmdSql,
  },
  status: {
    summary: "Print a node's status",
    usage: `Usage: gandalf-node status [--http-bind HOST:PORT] [--json]

Options:
${CLIENT_OPTIONS}`,
    run: cmdStatus,
  },
  nodes: {
    summary: 'Print the cluster members as this node sees them',
    usage: `Usage: gandalf-node nodes [--http-bind HOST:PORT] [--json]

Shows GET /cluster/nodes: every member with its state (alive, suspect, dead,
left), incarnation, architecture, WebRTC transport and round-trip time.

Options:
${CLIENT_OPTIONS}`,
    run: cmdNodes,
  },
  trace: {
    summary: 'Print the route of one Gandalf message (a command with its receipt and result) from its tenant\u2019s data sink',
    usage: `Usage: gandalf-node trace UUID [--tenant NAME] [--http-bind HOST:PORT] [--json]

Reads the database gandalf-<tenant> (table messages and hops, see README
"Gandalf routing") at strong level from any node: the message, the events
that answer it, and every hop they took with its outcome (received, routed,
retried, delivered, timed_out, dropped) and reason, in time order.

Options:
  --tenant NAME          the message's tenant (default default)
${CLIENT_OPTIONS}`,
    run: cmdTrace,
  },
  command: {
    summary: 'Send a Gandalf command through the node\u2019s connector and print its result',
    usage: `Usage: gandalf-node command NAME (--target LOGICAL_NAME | --connector-type TYPE) [--payload JSON] [--timeout 5s] [--http-bind HOST:PORT] [--json]

POST /gandalf/command on a connector node: the command goes to one worker of
the target connector (or of a connector of that type, chosen by the
cluster); prints its result, or the error event that ended it (timeout,
no_target, no_route, invalid_payload …). Exit code 0 only on SUCCESS.

Options:
  --target NAME          the destination connector's logical name
  --connector-type TYPE  let the cluster pick a connector of this type
  --payload JSON         the command's payload (default null)
  --timeout DURATION     its deadline (default 1s)
${CLIENT_OPTIONS}`,
    run: cmdCommand,
  },
  event: {
    summary: 'Publish a Gandalf event to the node\u2019s tenant',
    usage: `Usage: gandalf-node event TOPIC EVENT [--payload JSON] [--http-bind HOST:PORT]

POST /gandalf/event: every subscribed worker of the tenant gets it once.

Options:
  --payload JSON         the event's payload (default null)
${CLIENT_OPTIONS}`,
    run: cmdEvent,
  },
  events: {
    summary: 'Watch the Gandalf events of some topics',
    usage: `Usage: gandalf-node events --watch [--topic a,b] [--http-bind HOST:PORT] [--json]

GET /gandalf/events: prints the tenant's events of these topics as they come
(default every topic), until interrupted; connects again after a dropped
stream (events meanwhile are in the sink).

Options:
  --watch                follow the stream (required)
  --topic LIST           comma-separated topics (default *: all)
${CLIENT_OPTIONS}`,
    run: cmdEvents,
  },
  tenant: {
    summary: 'Create, list and delete Gandalf tenants',
    usage: `Usage: gandalf-node tenant create NAME
       gandalf-node tenant list
       gandalf-node tenant delete NAME

Until the first tenant is created the cluster is open: every board routes
for the tenant it publishes (--tenant). From then on only created tenants
route, and their aggregators, connectors and workers need a secret
("gandalf-node secret create"). Deleting a tenant revokes its secrets; its
data sink (database gandalf-NAME) stays. Permission admin.

Options:
${CLIENT_OPTIONS}`,
    run: cmdTenant,
  },
  secret: {
    summary: 'Create, list and revoke the secrets that admit a tenant\u2019s nodes and workers',
    usage: `Usage: gandalf-node secret create TENANT [--roles aggregator,connector,worker] [--expires-in 90d]
       gandalf-node secret list [TENANT]
       gandalf-node secret revoke TENANT ID

create prints the secret once (gandalf.TENANT.ID.KEY) on stdout, what it is on
stderr (--json: both as JSON on stdout); only its scrypt hash is kept. Give it to a node (--secret-file, --secret or GANDALF_SECRET) or to a
worker (its Register call). revoke cuts off what it admitted within seconds.
Permission admin.

Options:
  --roles LIST           what it admits (default aggregator,connector,worker)
  --expires-in DURATION  it expires after this long (default never)
${CLIENT_OPTIONS}`,
    run: cmdSecret,
  },
  'connector-type': {
    summary: 'Register, list and delete versions of Gandalf connector types with their commands\u2019 payload schemas',
    usage: `Usage: gandalf-node connector-type put TYPE MAJOR.MINOR --file COMMANDS.json
       gandalf-node connector-type list
       gandalf-node connector-type delete TYPE MAJOR.MINOR

COMMANDS.json is {"commands": {"NAME": JSON Schema of its payload, ...}} (- reads
stdin). Every connector of TYPE then checks the commands it takes against it
and registers only workers of a registered version with every command of it;
a type with no version registered takes anything. put and delete need the
admin permission.

Options:
  --file FILE            the version's commands and schemas (put)
${CLIENT_OPTIONS}`,
    run: cmdConnectorType,
  },
  lock: {
    summary: 'Run a command while holding a cluster lock',
    usage: `Usage: gandalf-node lock NAME [--timeout 30s] [--ttl 10s] -- COMMAND [ARGS…]

Acquires the cluster mutex NAME (waiting in FIFO order up to --timeout), runs
COMMAND while keeping the lock's session alive, then releases it; like flock
or etcdctl lock. The command gets GANDALF_LOCK_NAME, GANDALF_LOCK_SESSION and
GANDALF_LOCK_TOKEN, the fencing token: pass it to whatever the lock protects
and have that refuse a token lower than the highest it has seen. If the
session is lost (the node could not keep it alive within --ttl), the command
gets SIGTERM. Exits with the command's exit code; 1 if the lock was not
acquired.

Options:
  --timeout DURATION     how long to wait for the lock (0: try once; default 30s)
  --ttl DURATION         session time-to-live (default 10s)
${CLIENT_OPTIONS}`,
    run: cmdLock,
  },
  kv: {
    summary: 'Read and write the cluster key/value container',
    usage: `Usage: gandalf-node kv get KEY [--level none|weak|strong]
       gandalf-node kv put KEY VALUE [--prev-revision N] [--session ID]
       gandalf-node kv del KEY [--prefix] [--prev-revision N]
       gandalf-node kv ls [PREFIX] [--level none|weak|strong]
       gandalf-node kv watch KEY [--prefix] [--from REVISION]

--prev-revision makes put/del a compare-and-set on the key's mod revision
(0: put only if the key does not exist). --session binds a key to a session:
it is deleted when the session ends. watch prints every change as it is
committed and resumes after the last one seen when the stream drops.

Options:
  --prefix               KEY is a prefix (del, watch)
  --level LEVEL          read consistency (default weak: the leader's state)
  --session ID           bind the key to a session (put)
  --prev-revision N      compare-and-set (put, del)
  --from REVISION        watch: start at this revision (default: now)
${CLIENT_OPTIONS}`,
    run: cmdKv,
  },
  backup: {
    summary: 'Save a database to a file (an SQLite file, or SQL text)',
    usage: `Usage: gandalf-node backup [--db NAME] [--format sqlite|sql] [--level none|weak|strong] FILE
       gandalf-node backup --all DIR

Writes a consistent copy of the database (GET /db/backup) to FILE ("-":
stdout), whole or not at all. --format sql writes a dump that sqlite3 and
"gandalf-node restore" read; the default is the SQLite file itself, which
sqlite3 opens as it is. --level as for reads (default weak: the leader's state;
strong: everything acknowledged before the backup started is in it).

--all writes a whole-cluster backup into a new directory under DIR: every
database as an SQLite file and the key/value container, with a manifest of
checksums (the format of the scheduled backups, --backup-dir).

Options:
  --db NAME              database (default main)
  --format FORMAT        sqlite (default) or sql
  --all                  every database and the key/value container, into DIR
  --level LEVEL          read consistency (default weak)
${CLIENT_OPTIONS}`,
    run: cmdBackup,
  },
  restore: {
    summary: "Replace a database's contents with a backup file",
    usage: `Usage: gandalf-node restore [--db NAME] [--redundancy R] FILE
       gandalf-node restore --all DIR

Loads FILE (an SQLite file, or SQL text such as a dump) into the database with
POST /db/load, replicated like any write: every replica holds exactly the
loaded contents afterwards, or, if the file is damaged or truncated, nothing
changes and the error says why. Creates the database if it does not exist
(with --redundancy voters). --all restores a whole-cluster backup directory
(from backup --all or --backup-dir) after checking every file's checksum:
every database, and every key of the key/value container.

Options:
  --db NAME              database (default main)
  --all                  DIR is a whole-cluster backup
  --redundancy R         voters of a database this creates (1-7)
${CLIENT_OPTIONS}`,
    run: cmdRestore,
  },
  remove: {
    summary: 'Take a dead or retired board out of the cluster for good',
    usage: `Usage: gandalf-node remove NODE [--force]

Removes the board NODE (DELETE /cluster/nodes/NODE): every group it votes in
gets a replacement at once (not after --replace-after), it leaves the member
list, and if it comes back it is refused until it is reset (its data
directory wiped, so it gets a new node id). Refused for a board that is
alive (stop it first, or --force), and where a group it votes in has too few
other voters up to agree (each such group is named). With --auth-file, needs
the admin permission.

Options:
  --force                remove it even though it is alive
${CLIENT_OPTIONS}`,
    run: cmdRemove,
  },
  recover: {
    summary: 'Re-form a group that lost its quorum for good from its surviving replicas',
    usage: `Usage: gandalf-node recover GROUP [--survivor NODE]... [--force]

Re-forms GROUP (system, or a database's name) from the replica on the board
this command talks to, plus the --survivor boards (each must hold a voting
replica of it and be up), as its only voters (POST /cluster/recover), like
etcd's --force-new-cluster. For a group whose quorum is lost for good (R=2
after one board died; two of three cards burnt), never for one that is only
slow: it is refused while a quorum of its voters is up (--force overrides).

What may be lost: writes the lost voters acknowledged that this replica had
not received yet (run it on the survivor with the highest applied_index in
gandalf-node status). Writes this replica holds that were never acknowledged
become committed. Afterwards placement adds voters back as usual; a lost
board that returns is dropped from the group and added again with a fresh
replica. With --auth-file, needs the admin permission.

Options:
  --survivor NODE        another board re-forming it too (repeatable)
  --force                even though a quorum of its voters seems up
${CLIENT_OPTIONS}`,
    run: cmdRecover,
  },
  'hash-password': {
    summary: 'Print the scrypt hash of a password, for --auth-file',
    usage: `Usage: gandalf-node hash-password

Reads a password (asked twice without echo on a terminal, else the first line
of stdin) and prints its scrypt hash, for the "password" of an --auth-file
entry: [{"username": "ops", "password": "scrypt$…", "perms": ["all"]}].
`,
    run: async (args, io) => {
      const { values } = parse(args, {}, 'hash-password');
      if (values.help) {
        io.out(COMMANDS['hash-password']!.usage);
        return 0;
      }
      return reportFailure(io, () => runHashPassword(io));
    },
  },
  version: {
    summary: 'Print version, architecture and runtime',
    usage: 'Usage: gandalf-node version [--json]\n',
    run: cmdVersion,
  },
};

function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `gandalf-node ${VERSION}: zero-configuration edge cluster node

Usage: gandalf-node <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  .join('\n')}

Run "gandalf-node <command> --help" for a command's options.
`;
}

function startUsage(): string {
  const rows = SETTINGS.map((s) => `  --${s.flag} VALUE\n      ${s.description}. Env ${envName(s.flag)}. Default: ${s.defaultText}.`);
  return `Usage: gandalf-node start [options]

Every option can also be set by its environment variable or in the config
file (--config / GANDALF_CONFIG); precedence: option > environment > file > default.

Options:
  --config FILE
      Config file: JSON object or "name = value" lines, keys are option names.
${rows.join('\n')}
`;
}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  command: string,
  positionals = false,
): { values: Values; positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]}; see "gandalf-node ${command} --help"`);
  }
}

function clientBind(values: Values, env: NodeJS.ProcessEnv): ClientTarget {
  const bind = loadConfig({
    flags: { 'http-bind': values['http-bind'] as string | undefined },
    env,
    configFile: (values.config as string | undefined) ?? env.GANDALF_CONFIG,
  }).httpBind;
  const authorization = clientAuthorization(values.user as string | undefined, env, bind.host);
  const tls = clientTls(values, env);
  return { ...bind, ...(authorization ? { authorization } : {}), ...(tls ? { tls } : {}) };
}

async function cmdStart(args: string[], io: Io): Promise<number> {
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } };
  for (const s of SETTINGS) options[s.flag] = { type: 'string' };
  const { values } = parse(args, options, 'start');
  if (values.help) {
    io.out(COMMANDS.start!.usage);
    return 0;
  }
  const flags = values as Record<string, string | undefined>;
  const config = loadConfig({ flags, env: io.env, configFile: flags.config ?? io.env.GANDALF_CONFIG });
  return runNode(config);
}

function failReply(reply: ApiReply): string {
  const body = reply.body as { code?: string; message?: string } | undefined;
  return `the node answered ${reply.status}${body?.code ? ` ${body.code}` : ''}: ${body?.message ?? JSON.stringify(reply.body)}`;
}

async function runSql(bind: ClientTarget, db: string, sql: string, json: boolean, io: Io, signal?: AbortSignal): Promise<boolean> {
  const read = isReadStatement(sql);
  const path = `/db/${read ? 'query' : 'execute'}?db=${encodeURIComponent(db)}`;
  const reply = await request(bind, 'POST', path, [sql], undefined, signal);
  if (reply.status !== 200) {
    io.err(`gandalf-node: ${failReply(reply)}\n`);
    return false;
  }
  if (json) io.out(toJson(reply.body) + '\n');
  // one result per SQL statement of the text; the first error ends the list
  for (const result of (reply.body as { results: Record<string, unknown>[] }).results) {
    if (typeof result.error === 'string') {
      if (!json) io.err(`error: ${result.error}\n`);
      return false;
    }
    if (json) continue;
    if (Array.isArray(result.columns)) {
      io.out(renderTable(result.columns as string[], (result.values as unknown[][]) ?? []));
      if (read) io.out(`(${((result.values as unknown[]) ?? []).length} rows)\n`);
    } else {
      io.out(`rows affected: ${String(result.rows_affected)}, last insert id: ${String(result.last_insert_id)}\n`);
    }
  }
  return true;
}

async function cmdSql(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { db: { type: 'string' }, ...CLIENT_FLAGS }, 'sql', true);
  if (values.help) {
    io.out(COMMANDS.sql!.usage);
    return 0;
  }
  const bind = clientBind(values, io.env);
  const json = Boolean(values.json) || !io.isTTY;
  const db = (values.db as string | undefined) ?? 'main';
  if (positionals.length > 0) return (await runSql(bind, db, positionals.join(' '), json, io)) ? 0 : 1;
  return shell(bind, db, json, io);
}

/** The shell's history file: $GANDALF_HISTORY, else ~/.gandalf_history ("" keeps none). */
function historyFile(env: NodeJS.ProcessEnv): string | undefined {
  if (env.GANDALF_HISTORY !== undefined) return env.GANDALF_HISTORY || undefined;
  return env.HOME ? path.join(env.HOME, '.gandalf_history') : undefined;
}

const HISTORY_SIZE = 1000;
const SHELL_COMMANDS = '.db NAME, .tables, .schema [TABLE], .dump, .backup FILE, .restore FILE, .exit';

/**
 * The interactive shell: statements end with ";" and may span lines (a
 * continuation prompt shows one is open); Ctrl-C drops the line being typed,
 * or stops the statement that runs (the node stops it too: its client went
 * away); Ctrl-D or .exit leaves; history persists across sessions.
 */
async function shell(bind: ClientTarget, initialDb: string, json: boolean, io: Io): Promise<number> {
  let db = initialDb;
  await request(bind, 'GET', '/health'); // fail fast with one clear line when no node runs
  const file = io.isTTY ? historyFile(io.env) : undefined;
  let history: string[] = [];
  if (file) {
    try {
      history = readFileSync(file, 'utf8').split('\n').filter(Boolean).reverse().slice(0, HISTORY_SIZE);
    } catch {
      /* no history yet */
    }
  }
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: io.isTTY,
    history,
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
  });
  let buffer = '';
  let running: AbortController | undefined;
  const prompt = () => {
    if (!io.isTTY) return; // SQL piped in: only the answers go out, as sqlite3 does
    const head = `gandalf(${db})`;
    rl.setPrompt(buffer ? `${' '.repeat(head.length - 3)}...> ` : `${head}> `);
    rl.prompt();
  };
  rl.on('SIGINT', () => {
    if (running) {
      running.abort();
      return;
    }
    io.out('^C\n');
    buffer = '';
    rl.write(null, { ctrl: true, name: 'u' }); // drop what was typed on the line
    prompt();
  });
  const remember = (entry: string) => {
    if (!file) return;
    try {
      appendFileSync(file, entry.replace(/\n/g, ' ') + '\n', { mode: 0o600 });
    } catch {
      /* a history that cannot be written is not worth failing over */
    }
  };
  prompt();
  for await (const line of rl) {
    const trimmed = line.trim();
    if (!buffer && trimmed.startsWith('.')) {
      const [cmd, arg] = trimmed.split(/\s+/);
      if (cmd === '.exit' || cmd === '.quit') break;
      if (cmd === '.db' && arg) db = arg;
      else {
        let known: boolean;
        try {
          known = await shellCommand(bind, db, cmd!, arg, io);
        } catch (err) {
          known = true;
          io.err(`gandalf-node: ${(err as Error).message}\n`);
        }
        if (!known) io.out(`commands: ${SHELL_COMMANDS}; end SQL statements with ";" (they may span lines); Ctrl-C cancels\n`);
      }
      prompt();
      continue;
    }
    if (!buffer && !trimmed) {
      prompt();
      continue;
    }
    buffer += (buffer ? '\n' : '') + line;
    if (trimmed.endsWith(';')) {
      const sql = buffer;
      buffer = '';
      remember(sql);
      running = new AbortController();
      try {
        await runSql(bind, db, sql, json, io, running.signal);
      } catch (err) {
        io.err(running.signal.aborted ? 'canceled\n' : `gandalf-node: ${(err as Error).message}\n`);
      } finally {
        running = undefined;
      }
    }
    prompt();
  }
  rl.close();
  return 0;
}

/**
 * A command that GETs one endpoint of a running node and prints it: JSON
 * when asked or not on a terminal, else through `render`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- renders a reply's JSON as it came
async function getAndPrint(command: string, path: string, args: string[], io: Io, render: (body: any) => string): Promise<number> {
  const { values } = parse(args, { ...CLIENT_FLAGS }, command);
  if (values.help) {
    io.out(COMMANDS[command]!.usage);
    return 0;
  }
  const reply = await request(clientBind(values, io.env), 'GET', path);
  if (reply.status !== 200) {
    io.err(`gandalf-node: ${failReply(reply)}\n`);
    return 1;
  }
  io.out(values.json || !io.isTTY ? toJson(reply.body, undefined, 2) + '\n' : render(reply.body));
  return 0;
}

/** The status line for two system groups under one cluster name (README "Two system groups"); empty when there are not. */
function splitWarning(split: { cluster: string | null; others: { cluster: string; boards: string[] }[]; collisions: string[] } | null | undefined): string {
  if (!split) return '';
  const others = split.others.map((o) => `${o.cluster} (${o.boards.join(', ')})`).join('; ');
  const collisions = split.collisions.length ? `; writes refused to ${split.collisions.join(', ')} (held by both)` : '';
  return `WARNING: another system group runs under this cluster name: ${others}; this board is in ${split.cluster ?? 'none yet'}${collisions}; see README "Two system groups"\n`;
}

function cmdStatus(args: string[], io: Io): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- renders a reply's JSON as it came
  return getAndPrint('status', '/status', args, io, (s: Record<string, any>) => {
    const head =
      `node ${s.node_id} (${s.state}) version ${s.version} ${s.arch} node ${s.node_version}\n` +
      `uptime ${s.uptime_s} s, api ${s.http_bind}, mgmt ${s.mgmt_bind}, data ${s.data_dir}\n` +
      `cluster ${s.cluster.name}${s.cluster.open ? ' (open)' : ''}: ${s.cluster.members} members, ${s.cluster.peers} linked over ${s.cluster.webrtc}\n` +
      splitWarning(s.split_cluster) +
      '\n';
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
    const rows = (s.replicas as Record<string, any>[]).map((r) => [
      r.group,
      r.state,
      r.leader ?? '-',
      r.term,
      r.applied_index,
      r.snapshot_index,
      (r.voters as string[]).length + (r.learners.length ? `+${r.learners.length}` : ''),
      r.size_bytes ?? '',
      r.failed ?? 'ok',
    ]);
    return head + renderTable(['replica', 'role', 'leader', 'term', 'applied', 'snapshot', 'voters', 'size', 'log state'], rows);
  });
}

async function cmdLock(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, timeout: { type: 'string' }, ttl: { type: 'string' } }, 'lock', true);
  if (values.help) {
    io.out(COMMANDS.lock!.usage);
    return 0;
  }
  const [name, ...command] = positionals;
  if (!name || command.length === 0) throw new UsageError('usage: gandalf-node lock NAME [--timeout 30s] -- COMMAND [ARGS…]');
  return reportFailure(io, () =>
    runLocked(clientBind(values, io.env), name, command, { timeout: values.timeout as string | undefined, ttl: values.ttl as string | undefined }, io),
  );
}

async function cmdKv(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CLIENT_FLAGS,
      prefix: { type: 'boolean' },
      level: { type: 'string' },
      session: { type: 'string' },
      'prev-revision': { type: 'string' },
      from: { type: 'string' },
    },
    'kv',
    true,
  );
  if (values.help || positionals.length === 0) {
    io.out(COMMANDS.kv!.usage);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = positionals;
  return reportFailure(io, () => runKv(clientBind(values, io.env), sub!, rest, values as Parameters<typeof runKv>[3], io));
}

async function cmdTenant(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_FLAGS, 'tenant', true);
  if (values.help || positionals.length === 0) {
    io.out(COMMANDS.tenant!.usage);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = positionals;
  return reportFailure(io, () => runTenant(clientBind(values, io.env), sub!, rest, { json: values.json === true }, io));
}

async function cmdSecret(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, roles: { type: 'string' }, 'expires-in': { type: 'string' } }, 'secret', true);
  if (values.help || positionals.length === 0) {
    io.out(COMMANDS.secret!.usage);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = positionals;
  return reportFailure(io, () => runSecret(clientBind(values, io.env), sub!, rest, values as Parameters<typeof runSecret>[3], io));
}

async function cmdConnectorType(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, file: { type: 'string' } }, 'connector-type', true);
  if (values.help || positionals.length === 0) {
    io.out(COMMANDS['connector-type']!.usage);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = positionals;
  return reportFailure(io, () => runConnectorType(clientBind(values, io.env), sub!, rest, values as Parameters<typeof runConnectorType>[3], io));
}

async function cmdRemove(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, force: { type: 'boolean' } }, 'remove', true);
  if (values.help) {
    io.out(COMMANDS.remove!.usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('usage: gandalf-node remove NODE [--force]');
  const node = positionals[0]!;
  const reply = await request(clientBind(values, io.env), 'DELETE', `/cluster/nodes/${encodeURIComponent(node)}${values.force ? '?force' : ''}`);
  if (reply.status !== 200) {
    io.err(`gandalf-node: ${failReply(reply)}\n`);
    return 1;
  }
  const body = reply.body as { removed: string; groups: string[] };
  io.out(
    values.json || !io.isTTY
      ? toJson(body) + '\n'
      : `removed ${body.removed}${body.groups.length ? ` (it voted in ${body.groups.join(', ')}; replacements follow)` : ''}\n`,
  );
  return 0;
}

async function cmdRecover(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, force: { type: 'boolean' }, survivor: { type: 'string', multiple: true } }, 'recover', true);
  if (values.help) {
    io.out(COMMANDS.recover!.usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('usage: gandalf-node recover GROUP [--survivor NODE]... [--force]');
  const name = positionals[0]!;
  const group = name === 'system' || name.startsWith('db.') ? name : `db.${name}`;
  const survivors = (values.survivor as string[] | undefined) ?? [];
  const reply = await request(clientBind(values, io.env), 'POST', '/cluster/recover', {
    group,
    ...(survivors.length ? { survivors } : {}),
    ...(values.force ? { force: true } : {}),
  });
  if (reply.status !== 200) {
    io.err(`gandalf-node: ${failReply(reply)}\n`);
    return 1;
  }
  const body = reply.body as { group: string; voters: string[]; lost: string[]; term: number; applied_index: number };
  io.out(
    values.json || !io.isTTY
      ? toJson(body) + '\n'
      : `${body.group} re-formed with voters ${body.voters.join(', ')} (term ${body.term}, applied index ${body.applied_index}); dropped: ${body.lost.join(', ') || 'none'}\n`,
  );
  return 0;
}

async function cmdBackup(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CLIENT_FLAGS, db: { type: 'string' }, format: { type: 'string' }, level: { type: 'string' }, all: { type: 'boolean' } },
    'backup',
    true,
  );
  if (values.help) {
    io.out(COMMANDS.backup!.usage);
    return 0;
  }
  const format = (values.format as string | undefined) ?? 'sqlite';
  if (format !== 'sqlite' && format !== 'sql') throw new UsageError('--format must be sqlite or sql');
  if (positionals.length !== 1) throw new UsageError('usage: gandalf-node backup [--db NAME] [--format sqlite|sql] FILE, or backup --all DIR');
  if (values.all) {
    return reportFailure(io, async () => {
      await runClusterBackup(clientBind(values, io.env), positionals[0]!, io);
      return 0;
    });
  }
  const db = (values.db as string | undefined) ?? 'main';
  return reportFailure(io, async () => {
    const n = await runBackup(clientBind(values, io.env), positionals[0]!, { db, format, ...(values.level ? { level: values.level as string } : {}) }, io);
    if (positionals[0] !== '-') io.err(`backed up ${db} to ${positionals[0]} (${n} bytes)\n`);
    return 0;
  });
}

async function cmdRestore(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CLIENT_FLAGS, db: { type: 'string' }, redundancy: { type: 'string' }, all: { type: 'boolean' } },
    'restore',
    true,
  );
  if (values.help) {
    io.out(COMMANDS.restore!.usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('usage: gandalf-node restore [--db NAME] FILE, or restore --all DIR');
  if (values.all) {
    return reportFailure(io, async () => {
      await runClusterRestore(clientBind(values, io.env), positionals[0]!, io);
      return 0;
    });
  }
  const db = (values.db as string | undefined) ?? 'main';
  return reportFailure(io, async () => {
    const { bytes } = await runRestore(clientBind(values, io.env), positionals[0]!, db, values.redundancy as string | undefined, io);
    io.err(`restored ${db} from ${positionals[0]} (${bytes} bytes)\n`);
    return 0;
  });
}

/** Runs `work` for its exit code; a CommandFailed is one line on stderr and exit code 1. */
async function reportFailure(io: Io, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof CommandFailed) {
      io.err(`gandalf-node: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function cmdTrace(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, tenant: { type: 'string' } }, 'trace', true);
  if (values.help) {
    io.out(COMMANDS.trace!.usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('trace needs one message uuid; see "gandalf-node trace --help"');
  return reportFailure(io, async () => {
    const trace = await fetchTrace(clientBind(values, io.env), positionals[0]!, (values.tenant as string | undefined) ?? 'default');
    io.out(values.json || !io.isTTY ? toJson(trace, undefined, 2) + '\n' : renderTrace(trace));
    return 0;
  });
}

function jsonOption(raw: string | undefined, what: string): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`${what} is not JSON: ${(err as Error).message}`);
  }
}

async function cmdCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...CLIENT_FLAGS, target: { type: 'string' }, 'connector-type': { type: 'string' }, payload: { type: 'string' }, timeout: { type: 'string' } },
    'command',
    true,
  );
  if (values.help) {
    io.out(COMMANDS.command!.usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('command needs the command\u2019s name; see "gandalf-node command --help"');
  const target = values.target as string | undefined;
  const type = values['connector-type'] as string | undefined;
  if ((target === undefined) === (type === undefined)) throw new UsageError('give one of --target and --connector-type');
  const timeout = values.timeout === undefined ? undefined : parseDuration(values.timeout as string);
  if (values.timeout !== undefined && (timeout === undefined || timeout < 1 || timeout > 3_600_000))
    throw new UsageError('--timeout must be a duration from 1ms to 1h');
  const payload = jsonOption(values.payload as string | undefined, '--payload');
  return reportFailure(io, () =>
    runCommand(
      clientBind(values, io.env),
      {
        command: positionals[0]!,
        ...(target !== undefined ? { target } : {}),
        ...(type !== undefined ? { connector_type: type } : {}),
        ...(payload !== undefined ? { payload } : {}),
        ...(timeout !== undefined ? { timeout } : {}),
      },
      values.json === true,
      io,
    ),
  );
}

async function cmdEvent(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, payload: { type: 'string' } }, 'event', true);
  if (values.help) {
    io.out(COMMANDS.event!.usage);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError('event needs a topic and an event; see "gandalf-node event --help"');
  const payload = jsonOption(values.payload as string | undefined, '--payload');
  return reportFailure(io, () =>
    runEvent(clientBind(values, io.env), { topic: positionals[0]!, event: positionals[1]!, ...(payload !== undefined ? { payload } : {}) }, io),
  );
}

async function cmdEvents(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...CLIENT_FLAGS, watch: { type: 'boolean' }, topic: { type: 'string' } }, 'events');
  if (values.help) {
    io.out(COMMANDS.events!.usage);
    return 0;
  }
  if (!values.watch) throw new UsageError('events needs --watch (past events are in the sink: gandalf-node trace, or SQL on gandalf-<tenant>)');
  const topics = ((values.topic as string | undefined) ?? '*').split(',').filter(Boolean);
  return watchEvents(clientBind(values, io.env), topics, values.json === true, io);
}

function cmdNodes(args: string[], io: Io): Promise<number> {
  const columns = ['node-id', 'endpoint', 'state', 'incarnation', 'arch', 'transport', 'rtt-ms'];
  return getAndPrint('nodes', '/cluster/nodes', args, io, (body: { nodes: Record<string, unknown>[] }) =>
    renderTable(
      columns,
      body.nodes.map((n) => columns.map((c) => n[c] ?? '')),
    ),
  );
}

async function cmdVersion(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, 'version');
  if (values.help) {
    io.out(COMMANDS.version!.usage);
    return 0;
  }
  const info = {
    version: VERSION,
    commit: COMMIT,
    arch: process.arch,
    platform: process.platform,
    node: process.version,
    single_executable: isSingleExecutable(),
    transport: await webrtcTransport(),
  };
  if (values.json || !io.isTTY) io.out(JSON.stringify(info) + '\n');
  else {
    io.out(
      `gandalf-node ${info.version} (${info.commit}) ${info.platform}-${info.arch} node ${info.node}` +
        `${info.single_executable ? ' single-executable' : ''} webrtc ${info.transport}\n`,
    );
  }
  return 0;
}

/** The WebRTC implementation `--webrtc auto` picks here: node-datachannel when its addon loads, else werift. */
async function webrtcTransport(): Promise<'native' | 'werift'> {
  try {
    await loadNativeRtc();
    return 'native';
  } catch {
    return 'werift';
  }
}

export async function runCli(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    const topic = command === 'help' ? rest[0] : undefined;
    io.out(topic && COMMANDS[topic] ? COMMANDS[topic]!.usage : mainUsage());
    return 0;
  }
  if (command === '--version') return cmdVersion([], io);
  const cmd = COMMANDS[command];
  if (!cmd) {
    io.err(`gandalf-node: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(', ')} (see gandalf-node --help)\n`);
    return 2;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`gandalf-node: ${err.message}\n`);
      return 2;
    }
    if (err instanceof NodeUnreachableError) {
      io.err(`gandalf-node: ${err.message}\n`);
      return 1;
    }
    io.err(`gandalf-node: ${(err as Error).message}\n`);
    return 1;
  }
}
