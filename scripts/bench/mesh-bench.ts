/**
 * Mesh benchmark (npm run bench): everything on 127.0.0.1, every loop bounded.
 *  1. Data-channel setup time (median and max of 20) per pairing.
 *  2. Throughput per pairing: 256 B messages with coalescing (the mesh) and
 *     without (one message per frame), and 32 KiB messages.
 *  3. Failure detection: SIGKILL of one member of a 5-node gandalf cluster,
 *     time until every survivor says "dead", beside 5 Serf agents (same SWIM
 *     family) on loopback; zero false positives required of both.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { offerReply } from '../../src/api/cluster-routes';
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { encodeFrame } from '../../src/transport/frames';
import { Mesh } from '../../src/transport/mesh';
import { loadNativeRtc } from '../../src/transport/native-rtc';
import type { RtcFactory } from '../../src/transport/rtc';
import { SignalAuth, type SignalOffer } from '../../src/transport/signaling';
import { loadWeriftRtc } from '../../src/transport/werift-rtc';

const ROOT = path.resolve(__dirname, '../..');
const SETUPS = 20;
const THROUGHPUT_SECONDS = 2;
const MAX_MESSAGES = 200_000;
const DETECTION_ROUNDS = Number(process.env.BENCH_DETECTION_ROUNDS ?? 3);

const PAIRS: [string, string][] = [
  ['native', 'native'],
  ['werift', 'werift'],
  ['native', 'werift'],
];

async function factory(name: string): Promise<RtcFactory> {
  return name === 'native' ? loadNativeRtc() : loadWeriftRtc();
}

let port = 20000;
async function meshPair(left: string, right: string): Promise<[Mesh, Mesh]> {
  const endpoints = new Map<string, Mesh>();
  const make = async (id: string, impl: string) => {
    const endpoint = `http://127.0.0.1:${port++}`;
    const mesh = new Mesh({
      self: { id, endpoint },
      rtc: await factory(impl),
      rtcOptions: { iceAddresses: ['127.0.0.1'], iceServers: [] },
      auth: new SignalAuth('bench-cookie', 'bench', systemClock),
      postSignal: async (to: string, offer: SignalOffer) => offerReply(await endpoints.get(to)!.acceptOffer(JSON.parse(JSON.stringify(offer)))),
      logger: silentLogger,
      clock: systemClock,
    });
    endpoints.set(endpoint, mesh);
    return mesh;
  };
  return [await make('a', left), await make('b', right)];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function setupTimes(left: string, right: string): Promise<{ median: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < SETUPS; i++) {
    const [a, b] = await meshPair(left, right);
    const t = performance.now();
    await a.connect(b.self.endpoint);
    while (!b.isConnected('a')) await new Promise((r) => setImmediate(r));
    times.push(performance.now() - t);
    a.close();
    b.close();
  }
  return { median: median(times), max: Math.max(...times) };
}

async function throughput(left: string, right: string, size: number, coalesce: boolean): Promise<{ msgs: number; mbps: number }> {
  const [a, b] = await meshPair(left, right);
  await a.connect(b.self.endpoint);
  while (!b.isConnected('a')) await new Promise((r) => setTimeout(r, 5));
  let received = 0;
  b.subscribe('t', () => received++);
  const payload = Buffer.alloc(size, 1);
  const raw = (a as any).links.get('b').link.channels.reliable;
  const single = encodeFrame([{ topic: 't', body: payload }]);
  const start = performance.now();
  const deadline = start + THROUGHPUT_SECONDS * 1000;
  let sent = 0;
  while (performance.now() < deadline && sent < MAX_MESSAGES) {
    // Send in bursts, respecting backpressure.
    if ((coalesce ? a.backlog('b', 'reliable')! : raw.bufferedAmount()) > 2 * 1024 * 1024) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    for (let k = 0; k < 64 && sent < MAX_MESSAGES; k++, sent++) {
      if (coalesce) a.send('reliable', 'b', 't', payload);
      else raw.send(single);
    }
    await new Promise((r) => setImmediate(r));
  }
  const drainBy = performance.now() + 10_000;
  while (received < sent && performance.now() < drainBy) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - start) / 1000;
  a.close();
  b.close();
  return { msgs: received / seconds, mbps: (received * size) / seconds / 1e6 };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function getJson(p: number, pathname: string): Promise<any> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: p, path: pathname, timeout: 2000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString()));
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < ms) {
    if (await cond().catch(() => false)) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

async function gandalfDetection(): Promise<{ ms: number; falsePositives: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gandalf-bench-'));
  const procs: ChildProcess[] = [];
  const ports: { http: number; mgmt: number }[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const p = { http: await freePort(), mgmt: await freePort() };
      ports.push(p);
      const args = [
        path.join(ROOT, 'dist/gandalf-node.cjs'),
        'start',
        '--node-id',
        `g${i}`,
        '--data-dir',
        path.join(dir, `g${i}`),
        '--http-bind',
        `127.0.0.1:${p.http}`,
        '--mgmt-bind',
        `127.0.0.1:${p.mgmt}`,
        '--discovery',
        'manual',
        '--cluster-cookie',
        'bench-cookie-1',
        '--log-level',
        'warn',
        ...(i > 0 ? ['--join', `http://127.0.0.1:${ports[0]!.mgmt}`] : []),
      ];
      procs.push(spawn(process.execPath, args, { stdio: 'ignore' }));
    }
    const states = async (i: number) =>
      new Map<string, string>((await getJson(ports[i]!.http, '/cluster/nodes')).nodes.map((n: any) => [n['node-id'], n.state]));
    const formed = await waitFor(
      async () => (await Promise.all([0, 1, 2, 3, 4].map(states))).every((m) => [...m.values()].filter((s) => s === 'alive').length === 5),
      60_000,
    );
    if (formed === undefined) throw new Error('gandalf cluster did not form');
    await new Promise((r) => setTimeout(r, 3000)); // settle
    procs[4]!.kill('SIGKILL');
    const ms = await waitFor(async () => (await Promise.all([0, 1, 2, 3].map(states))).every((m) => m.get('g4') === 'dead'), 60_000);
    const views = await Promise.all([0, 1, 2, 3].map(states));
    const falsePositives = views.reduce((n, m) => n + [...m.entries()].filter(([id, s]) => id !== 'g4' && s !== 'alive').length, 0);
    if (ms === undefined) throw new Error('gandalf never declared the killed node dead');
    return { ms, falsePositives };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function serfDetection(): Promise<{ ms: number; falsePositives: number }> {
  const procs: ChildProcess[] = [];
  const ports: { bind: number; rpc: number }[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const p = { bind: await freePort(), rpc: await freePort() };
      ports.push(p);
      procs.push(
        spawn(
          'serf',
          [
            'agent',
            `-node=s${i}`,
            `-bind=127.0.0.1:${p.bind}`,
            `-rpc-addr=127.0.0.1:${p.rpc}`,
            '-profile=lan',
            '-log-level=warn',
            ...(i > 0 ? [`-retry-join=127.0.0.1:${ports[0]!.bind}`, '-retry-interval=1s'] : []),
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    const members = async (i: number) => {
      const out = execFileSync('serf', ['members', `-rpc-addr=127.0.0.1:${ports[i]!.rpc}`, '-format=json'], { timeout: 5000 }).toString();
      return new Map<string, string>(JSON.parse(out).members.map((m: any) => [m.name, m.status]));
    };
    const formed = await waitFor(
      async () => (await Promise.all([0, 1, 2, 3, 4].map(members))).every((m) => [...m.values()].filter((s) => s === 'alive').length === 5),
      60_000,
    );
    if (formed === undefined) throw new Error('serf cluster did not form');
    await new Promise((r) => setTimeout(r, 3000));
    procs[4]!.kill('SIGKILL');
    const ms = await waitFor(async () => (await Promise.all([0, 1, 2, 3].map(members))).every((m) => m.get('s4') === 'failed'), 60_000);
    const views = await Promise.all([0, 1, 2, 3].map(members));
    const falsePositives = views.reduce((n, m) => n + [...m.entries()].filter(([id, s]) => id !== 's4' && s !== 'alive').length, 0);
    if (ms === undefined) throw new Error('serf never declared the killed agent failed');
    return { ms, falsePositives };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  console.log(
    `gandalf-node mesh benchmark: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${process.platform}-${process.arch}, node ${process.version}, loopback\n`,
  );
  console.log(`data-channel setup (signed signaling + ICE + DTLS + SCTP, ${SETUPS} each)`);
  for (const [l, r] of PAIRS) {
    const s = await setupTimes(l, r);
    console.log(`  ${`${l} <-> ${r}`.padEnd(18)} median ${s.median.toFixed(0).padStart(5)} ms   max ${s.max.toFixed(0).padStart(5)} ms`);
  }
  console.log(`\nthroughput, reliable channel, ${THROUGHPUT_SECONDS} s each (messages/s, MB/s)`);
  console.log(`  ${'pair'.padEnd(18)} ${'256 B coalesced'.padStart(20)} ${'256 B one per frame'.padStart(22)} ${'32 KiB'.padStart(20)}`);
  for (const [l, r] of PAIRS) {
    const c = await throughput(l, r, 256, true);
    const u = await throughput(l, r, 256, false);
    const big = await throughput(l, r, 32 * 1024, true);
    const f = (x: { msgs: number; mbps: number }) => `${x.msgs.toFixed(0).padStart(8)} ${x.mbps.toFixed(1).padStart(7)} MB/s`;
    console.log(`  ${`${l} -> ${r}`.padEnd(18)} ${f(c).padStart(20)} ${f(u).padStart(22)} ${f(big).padStart(20)}`);
  }
  (await import('node-datachannel')).cleanup();

  console.log(`\nfailure detection: SIGKILL of 1 of 5 members -> "dead"/"failed" on all 4 survivors (${DETECTION_ROUNDS} rounds each)`);
  const g: number[] = [];
  const s: number[] = [];
  let gfp = 0;
  let sfp = 0;
  for (let i = 0; i < DETECTION_ROUNDS; i++) {
    const a = await gandalfDetection();
    g.push(a.ms);
    gfp += a.falsePositives;
    const b = await serfDetection();
    s.push(b.ms);
    sfp += b.falsePositives;
  }
  console.log(`  gandalf-node  median ${(median(g) / 1000).toFixed(2)} s  (${g.map((x) => (x / 1000).toFixed(2)).join(', ')})  false positives ${gfp}`);
  console.log(`  serf -profile=lan median ${(median(s) / 1000).toFixed(2)} s  (${s.map((x) => (x / 1000).toFixed(2)).join(', ')})  false positives ${sfp}`);
  console.log(`  ratio gandalf/serf detection time: ${(median(g) / median(s)).toFixed(2)} (below 1.0 = gandalf detects faster)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
