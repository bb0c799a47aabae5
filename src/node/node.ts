/**
 * The composition root: the only place that creates concrete parts, starts
 * them in data-flow order and stops them in reverse.
 *
 *   start: lock data dir -> node id -> HTTP servers (health
 *          answers 503 "starting") -> WebRTC mesh, membership, discovery ->
 *          replicas (snapshot + log replay), system group, coordination ->
 *          serving, READY=1, watchdog
 *   stop:  stopping (health 503), STOPPING=1 -> HTTP servers stop accepting
 *          and finish in-flight requests -> leadership handed over, replicas
 *          closed -> leave the cluster (SWIM "left", links closed) -> unlock
 */
import { routingRoutes } from '../api/routing-routes';
import { tenantRoutes } from '../api/tenant-routes';
import { identityMeta, type RoutingIdentity } from '../core/routing-identity';
import { startRouting, type RoutingParts } from './routing';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clusterAdminRoutes, clusterViewRoutes, signalRoutes } from '../api/cluster-routes';
import { Authenticator, loadAuthFile, parseAuthFile } from '../api/auth';
import { backupRoutes } from '../api/backup-routes';
import { permissionsFor } from '../api/permissions';
import { uiRoutes, type Overview } from '../api/ui-routes';
import { dbRoutes } from '../api/db-routes';
import { metricsRoutes, NodeMetrics } from '../api/metrics';
import { ApiServer } from '../api/http-server';
import { nodeRoutes, type Lifecycle } from '../api/node-routes';
import { formatHostPort, type HostPort, type NodeConfig } from '../config/settings';
import { systemClock, type Clock } from '../core/clock';
import { ConfigError, GandalfError } from '../core/errors';
import { createLogger, type Logger } from '../core/logger';
import { JoinLoop } from '../discovery/join-loop';
import { MdnsDiscovery } from '../discovery/mdns';
import { COMMIT, VERSION } from '../core/version';
import { coordinationRoutes } from '../api/coordination-routes';
import { Coordination } from '../replication/coordination';
import { Replicator, type MembershipPort } from '../replication/replicator';
import { SystemStateMachine } from '../replication/system-machine';
import { MAX_MESSAGE_BYTES, REPLICATION_TOPIC, Rpc, Wire } from '../replication/wire';
import type { BackupFormat } from '../replication/database-machine';
import { nodeDataFs } from '../store/data-fs';
import { SpoolDir } from '../replication/spool';
import type { ExecuteCommand, Statement } from '../store/sql-state-machine';
import type { ReadLevel } from '../replication/replicator';
import { bundledSqlWorkerSource } from '../replication/sql-worker-source';
import { SqlWriterPool } from '../replication/sql-worker-client';
import { WorkerSqlMachine } from '../replication/worker-sql-machine';
import { Mesh, type OfferOutcome } from '../transport/mesh';
import { loadNativeRtc } from '../transport/native-rtc';
import type { RtcFactory } from '../transport/rtc';
import { postSignal } from '../transport/signal-client';
import { SignalAuth } from '../transport/signaling';
import { loadWeriftRtc } from '../transport/werift-rtc';
import { Cluster } from './cluster';
import { lockDataDir, type DataDirLock } from './data-dir-lock';
import { resolveNodeId } from './node-id';
import { createNotifier, type Notifier } from './sd-notify';
import { readCookies, watchCookieFile } from './cookie-file';
import { FileWatch } from './file-watch';
import { readTls } from './tls-files';
import { BackupSchedule } from './backup-schedule';
import { RecentErrors } from './recent-errors';

export class GandalfNode {
  readonly logger: Logger;
  private state: Lifecycle = 'starting';
  private readonly startedAt = systemClock.monotonic();
  private lock: DataDirLock | undefined;
  private replicator: Replicator | undefined;
  private sqlWriters: SqlWriterPool | undefined;
  private coordination: Coordination | undefined;
  private servers: ApiServer[] = [];
  private notifier: Notifier;
  private nodeId = '';
  private bound: { http?: HostPort; mgmt?: HostPort } = {};
  private mesh: Mesh | undefined;
  private cluster: Cluster | undefined;
  private stopping: Promise<void> | undefined;
  private metrics: NodeMetrics | undefined;
  /** Files re-read while the node runs (cookie keyring, TLS certificates). */
  private readonly watches: FileWatch[] = [];
  private backups: BackupSchedule | undefined;
  private routing: RoutingParts | undefined;
  private readonly recentErrors = new RecentErrors();

  constructor(private readonly config: NodeConfig) {
    this.logger = createLogger({ level: config.logLevel, format: config.logFormat, tap: (e) => this.recentErrors.add(e) });
    this.notifier = createNotifier(process.env, this.logger, systemClock);
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    const dataDir = path.resolve(config.dataDir);
    mkdirSync(dataDir, { recursive: true });
    this.lock = lockDataDir(dataDir);
    this.nodeId = resolveNodeId(dataDir, config.nodeId);
    const sqlWorker = bundledSqlWorkerSource();
    if (!sqlWorker) throw new GandalfError('invalid_config', 'no SQL worker bundle: run the node from dist/ (npm run bundle) or the single executable');
    // One or two writer threads for all databases of this board (an isolate costs tens of MiB). They
    // start now, in the background: on a Pi Zero a thread and SQLite's WebAssembly take seconds, which
    // the node does not wait for to serve (the first database opened waits, if they are not up yet).
    this.sqlWriters = new SqlWriterPool(sqlWorker, Math.min(2, Math.max(1, os.cpus().length - 1)));
    this.sqlWriters.warm();
    const cookies = readCookies(config);
    const cookie = cookies.length > 0;
    const authorize = this.clientAuth();

    const info = { lifecycle: () => this.state, status: () => this.status(), readiness: () => this.replicator?.readiness() };
    const metrics = new NodeMetrics(this.nodeId, {
      replicas: () => this.replicator?.status() ?? [],
      members: () => this.cluster?.swim.members() ?? [],
      roundTrips: () =>
        (this.cluster?.nodes() ?? []).flatMap((n) => (n['node-id'] !== this.nodeId && n['rtt-ms'] !== null ? [{ peer: n['node-id'], ms: n['rtt-ms'] }] : [])),
      mesh: () => this.mesh?.totals(),
      lockWaiters: () => this.coordination?.waitingForLocks ?? 0,
    });
    this.metrics = metrics;
    const observe = { clock: systemClock, answered: (route: string, status: number, seconds: number) => metrics.answered(route, status, seconds) };
    const ready = <T>(part: T | undefined): T => {
      if (!part || this.state === 'starting') throw new GandalfError('starting', 'the node is starting');
      return part;
    };
    const dbs = {
      execute: (db: string, command: ExecuteCommand, opts: { redundancy?: number }) => ready(this.replicator).execute(db, command, opts),
      query: (db: string, statements: Statement[], level: ReadLevel, signal?: AbortSignal) => ready(this.replicator).query(db, statements, level, signal),
    };
    const backups = {
      backup: (db: string, format: BackupFormat, level: ReadLevel, signal?: AbortSignal) => ready(this.replicator).backup(db, format, level, signal),
      load: (db: string, bytes: Uint8Array, opts: { redundancy?: number }) => ready(this.replicator).load(db, bytes, opts),
    };
    const clusterView = { nodes: () => this.cluster?.nodes() ?? [] };
    const signals = {
      acceptOffer: async (body: unknown): Promise<OfferOutcome> =>
        this.mesh ? this.mesh.acceptOffer(body) : { ok: false, code: 'starting', message: 'the node is starting' },
    };
    const tls = readTls(config);
    const api = new ApiServer({
      name: 'client API',
      ...(tls ? { tls: tls.files } : {}),
      routes: {
        ...nodeRoutes(info),
        ...dbRoutes(dbs),
        ...backupRoutes(backups),
        ...coordinationRoutes(() => ready(this.coordination), systemClock),
        ...routingRoutes(() => ready(this.routing).service, systemClock),
        ...tenantRoutes(() => ready(this.routing).service),
        ...clusterViewRoutes(clusterView),
        ...clusterAdminRoutes({
          removeNode: (id, opts) => ready(this.replicator).removeNode(id, opts),
          recoverGroup: (group, opts) => ready(this.replicator).recoverGroup(group, opts),
        }),
        ...metricsRoutes(metrics),
        ...uiRoutes(() => this.overview(metrics)),
      },
      logger: logger.child({ part: 'api' }),
      maxBodyBytes: config.maxBodyBytes,
      ...(authorize ? { authorize } : {}),
      // a load may be a dump, larger than the database it makes; it goes to the leader in one message
      rawBody: { 'POST /db/load': Math.min(MAX_MESSAGE_BYTES - 1024 * 1024, Math.max(config.maxBodyBytes, 2 * config.maxDatabaseBytes)) },
      observe,
    });
    // With a cookie, a stranger on the LAN reaching the mgmt endpoint sees only probes and signaling
    // (which is authenticated); status, members and metrics are on the client API, behind its auth.
    const probes = nodeRoutes(info);
    const mgmtRoutes = cookie
      ? { 'GET /health': probes['GET /health']!, 'GET /livez': probes['GET /livez']!, 'GET /readyz': probes['GET /readyz']!, ...signalRoutes(signals) }
      : { ...probes, ...signalRoutes(signals), ...clusterViewRoutes(clusterView), ...metricsRoutes(metrics) };
    const mgmt = new ApiServer({
      name: 'mgmt endpoint',
      routes: mgmtRoutes,
      logger: logger.child({ part: 'mgmt' }),
      maxBodyBytes: 256 * 1024,
      observe,
    });
    this.bound.http = await api.listen(config.httpBind);
    if (tls)
      this.watches.push(
        new FileWatch(
          tls.paths,
          ([cert, key, ca]) => api.setTls({ cert: cert!, key: key!, ...(ca ? { ca } : {}) }),
          'TLS certificate',
          systemClock,
          logger.child({ part: 'tls' }),
        ),
      );
    this.servers.push(api);
    this.bound.mgmt = await mgmt.listen(config.mgmtBind);
    this.servers.push(mgmt);

    await this.startCluster(cookies);
    await this.startReplication(dataDir, sqlWorker);
    this.routing = await startRouting({
      self: this.nodeId,
      identity: this.routingIdentity(),
      config,
      dataDir,
      mesh: this.mesh!,
      swim: this.cluster!.swim,
      databases: { ...dbs, exists: (db) => this.replicator?.databases().some((d) => d.name === db) ?? false },
      coordination: () => ready(this.coordination),
      logger: logger.child({ part: 'routing' }),
    });
    this.state = 'serving';
    this.notifier.ready();
    this.notifier.startWatchdog();
    logger.info('gandalf-node serving', {
      nodeId: this.nodeId,
      version: VERSION,
      http: formatHostPort(this.bound.http),
      mgmt: formatHostPort(this.bound.mgmt),
      dataDir,
      replicas: this.replicator?.localGroups(),
    });
  }

  /** What the dashboard shows (GET /ui/overview). */
  private async overview(metrics: NodeMetrics): Promise<Overview> {
    const locks = await this.coordination?.locks('weak').catch(() => []);
    return {
      node: this.nodeId,
      version: VERSION,
      cluster: this.config.clusterName,
      time: systemClock.now(),
      nodes: this.cluster?.nodes() ?? [],
      links: this.mesh?.peers().map((p) => p.id) ?? [],
      groups: (this.replicator?.status() ?? []).map((r) => ({
        group: r.group,
        state: r.state,
        leader: r.leader,
        voters: r.voters,
        applied_index: r.applied_index,
        ...(r.size_bytes !== undefined ? { size_bytes: r.size_bytes } : {}),
      })),
      locks: (locks ?? []).map((l) => ({ name: l.name, holder: l.holder ? { node: l.holder.node, token: l.holder.token } : null, waiters: l.waiters.length })),
      counters: { writes: metrics.okCount(['POST /db/execute', 'POST /db/load']), reads: metrics.okCount(['GET /db/query', 'POST /db/query']) },
      errors: this.recentErrors.list(),
    };
  }

  /** The client API's authorization, from --auth-file; undefined without one (with a warning off loopback). */
  private clientAuth(): ((route: string, authorization: string | undefined, body: unknown) => Promise<void>) | undefined {
    const { config, logger } = this;
    if (!config.authFile) {
      const host = config.httpBind.host;
      if (!host.startsWith('127.') && host !== '::1' && host !== 'localhost') {
        logger.warn(
          `the client API listens on ${formatHostPort(config.httpBind)} with no --auth-file: anyone who reaches it can read, write and delete every database`,
        );
      }
      return undefined;
    }
    const file = loadAuthFile(config.authFile);
    if (file.clearText.length > 0) {
      logger.warn('the auth file holds clear-text passwords; replace them with "gandalf-node hash-password" hashes', { users: file.clearText });
    }
    const auth = new Authenticator(file);
    const authFile = config.authFile;
    this.watches.push(
      new FileWatch(
        [authFile],
        ([text]) => auth.replace(parseAuthFile(text!.toString('utf8'), authFile)),
        'auth file',
        systemClock,
        logger.child({ part: 'auth' }),
      ),
    );
    return async (route, authorization, body) => {
      const perms = permissionsFor(route, body);
      if (perms !== 'open') await auth.check(authorization, perms);
    };
  }

  private async startReplication(dataDir: string, sqlWorker: string): Promise<void> {
    const { config, logger } = this;
    const mesh = this.mesh!;
    const swim = this.cluster!.swim;
    const wire = new Wire(
      {
        selfId: this.nodeId,
        send: (to, body) => mesh.send('reliable', to, REPLICATION_TOPIC, body),
        subscribe: (handler) => mesh.subscribe(REPLICATION_TOPIC, handler),
        backlog: (to) => mesh.backlog(to, 'reliable'),
      },
      logger.child({ part: 'wire' }),
      systemClock,
      new SpoolDir(path.join(dataDir, 'spool'), nodeDataFs, logger.child({ part: 'spool' })),
    );
    const rpc = new Rpc(wire, systemClock, logger.child({ part: 'rpc' }));
    mesh.onPeerDown((id) => rpc.peerDown(id));
    // Membership suspects a dead peer sooner than its link times out: calls waiting on it fail fast.
    swim.onChange((m) => {
      if (m.state !== 'alive') rpc.peerDown(m.id);
    });
    const membership: MembershipPort = {
      members: () => swim.members(),
      publish: (key, value) => {
        const self = swim.member(this.nodeId);
        if (self && self.meta[key] !== value) swim.setMeta({ ...self.meta, [key]: value });
      },
    };
    const random32 = () => randomBytes(4).readUInt32LE(0);
    let coordination: Coordination | undefined;
    const writers = this.sqlWriters!;
    this.replicator = new Replicator({
      self: this.nodeId,
      dataDir,
      fs: nodeDataFs,
      logger: logger.child({ part: 'replication' }),
      clock: systemClock,
      random: Math.random,
      random32,
      createDatabaseMachine: (group) =>
        new WorkerSqlMachine({
          group,
          writer: writers.for(group),
          source: sqlWorker,
          clock: systemClock,
          logger: logger.child({ part: 'sql', group }),
          readerIdleMs: 60_000,
          readerHeapMb: 512,
        }),
      wire,
      rpc,
      membership,
      createSystemMachine: () => new SystemStateMachine(),
      // A node told to --join a cluster never founds one before it reached a member;
      // with mDNS, discovery gets more time to find boards that are already running.
      bootstrapGraceMs: config.discovery === 'none' ? 3000 : 6000,
      mayFound: () => config.join.length === 0 || swim.members().some((m) => m.id !== this.nodeId && m.state === 'alive'),
      onSystemApplied: (entry, result) => coordination?.onSystemApplied(entry, result),
      redundancy: config.redundancy,
      replaceAfterMs: config.replaceAfterMs,
      rebalanceMs: config.rebalanceIntervalMs,
      writeTimeoutMs: config.writeTimeoutMs,
      queryTimeoutMs: config.queryTimeoutMs,
      maxDatabaseBytes: config.maxDatabaseBytes,
      snapshotEntries: config.snapshotEntries,
      snapshotBytes: config.snapshotBytes,
      ...(this.metrics ? { observer: this.metrics } : {}),
      onNodesRemoved: (ids) => this.cluster?.ban(ids),
      voter: config.voter,
    });
    coordination = new Coordination({
      self: this.nodeId,
      replicator: this.replicator,
      clock: systemClock,
      logger: logger.child({ part: 'coordination' }),
      random32,
      timeoutMs: config.writeTimeoutMs,
    });
    this.coordination = coordination;
    await this.replicator.start();
    coordination.start();
    if (config.backupDir) {
      const replicator = this.replicator;
      this.backups = new BackupSchedule({
        dir: config.backupDir,
        intervalMs: config.backupIntervalMs,
        retain: config.backupRetain,
        cluster: config.clusterName,
        node: this.nodeId,
        source: {
          databases: async () => replicator.databases().map((d) => d.name),
          backup: async (db) => {
            const got = await replicator.backup(db, 'sqlite', 'weak');
            if (typeof got === 'string') throw new GandalfError('internal', 'an SQLite backup came back as text');
            return got;
          },
          kv: async () => {
            const { kvs, revision } = await coordination!.list('', 'weak');
            return { kvs: kvs.filter((k) => k.session === undefined).map((k) => ({ key: k.key, value: k.value })), revision };
          },
          lastToken: () => coordination!.lastToken('weak'),
        },
        clock: systemClock,
        logger: logger.child({ part: 'backup' }),
      });
    }
  }

  private async startCluster(cookies: string[]): Promise<void> {
    const { config, logger } = this;
    const mgmt = this.bound.mgmt!;
    const endpoint = config.advertiseEndpoint ?? advertisedEndpoint(mgmt);
    const rtc = await loadRtc(config.webrtc, logger, systemClock);
    const auth = new SignalAuth(cookies, config.clusterName, systemClock);
    if (config.clusterCookieFile && cookies.length > 0) {
      this.watches.push(watchCookieFile(config.clusterCookieFile, (next) => auth.setCookies(next), systemClock, logger.child({ part: 'cookie' })));
    }
    if (auth.open) {
      logger.warn(
        `no cluster cookie: this is an open cluster. Every node of cluster "${config.clusterName}" on this LAN joins it and shares its data, and anyone who reaches the mgmt endpoint can join; set the same secret on every board with --cluster-cookie-file FILE (or GANDALF_CLUSTER_COOKIE_FILE)`,
      );
    }
    const iceHost = isWildcard(mgmt.host) ? '0.0.0.0' : mgmt.host;
    this.mesh = new Mesh({
      self: { id: this.nodeId, endpoint },
      rtc,
      rtcOptions: { iceAddresses: [iceHost], iceServers: config.iceServer },
      auth,
      postSignal,
      logger: logger.child({ part: 'mesh' }),
      clock: systemClock,
    });
    const random = Math.random;
    const joinLoop =
      config.discovery !== 'none' && config.join.length > 0
        ? new JoinLoop({
            endpoints: config.join,
            connect: (e) => this.mesh!.connect(e),
            isConnected: (id) => this.mesh!.isConnected(id),
            clock: systemClock,
            random,
            logger: logger.child({ part: 'join' }),
          })
        : undefined;
    const routingIdentity = this.routingIdentity();
    const mdnsInterfaces = mdnsAddresses(config.mdnsInterface, mgmt);
    if (config.discovery === 'mdns' && mdnsInterfaces.length === 0) {
      logger.warn('mDNS has no interface to use (the mgmt endpoint is loopback-only, or none matched --mdns-interface)');
    }
    const mdns =
      config.discovery === 'mdns' && mdnsInterfaces.length > 0
        ? new MdnsDiscovery({
            interfaces: mdnsInterfaces,
            self: { id: this.nodeId, cluster: config.clusterName, port: mgmt.port, arch: process.arch, roles: routingIdentity.roles.join(',') },
            onDiscovered: (peer) => this.cluster?.discovered(peer),
            logger: logger.child({ part: 'mdns' }),
            clock: systemClock,
          })
        : undefined;
    this.cluster = new Cluster({
      self: { id: this.nodeId, endpoint, arch: process.arch, meta: identityMeta(routingIdentity) },
      mesh: this.mesh,
      clock: systemClock,
      random,
      logger: logger.child({ part: 'cluster' }),
      ...(joinLoop ? { joinLoop } : {}),
      ...(mdns ? { mdns } : {}),
    });
    this.cluster.start();
    logger.info('cluster member', { cluster: config.clusterName, endpoint, webrtc: rtc.name, discovery: config.discovery, join: config.join });
  }

  private routingIdentity(): RoutingIdentity {
    const { config } = this;
    return { roles: config.roles, tenant: config.tenant, logicalName: config.logicalName, connectorType: config.connectorType, product: config.product };
  }

  /** Graceful stop; safe to call more than once and from a failed start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const wasServing = this.state === 'serving';
      this.state = 'stopping';
      this.notifier.stopping();
      if (wasServing) this.logger.info('stopping: leaving the cluster, finishing in-flight requests');
      await Promise.all(this.servers.map((s) => s.close()));
      await this.backups?.stop();
      await this.routing?.close().catch((err: unknown) => this.logger.warn('closing routing failed', { err: err as Error }));
      this.coordination?.close();
      await this.replicator?.close().catch((err: unknown) => this.logger.warn('closing the replicas failed', { err: err as Error }));
      await this.sqlWriters?.close();
      await this.cluster?.stop().catch((err: unknown) => this.logger.warn('leaving the cluster failed', { err: err as Error }));
      this.mesh?.close();
      for (const w of this.watches) w.stop();
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
      uptime_s: Math.round((systemClock.monotonic() - this.startedAt) / 1000),
      http_bind: this.bound.http ? formatHostPort(this.bound.http) : null,
      mgmt_bind: this.bound.mgmt ? formatHostPort(this.bound.mgmt) : null,
      data_dir: path.resolve(this.config.dataDir),
      cluster: {
        name: this.config.clusterName,
        open: this.config.clusterCookie === undefined && this.config.clusterCookieFile === undefined,
        webrtc: this.mesh?.implementation ?? null,
        peers: this.mesh?.peers().length ?? 0,
        members: this.cluster?.nodes().length ?? 0,
      },
      system_leader: this.replicator?.systemLeader ?? null,
      split_cluster: this.replicator?.splitReport() ?? null,
      ...(this.backups ? { backups: { dir: this.config.backupDir, last: this.backups.last ?? null, last_error: this.backups.lastError ?? null } } : {}),
      databases: this.replicator?.databases() ?? [],
      replicas: this.replicator?.status() ?? [],
    };
  }
}

async function loadRtc(choice: NodeConfig['webrtc'], logger: Logger, clock: Clock): Promise<RtcFactory> {
  if (choice === 'werift') return loadWeriftRtc(clock);
  try {
    return await loadNativeRtc(clock);
  } catch (err) {
    if (choice === 'native') throw new ConfigError(`--webrtc native: node-datachannel does not load here: ${(err as Error).message}`);
    logger.info('node-datachannel is not available here; using werift', { reason: (err as Error).message.split('\n')[0] });
    return loadWeriftRtc(clock);
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function ipv4Addresses(): { name: string; address: string }[] {
  return Object.entries(os.networkInterfaces()).flatMap(([name, addrs]) =>
    (addrs ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => ({ name, address: a.address })),
  );
}

/** The mgmt endpoint peers dial: the bound address, or the first non-loopback IPv4 one for a wildcard bind. */
function advertisedEndpoint(mgmt: HostPort): string {
  const host = isWildcard(mgmt.host) ? (ipv4Addresses()[0]?.address ?? '127.0.0.1') : mgmt.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${mgmt.port}`;
}

/**
 * Interfaces for mDNS: the configured ones, else every non-loopback IPv4
 * interface; none when the mgmt endpoint listens on loopback only (peers on
 * the LAN could not reach what we would advertise).
 */
function mdnsAddresses(configured: string[], mgmt: HostPort): string[] {
  const all = ipv4Addresses();
  if (configured.length === 0) return mgmt.host.startsWith('127.') || mgmt.host === '::1' ? [] : all.map((a) => a.address);
  return configured.flatMap((c) => (/^\d+\.\d+\.\d+\.\d+$/.test(c) ? [c] : all.filter((a) => a.name === c).map((a) => a.address)));
}

/**
 * Runs a node in the foreground until SIGTERM or SIGINT. Resolves with the
 * process exit code: 0 after a clean stop, 2 when a setting turned out
 * invalid while starting (e.g. an unreadable cookie file), 1 when the node
 * could not start for another reason.
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
    return err instanceof ConfigError ? 2 : 1;
  }
  return exit;
}
