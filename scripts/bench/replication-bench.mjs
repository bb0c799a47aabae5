#!/usr/bin/env node
// Replication benchmark: a 3-node gandalf cluster against a 3-member etcd
// cluster, side by side on 127.0.0.1, both durable (fsync on), same 100 B
// values. Measures sequential and pipelined writes, uncontended and contended
// locks, RSS after loading 10k/100k rows, and the time from SIGKILL of the
// leader to the first successful write. Every loop is bounded in count and
// time; every process started here is killed on exit, and the temporary data
// directory under os.tmpdir() is removed.
// Usage: node scripts/bench/replication-bench.mjs [--quick]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const T_START = performance.now();
const root = fileURLToPath(new URL('../..', import.meta.url));
const bundle = path.join(root, 'dist', 'gandalf-node.cjs');
const HOST = '127.0.0.1';
const COOKIE = 'bench-cookie-123';
const ETCD_CLIENT_PORTS = [23791, 23792, 23793];
const ETCD_PEER_PORTS = [23801, 23802, 23803];
const VALUE_BYTES = 100;

/** Bounds of every measured loop: [max operations, max milliseconds]. */
const LIMITS = {
  seq: [1500, 20_000],
  inflight: [6000, 20_000],
  lockSeq: [300, 15_000],
  lockContended: [200, 20_000],
  failover: [60_000], // give up waiting for the first write after this long
  wear: [20_000, 30_000],
  wearWarmup: [9_000, 20_000], // past one --snapshot-entries interval (8192)
};
// --quick: a smoke run with a tenth of the operations and time per line.
if (process.argv.includes('--quick')) {
  for (const k of ['seq', 'inflight', 'lockSeq', 'lockContended', 'wear', 'wearWarmup']) LIMITS[k] = LIMITS[k].map((v) => Math.ceil(v / 10));
}
const INFLIGHT = 64;
const FAILOVER_CLIENT_TIMEOUT_MS = 250;
const CONTENDERS = 8;

const gandalfAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const etcdAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

// ---------------------------------------------------------------------------
// Process bookkeeping: every child is killed on any exit path.
// ---------------------------------------------------------------------------
/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();
let dataRoot;

function killAll() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function removeDataRoot() {
  if (!dataRoot) return;
  try {
    rmSync(dataRoot, { recursive: true, force: true, maxRetries: 3 });
    dataRoot = undefined;
  } catch (e) {
    console.error(`warning: could not remove ${dataRoot}: ${e.message}`);
  }
}

process.on('exit', () => {
  killAll();
  removeDataRoot();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    process.exit(130);
  });
}

async function stopAll() {
  killAll();
  const deadline = Date.now() + 5000;
  for (const c of children) {
    while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await sleep(20);
  }
  removeDataRoot();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

function log(msg) {
  const t = ((now() - T_START) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${t}s] ${msg}\n`);
}

/** Keeps the last lines a child wrote, for diagnostics on failure. */
function tail(proc, name) {
  const lines = [];
  const push = (chunk) => {
    for (const l of chunk.toString().split('\n')) {
      if (!l) continue;
      lines.push(l);
      if (lines.length > 40) lines.shift();
    }
  };
  proc.stdout?.on('data', push);
  proc.stderr?.on('data', push);
  proc.on('exit', (code, signal) => {
    if (!proc.expectedExit) log(`${name} exited unexpectedly (code ${code}, signal ${signal})`);
  });
  return lines;
}

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------
/** Resolves {status, body} for any HTTP status; rejects on network errors and timeouts. */
function request(agent, port, method, pathname, body, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = data === undefined ? { 'content-length': 0 } : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    const req = http.request({ host: HOST, port, method, path: pathname, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        resolve({ status: res.statusCode, body: parsed, text });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${pathname}`)));
    req.on('error', reject);
    req.end(data);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.on('error', () => resolve(false));
    s.listen(port, HOST, () => s.close(() => resolve(true)));
  });
}

/** Retries fn until it returns a truthy value; bounded by time and attempts. */
async function waitFor(what, fn, timeoutMs, intervalMs = 200) {
  const deadline = now() + timeoutMs;
  let lastErr;
  for (let i = 0; i < 100_000 && now() < deadline; i++) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(intervalMs);
  }
  throw new BenchFailure(`${what}: not ready after ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
}

function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Bytes this process caused to be written to storage (dirtied pages, less those cancelled by truncation or deletion). */
function writtenBytes(pid) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN);
    return field('write_bytes') - field('cancelled_write_bytes');
  } catch {
    return NaN;
  }
}

let valueCounter = 0;
/** A distinct printable string of exactly VALUE_BYTES bytes. */
function value() {
  const head = `v${(valueCounter++).toString(36)}-`;
  return (head + 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(3)).slice(0, VALUE_BYTES);
}
const b64 = (s) => Buffer.from(s).toString('base64');

// ---------------------------------------------------------------------------
// Load runner
// ---------------------------------------------------------------------------
/**
 * Runs op() from `concurrency` workers until maxOps were started or maxMs
 * elapsed. op returns true on success, false (or throws) on failure; failures
 * are retried by the next iteration. Too many failures abort the line.
 */
async function runLoad(label, { concurrency, maxOps, maxMs, op }) {
  const lat = [];
  let started = 0;
  let ok = 0;
  let failed = 0;
  let consecutiveFails = 0;
  const errors = new Map();
  const t0 = now();
  const deadline = t0 + maxMs;
  const worker = async (w) => {
    while (started < maxOps && now() < deadline) {
      started++;
      const s = now();
      let success = false;
      try {
        success = await op(w);
        if (!success) errors.set('op returned failure', (errors.get('op returned failure') ?? 0) + 1);
      } catch (e) {
        const k = String(e.message).slice(0, 160);
        errors.set(k, (errors.get(k) ?? 0) + 1);
      }
      if (success) {
        lat.push(now() - s);
        ok++;
        consecutiveFails = 0;
      } else {
        failed++;
        consecutiveFails++;
        if (consecutiveFails > 50 || (failed > 100 && failed > ok)) {
          throw new BenchFailure(`${label}: operation keeps failing (${failed} failures, ${ok} ok): ${[...errors].map(([k, v]) => `${v}x ${k}`).join('; ')}`);
        }
        await sleep(20);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = now() - t0;
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : NaN);
  const r = { ok, failed, elapsedMs: elapsed, perSec: (ok / elapsed) * 1000, p50: pct(50), p99: pct(99), errors };
  log(
    `${label}: ${ok} ok, ${failed} failed in ${(elapsed / 1000).toFixed(1)} s -> ${r.perSec.toFixed(1)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${errors.size ? `; errors: ${[...errors].map(([k, v]) => `${v}x ${k}`).join('; ')}` : ''}`,
  );
  return r;
}

// ---------------------------------------------------------------------------
// gandalf
// ---------------------------------------------------------------------------
const gandalf = {
  nodes: [], // {id, http, mgmt, proc, dir, lines}
  async start() {
    if (!existsSync(bundle)) {
      log('dist/gandalf-node.cjs is missing: building it (node scripts/bundle.mjs)');
      const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'bundle.mjs')], { cwd: root, stdio: 'inherit', timeout: 180_000 });
      if (r.status !== 0 || !existsSync(bundle)) throw new BenchFailure('building dist/gandalf-node.cjs failed');
    }
    for (let i = 0; i < 3; i++) {
      this.nodes.push({ id: `n${i}`, http: await freePort(), mgmt: await freePort(), dir: path.join(dataRoot, `gandalf-n${i}`) });
    }
    for (const n of this.nodes) {
      mkdirSync(n.dir, { recursive: true });
      const args = [
        bundle,
        'start',
        '--node-id',
        n.id,
        '--data-dir',
        n.dir,
        '--http-bind',
        `${HOST}:${n.http}`,
        '--mgmt-bind',
        `${HOST}:${n.mgmt}`,
        '--discovery',
        'manual',
        '--cluster-cookie',
        COOKIE,
        '--log-level',
        'warn',
      ];
      if (n.id !== 'n0') args.push('--join', `http://${HOST}:${this.nodes[0].mgmt}`);
      n.proc = spawn(process.execPath, args, { cwd: n.dir, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(n.proc);
      n.lines = tail(n.proc, `gandalf ${n.id}`);
    }
    try {
      for (const n of this.nodes) {
        await waitFor(`gandalf ${n.id} /health`, async () => (await request(gandalfAgent, n.http, 'GET', '/health', undefined, 2000)).status === 200, 30_000);
      }
      await waitFor(
        'gandalf system group with 3 voters',
        async () => {
          const st = (await request(gandalfAgent, this.nodes[0].http, 'GET', '/status', undefined, 2000)).body;
          const sys = st?.replicas?.find((r) => r.group === 'system');
          return sys && Array.isArray(sys.voters) && sys.voters.length === 3 && sys.leader;
        },
        60_000,
        250,
      );
      log('gandalf: 3 nodes up, system group has 3 voters');
      // The first write to a new database creates it (placement, replicas): retry up to 60 s.
      const t0 = now();
      let attempts = 0;
      await waitFor(
        'gandalf CREATE TABLE on db bench',
        async () => {
          attempts++;
          const r = await request(
            gandalfAgent,
            this.nodes[0].http,
            'POST',
            '/db/execute?db=bench',
            [['CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)'], ['CREATE TABLE IF NOT EXISTS r(id INTEGER PRIMARY KEY, v TEXT)']],
            20_000,
          );
          if (r.status !== 200) log(`gandalf: first write to db bench -> HTTP ${r.status} ${r.text.slice(0, 200)}; retrying`);
          return r.status === 200 && !r.body?.results?.some((x) => x.error);
        },
        60_000,
        500,
      );
      this.firstWriteMs = now() - t0;
      log(`gandalf: db bench created (first write took ${this.firstWriteMs.toFixed(0)} ms, ${attempts} attempt(s))`);
      await waitFor(
        'gandalf db.bench with 3 voters and a leader',
        async () => {
          const st = (await request(gandalfAgent, this.nodes[0].http, 'GET', '/status', undefined, 2000)).body;
          const g = st?.replicas?.find((r) => r.group === 'db.bench');
          return g && g.leader && g.voters?.length === 3;
        },
        30_000,
        250,
      );
    } catch (e) {
      for (const n of this.nodes) console.error(`--- gandalf ${n.id} last output:\n${n.lines.join('\n')}`);
      throw e;
    }
  },
  async status(node = this.nodes.find((n) => n.proc.exitCode === null && n.proc.signalCode === null)) {
    const r = await request(gandalfAgent, node.http, 'GET', '/status', undefined, 3000);
    if (r.status !== 200) throw new Error(`GET /status -> ${r.status}`);
    return r.body;
  },
  async leaderOf(group) {
    const st = await this.status();
    const id = st.replicas?.find((r) => r.group === group)?.leader;
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new BenchFailure(`gandalf: no leader for ${group} in /status: ${JSON.stringify(st.replicas)}`);
    return node;
  },
  async insert(node, timeoutMs = 15_000) {
    const r = await request(gandalfAgent, node.http, 'POST', '/db/execute?db=bench', [['INSERT INTO t(v) VALUES(?)', value()]], timeoutMs);
    if (r.status !== 200) throw new Error(`HTTP ${r.status} ${r.body?.code ?? r.text.slice(0, 120)}`);
    if (r.body?.results?.[0]?.error) throw new Error(`statement error: ${r.body.results[0].error}`);
    return true;
  },
  async exec(node, db, statements, timeoutMs = 30_000) {
    const r = await request(gandalfAgent, node.http, 'POST', `/db/execute?db=${db}`, statements, timeoutMs);
    if (r.status !== 200) throw new Error(`HTTP ${r.status} ${r.body?.code ?? r.text.slice(0, 120)}`);
    const failed = r.body?.results?.find((x) => x.error);
    if (failed) throw new Error(`statement error: ${failed.error}`);
    return true;
  },
  async insertBatch(node, rows) {
    const sql = `INSERT INTO r(v) VALUES ${Array.from({ length: rows }, () => '(?)').join(',')}`;
    const stmt = [sql];
    for (let i = 0; i < rows; i++) stmt.push(value());
    const r = await request(gandalfAgent, node.http, 'POST', '/db/execute?db=bench', [stmt], 30_000);
    if (r.status !== 200) throw new Error(`HTTP ${r.status} ${r.body?.code ?? r.text.slice(0, 120)}`);
    if (r.body?.results?.[0]?.error) throw new Error(`statement error: ${r.body.results[0].error}`);
    return true;
  },
  async openSession(node) {
    const r = await request(gandalfAgent, node.http, 'POST', '/session?ttl=10s');
    if (r.status !== 200 || !r.body?.session) throw new BenchFailure(`gandalf POST /session -> ${r.status} ${r.text}`);
    return r.body.session;
  },
  keepalive(node, session) {
    return request(gandalfAgent, node.http, 'POST', `/session/${encodeURIComponent(session)}/keepalive`).catch(() => undefined);
  },
  async acquire(node, name, session) {
    const r = await request(gandalfAgent, node.http, 'POST', `/lock/${name}/acquire?session=${encodeURIComponent(session)}&timeout=30s`, undefined, 35_000);
    if (r.status !== 200 || !r.body?.token) throw new Error(`acquire: HTTP ${r.status} ${r.body?.code ?? r.text.slice(0, 120)}`);
    return true;
  },
  async release(node, name, session) {
    const r = await request(gandalfAgent, node.http, 'POST', `/lock/${name}/release?session=${encodeURIComponent(session)}`);
    if (r.status !== 200 || r.body?.released !== true) throw new Error(`release: HTTP ${r.status} ${r.body?.code ?? r.text.slice(0, 120)}`);
    return true;
  },
};

// ---------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------
const etcd = {
  members: [], // {name, client, peer, proc, dir, lines, id}
  async start() {
    for (const p of [...ETCD_CLIENT_PORTS, ...ETCD_PEER_PORTS]) {
      if (!(await portFree(p))) throw new BenchFailure(`etcd: port ${HOST}:${p} is in use`);
    }
    const cluster = ETCD_PEER_PORTS.map((p, i) => `e${i}=http://${HOST}:${p}`).join(',');
    for (let i = 0; i < 3; i++) {
      const m = { name: `e${i}`, client: ETCD_CLIENT_PORTS[i], peer: ETCD_PEER_PORTS[i], dir: path.join(dataRoot, `etcd-e${i}`) };
      this.members.push(m);
      mkdirSync(m.dir, { recursive: true, mode: 0o700 });
      const args = [
        '--name',
        m.name,
        '--data-dir',
        m.dir,
        '--listen-client-urls',
        `http://${HOST}:${m.client}`,
        '--advertise-client-urls',
        `http://${HOST}:${m.client}`,
        '--listen-peer-urls',
        `http://${HOST}:${m.peer}`,
        '--initial-advertise-peer-urls',
        `http://${HOST}:${m.peer}`,
        '--initial-cluster',
        cluster,
        '--initial-cluster-token',
        'bench-etcd',
        '--initial-cluster-state',
        'new',
        '--logger',
        'zap',
        '--log-level',
        'warn',
      ];
      m.proc = spawn('etcd', args, { cwd: m.dir, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(m.proc);
      m.lines = tail(m.proc, `etcd ${m.name}`);
    }
    try {
      for (const m of this.members) {
        await waitFor(
          `etcd ${m.name} /health`,
          async () => {
            const r = await request(etcdAgent, m.client, 'GET', '/health', undefined, 2000);
            return r.status === 200 && r.body?.health === 'true';
          },
          30_000,
        );
        const st = await this.statusOf(m);
        m.id = st.header.member_id;
      }
      log('etcd: 3 members healthy');
    } catch (e) {
      for (const m of this.members) console.error(`--- etcd ${m.name} last output:\n${m.lines.join('\n')}`);
      throw e;
    }
  },
  async statusOf(m) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/maintenance/status', {}, 3000);
    if (r.status !== 200) throw new Error(`etcd status -> ${r.status} ${r.text}`);
    return r.body;
  },
  async leader() {
    for (const m of this.members) {
      if (m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
      const st = await this.statusOf(m);
      const l = this.members.find((x) => x.id === st.leader);
      if (l) return l;
    }
    throw new BenchFailure('etcd: no leader found');
  },
  async put(m, timeoutMs = 15_000) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/kv/put', { key: b64(`k/${valueCounter}`), value: b64(value()) }, timeoutMs);
    if (r.status !== 200 || r.body?.error) throw new Error(`put: HTTP ${r.status} ${r.text.slice(0, 120)}`);
    return true;
  },
  async putKey(m, key, text, timeoutMs = 30_000) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/kv/put', { key: b64(key), value: b64(text) }, timeoutMs);
    if (r.status !== 200 || r.body?.error) throw new Error(`put: HTTP ${r.status} ${r.text.slice(0, 120)}`);
    return true;
  },
  async putBatch(m, first, count) {
    const success = [];
    for (let i = 0; i < count; i++) success.push({ request_put: { key: b64(`rss/${String(first + i).padStart(7, '0')}`), value: b64(value()) } });
    const r = await request(etcdAgent, m.client, 'POST', '/v3/kv/txn', { success }, 30_000);
    if (r.status !== 200 || r.body?.succeeded !== true) throw new Error(`txn: HTTP ${r.status} ${r.text.slice(0, 120)}`);
    return true;
  },
  async grant(m) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/lease/grant', { TTL: 10 });
    if (r.status !== 200 || !r.body?.ID) throw new BenchFailure(`etcd lease grant -> ${r.status} ${r.text}`);
    return r.body.ID;
  },
  keepalive(m, lease) {
    return request(etcdAgent, m.client, 'POST', '/v3/lease/keepalive', { ID: lease }).catch(() => undefined);
  },
  async lock(m, name, lease) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/lock/lock', { name: b64(name), lease }, 35_000);
    if (r.status !== 200 || !r.body?.key) throw new Error(`lock: HTTP ${r.status} ${r.text.slice(0, 120)}`);
    return r.body.key;
  },
  async unlock(m, key) {
    const r = await request(etcdAgent, m.client, 'POST', '/v3/lock/unlock', { key });
    if (r.status !== 200 || r.body?.error) throw new Error(`unlock: HTTP ${r.status} ${r.text.slice(0, 120)}`);
    return true;
  },
};

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------
/** Runs fn while a keepalive is sent every 3 s for each session/lease. */
async function withKeepalive(fn, sendAll) {
  const timer = setInterval(() => void sendAll(), 3000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Lock cycles: `clients` clients (one session/lease each) acquire+release one lock name. */
async function lockLoad(label, sys, clients, [maxOps, maxMs]) {
  const lockName = `bench-lock-${clients}`;
  if (sys === 'gandalf') {
    const node = await gandalf.leaderOf('system');
    const sessions = [];
    for (let i = 0; i < clients; i++) sessions.push(await gandalf.openSession(node));
    const r = await withKeepalive(
      () =>
        runLoad(label, {
          concurrency: clients,
          maxOps,
          maxMs,
          op: async (w) => {
            // An empty critical section (mutual exclusion itself is tested, not benchmarked).
            await gandalf.acquire(node, lockName, sessions[w]);
            return gandalf.release(node, lockName, sessions[w]);
          },
        }),
      () => Promise.all(sessions.map((s) => gandalf.keepalive(node, s))),
    );
    r.node = node.id;
    return r;
  }
  const m = await etcd.leader();
  const leases = [];
  for (let i = 0; i < clients; i++) leases.push(await etcd.grant(m));
  const r = await withKeepalive(
    () =>
      runLoad(label, {
        concurrency: clients,
        maxOps,
        maxMs,
        op: async (w) => {
          const key = await etcd.lock(m, lockName, leases[w]);
          return etcd.unlock(m, key);
        },
      }),
    () => Promise.all(leases.map((l) => etcd.keepalive(m, l))),
  );
  r.node = m.name;
  return r;
}

/** Loads rows up to `target` (batches of `batch`, 4 in flight), then reads VmRSS of all members. */
async function loadRows(sys, from, target, batch) {
  const starts = [];
  for (let s = from; s < target; s += batch) starts.push(s);
  const t0 = now();
  let next = 0;
  const leaderNode = sys === 'gandalf' ? await gandalf.leaderOf('db.bench') : await etcd.leader();
  const worker = async () => {
    while (next < starts.length && now() - t0 < 120_000) {
      const s = starts[next++];
      const n = Math.min(batch, target - s);
      let done = false;
      for (let attempt = 0; attempt < 5 && !done; attempt++) {
        try {
          done = sys === 'gandalf' ? await gandalf.insertBatch(leaderNode, n) : await etcd.putBatch(leaderNode, s, n);
        } catch (e) {
          log(`${sys}: batch load at row ${s} failed (${e.message}); retrying`);
          await sleep(200);
        }
      }
      if (!done) throw new BenchFailure(`${sys}: loading rows keeps failing at row ${s}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  if (next < starts.length) throw new BenchFailure(`${sys}: loading ${target} rows did not finish within 120 s`);
  const loadMs = now() - t0;
  await sleep(1500); // let the apply/fsync pipeline settle
  const procs = sys === 'gandalf' ? gandalf.nodes : etcd.members;
  const rss = procs.map((p) => rssKiB(p.proc.pid));
  log(`${sys}: ${target} rows loaded (+${target - from} in ${(loadMs / 1000).toFixed(1)} s), RSS KiB ${rss.join(' / ')}`);
  return { rss, loadMs };
}

/** A distinct, incompressible text of `bytes` bytes (a large row or value). */
function bulk(bytes) {
  return randomBytes(Math.ceil((bytes * 3) / 4))
    .toString('base64')
    .slice(0, bytes);
}

/**
 * Card wear: grows a database (gandalf: db "wear"; etcd: keys "wear/big/*")
 * with 1 MiB rows to `mib` MiB, then runs small writes (64 in flight) and
 * divides the bytes all three members wrote to storage meanwhile by the
 * writes acknowledged. Snapshots are taken at the members' defaults, so the
 * run holds at least two snapshot intervals of gandalf's (--snapshot-entries).
 */
async function wear(sys, fromMib, mib) {
  const procs = sys === 'gandalf' ? gandalf.nodes : etcd.members;
  const leaderNode = sys === 'gandalf' ? await gandalf.leaderOf(gandalf.wearReady ? 'db.wear' : 'system') : await etcd.leader();
  let target = leaderNode;
  if (sys === 'gandalf' && !gandalf.wearReady) {
    await waitFor(
      'gandalf db wear',
      () =>
        gandalf
          .exec(target, 'wear', [['CREATE TABLE IF NOT EXISTS big(v TEXT)'], ['CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v TEXT)']])
          .catch(() => false),
      60_000,
      500,
    );
    await waitFor('gandalf db.wear leader', async () => (target = await gandalf.leaderOf('db.wear')), 30_000, 250);
    gandalf.wearReady = true;
  }
  for (let i = fromMib; i < mib; i++) {
    let done = false;
    for (let attempt = 0; attempt < 5 && !done; attempt++) {
      try {
        done =
          sys === 'gandalf'
            ? await gandalf.exec(target, 'wear', [['INSERT INTO big(v) VALUES(?)', bulk(1024 * 1024)]])
            : await etcd.putKey(target, `wear/big/${i}`, bulk(1024 * 1024));
      } catch (e) {
        log(`${sys}: loading 1 MiB row ${i} failed (${e.message}); retrying`);
        await sleep(500);
      }
    }
    if (!done) throw new BenchFailure(`${sys}: loading the wear database keeps failing at ${i} MiB`);
  }
  const small = () =>
    sys === 'gandalf'
      ? gandalf.exec(target, 'wear', [['INSERT INTO w(v) VALUES(?)', value()]], 15_000)
      : etcd.putKey(target, `wear/k/${valueCounter}`, value(), 15_000);
  // Warm-up, the same for both: the first small writes after the large rows still rewrite pages the
  // large rows share (etcd's B+tree leaf), and gandalf's first snapshot interval after them still holds them.
  await runLoad(`${sys} warm-up on a ${mib} MiB database`, { concurrency: INFLIGHT, maxOps: LIMITS.wearWarmup[0], maxMs: LIMITS.wearWarmup[1], op: small });
  await sleep(2000);
  const before = procs.map((p) => writtenBytes(p.proc.pid));
  const r = await runLoad(`${sys} small writes on a ${mib} MiB database, ${INFLIGHT} in flight`, {
    concurrency: INFLIGHT,
    maxOps: LIMITS.wear[0],
    maxMs: LIMITS.wear[1],
    op: small,
  });
  await sleep(2000);
  const after = procs.map((p) => writtenBytes(p.proc.pid));
  const total = after.reduce((n, b, i) => n + b - before[i], 0);
  const perWrite = total / Math.max(1, r.ok);
  log(
    `${sys}: ${mib} MiB database: ${(total / 2 ** 20).toFixed(1)} MiB written by 3 members for ${r.ok} writes -> ${(perWrite / 1024).toFixed(2)} KiB per write`,
  );
  if (sys === 'gandalf') {
    if (r.perSec < 500) for (const n of gandalf.nodes) log(`gandalf ${n.id}: slow writes; last output:\n${n.lines.slice(-15).join('\n')}`);
    for (const n of gandalf.nodes) {
      const dir = path.join(n.dir, 'raft', 'db.wear', 'snapshots');
      const files = existsSync(dir)
        ? readdirSync(dir).map((f) => `${f.replace(/^snap-0*/, '')} ${(statSync(path.join(dir, f)).size / 2 ** 20).toFixed(1)} MiB`)
        : [];
      log(`gandalf ${n.id}: db.wear snapshots on disk: ${files.join(', ') || 'none'}`);
    }
  }
  return { perWrite, total, ok: r.ok };
}

/**
 * SIGKILLs the leader and writes in a loop through a surviving non-leader
 * node; returns the time from the kill to the first successful write that was
 * sent after the kill.
 */
async function failover(sys) {
  const leader = sys === 'gandalf' ? await gandalf.leaderOf('db.bench') : await etcd.leader();
  const all = sys === 'gandalf' ? gandalf.nodes : etcd.members;
  const via = all.find((n) => n !== leader);
  const write = (timeoutMs) => (sys === 'gandalf' ? gandalf.insert(via, timeoutMs) : etcd.put(via, timeoutMs));
  // Warm up: the survivor must be writing fine before the kill.
  for (let i = 0, ok = 0; ok < 5; i++) {
    if (i > 50) throw new BenchFailure(`${sys}: writes through ${via.id ?? via.name} fail before the kill`);
    try {
      if (await write(15_000)) ok++;
    } catch {
      await sleep(20);
    }
  }
  let killedAt = 0;
  const leaderName = sys === 'gandalf' ? leader.id : leader.name;
  const viaName = sys === 'gandalf' ? via.id : via.name;
  let stop = false;
  // Two clients write in a loop through the survivor: a patient one (15 s
  // request timeout, the headline figure) and an impatient one that abandons
  // a request after FAILOVER_CLIENT_TIMEOUT_MS and sends a new one.
  const writer = async (timeoutMs) => {
    const res = { firstOk: NaN, attempts: 0, errors: new Map() };
    const hardDeadline = now() + LIMITS.failover[0] + 20_000;
    for (let i = 0; i < 1_000_000 && !stop && now() < hardDeadline; i++) {
      const sentAt = now();
      try {
        await write(timeoutMs);
        if (killedAt && sentAt >= killedAt) {
          res.firstOk = now() - killedAt;
          return res;
        }
      } catch (e) {
        if (killedAt) {
          res.attempts++;
          const k = e.message
            .replace(/\d{4,}/g, 'N')
            .replace(/^timeout after.*/, 'client timeout')
            .slice(0, 100);
          res.errors.set(k, (res.errors.get(k) ?? 0) + 1);
        }
        await sleep(20);
      }
    }
    return res;
  };
  const patient = writer(15_000);
  const impatient = writer(FAILOVER_CLIENT_TIMEOUT_MS);
  // Meanwhile, the survivor's own status shows when it knows a new leader.
  let electedMs = NaN;
  const newLeader = async () => {
    if (sys === 'gandalf') {
      const st = await gandalf.status(via);
      const l = st.replicas?.find((r) => r.group === 'db.bench')?.leader;
      return l && l !== leader.id;
    }
    const st = await etcd.statusOf(via);
    return st.leader && st.leader !== '0' && st.leader !== leader.id;
  };
  const poller = (async () => {
    while (!killedAt) await sleep(5);
    for (let i = 0; i < 100_000 && !stop && now() - killedAt < LIMITS.failover[0]; i++) {
      try {
        if (await newLeader()) {
          electedMs = now() - killedAt;
          return;
        }
      } catch {
        /* survivor busy: poll again */
      }
      await sleep(25);
    }
  })();
  await sleep(300);
  leader.proc.expectedExit = true;
  killedAt = now();
  leader.proc.kill('SIGKILL');
  log(`${sys}: SIGKILL leader ${leaderName} (pid ${leader.proc.pid}); writing through ${viaName}`);
  const giveUp = setTimeout(() => (stop = true), LIMITS.failover[0]);
  const [p, q] = await Promise.all([patient, impatient]);
  const extra = setTimeout(() => (stop = true), 5000);
  await poller;
  clearTimeout(extra);
  clearTimeout(giveUp);
  stop = true;
  const ms = (v) => (Number.isNaN(v) ? 'NONE' : `${v.toFixed(0)} ms`);
  const errs = (r) => `${r.attempts} failed attempts${r.errors.size ? `: ${[...r.errors].map(([k, v]) => `${v}x ${k}`).join('; ')}` : ''}`;
  log(
    `${sys}: first write after kill: ${ms(p.firstOk)} (${errs(p)}); with a ${FAILOVER_CLIENT_TIMEOUT_MS} ms client timeout: ${ms(q.firstOk)} (${errs(q)}); new leader in the survivor's status after ${ms(electedMs)}`,
  );
  return { ms: p.firstOk, impatientMs: q.firstOk, electedMs, leader: leaderName, via: viaName, patient: p, impatient: q, errs };
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------
const rows = [];
/** higher: true when a bigger figure is better (ratio gandalf/etcd), else etcd/gandalf. */
function addRow(name, g, e, { unit = '', digits = 1, higher = true, fmt } = {}) {
  const f = fmt ?? ((v) => (Number.isFinite(v) ? `${v.toFixed(digits)}${unit}` : 'n/a'));
  const gv = typeof g === 'object' ? g.value : g;
  const ev = typeof e === 'object' ? e.value : e;
  const ratio = Number.isFinite(gv) && Number.isFinite(ev) && gv > 0 && ev > 0 ? (higher ? gv / ev : ev / gv) : NaN;
  rows.push({ name, g: typeof g === 'object' ? g.text : f(g), e: typeof e === 'object' ? e.text : f(e), ratio, higher });
}

function printTable() {
  const head = ['figure', 'gandalf', 'etcd', 'ratio'];
  const body = rows.map((r) => [r.name, r.g, r.e, Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}${r.higher ? '' : ' (t)'}` : 'n/a']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('-|-'));
  for (const b of body) console.log(line(b));
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------
function ensureEtcd() {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new BenchFailure('etcd is not installed and this is not root: install it with `sudo apt-get install -y etcd-server` and run again');
  }
  console.log('etcd not found on PATH: running `apt-get install -y etcd-server`');
  const r = spawnSync('apt-get', ['install', '-y', 'etcd-server'], {
    stdio: 'inherit',
    timeout: 300_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const again = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  if (r.status !== 0 || again.status !== 0) throw new BenchFailure('apt-get install -y etcd-server failed (try `apt-get update` first)');
}

async function main() {
  ensureEtcd();
  dataRoot = mkdtempSync(path.join(os.tmpdir(), 'replication-bench-'));
  const cpus = os.cpus();
  const gVersion = (() => {
    try {
      const v = JSON.parse(execFileSync(process.execPath, [bundle, 'version', '--json'], { encoding: 'utf8', timeout: 20_000 }));
      return `${v.version} (commit ${v.commit}, ${v.transport}, node ${v.node})`;
    } catch (e) {
      return existsSync(bundle) ? `unknown (${e.message.split('\n')[0]})` : 'not built yet';
    }
  })();
  const eVersion = execFileSync('etcd', ['--version'], { encoding: 'utf8', timeout: 20_000 }).split('\n')[0];

  log(`data under ${dataRoot}`);
  await Promise.all([gandalf.start(), etcd.start()]);

  const gVersionFinal =
    gVersion === 'not built yet' ? JSON.parse(execFileSync(process.execPath, [bundle, 'version', '--json'], { encoding: 'utf8' })).version : gVersion;

  // 1. sequential writes, to the leader
  const gSeqNode = await gandalf.leaderOf('db.bench');
  const eSeqNode = await etcd.leader();
  const gSeq = await runLoad(`gandalf sequential writes -> leader ${gSeqNode.id}`, {
    concurrency: 1,
    maxOps: LIMITS.seq[0],
    maxMs: LIMITS.seq[1],
    op: () => gandalf.insert(gSeqNode),
  });
  const eSeq = await runLoad(`etcd sequential writes -> leader ${eSeqNode.name}`, {
    concurrency: 1,
    maxOps: LIMITS.seq[0],
    maxMs: LIMITS.seq[1],
    op: () => etcd.put(eSeqNode),
  });
  addRow('1. sequential writes/s (1 client, to leader)', gSeq.perSec, eSeq.perSec);
  addRow('1. sequential write p50 latency', gSeq.p50, eSeq.p50, { unit: ' ms', digits: 2, higher: false });
  addRow('1. sequential write p99 latency', gSeq.p99, eSeq.p99, { unit: ' ms', digits: 2, higher: false });

  // 2. 64 in flight, to the leader
  const gPar = await runLoad(`gandalf ${INFLIGHT} in flight -> leader ${gSeqNode.id}`, {
    concurrency: INFLIGHT,
    maxOps: LIMITS.inflight[0],
    maxMs: LIMITS.inflight[1],
    op: () => gandalf.insert(gSeqNode),
  });
  const ePar = await runLoad(`etcd ${INFLIGHT} in flight -> leader ${eSeqNode.name}`, {
    concurrency: INFLIGHT,
    maxOps: LIMITS.inflight[0],
    maxMs: LIMITS.inflight[1],
    op: () => etcd.put(eSeqNode),
  });
  addRow(`2. writes/s, ${INFLIGHT} in flight (to leader)`, gPar.perSec, ePar.perSec);
  addRow(`2. write p99 latency, ${INFLIGHT} in flight`, gPar.p99, ePar.p99, { unit: ' ms', digits: 1, higher: false });

  // 3. uncontended lock cycles
  const gLock = await lockLoad('gandalf lock cycles, 1 client', 'gandalf', 1, LIMITS.lockSeq);
  const eLock = await lockLoad('etcd lock cycles, 1 client', 'etcd', 1, LIMITS.lockSeq);
  addRow('3. lock acquire+release cycles/s (1 client)', gLock.perSec, eLock.perSec);

  // 4. contended critical sections
  const gCont = await lockLoad(`gandalf critical sections, ${CONTENDERS} clients`, 'gandalf', CONTENDERS, LIMITS.lockContended);
  const eCont = await lockLoad(`etcd critical sections, ${CONTENDERS} clients`, 'etcd', CONTENDERS, LIMITS.lockContended);
  addRow(`4. critical sections/s (${CONTENDERS} clients, 1 lock)`, gCont.perSec, eCont.perSec);

  // 6. RSS after 10k / 100k rows (measured before the kill so all three members are alive)
  const g10 = await loadRows('gandalf', 0, 10_000, 500);
  const e10 = await loadRows('etcd', 0, 10_000, 100);
  const g100 = await loadRows('gandalf', 10_000, 100_000, 500);
  const e100 = await loadRows('etcd', 10_000, 100_000, 100);

  // 7. card wear: bytes written to storage per acknowledged write (after the RSS lines, which it would skew;
  // before the kill, so all three members are alive)
  const gWear10 = await wear('gandalf', 0, 10);
  const eWear10 = await wear('etcd', 0, 10);
  const gWear100 = await wear('gandalf', 10, 100);
  const eWear100 = await wear('etcd', 10, 100);

  // 5. SIGKILL of the leader -> first successful write through a survivor
  const gFail = await failover('gandalf');
  const eFail = await failover('etcd');
  addRow('5. SIGKILL leader -> first write ok', gFail.ms, eFail.ms, { unit: ' ms', digits: 0, higher: false });
  addRow(`5. (info) same, client timeout ${FAILOVER_CLIENT_TIMEOUT_MS} ms`, gFail.impatientMs, eFail.impatientMs, { unit: ' ms', digits: 0, higher: false });
  addRow('5. (info) SIGKILL -> new leader in status', gFail.electedMs, eFail.electedMs, { unit: ' ms', digits: 0, higher: false });

  const mib = (kib) => kib / 1024;
  const rssCell = (r) => ({ value: Math.max(...r.rss), text: `${r.rss.map((k) => mib(k).toFixed(0)).join('/')} MiB` });
  addRow('6. RSS per node after 10k rows (3 nodes)', rssCell(g10), rssCell(e10), { higher: false });
  addRow('6. RSS per node after 100k rows (3 nodes)', rssCell(g100), rssCell(e100), { higher: false });
  addRow('6. time to load the next 90k rows', g100.loadMs / 1000, e100.loadMs / 1000, { unit: ' s', digits: 1, higher: false });

  addRow('7. bytes written per write, 10 MiB database (3 nodes)', gWear10.perWrite / 1024, eWear10.perWrite / 1024, { unit: ' KiB', digits: 2, higher: false });
  addRow('7. bytes written per write, 100 MiB database (3 nodes)', gWear100.perWrite / 1024, eWear100.perWrite / 1024, {
    unit: ' KiB',
    digits: 2,
    higher: false,
  });

  const totalS = (now() - T_START) / 1000;
  console.log('');
  console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, ${os.platform()} ${os.release()}, node ${process.version}`);
  console.log(`gandalf: ${gVersionFinal}`);
  console.log(`etcd:    ${eVersion}`);
  console.log(
    `setup:   3 nodes each on 127.0.0.1, fsync on, ${VALUE_BYTES} B values; lines 1-2 sent to the leader's node (gandalf: db.bench leader ${gSeqNode.id}; etcd: leader ${eSeqNode.name}); lines 3-4 to the leader (gandalf: system group ${gLock.node}/${gCont.node}; etcd ${eLock.node}/${eCont.node}); line 5 writes in a loop through a non-leader (gandalf ${gFail.via}, etcd ${eFail.via}), SIGKILLs the leader (gandalf ${gFail.leader}, etcd ${eFail.leader}) and times the first 200 to a request sent after the kill`,
  );
  console.log('ratio:   rates are gandalf/etcd, times and sizes (t) are etcd/gandalf: > 1.0 always means gandalf is better');
  console.log('');
  printTable();
  console.log('');
  const notes = [];
  notes.push(`gandalf first write to new db: ${gandalf.firstWriteMs.toFixed(0)} ms`);
  for (const [name, f] of [
    ['gandalf', gFail],
    ['etcd', eFail],
  ]) {
    notes.push(
      `failover: ${name} killed ${f.leader}, wrote via ${f.via}; patient client ${f.errs(f.patient)}; ${FAILOVER_CLIENT_TIMEOUT_MS} ms client ${f.errs(f.impatient)}`,
    );
  }
  const allRuns = {
    'gandalf seq': gSeq,
    'etcd seq': eSeq,
    'gandalf 64': gPar,
    'etcd 64': ePar,
    'gandalf lock': gLock,
    'etcd lock': eLock,
    'gandalf contended': gCont,
    'etcd contended': eCont,
  };
  for (const [k, r] of Object.entries(allRuns)) {
    notes.push(
      `${k}: ${r.ok} ok in ${(r.elapsedMs / 1000).toFixed(1)} s${r.failed ? `, ${r.failed} failed (${[...r.errors].map(([e, v]) => `${v}x ${e}`).join('; ')})` : ''}`,
    );
  }
  for (const n of notes) console.log(`note: ${n}`);
  const meets = rows
    .filter((r) => Number.isFinite(r.ratio) && r.ratio >= 1 && !r.name.includes('(info)'))
    .map((r) => r.name.split(' ')[0] + ' ' + r.name.split(' ').slice(1).join(' '));
  console.log('');
  console.log(`ratio >= 1.0 on: ${meets.length ? meets.join('; ') : 'none'}`);
  console.log(`total runtime: ${totalS.toFixed(1)} s`);
  if (!Number.isFinite(gFail.ms) || !Number.isFinite(eFail.ms)) throw new BenchFailure('a system accepted no write within 60 s of the leader kill');
}

let exitCode = 0;
try {
  await main();
} catch (e) {
  exitCode = 1;
  console.error(`replication-bench failed: ${e instanceof BenchFailure ? e.message : e.stack}`);
} finally {
  for (const c of children) c.expectedExit = true;
  await stopAll();
  gandalfAgent.destroy();
  etcdAgent.destroy();
}
process.exit(exitCode);
