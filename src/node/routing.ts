/**
 * Gandalf routing on this board: the routing service on the mesh, membership
 * and the replicated databases, and (on a connector) the gRPC worker API.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MAX_SOCKET_PATH, WorkerApi } from '../api/worker-grpc';
import { systemClock } from '../core/clock';
import type { Logger } from '../core/logger';
import { ConfigError } from '../core/errors';
import { parseSecret, SECRET_RULE, type RoutingIdentity } from '../core/routing-identity';
import type { NodeConfig } from '../config/settings';
import type { ExecuteCommand, ExecuteResult, QueryResult, Statement } from '../store/sql-state-machine';
import type { ReadLevel } from '../replication/rpc-methods';
import { ROUTING_TOPIC } from '../routing/frames';
import { RoutingService } from '../routing/routing-service';
import type { Mesh } from '../transport/mesh';
import type { Swim } from '../membership/swim';
import type { Coordination } from '../replication/coordination';

/** The node's secret: --secret, or the first line of --secret-file (read at start). */
function readSecret(config: NodeConfig): string | undefined {
  if (config.secretFile === undefined) return config.secret;
  let text: string;
  try {
    text = readFileSync(config.secretFile, 'utf8').split('\n')[0]!.trim();
  } catch (err) {
    throw new ConfigError(`--secret-file ${config.secretFile}: ${(err as Error).message}`);
  }
  if (!parseSecret(text)) throw new ConfigError(`--secret-file ${config.secretFile}: expected ${SECRET_RULE}`);
  return text;
}

export interface RoutingParts {
  service: RoutingService;
  workerApi: WorkerApi | undefined;
  close(): Promise<void>;
}

export async function startRouting(o: {
  self: string;
  identity: RoutingIdentity;
  config: NodeConfig;
  dataDir: string;
  mesh: Mesh;
  swim: Swim;
  databases: {
    execute(db: string, command: ExecuteCommand, opts: { redundancy?: number }): Promise<ExecuteResult[]>;
    query(db: string, statements: Statement[], level: ReadLevel): Promise<QueryResult[]>;
    exists(db: string): boolean;
  };
  /** The key/value container (connector types), once it is up. */
  coordination: () => Coordination;
  logger: Logger;
}): Promise<RoutingParts> {
  const { mesh, swim, databases, config } = o;
  const service = new RoutingService({
    self: o.self,
    identity: o.identity,
    clock: systemClock,
    random: Math.random,
    newUuid: () => randomUUID(),
    logger: o.logger,
    mesh: {
      send: (to, body) => mesh.send('reliable', to, ROUTING_TOPIC, body),
      subscribe: (handler) => mesh.subscribe(ROUTING_TOPIC, handler),
    },
    members: () => swim.members(),
    sql: {
      execute: (db, statements, transaction) => databases.execute(db, { kind: 'execute', statements, transaction }, {}),
      query: (db, statements) => databases.query(db, statements, 'strong'),
      exists: (db) => databases.exists(db),
    },
    kv: {
      list: async (prefix, fresh) => (await o.coordination().list(prefix, fresh ? 'weak' : 'none')).kvs.map((k) => ({ key: k.key, value: k.value })),
      put: async (key, value, prevRevision) => void (await o.coordination().put(key, value, prevRevision === undefined ? {} : { prevRevision })),
      delete: async (key, prefix) => void (await o.coordination().delete(key, { prefix: prefix === true })),
    },
    secret: readSecret(config),
    sinkRetentionMs: config.sinkRetentionMs,
    sinkMaxBytes: config.sinkMaxBytes,
  });
  service.start();
  let workerApi: WorkerApi | undefined;
  if (o.identity.roles.includes('connector')) {
    let socket: string | undefined = config.workerSocket ?? path.join(o.dataDir, 'worker.sock');
    if (config.workerSocket === undefined && Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      o.logger.warn('the data dir path is too long for the default worker socket: no unix socket; set --worker-socket', { socket });
      socket = undefined;
    }
    workerApi = new WorkerApi({
      workers: () => service.workers,
      clock: systemClock,
      socket,
      port: config.workerPort,
    });
    await workerApi.listen();
    o.logger.info('worker API listening', { at: workerApi.addresses });
  }
  return {
    service,
    workerApi,
    close: async () => {
      await workerApi?.close();
      await service.stop();
    },
  };
}
