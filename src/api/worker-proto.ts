/**
 * The published worker API (proto/gandalf/worker/v1/worker.proto), loaded for
 * @grpc/grpc-js. scripts/bundle.mjs defines its text into the bundle, so the
 * single executable needs no file beside it; from the TypeScript sources it
 * is read from the repository.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import { parse } from 'protobufjs';

declare const __WORKER_PROTO__: string | undefined;

export const WORKER_PROTO_PATH = 'proto/gandalf/worker/v1/worker.proto';

export function workerProtoText(): string {
  if (typeof __WORKER_PROTO__ === 'string') return __WORKER_PROTO__;
  return readFileSync(path.join(__dirname, '..', '..', WORKER_PROTO_PATH), 'utf8');
}

/** The Worker service's definition (field names as in the .proto, 64-bit integers as numbers). */
export function workerService(): grpc.ServiceDefinition {
  const root = parse(workerProtoText(), { keepCase: true }).root;
  const definition = fromJSON(root.toJSON(), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { gandalf: { worker: { v1: { Worker: grpc.ServiceClientConstructor } } } };
  return pkg.gandalf.worker.v1.Worker.service;
}
