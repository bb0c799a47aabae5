/**
 * Gandalf routing on a board: the router, this connector's workers, the
 * command ledger and the data sink, wired to the mesh (topic `route`),
 * membership (who runs which role for which tenant) and the replicated
 * databases. The composition root (src/node) builds one and hands it to the
 * APIs.
 *
 * Admission (./peer-admission.ts, ./tenant-registry.ts): in an open
 * cluster a peer is admitted by the cluster cookie (the mesh's
 * authentication) for the tenant and roles it publishes in its membership
 * metadata; once a tenant was created, by the secret it presents.
 */
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import { identityFromMeta, tenantDatabase, type RoutingIdentity } from '../core/routing-identity';
import { rendezvous } from '../replication/placement';
import { clusterMembers, type Directory, type RoutingPeer } from './directory';
import type { RouteFrame } from './frames';
import { eventsAfter, type Replay } from './event-history';
import { kvConfigurations } from './kv-configurations';
import { isAdmissionFrame, PeerAdmission } from './peer-admission';
import { TenantRegistry } from './tenant-registry';
import type { KvPort, SqlPort } from './ports';
import { ConnectorTypes } from './connector-types';
import { Router } from './router';
import { SqlLedger } from './sql-ledger';
import { SqlSink } from './sql-sink';
import { directoryResolver } from './target-resolver';
import { WorkerHub } from './worker-hub';
import { WorkerSessions } from './worker-sessions';

/** How often the data sink is pruned (each tenant by one cluster member). */
const RETAIN_EVERY_MS = 60_000;

export interface RoutingServiceOptions {
  self: string;
  identity: RoutingIdentity;
  clock: Clock;
  random: () => number;
  newUuid: () => string;
  logger: Logger;
  mesh: { send(to: string, body: unknown): boolean; subscribe(handler: (from: string, body: unknown) => void): void };
  /** Membership's members: id, state and published metadata. */
  members(): readonly { id: string; state: string; meta: Readonly<Record<string, string>> }[];
  sql: SqlPort;
  /** The replicated key/value container (connector types live there). */
  kv: KvPort;
  /** This node's secret for its tenant (--secret). */
  secret: string | undefined;
  sinkRetentionMs: number;
  sinkMaxBytes: number;
}

export class RoutingService {
  readonly router: Router;
  readonly hub: WorkerHub;
  readonly workers: WorkerSessions;
  readonly sink: SqlSink;
  readonly ledger: SqlLedger;
  readonly directory: Directory;
  readonly types: ConnectorTypes;
  readonly tenants: TenantRegistry;
  readonly admission: PeerAdmission;
  private retainTimer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly o: RoutingServiceOptions) {
    this.directory = { peers: () => this.peers() };
    this.types = new ConnectorTypes(o.kv, o.clock, o.logger.child({ part: 'connector-types' }));
    this.tenants = new TenantRegistry(o.kv, o.clock, o.logger.child({ part: 'tenants' }));
    this.hub = new WorkerHub(o.self, o.clock, (env) => this.types.check(o.identity.connectorType, env, this.workers.versions()));
    this.ledger = new SqlLedger(o.sql, o.clock);
    this.sink = new SqlSink({ sql: o.sql, clock: o.clock, logger: o.logger.child({ part: 'sink' }), retentionMs: o.sinkRetentionMs, maxBytes: o.sinkMaxBytes });
    this.admission = new PeerAdmission({
      self: o.self,
      identity: o.identity,
      secret: o.secret,
      registry: this.tenants,
      directory: this.directory,
      clock: o.clock,
      logger: o.logger.child({ part: 'admission' }),
      send: (to, frame) => o.mesh.send(to, frame),
      trace: (record) => this.sink.admission(record),
    });
    this.router = new Router({
      self: o.self,
      identity: o.identity,
      clock: o.clock,
      random: o.random,
      newUuid: o.newUuid,
      send: (to, frame: RouteFrame) => o.mesh.send(to, frame),
      directory: this.directory,
      admission: this.admission,
      ledger: this.ledger,
      tracer: this.sink,
      workers: this.hub,
      resolver: directoryResolver(this.directory),
      configurations: kvConfigurations(o.kv, o.clock),
      logger: o.logger,
    });
    this.workers = new WorkerSessions({
      self: o.self,
      identity: o.identity,
      router: this.router,
      hub: this.hub,
      clock: o.clock,
      newUuid: o.newUuid,
      types: this.types,
      tenants: this.tenants,
      trace: (record) => this.sink.admission(record),
    });
  }

  /** The tenant's broadcast events traced after event `uuid`, from its sink (a watch that resumes). */
  eventsAfter(topics: readonly string[], uuid: string): Promise<Replay> {
    return eventsAfter(this.o.sql, this.o.identity.tenant, topics, uuid);
  }

  start(): void {
    this.o.mesh.subscribe((from, body) => (isAdmissionFrame(body) ? this.admission.receive(from, body) : this.router.receive(from, body)));
    this.types.start();
    this.tenants.start();
    this.admission.start();
    this.scheduleRetain();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retainTimer) this.o.clock.clearTimeout(this.retainTimer);
    this.router.stop();
    this.types.stop();
    this.tenants.stop();
    this.admission.stop();
    await this.sink.flush().catch(() => undefined);
    this.sink.stop();
  }

  /** Tenants this node prunes: those whose rendezvous-best cluster member it is. */
  private async retain(): Promise<void> {
    const members = clusterMembers(this.directory);
    const tenants = new Set(this.directory.peers().map((p) => p.identity.tenant));
    for (const tenant of tenants) {
      // never creates a tenant's database: one that saw no message has nothing to prune
      if (rendezvous(tenant, members, 1)[0] !== this.o.self || !this.o.sql.exists(tenantDatabase(tenant))) continue;
      try {
        const { deleted, bytes } = await this.sink.retain(tenant);
        const expired = await this.ledger.expire(tenant);
        if (deleted > 0 || expired > 0) this.o.logger.info('pruned the data sink', { tenant, deleted, expired_claims: expired, bytes });
      } catch (err) {
        this.o.logger.warn('could not prune the data sink', { tenant, err: err as Error });
      }
    }
  }

  private scheduleRetain(): void {
    if (this.stopped) return;
    this.retainTimer = this.o.clock.setTimeout(() => {
      void this.retain().finally(() => this.scheduleRetain());
    }, RETAIN_EVERY_MS);
    this.retainTimer.unref?.();
  }

  private peers(): RoutingPeer[] {
    const out: RoutingPeer[] = [];
    for (const m of this.o.members()) {
      if (m.id !== this.o.self && m.state !== 'alive' && m.state !== 'suspect') continue;
      const identity = m.id === this.o.self ? this.o.identity : identityFromMeta(m.meta);
      if (identity) out.push({ id: m.id, identity });
    }
    if (!out.some((p) => p.id === this.o.self)) out.push({ id: this.o.self, identity: this.o.identity });
    return out;
  }
}
