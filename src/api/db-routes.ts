/**
 * rqlite-compatible data API: POST /db/execute, POST|GET /db/query, POST /db/request.
 * Requests are validated here, where they enter; the store only ever sees
 * well-formed statements that passed the statement guard.
 */
import { GandalfError } from '../core/errors';
import { DEFAULT_DATABASE, validateDatabaseName } from '../store/database-name';
import { checkReadStatement, checkWriteStatement, isReadStatement } from '../store/statement-guard';
import type { ExecuteCommand, ExecuteResult, Params, QueryResult, SqlValue, Statement } from '../store/sql-state-machine';
import type { RouteRequest, Routes } from './http-server';

/** What these routes need from the replicated store. */
export interface DatabaseService {
  /** Creates the database on its first write (`redundancy`: its voters, else the node's default). */
  execute(db: string, command: ExecuteCommand, options: { redundancy?: number }): Promise<ExecuteResult[]>;
  /** `signal`: the client went away; the statement is stopped. */
  query(db: string, statements: Statement[], level: 'none' | 'weak' | 'strong', signal?: AbortSignal): Promise<QueryResult[]>;
}

const READ_LEVELS = ['none', 'weak', 'strong'];

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function flag(url: URL, name: string): boolean {
  if (!url.searchParams.has(name)) return false;
  const v = url.searchParams.get(name)!.toLowerCase();
  return v !== 'false' && v !== '0';
}

function databaseName(url: URL): string {
  return validateDatabaseName(url.searchParams.get('db') ?? DEFAULT_DATABASE);
}

function toSqlValue(v: unknown, where: string): SqlValue {
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) invalid(`${where}: numbers must be finite`);
    return v;
  }
  if (typeof v === 'bigint') return v; // an integer beyond 2^53, parsed exactly (http-server.ts)
  if (typeof v === 'boolean') return v ? 1 : 0;
  return invalid(`${where}: parameters must be strings, numbers, booleans or null`);
}

/** Parses rqlite's statement list: each item a string, [sql, p1, p2…] or [sql, {name: value}]. */
export function parseStatements(body: unknown): Statement[] {
  if (!Array.isArray(body)) invalid('body must be a JSON array of statements');
  if (body.length === 0) invalid('no statements given');
  return body.map((item, i): Statement => {
    const where = `statement ${i}`;
    if (typeof item === 'string') return { sql: item };
    if (!Array.isArray(item) || item.length === 0 || typeof item[0] !== 'string') {
      return invalid(`${where}: expected a string or an array [sql, parameters…]`);
    }
    const [sql, ...rest] = item as [string, ...unknown[]];
    if (rest.length === 1 && rest[0] !== null && typeof rest[0] === 'object' && !Array.isArray(rest[0])) {
      const named: Record<string, SqlValue> = {};
      for (const [k, v] of Object.entries(rest[0] as Record<string, unknown>)) named[k] = toSqlValue(v, `${where} parameter "${k}"`);
      return { sql, params: named };
    }
    const params: Params = rest.map((v, j) => toSqlValue(v, `${where} parameter ${j + 1}`));
    return params.length > 0 ? { sql, params } : { sql };
  });
}

function guard(statements: Statement[], check: (sql: string) => void): void {
  statements.forEach((s, i) => {
    try {
      check(s.sql);
    } catch (err) {
      if (err instanceof GandalfError) throw new GandalfError(err.code, `statement ${i}: ${err.message}`, err);
      throw err;
    }
  });
}

function seconds(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

type AssociativeResult = { types: Record<string, string>; rows: Record<string, SqlValue>[] } | { error: string };

function associative(r: QueryResult): AssociativeResult {
  if ('error' in r) return r;
  const types: Record<string, string> = {};
  r.columns.forEach((c, i) => (types[c] = r.types[i]!));
  const rows = r.values.map((row) => {
    const o: Record<string, SqlValue> = {};
    r.columns.forEach((c, i) => (o[c] = row[i]!));
    return o;
  });
  return { types, rows };
}

export function dbRoutes(dbs: DatabaseService): Routes {
  const execute = async (statements: Statement[], req: RouteRequest) => {
    const start = process.hrtime.bigint();
    guard(statements, checkWriteStatement);
    const r = req.url.searchParams.get('redundancy');
    if (r !== null && !/^[1-7]$/.test(r)) invalid('redundancy must be an integer from 1 to 7');
    const results = await dbs.execute(
      databaseName(req.url),
      { kind: 'execute', statements, transaction: flag(req.url, 'transaction') },
      r !== null ? { redundancy: Number(r) } : {},
    );
    return { status: 200, body: { results, time: seconds(start) } };
  };

  const query = async (statements: Statement[], req: RouteRequest) => {
    const start = process.hrtime.bigint();
    const level = req.url.searchParams.get('level');
    if (level !== null && !READ_LEVELS.includes(level)) invalid(`level must be one of ${READ_LEVELS.join(', ')}`);
    guard(statements, checkReadStatement);
    const results = await dbs.query(databaseName(req.url), statements, (level ?? 'weak') as 'none' | 'weak' | 'strong', req.signal);
    return {
      status: 200,
      body: { results: flag(req.url, 'associative') ? results.map(associative) : results, time: seconds(start) },
    };
  };

  return {
    'POST /db/execute': (req) => execute(parseStatements(req.body), req),
    // rqlite's unified endpoint: only reads go the read path (at `level`); anything else takes the write path whole
    'POST /db/request': (req) => {
      const statements = parseStatements(req.body);
      return statements.every((st) => isReadStatement(st.sql)) ? query(statements, req) : execute(statements, req);
    },
    'POST /db/query': (req) => query(parseStatements(req.body), req),
    'GET /db/query': (req) => {
      const q = req.url.searchParams.get('q');
      if (!q) invalid('GET /db/query needs the statement in the "q" parameter');
      return query([{ sql: q }], req);
    },
  };
}
