/** An in-memory key/value container with the KvPort's semantics (create-only puts, prefix deletes), for the routing tables' tests. */
import { GandalfError } from '../../src/core/errors';
import type { KvPort } from '../../src/routing/ports';

export function memoryKv(): KvPort & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    list: async (prefix) => [...data].filter(([k]) => k.startsWith(prefix)).map(([key, value]) => ({ key, value })),
    put: async (key, value, prevRevision) => {
      if (prevRevision === 0 && data.has(key)) throw new GandalfError('revision_mismatch', `${key} exists`);
      data.set(key, value);
    },
    delete: async (key, prefix) => {
      for (const k of [...data.keys()]) if (prefix ? k.startsWith(key) : k === key) data.delete(k);
    },
  };
}
