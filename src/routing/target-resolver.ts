/**
 * The cluster's choice of a command's destination when the command names a
 * connector type rather than a `target`: a logical name of a live connector
 * of that type in the tenant, spread over the names by the command's uuid
 * (rendezvous), so brothers of several names share the load.
 */
import { rendezvous } from '../replication/placement';
import { connectorsOf, type Directory } from './directory';
import type { CommandMessage } from './envelope';
import type { TargetResolver } from './ports';

export function directoryResolver(directory: Directory): TargetResolver {
  return {
    resolve: (env: CommandMessage) => {
      if (env.connector_type === undefined) return { error: 'a command needs a target (a connector logical name) or a connector_type' };
      const names = new Set(
        connectorsOf(directory, env.tenant)
          .filter((p) => p.identity.connectorType === env.connector_type)
          .map((p) => p.identity.logicalName),
      );
      const pick = rendezvous(env.uuid, [...names], 1)[0];
      return pick ? { target: pick } : { error: `no connector of type ${env.connector_type} in tenant ${env.tenant}` };
    },
  };
}
