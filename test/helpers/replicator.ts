/**
 * A one-node replicated store in-process (no mesh: the wire has no peers), for
 * API-level tests: the same Replicator and Coordination the node runs.
 */
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { Coordination } from '../../src/replication/coordination';
import { Replicator } from '../../src/replication/replicator';
import { SystemStateMachine } from '../../src/replication/system-machine';
import { Rpc, Wire } from '../../src/replication/wire';
import { nodeDataFs } from '../../src/store/data-fs';
import { seededRandom32 } from '../../src/store/sql-state-machine';
import { mulberry32 } from './sim/prng';
import { workerMachine } from './sql-worker';

export interface SingleNode {
  replicator: Replicator;
  coordination: Coordination;
  close(): Promise<void>;
}

export async function startSingleNode(
  dataDir: string,
  options: { writeTimeoutMs?: number; queryTimeoutMs?: number; snapshotEntries?: number; maxDatabaseBytes?: number } = {},
): Promise<SingleNode> {
  const wire = new Wire({ selfId: 'solo', send: () => false, subscribe: () => {} }, silentLogger);
  const rpc = new Rpc(wire, systemClock, silentLogger);
  let coordination: Coordination | undefined;
  const replicator = new Replicator({
    self: 'solo',
    dataDir,
    fs: nodeDataFs,
    logger: silentLogger,
    clock: systemClock,
    random: mulberry32(7),
    random32: seededRandom32(3),
    createDatabaseMachine: () => workerMachine(),
    wire,
    rpc,
    membership: { members: () => [{ id: 'solo', state: 'alive', meta: {} }], publish: () => {} },
    createSystemMachine: () => new SystemStateMachine(),
    onSystemApplied: (e, r) => coordination?.onSystemApplied(e, r),
    redundancy: 0,
    replaceAfterMs: 30_000,
    writeTimeoutMs: options.writeTimeoutMs ?? 5_000,
    queryTimeoutMs: options.queryTimeoutMs ?? 2_000,
    ...(options.maxDatabaseBytes ? { maxDatabaseBytes: options.maxDatabaseBytes } : {}),
    snapshotEntries: options.snapshotEntries ?? 1000,
    bootstrapGraceMs: 0,
    tickMs: 20,
  });
  coordination = new Coordination({
    self: 'solo',
    replicator,
    clock: systemClock,
    logger: silentLogger,
    random32: seededRandom32(5),
    timeoutMs: options.writeTimeoutMs ?? 5_000,
  });
  await replicator.start();
  coordination.start();
  return {
    replicator,
    coordination,
    close: async () => {
      coordination!.close();
      await replicator.close();
    },
  };
}
