/**
 * GET /metrics: the node in Prometheus exposition (prom-client), with
 * etcd-style names under `gandalf_`. Gauges and counters that mirror state
 * are read from their sources when scraped; durations are observed as they
 * happen (log writes, snapshots, HTTP requests). Node's process metrics come
 * from prom-client's default collectors, under the same prefix.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Routes } from './http-server';

/** One replica as the metrics see it (the replicator's status rows). */
export interface ReplicaMetrics {
  group: string;
  state: string;
  leader: string | null;
  commit_index: number;
  applied_index: number;
  leader_changes: number;
  proposals_pending: number;
  proposals_failed: number;
  size_bytes?: number;
}

export interface MeshCounters {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  badFrames: number;
  datagramsDropped: number;
  signalsRefused: number;
}

/** What the metrics read when scraped; each may be missing while the node starts. */
export interface MetricsSources {
  replicas(): ReplicaMetrics[];
  /** Every member this node knows of, with its SWIM state. */
  members(): { id: string; state: string }[];
  /** Round-trip time to each peer SWIM probed lately, in ms. */
  roundTrips(): { peer: string; ms: number }[];
  mesh(): MeshCounters | undefined;
  /** Clients of this node waiting for a lock. */
  lockWaiters(): number;
}

const SWIM_STATES = ['alive', 'suspect', 'dead', 'left'] as const;
/** Log writes on an SD card: etcd's buckets start at 1 ms; a card's fsync can take a second. */
const FSYNC_BUCKETS = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const SNAPSHOT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly fsync: Histogram<'group'>;
  private readonly snapshotSeconds: Histogram<'group'>;
  private readonly snapshotBytes: Gauge<'group'>;
  private readonly httpRequests: Counter<'route' | 'code'>;
  private readonly httpSeconds: Histogram<'route'>;
  /** Requests answered with a 2xx, by route (for the dashboard's rates). */
  private readonly ok = new Map<string, number>();

  constructor(nodeId: string, sources: MetricsSources) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: nodeId });
    collectDefaultMetrics({ register: this.registry, prefix: 'gandalf_' });
    const replicaGauge = (name: string, help: string, value: (r: ReplicaMetrics) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['group'],
        registers,
        collect() {
          this.reset();
          for (const r of sources.replicas()) {
            const v = value(r);
            if (v !== undefined) this.set({ group: r.group }, v);
          }
        },
      });
    replicaGauge('gandalf_server_has_leader', 'Whether this replica knows a leader of its group (1) or not (0).', (r) => (r.leader ? 1 : 0));
    replicaGauge('gandalf_server_is_leader', 'Whether this replica leads its group.', (r) => (r.state === 'leader' ? 1 : 0));
    // counters kept by the replicas: exposed as counters, read when scraped
    const replicaCounter = (name: string, help: string, value: (r: ReplicaMetrics) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['group'],
        registers,
        collect() {
          this.reset();
          for (const r of sources.replicas()) this.inc({ group: r.group }, value(r));
        },
      });
    replicaCounter('gandalf_server_leader_changes_seen_total', 'Leaders this replica has seen take over its group.', (r) => r.leader_changes);
    replicaCounter('gandalf_server_proposals_committed_total', 'Log index committed in the group, as this replica knows it.', (r) => r.commit_index);
    replicaCounter('gandalf_server_proposals_applied_total', 'Log index this replica has applied.', (r) => r.applied_index);
    replicaCounter(
      'gandalf_server_proposals_failed_total',
      'Proposals on this replica that failed (no quorum in time, leader change, log failure).',
      (r) => r.proposals_failed,
    );
    replicaGauge('gandalf_server_proposals_pending', 'Proposals on this replica waiting to commit.', (r) => r.proposals_pending);
    replicaGauge('gandalf_db_size_bytes', 'Size of the database held by this replica (sql.js keeps it in memory: also its memory).', (r) => r.size_bytes);
    this.fsync = new Histogram({
      name: 'gandalf_disk_wal_fsync_duration_seconds',
      help: 'Time to make a Raft Ready durable (log write and fsync).',
      labelNames: ['group'],
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.snapshotSeconds = new Histogram({
      name: 'gandalf_snapshot_save_total_duration_seconds',
      help: 'Time from the start of a snapshot to its image written.',
      labelNames: ['group'],
      buckets: SNAPSHOT_BUCKETS,
      registers,
    });
    this.snapshotBytes = new Gauge({
      name: 'gandalf_snapshot_size_bytes',
      help: 'Size of the latest snapshot image written.',
      labelNames: ['group'],
      registers,
    });
    new Gauge({
      name: 'gandalf_membership_members',
      help: 'Members this node knows of, by SWIM state.',
      labelNames: ['state'],
      registers,
      collect() {
        const members = sources.members();
        for (const state of SWIM_STATES) this.set({ state }, members.filter((m) => m.state === state).length);
      },
    });
    new Gauge({
      name: 'gandalf_network_peer_round_trip_time_seconds',
      help: 'Round-trip time of the latest SWIM probe to each peer.',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const r of sources.roundTrips()) this.set({ peer: r.peer }, r.ms / 1000);
      },
    });
    const meshCounter = (name: string, help: string, value: (m: MeshCounters) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const m = sources.mesh();
          this.reset();
          if (m) this.inc(value(m));
        },
      });
    meshCounter('gandalf_mesh_frames_sent_total', 'Frames sent on mesh links.', (m) => m.framesSent);
    meshCounter('gandalf_mesh_frames_received_total', 'Frames received on mesh links.', (m) => m.framesReceived);
    meshCounter('gandalf_mesh_sent_bytes_total', 'Bytes sent on mesh links.', (m) => m.bytesSent);
    meshCounter('gandalf_mesh_received_bytes_total', 'Bytes received on mesh links.', (m) => m.bytesReceived);
    meshCounter('gandalf_mesh_bad_frames_total', 'Malformed frames or unknown topics dropped.', (m) => m.badFrames);
    meshCounter('gandalf_mesh_datagrams_dropped_total', 'Unreliable datagrams dropped because their channel was full.', (m) => m.datagramsDropped);
    meshCounter('gandalf_mesh_signals_refused_total', 'Connection offers refused (wrong cookie or cluster, stale, replayed).', (m) => m.signalsRefused);
    new Gauge({
      name: 'gandalf_lock_waiters',
      help: 'Clients of this node waiting for a lock.',
      registers,
      collect() {
        this.set(sources.lockWaiters());
      },
    });
    this.httpRequests = new Counter({
      name: 'gandalf_http_requests_total',
      help: 'HTTP requests answered, by route and status.',
      labelNames: ['route', 'code'],
      registers,
    });
    this.httpSeconds = new Histogram({
      name: 'gandalf_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route.',
      labelNames: ['route'],
      buckets: HTTP_BUCKETS,
      registers,
    });
  }

  okCount(routes: string[]): number {
    return routes.reduce((n, r) => n + (this.ok.get(r) ?? 0), 0);
  }

  persisted(group: string, seconds: number): void {
    this.fsync.observe({ group }, seconds);
  }

  snapshotted(group: string, seconds: number, bytes: number): void {
    this.snapshotSeconds.observe({ group }, seconds);
    this.snapshotBytes.set({ group }, bytes);
  }

  answered(route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ route, code: String(status) });
    if (status >= 200 && status < 300) this.ok.set(route, (this.ok.get(route) ?? 0) + 1);
    this.httpSeconds.observe({ route }, seconds);
  }
}

export function metricsRoutes(metrics: NodeMetrics): Routes {
  return {
    'GET /metrics': async () => {
      const text = await metrics.registry.metrics();
      return {
        status: 200,
        body: undefined,
        stream: async (res) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
      };
    },
  };
}
