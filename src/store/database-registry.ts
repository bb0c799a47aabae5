/**
 * The named databases of this node, each in `<data-dir>/db/<name>/` with its
 * own log, snapshots and sql.js instance (replication later runs one group
 * per database). A database is created by its first write.
 */
import * as path from 'node:path';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import { DurableDatabase, type DurableDatabaseOptions } from './durable-database';

export const DEFAULT_DATABASE = 'main';
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export type RegistryOptions = Omit<DurableDatabaseOptions, 'name' | 'dir' | 'logger'> & {
  dataDir: string;
  logger: Logger;
};

export function validateDatabaseName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new GandalfError(
      'invalid_database_name',
      `invalid database name "${name}": use 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit`,
    );
  }
  return name;
}

export class DatabaseRegistry {
  private readonly open = new Map<string, DurableDatabase>();
  private readonly opening = new Map<string, Promise<DurableDatabase>>();
  private closed = false;

  constructor(private readonly options: RegistryOptions) {}

  private get root(): string {
    return path.join(this.options.dataDir, 'db');
  }

  /** Opens every database found in the data dir (snapshot + log replay). */
  async openAll(): Promise<void> {
    await this.options.fs.mkdirp(this.root);
    for (const name of (await this.options.fs.readdir(this.root)).sort()) {
      if (NAME_RE.test(name)) await this.getOrCreate(name);
    }
  }

  get(name: string): DurableDatabase | undefined {
    return this.open.get(name);
  }

  /** The database `name`, created (durably, empty) if it does not exist yet. */
  getOrCreate(name: string): Promise<DurableDatabase> {
    validateDatabaseName(name);
    const existing = this.open.get(name);
    if (existing) return Promise.resolve(existing);
    if (this.closed) return Promise.reject(new GandalfError('stopping', 'the node is stopping'));
    let pending = this.opening.get(name);
    if (!pending) {
      pending = DurableDatabase.open({
        ...this.options,
        name,
        dir: path.join(this.root, name),
        logger: this.options.logger.child({ db: name }),
      }).then(
        (db) => {
          this.open.set(name, db);
          this.opening.delete(name);
          return db;
        },
        (err: unknown) => {
          this.opening.delete(name);
          throw err;
        },
      );
      this.opening.set(name, pending);
    }
    return pending;
  }

  list(): DurableDatabase[] {
    return [...this.open.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Closes every database: queued writes are answered, a final snapshot is written. */
  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.opening.values());
    const results = await Promise.allSettled(this.list().map((db) => db.close()));
    for (const r of results) {
      if (r.status === 'rejected') this.options.logger.error('closing a database failed', { err: r.reason as Error });
    }
  }
}
