/**
 * Who is where, as this node sees it: the live nodes and the routing identity
 * each publishes (roles, tenant, logical name, connector type), and the
 * candidates of each hop drawn from it. The view comes from membership, so
 * two nodes can briefly disagree; the routing layer is built for that
 * (retries across candidates, dedupe by uuid, a claim before a command runs).
 */
import type { Role, RoutingIdentity } from '../core/routing-identity';
import { rendezvous } from '../replication/placement';

export interface RoutingPeer {
  id: string;
  identity: RoutingIdentity;
}

/** The live nodes that publish a routing identity, this one included. */
export interface Directory {
  peers(): readonly RoutingPeer[];
}

function runs(p: RoutingPeer, role: Role): boolean {
  return p.identity.roles.includes(role);
}

export function clusterMembers(d: Directory): string[] {
  return d
    .peers()
    .filter((p) => runs(p, 'cluster'))
    .map((p) => p.id);
}

export function aggregatorsOf(d: Directory, tenant: string): string[] {
  return d
    .peers()
    .filter((p) => runs(p, 'aggregator') && p.identity.tenant === tenant)
    .map((p) => p.id);
}

/** Connectors of `tenant`, those of logical name `logicalName` when given. */
export function connectorsOf(d: Directory, tenant: string, logicalName?: string): RoutingPeer[] {
  return d.peers().filter((p) => runs(p, 'connector') && p.identity.tenant === tenant && (logicalName === undefined || p.identity.logicalName === logicalName));
}

/**
 * The aggregator a connector receives its tenant's broadcast events through:
 * its own node when that is an aggregator of the tenant, else the
 * rendezvous-best aggregator of the tenant. Every node computes the same from
 * the same view; a connector that two views home differently gets an event
 * twice and drops the second by its uuid.
 */
export function homeAggregator(d: Directory, connector: RoutingPeer): string | undefined {
  const aggregators = aggregatorsOf(d, connector.identity.tenant);
  if (aggregators.includes(connector.id)) return connector.id;
  return rendezvous(connector.id, aggregators, 1)[0];
}

export function identityOf(d: Directory, node: string): RoutingIdentity | undefined {
  return d.peers().find((p) => p.id === node)?.identity;
}
