/**
 * Gandalf routing beside NATS, side by side on 127.0.0.1, in one run:
 *
 *   gandalf: n0 cluster; n1 aggregator+connector "alpha" (the worker that
 *            answers); n2 aggregator+connector "beta" (the sender and the
 *            event publisher); n3 aggregator+connector "gamma" (a second
 *            event subscriber). Workers speak the published gRPC worker API
 *            over each node's unix socket. Every message is traced in the
 *            replicated sink (there is no untraced mode).
 *   NATS:    a 3-server cluster (nats-server, JetStream on file storage);
 *            the responder in a queue group on server 2, the requester on
 *            server 3, subscribers on servers 1 and 2.
 *
 * Measured: command request -> result round trip with one client (p50/p99)
 * and with 64 in flight (per second) against request-reply through a queue
 * group; event fan-out to 2 subscribers (events/s delivered to both) against
 * core publish/subscribe; and the same traced events against JetStream
 * publish with 3 replicas on file storage. Every loop is bounded in count and
 * time; every process started here is killed on exit and its temporary
 * directories removed. Installs nats-server (Debian) if it is missing.
 *
 * Usage: npx tsx scripts/bench/routing-bench.ts [--quick]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { connect, StorageType, type NatsConnection } from 'nats';

const ROOT = path.resolve(__dirname, '../..');
const BUNDLE = path.join(ROOT, 'dist', 'gandalf-node.cjs');
const PROTO = path.join(ROOT, 'proto', 'gandalf', 'worker', 'v1', 'worker.proto');
const COOKIE = 'routing-bench-cookie-0123456789';
const quick = process.argv.includes('--quick');
const scale = (n: number) => (quick ? Math.ceil(n / 10) : n);

/** Bounds of each measured loop: [max operations, max ms]. */
const LIMITS = {
  roundTrip: [scale(1000), scale(15_000)],
  inFlight: [scale(5000), scale(15_000)],
  fanOut: [scale(10_000), scale(15_000)],
  durable: [scale(5000), scale(15_000)],
} as const;
const IN_FLIGHT = 64;
const PAYLOAD = JSON.stringify({ v: 'x'.repeat(80) });

const children = new Set<ChildProcess>();
const dirs: string[] = [];
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitFor(what: string, probe: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `op` up to `count` times or `ms`, `concurrency` at a time; returns the latencies (ms) and the elapsed time. */
async function load(
  count: number,
  ms: number,
  concurrency: number,
  op: (i: number) => Promise<void>,
): Promise<{ lat: number[]; elapsed: number; errors: number }> {
  const lat: number[] = [];
  let next = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  const lane = async () => {
    while (next < count && performance.now() < end) {
      const i = next++;
      const t = performance.now();
      try {
        await op(i);
        lat.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { lat: lat.sort((a, b) => a - b), elapsed: performance.now() - start, errors };
}

// --- NATS ------------------------------------------------------------------

function ensureNatsServer(): void {
  if (spawnSync('nats-server', ['--version']).status === 0) return;
  if (process.getuid?.() !== 0) throw new Error('nats-server is not installed: `sudo apt-get install -y nats-server`, then run again');
  console.log('nats-server not found: apt-get install -y nats-server');
  if (spawnSync('apt-get', ['install', '-y', 'nats-server'], { stdio: 'inherit' }).status !== 0) throw new Error('apt-get install -y nats-server failed');
}

async function startNats(): Promise<number[]> {
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const routes = await Promise.all([0, 1, 2].map(() => freePort()));
  for (let i = 0; i < 3; i++) {
    const args = [
      '-a',
      '127.0.0.1',
      '-p',
      String(ports[i]),
      '-n',
      `nats${i}`,
      '-js',
      '-sd',
      tmp('bench-nats-'),
      '--cluster_name',
      'bench',
      '--cluster',
      `nats://127.0.0.1:${routes[i]}`,
      '--routes',
      routes
        .filter((_, j) => j !== i)
        .map((r) => `nats://127.0.0.1:${r}`)
        .join(','),
    ];
    const p = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(p);
  }
  return ports;
}

async function benchNats(ports: number[]) {
  const [s1, s2, s3] = await Promise.all(ports.map((p) => connect({ servers: `127.0.0.1:${p}` })));
  const conns: NatsConnection[] = [s1!, s2!, s3!];
  const data = new TextEncoder().encode(PAYLOAD);
  // request-reply through a queue group: responder on server 2, requester on server 3
  s2!.subscribe('cmd.echo', { queue: 'workers', callback: (_err, m) => m.respond(m.data) });
  await s2!.flush();
  await waitFor('the queue group to be known on every server', async () => !!(await s3!.request('cmd.echo', data, { timeout: 500 })), 10_000);
  const rt = await load(LIMITS.roundTrip[0], LIMITS.roundTrip[1], 1, async () => void (await s3!.request('cmd.echo', data, { timeout: 5000 })));
  const inflight = await load(LIMITS.inFlight[0], LIMITS.inFlight[1], IN_FLIGHT, async () => void (await s3!.request('cmd.echo', data, { timeout: 5000 })));
  // core publish/subscribe fan-out: publisher on server 3, subscribers on servers 1 and 2
  const fan = await fanOut(
    (n) => {
      for (const c of [s1!, s2!]) {
        const sub = c.subscribe('ev.bench');
        void (async () => {
          for await (const _m of sub) n();
        })();
      }
      return Promise.all([s1!.flush(), s2!.flush()]).then(() => undefined);
    },
    async (count) => {
      for (let i = 0; i < count; i++) s3!.publish('ev.bench', data);
      await s3!.flush();
      return count;
    },
  );
  // JetStream: publish acknowledged by 3 replicas on file storage
  const jsm = await s1!.jetstreamManager();
  await waitFor(
    'JetStream to accept a 3-replica stream',
    async () => !!(await jsm.streams.add({ name: 'EVENTS', subjects: ['js.>'], num_replicas: 3, storage: StorageType.File })),
    30_000,
  );
  const js = s3!.jetstream();
  const durable = await load(LIMITS.durable[0], LIMITS.durable[1], IN_FLIGHT, async () => void (await js.publish('js.bench', data)));
  for (const c of conns) await c.close();
  return { rt, inflight, fan, durable };
}

/**
 * Events/s that reached both subscribers: `publish(count)` sends up to `count` (within
 * LIMITS.fanOut's time) and says how many it sent; then at most that long again for them to arrive.
 */
async function fanOut(
  subscribe: (got: () => void) => Promise<void>,
  publish: (count: number) => Promise<number>,
): Promise<{ perSecond: number; delivered: number; sent: number }> {
  const [count, ms] = LIMITS.fanOut;
  let got = 0;
  await subscribe(() => got++);
  const start = performance.now();
  const sent = await publish(count);
  await waitFor('both subscribers to get every event', () => got >= 2 * sent, ms).catch(() => undefined);
  const elapsed = performance.now() - start;
  return { perSecond: got / 2 / (elapsed / 1000), delivered: got, sent };
}

// --- gandalf ---------------------------------------------------------------

interface Board {
  id: string;
  dir: string;
  http: number;
  mgmt: number;
  proc?: ChildProcess;
}

const LAYOUT = [
  { id: 'n0', roles: 'cluster', name: 'core' },
  { id: 'n1', roles: 'aggregator,connector', name: 'alpha' },
  { id: 'n2', roles: 'aggregator,connector', name: 'beta' },
  { id: 'n3', roles: 'aggregator,connector', name: 'gamma' },
];

async function startGandalf(): Promise<Board[]> {
  const boards: Board[] = [];
  for (const l of LAYOUT) boards.push({ id: l.id, dir: tmp(`bench-gandalf-${l.id}-`), http: await freePort(), mgmt: await freePort() });
  for (const [i, b] of boards.entries()) {
    const args = [
      BUNDLE,
      'start',
      '--node-id',
      b.id,
      '--data-dir',
      b.dir,
      '--http-bind',
      `127.0.0.1:${b.http}`,
      '--mgmt-bind',
      `127.0.0.1:${b.mgmt}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      COOKIE,
      '--log-level',
      'warn',
      '--roles',
      LAYOUT[i]!.roles,
      '--logical-name',
      LAYOUT[i]!.name,
      ...(i > 0 ? ['--join', `http://127.0.0.1:${boards[0]!.mgmt}`] : []),
    ];
    // BENCH_CPU_PROF=DIR: each node writes a CPU profile there when it stops
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    b.proc = spawn(process.execPath, [...prof, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(b.proc);
  }
  await waitFor(
    'four alive members',
    async () => {
      const r = await fetch(`http://127.0.0.1:${boards[0]!.http}/cluster/nodes`);
      return ((await r.json()) as { nodes: { state: string }[] }).nodes.filter((n) => n.state === 'alive').length === 4;
    },
    60_000,
  );
  return boards;
}

type Client = any;

function client(board: Board): Client {
  const pkg = grpc.loadPackageDefinition(loadSync(PROTO, { keepCase: true, longs: Number, defaults: true })) as any;
  return new pkg.gandalf.worker.v1.Worker(`unix:${path.join(board.dir, 'worker.sock')}`, grpc.credentials.createInsecure());
}

function unary<T>(c: Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => c[method](request, { deadline: Date.now() + 10_000 }, (err: Error | null, r: T) => (err ? reject(err) : resolve(r))));
}

async function register(c: Client, name: string): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return (await unary<{ worker_id: string }>(c, 'Register', { name, major: 1, minor: 0, commands: [] })).worker_id;
    } catch (err) {
      last = err;
      await sleep(200);
    }
  }
  throw new Error(`could not register ${name}: ${(last as Error).message}`);
}

/** The answering worker: every command it gets is answered SUCCESS with its payload. */
async function serveEcho(c: Client): Promise<void> {
  const id = await register(c, 'echo');
  const stream = c.Commands({ worker_id: id, credit: 256 });
  stream.on('data', (cmd: any) => {
    c.SendResult({ worker_id: id, reference_uuid: cmd.uuid, success: true, payload_json: cmd.payload_json }, () => undefined);
  });
  stream.on('error', () => undefined);
}

function command(c: Client, sender: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = c.SendCommand({ worker_id: sender, command: 'ECHO', target: 'alpha', payload_json: PAYLOAD, timeout_ms: 5000 });
    call.on('data', (a: any) => {
      if (a.event === 'ON_GOING') return;
      if (a.event === 'SUCCESS') resolve();
      else reject(new Error(`${a.topic}/${a.event}: ${a.payload_json}`));
    });
    call.on('error', reject);
  });
}

async function benchGandalf(boards: Board[]) {
  const [, c1, c2, c3] = boards.map(client);
  await serveEcho(c1);
  const sender = await register(c2, 'sender');
  // the first command creates the tenant's database (its ledger and sink): retried until it succeeds
  await waitFor(
    'a first command to succeed',
    async () => {
      await command(c2, sender);
      return true;
    },
    60_000,
  );
  for (let i = 0; i < 20; i++) await command(c2, sender);
  const rt = await load(LIMITS.roundTrip[0], LIMITS.roundTrip[1], 1, () => command(c2, sender));
  const inflight = await load(LIMITS.inFlight[0], LIMITS.inFlight[1], IN_FLIGHT, () => command(c2, sender));
  // fan-out: published on n2, subscribed on n1 and n3 (every event is traced in the sink)
  const subs = [c1, c3];
  const fan = await fanOut(
    async (got) => {
      for (const [i, c] of subs.entries()) {
        const id = await register(c, `sub${i}`);
        const s = c.Subscribe({ worker_id: id, topics: ['bench'] });
        s.on('data', () => got());
        s.on('error', () => undefined);
      }
      await sleep(500);
    },
    async (count) => {
      const pub = await register(c2, 'publisher');
      const r = await load(count, LIMITS.fanOut[1], IN_FLIGHT, () =>
        unary(c2, 'SendEvent', { worker_id: pub, topic: 'bench', event: 'TICK', payload_json: PAYLOAD }),
      );
      return r.lat.length;
    },
  );
  return { rt, inflight, fan };
}

// --- report ----------------------------------------------------------------

function row(what: string, gandalf: string, nats: string, ratio: string): string {
  return `| ${what} | ${gandalf} | ${nats} | ${ratio} |`;
}

async function main(): Promise<void> {
  ensureNatsServer();
  console.log(`routing bench${quick ? ' (--quick)' : ''}: ${os.cpus().length} cores, node ${process.version}`);
  const ports = await startNats();
  const boards = await startGandalf();
  const g = await benchGandalf(boards);
  for (const b of boards) b.proc?.kill(process.env.BENCH_CPU_PROF ? 'SIGTERM' : 'SIGKILL');
  if (process.env.BENCH_CPU_PROF) await Promise.all(boards.map((b) => new Promise((r) => b.proc?.once('exit', r))));
  const n = await benchNats(ports);
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const perSec = (r: { lat: number[]; elapsed: number }) => r.lat.length / (r.elapsed / 1000);
  console.log('');
  console.log(row('measure', 'gandalf', 'NATS', 'gandalf / NATS'));
  console.log(row('---', '---', '---', '---'));
  console.log(
    row(
      'command round trip, 1 client: p50 ms',
      f(percentile(g.rt.lat, 50), 2),
      f(percentile(n.rt.lat, 50), 2),
      f(percentile(g.rt.lat, 50) / percentile(n.rt.lat, 50)),
    ),
  );
  console.log(
    row(
      'command round trip, 1 client: p99 ms',
      f(percentile(g.rt.lat, 99), 2),
      f(percentile(n.rt.lat, 99), 2),
      f(percentile(g.rt.lat, 99) / percentile(n.rt.lat, 99)),
    ),
  );
  console.log(
    row(`commands, ${IN_FLIGHT} in flight: per s`, f(perSec(g.inflight), 0), f(perSec(n.inflight), 0), f(perSec(g.inflight) / perSec(n.inflight), 3)),
  );
  console.log(row('event fan-out to 2 (traced / core pub-sub): per s', f(g.fan.perSecond, 0), f(n.fan.perSecond, 0), f(g.fan.perSecond / n.fan.perSecond, 3)));
  console.log(
    row(
      `traced events / JetStream R3 file publish, ${IN_FLIGHT} in flight: per s`,
      f(g.fan.perSecond, 0),
      f(perSec(n.durable), 0),
      f(g.fan.perSecond / perSec(n.durable), 3),
    ),
  );
  console.log('');
  console.log(
    `operations: gandalf round trip ${g.rt.lat.length} (errors ${g.rt.errors}), in flight ${g.inflight.lat.length} (errors ${g.inflight.errors}), events ${g.fan.delivered}/${2 * g.fan.sent} delivered; ` +
      `NATS round trip ${n.rt.lat.length}, in flight ${n.inflight.lat.length}, events ${n.fan.delivered}/${2 * n.fan.sent}, JetStream ${n.durable.lat.length} (errors ${n.durable.errors})`,
  );
  console.log('untraced gandalf events: not measured (every Gandalf message is traced; there is no untraced mode yet)');
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(`routing bench failed: ${(err as Error).message}`);
  process.exit(1);
});
