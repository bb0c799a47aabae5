import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dbRoutes, parseStatements } from '../../../src/api/db-routes';
import { ApiServer } from '../../../src/api/http-server';
import { nodeRoutes, type Lifecycle } from '../../../src/api/node-routes';
import { silentLogger } from '../../../src/core/logger';
import { startSingleNode, type SingleNode } from '../../helpers/replicator';
import { tempDir } from '../../helpers/tmp';

let server: ApiServer;
let store: SingleNode;
let base: string;
let lifecycle: Lifecycle = 'serving';

beforeEach(async () => {
  store = await startSingleNode(tempDir(), { queryTimeoutMs: 1000 });
  server = new ApiServer({
    name: 'test',
    routes: {
      ...nodeRoutes({ lifecycle: () => lifecycle, status: () => ({ ok: true }), readiness: () => store.replicator.readiness() }),
      ...dbRoutes(store.replicator),
    },
    logger: silentLogger,
    maxBodyBytes: 4096,
  });
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${bound.port}`;
});

afterEach(async () => {
  await server.close();
  await store.close();
});

async function call(method: string, path: string, body?: unknown, raw?: string) {
  const res = await fetch(base + path, { method, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  return { status: res.status, body: (await res.json()) as any };
}

async function callText(method: string, path: string, raw?: string) {
  const res = await fetch(base + path, { method, body: raw });
  return { status: res.status, text: await res.text() };
}

const COUNT_FOREVER = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e12) SELECT count(*) FROM c';

describe('--max-database-bytes', () => {
  it('a full database refuses growing writes with 507 database_too_large, still takes DELETE/DROP/VACUUM, and grows again once smaller', async () => {
    const small = await startSingleNode(tempDir(), { maxDatabaseBytes: 1024 * 1024 });
    try {
      const db = small.replicator;
      const run = (sql: string) => db.execute('main', { kind: 'execute', transaction: false, statements: [{ sql }] });
      await run('CREATE TABLE t(v)');
      for (let i = 0; i < 6; i++) await run('INSERT INTO t VALUES(zeroblob(200000))');
      await expect(run('INSERT INTO t VALUES(1)')).rejects.toMatchObject({
        code: 'database_too_large',
        message: expect.stringMatching(/at its limit of 1\.0 MiB/),
      });
      await run('DELETE FROM t');
      await run('VACUUM');
      expect(await run('INSERT INTO t VALUES(1)')).toMatchObject([{ rows_affected: 1 }]);
    } finally {
      await small.close();
    }
  }, 30_000);
});

describe('liveness and readiness', () => {
  it('/livez answers while the process runs; /readyz only once it serves with reachable leaders (?noleader: serving)', async () => {
    lifecycle = 'starting';
    try {
      expect((await call('GET', '/livez')).status).toBe(200);
      const r = await call('GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.checks.node).toBe('starting');
      expect((await call('GET', '/readyz?noleader')).status).toBe(503);
    } finally {
      lifecycle = 'serving';
    }
    await call('POST', '/db/execute', ['CREATE TABLE t(v)']);
    const r = await call('GET', '/readyz');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ready: true, checks: { node: 'ok', leader: 'ok', 'db.main': 'ok' } });
    expect((await call('GET', '/readyz?noleader')).body).toEqual({ ready: true, checks: { node: 'ok' } });
  });
});

describe('bounded statements and exact integers over HTTP', () => {
  it('a read past --query-timeout answers 400 query_timeout and the node keeps serving', async () => {
    await call('POST', '/db/execute', ['CREATE TABLE t(v)']);
    const slow = call('GET', '/db/query?q=' + encodeURIComponent(COUNT_FOREVER));
    // served while the long read runs
    expect((await call('POST', '/db/execute', [['INSERT INTO t VALUES(?)', 1]])).body.results[0].rows_affected).toBe(1);
    expect((await call('GET', '/health')).status).toBe(200);
    const r = await slow;
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('query_timeout');
    expect((await call('GET', '/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values).toEqual([[1]]);
  }, 20_000);

  it('a write that would run past --query-timeout is refused before it enters the log; nothing changes', async () => {
    await call('POST', '/db/execute', ['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)']);
    const r = await call('POST', '/db/execute', [`INSERT INTO t ${COUNT_FOREVER}`]);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('query_timeout');
    expect(r.body.message).toMatch(/not applied/);
    expect((await call('GET', '/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values).toEqual([[1]]);
    // with a trigger, even a plain insert is tried first
    await call('POST', '/db/execute', [
      `CREATE TRIGGER slow AFTER INSERT ON t BEGIN INSERT INTO t ${COUNT_FOREVER.replace('SELECT count(*)', 'SELECT 0 WHERE 0 IN (SELECT count(*)')}); END`,
    ]);
    const t = await call('POST', '/db/execute', ['INSERT INTO t VALUES(2)']);
    expect(t.body.code).toBe('query_timeout');
    expect((await call('GET', '/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values).toEqual([[1]]);
  }, 20_000);

  it('64-bit integers are exact in JSON both ways', async () => {
    await call('POST', '/db/execute', ['CREATE TABLE big(id INTEGER PRIMARY KEY, v INTEGER)']);
    let r = await callText('GET', '/db/query?q=' + encodeURIComponent('SELECT 9223372036854775807, -9223372036854775808, 9007199254740993, 1.5'));
    expect(r.text).toContain('[[9223372036854775807,-9223372036854775808,9007199254740993,1.5]]');
    r = await callText('POST', '/db/execute', '[["INSERT INTO big VALUES(?, ?)", 9223372036854775806, 9007199254740993]]');
    expect(r.text).toContain('"last_insert_id":9223372036854775806');
    r = await callText('POST', '/db/query', '[["SELECT v, typeof(v), v = 9007199254740993 FROM big WHERE id = ?", 9223372036854775806]]');
    expect(r.text).toContain('"values":[[9007199254740993,"integer",1]]');
  });
});

describe('data API', () => {
  it('executes and queries in rqlite shapes, with named and positional parameters', async () => {
    let r = await call('POST', '/db/execute', [
      'CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT, b BLOB)',
      ['INSERT INTO foo(name, b) VALUES(?, ?)', 'fiona', null],
      ['INSERT INTO foo(name) VALUES(:n)', { n: 'bob' }],
    ]);
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      { last_insert_id: 0, rows_affected: 0 },
      { last_insert_id: 1, rows_affected: 1 },
      { last_insert_id: 2, rows_affected: 1 },
    ]);
    expect(typeof r.body.time).toBe('number');
    r = await call('GET', '/db/query?q=' + encodeURIComponent("SELECT id, name, x'cafe' AS blob FROM foo ORDER BY id"));
    expect(r.body.results).toEqual([
      {
        columns: ['id', 'name', 'blob'],
        types: ['integer', 'text', 'blob'],
        values: [
          [1, 'fiona', 'yv4='],
          [2, 'bob', 'yv4='],
        ],
      },
    ]);
    r = await call('POST', '/db/query?associative', [['SELECT name FROM foo WHERE id = ?', 2]]);
    expect(r.body.results).toEqual([{ types: { name: 'text' }, rows: [{ name: 'bob' }] }]);
  });

  it('keeps databases apart (?db=) and answers 404 for a query on an unknown one', async () => {
    await call('POST', '/db/execute?db=sensors', ['CREATE TABLE s(v)', 'INSERT INTO s VALUES(42)']);
    expect((await call('GET', '/db/query?db=sensors&q=SELECT+v+FROM+s')).body.results[0].values).toEqual([[42]]);
    const r = await call('GET', '/db/query?db=nothere&q=SELECT+1');
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('unknown_database');
    expect((await call('GET', '/db/query?q=SELECT+*+FROM+s')).status).toBe(404); // main was never written
    expect((await call('POST', '/db/execute?db=Bad%20Name', ['SELECT 1'])).body.code).toBe('invalid_database_name');
  });

  it('POST /db/request: reads take the read path, anything with a write takes the write path whole', async () => {
    let r = await call('POST', '/db/request', ['CREATE TABLE r(v)', "INSERT INTO r VALUES('x')", 'SELECT count(*) AS n FROM r']);
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      { last_insert_id: 0, rows_affected: 0 },
      { last_insert_id: 1, rows_affected: 1 },
      { last_insert_id: 1, rows_affected: 0, columns: ['n'], values: [[1]] },
    ]);
    r = await call('POST', '/db/request?level=strong&associative', ['SELECT v FROM r', 'SELECT 2 AS two']);
    expect(r.body.results).toEqual([
      { types: { v: 'text' }, rows: [{ v: 'x' }] },
      { types: { two: 'integer' }, rows: [{ two: 2 }] },
    ]);
    r = await call('POST', '/db/request', ['SELECT 1', 'ATTACH "x" AS y']);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('statement_rejected');
  });

  it('applies ?transaction atomically', async () => {
    await call('POST', '/db/execute', ['CREATE TABLE t(v UNIQUE)']);
    const r = await call('POST', '/db/execute?transaction', ['INSERT INTO t VALUES(1)', 'INSERT INTO t VALUES(1)']);
    expect(r.status).toBe(200);
    expect(r.body.results[1].error).toMatch(/UNIQUE/);
    expect((await call('GET', '/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values).toEqual([[0]]);
  });

  it('maps bad input to precise errors and keeps serving', async () => {
    const cases: [string, string, unknown, string | undefined, number, string][] = [
      ['POST', '/db/execute', undefined, '{not json', 400, 'invalid_json'],
      ['POST', '/db/execute', { sql: 'x' }, undefined, 400, 'invalid_request'],
      ['POST', '/db/execute', [], undefined, 400, 'invalid_request'],
      ['POST', '/db/execute', [[1, 2]], undefined, 400, 'invalid_request'],
      ['POST', '/db/execute', [['SELECT ?', { a: [1] }]], undefined, 400, 'invalid_request'],
      ['POST', '/db/execute', ['ATTACH "x" AS y'], undefined, 400, 'statement_rejected'],
      ['POST', '/db/query', ['DROP TABLE t'], undefined, 400, 'statement_rejected'],
      ['POST', '/db/query', ['WITH x(v) AS (SELECT 1) INSERT INTO t SELECT v FROM x'], undefined, 400, 'statement_rejected'],
      ['GET', '/db/query', undefined, undefined, 400, 'invalid_request'],
      ['GET', '/db/query?q=SELECT+1&level=eventual', undefined, undefined, 400, 'invalid_request'],
      ['POST', '/db/execute', ['x'.repeat(5000)], undefined, 413, 'body_too_large'],
      ['GET', '/nope', undefined, undefined, 404, 'not_found'],
      ['DELETE', '/db/execute', undefined, undefined, 405, 'invalid_request'],
    ];
    for (const [method, path, body, raw, status, code] of cases) {
      const r = await call(method, path, body, raw);
      expect(r.status, `${method} ${path}`).toBe(status);
      expect(r.body.code, `${method} ${path}`).toBe(code);
      expect(typeof r.body.message).toBe('string');
      expect(r.body.error).toBe(r.body.message);
    }
    // Invalid SQL is the statement's result and does not disturb the others.
    const r = await call('POST', '/db/execute', ['CREATE TABLE ok(v)', 'INSERT INTO ok VALUES(', 'INSERT INTO ok VALUES(1)']);
    expect(r.status).toBe(200);
    expect(r.body.results[1].error).toMatch(/syntax error|incomplete input/);
    expect(r.body.results[2]).toEqual({ last_insert_id: 1, rows_affected: 1 });
  });

  it('answers /health 200 only while serving', async () => {
    expect((await call('GET', '/health')).status).toBe(200);
    lifecycle = 'stopping';
    expect(await call('GET', '/health')).toEqual({ status: 503, body: { status: 'stopping' } });
    lifecycle = 'starting';
    expect((await call('GET', '/health')).status).toBe(503);
    lifecycle = 'serving';
  });

  it('parses every statement form and rejects malformed parameters', () => {
    expect(parseStatements(['a', ['b', 1, 'x', null, true], ['c', { k: 2 }]])).toEqual([
      { sql: 'a' },
      { sql: 'b', params: [1, 'x', null, 1] },
      { sql: 'c', params: { k: 2 } },
    ]);
    expect(() => parseStatements([['d', Infinity]])).toThrow(/finite/);
    expect(() => parseStatements('SELECT 1')).toThrow(/JSON array/);
  });
});
