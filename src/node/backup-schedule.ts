/**
 * Scheduled whole-cluster backups (--backup-dir, --backup-interval,
 * --backup-retain): every interval this node writes a cluster backup into the
 * directory (a USB stick or an NFS path) and keeps its newest ones. Backups
 * never overlap; one that fails is logged and retried at the next interval.
 */
import { mkdirSync } from 'node:fs';
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import { pruneBackups, writeClusterBackup, type ClusterSource } from './cluster-backup';

export interface BackupScheduleOptions {
  dir: string;
  intervalMs: number;
  retain: number;
  cluster: string;
  node: string;
  source: ClusterSource;
  clock: Clock;
  logger: Logger;
}

export class BackupSchedule {
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** For status: the last backup written, and the last failure. */
  last: { path: string; at: string; bytes: number } | undefined;
  lastError: string | undefined;

  constructor(private readonly options: BackupScheduleOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.running = this.runOnce().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.options.intervalMs);
    this.timer.unref?.();
  }

  /** One backup now, then the old ones pruned. */
  async runOnce(): Promise<void> {
    const { dir, cluster, node, source, clock, logger, retain } = this.options;
    const started = clock.monotonic();
    try {
      const { path, manifest } = await writeClusterBackup(dir, source, { cluster, node, at: new Date(clock.now()) });
      const bytes = manifest.databases.reduce((n, d) => n + d.bytes, 0) + manifest.kv.bytes;
      this.last = { path, at: manifest.taken_at, bytes };
      this.lastError = undefined;
      const pruned = await pruneBackups(dir, cluster, node, retain);
      logger.info('cluster backup written', {
        path,
        databases: manifest.databases.length,
        keys: manifest.kv.keys,
        bytes,
        ms: Math.round(clock.monotonic() - started),
        pruned: pruned.length,
      });
    } catch (err) {
      this.lastError = (err as Error).message;
      logger.error('scheduled cluster backup failed; the next interval tries again', { dir, err: err as Error });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    await this.running;
  }
}
