/**
 * The composition root: the only place that creates concrete parts, starts
 * them in data-flow order and stops them in reverse.
 *
 *   start: lock data dir -> node id -> SQL engine -> HTTP servers (health
 *          answers 503 "starting") -> open databases (snapshot + replay) ->
 *          serving, READY=1, watchdog
 *   stop:  stopping (health 503), STOPPING=1 -> HTTP servers stop accepting
 *          and finish in-flight requests -> databases drain and snapshot ->
 *          unlock
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dbRoutes } from '../api/db-routes';
import { ApiServer } from '../api/http-server';
import { nodeRoutes, type Lifecycle } from '../api/node-routes';
import { formatHostPort, type HostPort, type NodeConfig } from '../config/settings';
import { systemClock } from '../core/clock';
import { createLogger, type Logger } from '../core/logger';
import { COMMIT, VERSION } from '../core/version';
import { DatabaseRegistry } from '../store/database-registry';
import { nodeDataFs } from '../store/data-fs';
import { loadSqlEngine } from '../store/sql-engine';
import { lockDataDir, type DataDirLock } from './data-dir-lock';
import { resolveNodeId } from './node-id';
import { createNotifier, type Notifier } from './sd-notify';

export class GandalfNode {
  readonly logger: Logger;
  private state: Lifecycle = 'starting';
  private readonly startedAt = Date.now();
  private lock: DataDirLock | undefined;
  private registry: DatabaseRegistry | undefined;
  private servers: ApiServer[] = [];
  private notifier: Notifier;
  private nodeId = '';
  private bound: { http?: HostPort; mgmt?: HostPort } = {};
  private stopping: Promise<void> | undefined;

  constructor(private readonly config: NodeConfig) {
    this.logger = createLogger({ level: config.logLevel, format: config.logFormat });
    this.notifier = createNotifier(process.env, this.logger);
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    const dataDir = path.resolve(config.dataDir);
    mkdirSync(dataDir, { recursive: true });
    this.lock = lockDataDir(dataDir);
    this.nodeId = resolveNodeId(dataDir, config.nodeId);
    const engine = await loadSqlEngine();

    const info = { lifecycle: () => this.state, status: () => this.status() };
    this.registry = new DatabaseRegistry({
      dataDir,
      engine,
      fs: nodeDataFs,
      logger: logger.child({ part: 'store' }),
      clock: systemClock,
      random32: () => randomBytes(4).readUInt32LE(0),
      snapshotEntries: config.snapshotEntries,
      snapshotBytes: config.snapshotBytes,
    });
    const api = new ApiServer({
      name: 'client API',
      routes: { ...nodeRoutes(info), ...dbRoutes(this.registry) },
      logger: logger.child({ part: 'api' }),
      maxBodyBytes: config.maxBodyBytes,
    });
    const mgmt = new ApiServer({
      name: 'mgmt endpoint',
      routes: nodeRoutes(info),
      logger: logger.child({ part: 'mgmt' }),
      maxBodyBytes: 64 * 1024,
    });
    this.bound.http = await api.listen(config.httpBind);
    this.servers.push(api);
    this.bound.mgmt = await mgmt.listen(config.mgmtBind);
    this.servers.push(mgmt);

    await this.registry.openAll();
    this.state = 'serving';
    this.notifier.ready();
    this.notifier.startWatchdog();
    logger.info('gandalf-node serving', {
      nodeId: this.nodeId,
      version: VERSION,
      http: formatHostPort(this.bound.http),
      mgmt: formatHostPort(this.bound.mgmt),
      dataDir,
      databases: this.registry.list().map((d) => d.name),
    });
  }

  /** Graceful stop; safe to call more than once and from a failed start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const wasServing = this.state === 'serving';
      this.state = 'stopping';
      this.notifier.stopping();
      if (wasServing) this.logger.info('stopping: finishing in-flight requests');
      await Promise.all(this.servers.map((s) => s.close()));
      await this.registry?.closeAll();
      this.notifier.close();
      this.lock?.release();
      if (wasServing) this.logger.info('stopped');
    })();
    return this.stopping;
  }

  status(): Record<string, unknown> {
    return {
      node_id: this.nodeId,
      version: VERSION,
      commit: COMMIT,
      state: this.state,
      arch: process.arch,
      platform: process.platform,
      node_version: process.version,
      hostname: os.hostname(),
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      http_bind: this.bound.http ? formatHostPort(this.bound.http) : null,
      mgmt_bind: this.bound.mgmt ? formatHostPort(this.bound.mgmt) : null,
      data_dir: path.resolve(this.config.dataDir),
      databases: this.registry?.list().map((db) => db.status()) ?? [],
    };
  }
}

/**
 * Runs a node in the foreground until SIGTERM or SIGINT. Resolves with the
 * process exit code: 0 after a clean stop, 1 when the node could not start.
 */
export async function runNode(config: NodeConfig): Promise<number> {
  const node = new GandalfNode(config);
  let signalled: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => (signalled = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    node.logger.info('signal received', { signal });
    node.stop().then(
      () => signalled(0),
      (err: unknown) => {
        node.logger.error('stop failed', { err: err as Error });
        signalled(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await node.start();
  } catch (err) {
    process.stderr.write(`gandalf-node: ${(err as Error).message}\n`);
    await node.stop().catch(() => {});
    return 1;
  }
  return exit;
}
