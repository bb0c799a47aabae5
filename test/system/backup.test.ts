/**
 * Backup and restore with real processes: a 3-node cluster is backed up (as
 * an SQLite file and as SQL) while writes go on; a fresh 3-node cluster
 * restored from either holds exactly the backed-up rows on every board; a
 * truncated or damaged backup is refused with a clear error and changes
 * nothing; the sql shell's .tables, .schema, .dump and .backup work.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import initSqlJs from 'sql.js/dist/sql-wasm-inline.js';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLE, runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

let nodes: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

async function cluster(name: string): Promise<NodeProcess[]> {
  const cookie = `backup-test-${name}-cookie`;
  const args = (i: number, join?: string) => [
    '--node-id',
    `${name}${i}`,
    '--discovery',
    'manual',
    '--cluster-cookie',
    cookie,
    ...(join ? ['--join', join] : []),
  ];
  const first = await startNode({ dataDir: tempDir(), args: args(0) });
  const seed = `http://127.0.0.1:${first.mgmtPort}`;
  const rest = await Promise.all([1, 2].map((i) => startNode({ dataDir: tempDir(), args: args(i, seed) })));
  const all = [first, ...rest];
  nodes.push(...all);
  await until(
    `cluster ${name}: a system group of 3 voters`,
    async () => (await first.get('/status')).body.replicas.find((r: { group: string }) => r.group === 'system')?.voters.length === 3,
    40_000,
  );
  return all;
}

const bind = (n: NodeProcess) => ['--http-bind', `127.0.0.1:${n.httpPort}`];

/** Rows of t on one board's own replica, once it applied everything its leader has. */
async function rowsOn(n: NodeProcess, db: string): Promise<unknown[][]> {
  const r = await n.get(`/db/query?db=${db}&level=none&q=${encodeURIComponent('SELECT id, v FROM t ORDER BY id')}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.results[0].values ?? [];
}

describe('backup and restore (3-node clusters)', () => {
  it('a backup under write load restores onto a fresh cluster; a damaged one is refused and changes nothing', async () => {
    const a = await cluster('a');
    expect((await a[0]!.post('/db/execute', ['CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)', 'CREATE INDEX t_v ON t(v)'])).status).toBe(200);
    // writes go on through another board while the backups are taken
    let acked = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 1; i <= 2000 && !stop; i++) {
        const r = await a[1]!.post('/db/execute', [['INSERT INTO t(id, v) VALUES(?, ?)', i, `row ${i} it's "quoted"`]]);
        expect(r.status).toBe(200);
        acked = i;
      }
    })();
    await until('some writes acknowledged', async () => acked >= 30, 30_000);
    const dir = tempDir('gandalf-backup-');
    const sqliteFile = path.join(dir, 'main.sqlite');
    const sqlFile = path.join(dir, 'main.sql');
    const ackedBefore = acked;
    const b1 = await runCli(['backup', '--level', 'strong', ...bind(a[0]!), sqliteFile]);
    expect(b1.code, b1.stderr).toBe(0);
    const b2 = await runCli(['backup', '--format', 'sql', ...bind(a[2]!), sqlFile]);
    expect(b2.code, b2.stderr).toBe(0);
    stop = true;
    await writer;

    // the SQLite file opens in plain SQLite, holds a prefix of the writes, and everything acknowledged before it
    const SQL = await initSqlJs();
    const image = readFileSync(sqliteFile);
    const copy = new SQL.Database(image);
    const backedUp = copy.exec('SELECT id, v FROM t ORDER BY id')[0]!.values;
    expect(backedUp.length).toBeGreaterThanOrEqual(ackedBefore);
    expect(backedUp.map((r) => r[0])).toEqual(Array.from({ length: backedUp.length }, (_, i) => i + 1));
    const dumped = readFileSync(sqlFile, 'utf8');
    expect(dumped).toMatch(/^PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t/);
    expect(dumped).toContain('CREATE INDEX t_v ON t(v);');

    // a fresh cluster: restore the file into main and the dump into another database
    const b = await cluster('b');
    const r1 = await runCli(['restore', ...bind(b[1]!), sqliteFile]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stderr).toMatch(/restored main from/);
    const r2 = await runCli(['restore', '--db', 'fromdump', ...bind(b[2]!), sqlFile]);
    expect(r2.code, r2.stderr).toBe(0);
    const dumpRows = dumped.split('\n').filter((l) => l.startsWith('INSERT INTO "t"')).length;
    for (const n of b) {
      await until('every board holds the restored rows', async () => (await rowsOn(n, 'main')).length === backedUp.length, 30_000);
      expect(await rowsOn(n, 'main')).toEqual(backedUp);
      await until('every board holds the rows of the dump', async () => (await rowsOn(n, 'fromdump')).length === dumpRows, 30_000);
    }
    // the restored database takes writes like any other
    expect((await b[0]!.post('/db/execute', [['INSERT INTO t(id, v) VALUES(?, ?)', 100_000, 'after']])).status).toBe(200);

    // damaged backups: refused with a clear error, nothing changes
    const truncated = path.join(dir, 'truncated.sqlite');
    writeFileSync(truncated, image.subarray(0, Math.floor(image.length / 2) + 100));
    const t1 = await runCli(['restore', ...bind(b[0]!), truncated]);
    expect(t1.code).toBe(1);
    expect(t1.stderr).toMatch(/400: invalid_backup not a whole SQLite database file.*truncated/);
    const halfDump = path.join(dir, 'half.sql');
    writeFileSync(halfDump, dumped.slice(0, Math.floor(dumped.length / 2)));
    const t2 = await runCli(['restore', ...bind(b[0]!), halfDump]);
    expect(t2.code).toBe(1);
    expect(t2.stderr).toMatch(/invalid_backup/);
    const junk = path.join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.from([0xff, 0xfe, 0xfd, 0x00, 0x01]));
    const t3 = await runCli(['restore', ...bind(b[0]!), junk]);
    expect(t3.stderr).toMatch(/neither an SQLite database file nor UTF-8 SQL text/);
    for (const n of b) {
      await until('the write after the restore is everywhere', async () => (await rowsOn(n, 'main')).length === backedUp.length + 1, 30_000);
      expect((await rowsOn(n, 'main')).slice(0, backedUp.length)).toEqual(backedUp);
    }
    // a backup of a database that does not exist
    const missing = await runCli(['backup', '--db', 'nope', ...bind(b[0]!), path.join(dir, 'nope.sqlite')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404: unknown_database/);
  }, 240_000);

  it('the sql shell shows tables and schema, dumps, and backs up', async () => {
    const [n] = nodes.length >= 3 ? nodes : await cluster('c');
    const dir = tempDir('gandalf-shell-backup-');
    const file = path.join(dir, 'shell.sqlite');
    const shell = spawn(process.execPath, [BUNDLE, 'sql', '--db', 'shelldb', ...bind(n!)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    shell.stdout.on('data', (d: Buffer) => (out += d.toString()));
    shell.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<number | null>((resolve) => shell.on('exit', (code) => resolve(code)));
    shell.stdin.write("CREATE TABLE pets(name TEXT, legs INTEGER);\nINSERT INTO pets VALUES('cat', 4), ('bird', 2);\n.tables\n.schema pets\n.dump\n");
    shell.stdin.write(`.backup ${file}\n.restore ${path.join(dir, 'missing.sqlite')}\n.exit\n`);
    shell.stdin.end();
    expect(await done).toBe(0);
    expect(out).toMatch(/^pets$/m); // no prompts when stdin is not a terminal
    expect(out).toContain('CREATE TABLE pets(name TEXT, legs INTEGER);');
    expect(out).toContain(`INSERT INTO "pets" VALUES('cat',4);`);
    expect(out).toMatch(/backed up shelldb to .*shell\.sqlite/);
    expect(err).toMatch(/cannot read .*missing\.sqlite/);
    const SQL = await initSqlJs();
    expect(new SQL.Database(readFileSync(file)).exec('SELECT count(*) FROM pets')[0]!.values).toEqual([[2]]);
  }, 120_000);
});
