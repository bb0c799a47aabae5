/**
 * Logical configurations in the replicated system state: one JSON document
 * per tenant and logical name at `gandalf/configurations/<tenant>/<logical
 * name>` (the reserved namespace: /kv cannot write it), its version raised by
 * each save. Saves go through the system leader like any key/value write.
 */
import type { Clock } from '../core/clock';
import { RESERVED_PREFIX } from '../core/reserved-keys';
import type { Configurations, KvPort, StoredConfiguration } from './ports';

export const CONFIGURATION_PREFIX = `${RESERVED_PREFIX}configurations/`;

export function kvConfigurations(kv: KvPort, clock: Clock): Configurations {
  const key = (tenant: string, name: string) => `${CONFIGURATION_PREFIX}${tenant}/${name}`;
  const load = async (tenant: string, name: string): Promise<StoredConfiguration | undefined> => {
    const k = key(tenant, name);
    const hit = (await kv.list(k, true)).find((e) => e.key === k);
    if (!hit) return undefined;
    const v = JSON.parse(hit.value) as { configuration?: unknown; version?: unknown; updated_at?: unknown };
    return { logical_name: name, configuration: v.configuration ?? null, version: Number(v.version) || 0, updated_at: Number(v.updated_at) || 0 };
  };
  return {
    load,
    save: async (tenant, name, configuration) => {
      const before = await load(tenant, name);
      const stored: StoredConfiguration = { logical_name: name, configuration, version: (before?.version ?? 0) + 1, updated_at: Math.floor(clock.now()) };
      await kv.put(key(tenant, name), JSON.stringify({ configuration, version: stored.version, updated_at: stored.updated_at }));
      return stored;
    },
  };
}
