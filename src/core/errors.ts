/**
 * Errors with a stable machine-readable `code`. Callers branch on `code`
 * (or on the exported subclasses), never on message text. When an error
 * crosses a layer, wrap it with context and keep the original as `cause`.
 */
export type ErrorCode =
  | 'invalid_request'
  | 'invalid_json'
  | 'body_too_large'
  | 'not_found'
  | 'unknown_database'
  | 'invalid_database_name'
  | 'statement_rejected'
  | 'disk_full'
  | 'log_failed'
  | 'corrupt_data'
  | 'stopping'
  | 'starting'
  | 'data_dir_locked'
  | 'invalid_config'
  | 'peer_rejected'
  | 'peer_unreachable'
  | 'not_leader'
  | 'no_quorum'
  /** Two system groups met under one cluster name, and this database exists in both. */
  | 'split_cluster'
  /** This board's system group is merging into another one that met it: sessions, locks and keys resume once it is done. */
  | 'merging'
  | 'outcome_unknown'
  | 'leader_changed'
  | 'conflict'
  | 'lock_timeout'
  | 'lock_busy'
  | 'not_holder'
  | 'unknown_session'
  | 'unknown_lock'
  | 'key_not_found'
  | 'revision_mismatch'
  | 'compacted'
  | 'query_timeout'
  | 'query_canceled'
  | 'query_failed'
  | 'database_too_large'
  | 'invalid_backup'
  | 'unauthorized'
  | 'forbidden'
  | 'internal';

export class GandalfError extends Error {
  readonly code: ErrorCode;
  override readonly cause?: unknown;

  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = 'GandalfError';
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

/** The disk holding the data dir is full: the write failed and nothing was changed. */
export class DiskFullError extends GandalfError {
  constructor(message: string, cause?: unknown) {
    super('disk_full', message, cause);
    this.name = 'DiskFullError';
  }
}

/** The command log can no longer be trusted to persist (e.g. fsync failed); writes are refused until restart. */
export class LogFailedError extends GandalfError {
  constructor(message: string, cause?: unknown) {
    super('log_failed', message, cause);
    this.name = 'LogFailedError';
  }
}

/** Data on disk fails its checksum in a place a crash cannot explain. */
export class CorruptDataError extends GandalfError {
  constructor(message: string, cause?: unknown) {
    super('corrupt_data', message, cause);
    this.name = 'CorruptDataError';
  }
}

/** A configuration value is invalid; the message names the setting and what is accepted. */
export class ConfigError extends GandalfError {
  constructor(message: string) {
    super('invalid_config', message);
    this.name = 'ConfigError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Node's errno code (ENOSPC, EIO, …) of a system error, if any. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
