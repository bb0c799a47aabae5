/** The node as a process: configuration errors, the data dir lock, signals, systemd notification, the CLI. */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, runCli, startNode } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

describe('node process', () => {
  it('stops at start with one clear line and exit code 2 on an invalid setting', async () => {
    const dir = tempDir();
    let r = await runCli(['start', '--data-dir', dir, '--log-level', 'loud']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('gandalf-node: invalid value "loud" for --log-level: expected one of debug, info, warn, error\n');
    r = await runCli(['start', '--data-dir', dir], { GANDALF_HTTP_BIND: 'nowhere' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--http-bind \(from GANDALF_HTTP_BIND\): expected HOST:PORT/);
    r = await runCli(['start', '--colour', 'red']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--colour'.*see "gandalf-node start --help"/);
    const conf = path.join(dir, 'g.conf');
    writeFileSync(conf, 'snapshot-entries = many\n');
    r = await runCli(['start', '--config', conf]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--snapshot-entries \(from snapshot-entries in .*g\.conf\)/);
    r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    r = await runCli([
      'start',
      '--data-dir',
      dir,
      '--http-bind',
      '127.0.0.1:0',
      '--mgmt-bind',
      '127.0.0.1:0',
      '--discovery',
      'none',
      '--cluster-cookie-file',
      path.join(dir, 'no-such-file'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^gandalf-node: cannot read --cluster-cookie-file .*no-such-file/);
  });

  it('exits 2 on every usage error of the client commands, before reaching any node', async () => {
    const nowhere = { GANDALF_HTTP_BIND: `127.0.0.1:${await freePort()}` };
    for (const [args, message] of [
      [['kv', 'put', 'onlykey'], /usage: gandalf-node kv put KEY VALUE/],
      [['kv', 'frob', 'x'], /unknown kv command "frob"/],
      [['kv', 'get'], /usage: gandalf-node kv get KEY/],
      [['kv', 'put', 'k', 'v', '--prev-revision', 'seven'], /--prev-revision must be a revision number/],
      [['lock', 'job', '--timeout', 'abc', '--', 'true'], /--timeout must be a duration/],
      [['lock', 'job', '--ttl', '5 parsecs', '--', 'true'], /--ttl must be a duration/],
    ] as const) {
      const r = await runCli([...args], nowhere);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('never runs mDNS on other interfaces when its mgmt endpoint is loopback-only', async () => {
    const node = await startNode({ dataDir: tempDir(), args: ['--discovery', 'mdns'] });
    expect(node.log).toMatch(/mDNS has no interface to use/);
    expect(node.log).not.toMatch(/mDNS discovery on/);
    expect((await node.get('/status')).body.cluster).toMatchObject({ name: 'gandalf', open: true, members: 1 });
    expect((await node.stop()).code).toBe(0);
  });

  it('refuses a second node on the same data dir', async () => {
    const dataDir = tempDir();
    const first = await startNode({ dataDir });
    const second = await startNode({ dataDir, noWait: true });
    const exit = await second.exited;
    expect(exit.code).toBe(1);
    expect(second.log).toMatch(/data dir .* is in use by another gandalf-node \(pid \d+\)/);
    expect((await first.get('/health')).status).toBe(200);
    expect((await first.stop()).code).toBe(0);
  });

  it('on SIGTERM finishes in-flight requests, writes a snapshot and exits 0; SIGINT too', async () => {
    const dataDir = tempDir();
    let node = await startNode({ dataDir });
    await node.post('/db/execute', ['CREATE TABLE t(v)']);
    // A request that takes a while to apply, in flight when the signal arrives.
    const big = Array.from({ length: 3000 }, (_, i) => ['INSERT INTO t VALUES(?)', i]);
    const inFlight = node.post('/db/execute?transaction', big);
    await new Promise((r) => setTimeout(r, 30));
    node.proc.kill('SIGTERM');
    const reply = await inFlight;
    expect(reply.status).toBe(200);
    expect(reply.body.results).toHaveLength(3000);
    expect((await node.exited).code).toBe(0);
    expect(node.log).toMatch(/"msg":"stopped"/);
    expect(readdirSync(path.join(dataDir, 'raft/db.main/snapshots')).filter((f) => f.endsWith('.snap'))).toHaveLength(1);

    node = await startNode({ dataDir });
    expect(node.log).toMatch(/"replayed":0/); // everything came from the final snapshot
    expect((await node.get('/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values).toEqual([[3000]]);
    expect((await node.stop('SIGINT')).code).toBe(0);
  });

  it('tells systemd READY=1, WATCHDOG=1 and STOPPING=1 through NOTIFY_SOCKET', async () => {
    const dir = tempDir();
    const socket = path.join(dir, 'notify.sock');
    const listener = spawn('python3', [
      '-c',
      `import socket,sys,os
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); print("up",flush=True)
while True: print(s.recv(65536).decode().replace("\\n"," "),flush=True)`,
      socket,
    ]);
    let received = '';
    listener.stdout.on('data', (d: Buffer) => (received += d.toString()));
    try {
      while (!received.includes('up')) await new Promise((r) => setTimeout(r, 20));
      const node = await startNode({ dataDir: path.join(dir, 'data'), env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' } });
      const deadline = Date.now() + 10_000;
      while (!(received.includes('READY=1') && (received.match(/WATCHDOG=1/g)?.length ?? 0) >= 2) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(received).toMatch(new RegExp(`READY=1 MAINPID=${node.proc.pid}`));
      expect(received.match(/WATCHDOG=1/g)!.length).toBeGreaterThanOrEqual(2);
      expect(received).not.toMatch(/STOPPING=1/);
      expect((await node.stop()).code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      expect(received).toMatch(/STOPPING=1/);
    } finally {
      listener.kill();
    }
  });

  it('CLI: sql, status, version and help against a running node; one clear line when none runs', async () => {
    const node = await startNode({ dataDir: tempDir() });
    const env = { GANDALF_HTTP_BIND: `127.0.0.1:${node.httpPort}` };
    let r = await runCli(['sql', 'CREATE TABLE kv(k, v)'], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).results[0]).toEqual({ last_insert_id: 0, rows_affected: 0 });
    r = await runCli(['sql', '--db', 'main', "INSERT INTO kv VALUES('a', 1)"], env);
    expect(r.code).toBe(0);
    // a WITH clause that introduces a write is a write
    r = await runCli(['sql', "WITH n(k, v) AS (VALUES('b', 2)) INSERT INTO kv SELECT k, v FROM n"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).results[0]).toMatchObject({ rows_affected: 1 });
    r = await runCli(['sql', "DELETE FROM kv WHERE k = 'b'"], env);
    expect(r.code).toBe(0);
    // one result per statement, for reads and writes
    r = await runCli(['sql', 'SELECT 1; SELECT 2'], env);
    expect(JSON.parse(r.stdout).results.map((x: { values: unknown[][] }) => x.values)).toEqual([[[1]], [[2]]]);
    r = await runCli(['sql', "INSERT INTO kv VALUES('c', 3); DELETE FROM kv WHERE k = 'c'"], env);
    expect(JSON.parse(r.stdout).results).toEqual([expect.objectContaining({ rows_affected: 1 }), expect.objectContaining({ rows_affected: 1 })]);
    r = await runCli(['sql', 'SELECT k, v FROM kv'], env);
    expect(JSON.parse(r.stdout).results[0].values).toEqual([['a', 1]]);
    r = await runCli(['sql', 'SELECT nope FROM kv'], env);
    expect(r.code).toBe(1);
    r = await runCli(['sql', 'SELECT 1', '--db', 'absent'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/404 unknown_database/);
    r = await runCli(['status', '--http-bind', `127.0.0.1:${node.httpPort}`]);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status).toMatchObject({ state: 'serving', arch: process.arch, databases: [{ name: 'main' }] });
    expect(typeof status.node_id).toBe('string');
    r = await runCli(['version']);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: expect.any(String), arch: process.arch, node: process.version, transport: 'native' });
    for (const args of [['--help'], ['start', '--help'], ['sql', '--help'], ['status', '--help'], ['version', '--help'], ['help', 'sql']]) {
      r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toMatch(/Usage: gandalf-node/);
    }
    expect((await runCli(['start', '--help'])).stdout).toMatch(/--snapshot-entries VALUE/);
    await node.stop();

    const port = await freePort();
    r = await runCli(['sql', 'SELECT 1'], { GANDALF_HTTP_BIND: `127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `gandalf-node: no gandalf-node is answering at http://127.0.0.1:${port} (connection refused); start one with "gandalf-node start" or set --http-bind\n`,
    );
    expect((await runCli(['status', '--http-bind', `127.0.0.1:${port}`])).code).toBe(1);
  });
});
