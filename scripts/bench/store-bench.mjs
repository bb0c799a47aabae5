#!/usr/bin/env node
// Single-node store benchmark: starts the built bundle on 127.0.0.1 and
// measures durable writes (1 client, 64 concurrent: group commit), reads, and
// the raw fdatasync rate of the same directory (the physical limit). Every
// loop is bounded in count and time. Usage: npm run bench [-- --seconds N]
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, fdatasyncSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 3;
const MAX_OPS = 200_000;
const dataRoot = mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'gandalf-bench-'));
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function request(port, method, pathname, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method, path: pathname, agent, headers: data ? { 'content-length': Buffer.byteLength(data) } : {} },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks))) : reject(new Error(`HTTP ${res.statusCode} ${Buffer.concat(chunks)}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

async function run(concurrency, op) {
  const latencies = [];
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  const worker = async () => {
    while (performance.now() < deadline && ops < MAX_OPS) {
      ops++;
      const t = performance.now();
      await op(ops);
      latencies.push(performance.now() - t);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSec: latencies.length / elapsed, p50: pct(latencies, 50), p99: pct(latencies, 99), n: latencies.length };
}

function fsyncRate() {
  const file = path.join(dataRoot, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(512, 1);
  const deadline = performance.now() + seconds * 1000;
  const lat = [];
  while (performance.now() < deadline && lat.length < MAX_OPS) {
    const t = performance.now();
    writeSync(fd, block);
    fdatasyncSync(fd);
    lat.push(performance.now() - t);
  }
  closeSync(fd);
  rmSync(file);
  const total = lat.reduce((a, b) => a + b, 0) / 1000;
  lat.sort((a, b) => a - b);
  return { perSec: lat.length / total, p50: pct(lat, 50), p99: pct(lat, 99), n: lat.length };
}

const httpPort = await freePort();
const mgmtPort = await freePort();
const node = spawn(
  process.execPath,
  [
    path.join(root, 'dist/gandalf-node.cjs'),
    'start',
    '--data-dir',
    path.join(dataRoot, 'node'),
    '--http-bind',
    `127.0.0.1:${httpPort}`,
    '--mgmt-bind',
    `127.0.0.1:${mgmtPort}`,
    '--log-level',
    'error',
    '--discovery',
    'none',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
try {
  for (let i = 0; ; i++) {
    try {
      await request(httpPort, 'GET', '/health');
      break;
    } catch (err) {
      if (i > 300) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await request(httpPort, 'POST', '/db/execute', ['CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)']);
  const value = 'v'.repeat(100);
  let key = 0;
  const write = () => request(httpPort, 'POST', '/db/execute', [['INSERT INTO kv(k, v) VALUES(?, ?)', ++key, value]]);
  const read = (i) => request(httpPort, 'GET', `/db/query?q=${encodeURIComponent(`SELECT v FROM kv WHERE k = ${1 + (i % Math.max(1, key))}`)}`);

  const rows = [
    ['raw fdatasync of the data dir (512 B appends)', fsyncRate()],
    ['durable writes, 1 client', await run(1, write)],
    ['durable writes, 64 concurrent (group commit)', await run(64, write)],
    ['reads by key, 1 client', await run(1, read)],
    ['reads by key, 64 concurrent', await run(64, read)],
  ];
  const status = await request(httpPort, 'GET', '/status');
  console.log(
    `gandalf-node store benchmark: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform}-${process.arch}, node ${process.version}`,
  );
  console.log(`data dir ${dataRoot}; ${seconds} s per line; 100-byte values; HTTP/1.1 keep-alive on 127.0.0.1\n`);
  console.log(`${'measurement'.padEnd(48)} ${'ops/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'ops'.padStart(8)}`);
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(48)} ${r.perSec.toFixed(0).padStart(9)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${String(r.n).padStart(8)}`,
    );
  }
  const db = status.replicas.find((r) => r.group.startsWith('db.'));
  console.log(
    `\nafter the run: ${db.applied_index} log entries applied, database ${(db.size_bytes / 1024).toFixed(0)} KiB, ${db.snapshot_index} in the newest snapshot, RSS of the bench client ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
} finally {
  node.kill('SIGTERM');
  await new Promise((r) => node.once('exit', r));
  agent.destroy();
  rmSync(dataRoot, { recursive: true, force: true });
}
