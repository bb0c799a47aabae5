/**
 * The gRPC worker API (proto/gandalf/worker/v1/worker.proto) on a connector:
 * a unix socket and optionally a loopback TCP port. Each RPC is checked at
 * entry (worker ids, JSON payloads, topics) and answered with a precise gRPC
 * status; the routing layer's WorkerSessions does the rest. A command stream
 * that ends (the worker stopped, crashed or lost its connection) gives the
 * commands it held to another worker.
 */
import { chmodSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { RECEIPT } from '../routing/answers';
import type { EventMessage } from '../routing/envelope';
import { isCommandKind, type CommandKind, type WorkerCommand, type WorkerSessions } from '../routing/worker-sessions';
import { workerService } from './worker-proto';

/* Messages as the .proto names them (proto-loader with keepCase and defaults). */
type RegisterRequest = { name: string; major: number; minor: number; commands: string[]; secret: string };
type CommandsRequest = { worker_id: string; credit: number };
type GrantRequest = { worker_id: string; credit: number };
type AckRequest = { worker_id: string; uuid: string };
type ResultRequest = { worker_id: string; reference_uuid: string; success: boolean; payload_json: string };
type EventRequest = { worker_id: string; topic: string; event: string; payload_json: string; reference_uuid: string; timeout_ms: number };
type CommandRequest = {
  worker_id: string;
  command: string;
  target: string;
  connector_type: string;
  payload_json: string;
  context_json: string;
  timeout_ms: number;
  major: number;
  minor: number;
  kind: string;
};
type SubscribeRequest = { worker_id: string; topics: string[] };

const STATUS: Record<string, grpc.status> = {
  invalid_request: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  conflict: grpc.status.ALREADY_EXISTS,
  unauthorized: grpc.status.UNAUTHENTICATED,
  starting: grpc.status.UNAVAILABLE,
  stopping: grpc.status.UNAVAILABLE,
};

/** Longest unix socket path (the kernel's sun_path holds 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 100;

/** A credit beyond this is refused: a worker takes commands in small numbers. */
const MAX_CREDIT = 1024;

function grpcError(err: unknown): grpc.ServiceError {
  const code = err instanceof GandalfError ? (STATUS[err.code] ?? grpc.status.INTERNAL) : grpc.status.INTERNAL;
  return Object.assign(new Error((err as Error).message), { code, details: (err as Error).message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** Ends a server stream with the error's status (grpc-js sends the status of an emitted error). */
function fail(call: grpc.ServerWritableStream<unknown, unknown>, err: unknown): void {
  call.emit('error', grpcError(err));
}

function commandKind(kind: string): CommandKind {
  if (!isCommandKind(kind)) throw new GandalfError('invalid_request', `kind must be command, config, configuration or secret, not ${kind}`);
  return kind;
}

function json(text: string, what: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new GandalfError('invalid_request', `${what} is not JSON: ${(err as Error).message}`);
  }
}

function jsonObject(text: string, what: string): Record<string, unknown> | undefined {
  const v = json(text, what);
  if (v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new GandalfError('invalid_request', `${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function credit(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_CREDIT) throw new GandalfError('invalid_request', `credit must be from 1 to ${MAX_CREDIT}`);
  return n;
}

function answerMessage(e: EventMessage) {
  return {
    uuid: e.uuid,
    reference_uuid: e.reference_uuid ?? '',
    topic: e.topic,
    event: e.event,
    payload_json: JSON.stringify(e.payload ?? null),
    source_node: e.source.node,
    source_worker: e.source.worker ?? '',
    timestamp: e.timestamp,
  };
}

function commandMessage({ env, remainingMs }: WorkerCommand) {
  return {
    uuid: env.uuid,
    command: env.command,
    kind: env.kind,
    payload_json: JSON.stringify(env.payload ?? null),
    context_json: JSON.stringify(env.context),
    major: env.major,
    minor: env.minor,
    attempt: env.attempt,
    remaining_ms: remainingMs,
    tenant: env.tenant,
    source_node: env.source.node,
    source_worker: env.source.worker ?? '',
  };
}

export interface WorkerApiOptions {
  workers: () => WorkerSessions;
  clock: Clock;
  /** A unix socket path (undefined: none). */
  socket: string | undefined;
  port: number | undefined;
}

export class WorkerApi {
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  /** Where it listens: `unix:/path` and `127.0.0.1:port`. */
  readonly addresses: string[] = [];

  constructor(private readonly o: WorkerApiOptions) {
    const unary =
      <Req, Res>(f: (req: Req) => Res) =>
      (call: grpc.ServerUnaryCall<Req, Res>, done: grpc.sendUnaryData<Res>) => {
        try {
          done(null, f(call.request));
        } catch (err) {
          done(grpcError(err));
        }
      };
    this.server.addService(workerService(), {
      Register: (call: grpc.ServerUnaryCall<RegisterRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
        const r = call.request;
        this.workers
          .register({ name: r.name, major: r.major, minor: r.minor, commands: r.commands, ...(r.secret ? { secret: r.secret } : {}) })
          .then(({ id }) => done(null, { worker_id: id, ...this.identity() }))
          .catch((err: unknown) => done(grpcError(err)));
      },
      Commands: (call: grpc.ServerWritableStream<CommandsRequest, unknown>) => this.commands(call),
      Grant: unary((r: GrantRequest) => (this.workers.grant(r.worker_id, credit(r.credit)), {})),
      Ack: unary((r: AckRequest) => {
        this.workers.ack(r.worker_id, r.uuid);
        return {};
      }),
      SendResult: unary((r: ResultRequest) => this.workers.result(r.worker_id, r.reference_uuid, r.success, json(r.payload_json, 'payload_json'))),
      SendEvent: unary((r: EventRequest) =>
        this.workers.event(r.worker_id, {
          topic: r.topic,
          event: r.event,
          payload: json(r.payload_json, 'payload_json'),
          ...(r.reference_uuid ? { reference_uuid: r.reference_uuid } : {}),
          ...(r.timeout_ms ? { timeout: r.timeout_ms } : {}),
        }),
      ),
      SendCommand: (call: grpc.ServerWritableStream<CommandRequest, unknown>) => this.sendCommand(call),
      Subscribe: (call: grpc.ServerWritableStream<SubscribeRequest, unknown>) => this.subscribe(call),
    });
  }

  private get workers(): WorkerSessions {
    return this.o.workers();
  }

  private identity() {
    return this.workers.identity();
  }

  async listen(): Promise<void> {
    const { socket, port } = this.o;
    if (socket !== undefined) {
      if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
        throw new GandalfError(
          'invalid_config',
          `the worker socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes, the limit of a unix socket: set a shorter --worker-socket`,
        );
      }
      rmSync(socket, { force: true });
      await this.bind(`unix:${socket}`);
      chmodSync(socket, 0o660);
    }
    if (port !== undefined) await this.bind(`127.0.0.1:${port}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const force = this.o.clock.setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      force.unref?.();
      this.server.tryShutdown(() => {
        this.o.clock.clearTimeout(force);
        resolve();
      });
    });
  }

  private bind(address: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) return reject(new GandalfError('invalid_config', `the worker API cannot listen on ${address}: ${err.message}`));
        this.addresses.push(address.startsWith('unix:') ? address : `127.0.0.1:${port}`);
        resolve();
      }),
    );
  }

  private commands(call: grpc.ServerWritableStream<CommandsRequest, unknown>): void {
    const { worker_id: id } = call.request;
    try {
      this.workers.takeCommands(
        id,
        credit(call.request.credit),
        (c) => call.write(commandMessage(c)),
        (err) => fail(call, err),
      );
    } catch (err) {
      fail(call, err);
      return;
    }
    const end = () => {
      this.workers.stopCommands(id);
      this.workers.release(id);
    };
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
  }

  private sendCommand(call: grpc.ServerWritableStream<CommandRequest, unknown>): void {
    const r = call.request;
    let sent: { cancel: () => void } | undefined;
    try {
      if (!r.worker_id && !this.workers.anonymousAllowed())
        throw new GandalfError('unauthorized', 'tenants exist: register with a secret first and send as that worker (worker_id)');
      sent = this.workers.command(
        r.worker_id || undefined,
        {
          command: r.command,
          ...(r.target ? { target: r.target } : {}),
          ...(r.connector_type ? { connector_type: r.connector_type } : {}),
          payload: json(r.payload_json, 'payload_json'),
          ...(r.context_json ? { context: jsonObject(r.context_json, 'context_json') } : {}),
          ...(r.timeout_ms ? { timeout: r.timeout_ms } : {}),
          major: r.major,
          minor: r.minor,
          ...(r.kind ? { kind: commandKind(r.kind) } : {}),
        },
        (answer) => {
          call.write(answerMessage(answer));
          if (answer.event !== RECEIPT) call.end();
        },
      );
    } catch (err) {
      fail(call, err);
      return;
    }
    call.on('cancelled', () => sent?.cancel());
  }

  private subscribe(call: grpc.ServerWritableStream<SubscribeRequest, unknown>): void {
    const { worker_id: id, topics } = call.request;
    try {
      this.workers.subscribe(
        id,
        topics,
        (e) => call.write(answerMessage(e)),
        (err) => fail(call, err),
      );
    } catch (err) {
      fail(call, err);
      return;
    }
    const end = () => {
      this.workers.unsubscribe(id);
      this.workers.release(id);
    };
    call.on('cancelled', end);
    call.on('close', end);
  }
}
