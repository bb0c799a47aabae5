/**
 * What the routing layer needs from the rest of the node, as interfaces, so
 * the same router runs on a board (membership, the replicated store, gRPC
 * workers) and in a deterministic simulation.
 */
import type { Role } from '../core/routing-identity';
import type { ExecuteResult, QueryResult, Statement } from '../store/sql-state-machine';
import type { CommandMessage, ConfigMessage, Envelope, EventMessage } from './envelope';

/** The tenant a peer's role was admitted for: `*` for a cluster member (it serves every tenant); undefined: not admitted. */
export interface Admission {
  tenantOf(peer: string, role: Role): string | undefined;
}

/**
 * One connector runs a command: the first to claim its uuid (linearizable,
 * shared by the cluster). A later claim of the same uuid by the same node is
 * won again (a repeated delivery); by another node it is lost while the first
 * claim lives (`ttlMs`: past the command's deadline), unless it is for a later
 * `attempt`: only the command's sender starts one, once the connector that
 * took the command is gone (membership declared it dead).
 *
 * A result is recorded (`complete`) before it is sent, and only by the claim
 * in force (that node, that attempt): a superseded claim's result is refused.
 * A claim of a command that has its result recorded is lost, with that result
 * (to send again to a sender that did not get it): a command is finished once.
 */
export type Claim = { won: true } | { won: false; result?: EventMessage };

export interface CommandLedger {
  claim(tenant: string, uuid: string, attempt: number, node: string, ttlMs: number): Promise<Claim>;
  complete(tenant: string, uuid: string, attempt: number, node: string, result: EventMessage): Promise<boolean>;
}

export type HopOutcomeName = 'received' | 'routed' | 'delivered' | 'retried' | 'timed_out' | 'dropped';

export interface HopRecord {
  uuid: string;
  tenant: string;
  kind: Envelope['kind'];
  node: string;
  role: Role;
  outcome: HopOutcomeName;
  /** The peer it came from or went to. */
  peer?: string;
  reason?: string;
  /** Wall clock ms of this node. */
  at: number;
}

/** A node or worker that presented a secret, and what became of it: the secret's id, never its value. */
export interface AdmissionRecord {
  tenant: string;
  /** The node that checked it. */
  node: string;
  subject: 'node' | 'worker';
  /** The node id, or the worker's name. */
  name: string;
  roles: string[];
  secretId: string | undefined;
  outcome: 'admitted' | 'refused';
  reason?: string;
  /** Wall clock ms of this node. */
  at: number;
}

/** The data sink: every message once (by uuid), every hop and every admission. Secret values never reach it. */
export interface Tracer {
  message(env: Envelope, node: string): void;
  hop(record: HopRecord): void;
  admission(record: AdmissionRecord): void;
}

/** What a command that reached its connector became: queued for a worker, a repeat, or refused (e.g. its payload fails its schema). */
export type Offer = { queued: true } | { queued: false; duplicate: true } | { queued: false; duplicate?: false; error: string; details?: unknown };

/** This connector's workers. */
export interface LocalWorkers {
  /** A command for one of them, to be taken before `deadline` (monotonic ms). */
  command(env: CommandMessage | ConfigMessage, deadline: number): Offer;
  /** A broadcast event for the workers subscribed to its topic, or a directed one (a receipt, result or error) for the worker it names. */
  event(env: EventMessage): void;
}

/** The cluster's choice of a command's destination connector (a logical name), or why there is none. */
export interface TargetResolver {
  resolve(env: CommandMessage): { target: string } | { error: string };
}

/** SQL on the replicated databases (the tenants' `gandalf-<tenant>`): writes through Raft, reads at `strong` level. */
export interface SqlPort {
  execute(db: string, statements: Statement[], transaction: boolean): Promise<ExecuteResult[]>;
  query(db: string, statements: Statement[]): Promise<QueryResult[]>;
  /** Whether the database exists (a write creates it). */
  exists(db: string): boolean;
}

/** The replicated key/value container (the system state), where the routing tables live under `gandalf/`. */
export interface KvPort {
  /** `fresh`: read at the system leader (a management call), else this board's view (a periodic refresh). */
  list(prefix: string, fresh: boolean): Promise<{ key: string; value: string }[]>;
  /** `prevRevision` 0: only if the key does not exist (a GandalfError revision_mismatch otherwise). */
  put(key: string, value: string, prevRevision?: number): Promise<void>;
  delete(key: string, prefix?: boolean): Promise<void>;
}

/** A logical configuration as the cluster keeps it: one per tenant and logical name, versioned. */
export interface StoredConfiguration {
  logical_name: string;
  configuration: unknown;
  version: number;
  updated_at: number;
}

/** Where the cluster keeps logical configurations (the replicated system state). */
export interface Configurations {
  save(tenant: string, logicalName: string, configuration: unknown): Promise<StoredConfiguration>;
  load(tenant: string, logicalName: string): Promise<StoredConfiguration | undefined>;
}
