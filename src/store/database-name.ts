/** Database names: what `?db=` accepts (also the name of the database's replication group, `db.<name>`). */
import { GandalfError } from '../core/errors';

export const DEFAULT_DATABASE = 'main';
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function isDatabaseName(name: string): boolean {
  return NAME_RE.test(name);
}

export function validateDatabaseName(name: string): string {
  if (!isDatabaseName(name)) {
    throw new GandalfError(
      'invalid_database_name',
      `invalid database name "${name}": use 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit`,
    );
  }
  return name;
}
