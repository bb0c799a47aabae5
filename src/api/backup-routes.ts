/**
 * rqlite's backup and load endpoints: GET /db/backup streams a consistent
 * copy of one database (the SQLite file, or with fmt=sql a dump), and POST
 * /db/load replaces a database's contents with an SQLite file or SQL text,
 * replicated like any write.
 */
import { GandalfError } from '../core/errors';
import type { BackupFormat } from '../replication/database-machine';
import { DEFAULT_DATABASE, validateDatabaseName } from '../store/database-name';
import type { Routes } from './http-server';

type Level = 'none' | 'weak' | 'strong';

/** What these routes need from the replicated store. */
export interface BackupService {
  backup(db: string, format: BackupFormat, level: Level, signal?: AbortSignal): Promise<Uint8Array | string>;
  load(db: string, bytes: Uint8Array, options: { redundancy?: number }): Promise<{ bytes: number }>;
}

const LEVELS: readonly Level[] = ['none', 'weak', 'strong'];

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function isLevel(v: string): v is Level {
  return (LEVELS as readonly string[]).includes(v);
}

export function backupRoutes(service: BackupService): Routes {
  return {
    'GET /db/backup': async (req) => {
      const db = validateDatabaseName(req.url.searchParams.get('db') ?? DEFAULT_DATABASE);
      const fmt = req.url.searchParams.get('fmt') ?? 'sqlite';
      if (fmt !== 'sql' && fmt !== 'sqlite' && fmt !== 'binary') invalid('fmt must be sql, or sqlite (the default; rqlite calls it binary)');
      const level = req.url.searchParams.get('level') ?? 'weak';
      if (!isLevel(level)) invalid(`level must be one of ${LEVELS.join(', ')}`);
      const format: BackupFormat = fmt === 'sql' ? 'sql' : 'sqlite';
      const got = await service.backup(db, format, level, req.signal);
      const bytes = typeof got === 'string' ? Buffer.from(got, 'utf8') : Buffer.from(got.buffer, got.byteOffset, got.byteLength);
      return {
        status: 200,
        body: undefined,
        stream: async (res) => {
          res.writeHead(200, {
            'content-type': format === 'sql' ? 'application/sql; charset=utf-8' : 'application/vnd.sqlite3',
            'content-length': bytes.length,
            'content-disposition': `attachment; filename="${db}.${format === 'sql' ? 'sql' : 'sqlite'}"`,
          });
          res.end(bytes);
        },
      };
    },
    'POST /db/load': async (req) => {
      const start = process.hrtime.bigint();
      const db = validateDatabaseName(req.url.searchParams.get('db') ?? DEFAULT_DATABASE);
      const r = req.url.searchParams.get('redundancy');
      if (r !== null && !/^[1-7]$/.test(r)) invalid('redundancy must be an integer from 1 to 7');
      if (req.bytes.length === 0) throw new GandalfError('invalid_backup', 'the body is empty: send an SQLite database file or SQL text');
      const loaded = await service.load(db, req.bytes, r !== null ? { redundancy: Number(r) } : {});
      return { status: 200, body: { results: [], loaded_bytes: loaded.bytes, time: Number(process.hrtime.bigint() - start) / 1e9 } };
    },
  };
}
