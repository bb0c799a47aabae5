/**
 * An example Gandalf worker, on the published worker API
 * (proto/gandalf/worker/v1/worker.proto, loaded at run time with
 * @grpc/proto-loader). Build it with `npm run build:example` (it becomes
 * dist/example-worker.cjs) and run it beside a connector node:
 *
 *   node dist/example-worker.cjs serve --socket data/worker.sock --name echo1 [--subscribe news]
 *     takes commands: ECHO (answers its payload), FAIL (answers FAIL),
 *     SLEEP ({"ms": N}: answers after N ms); prints what it gets as JSON lines
 *   node dist/example-worker.cjs send --socket data/worker.sock --target default --command ECHO --payload '{"hi":1}'
 *     sends a command and prints its receipt and result (or error)
 *   node dist/example-worker.cjs publish --socket ... --name echo1 --topic news --event HELLO
 *
 * Once tenants exist, each verb takes `--secret gandalf.<tenant>.<id>.<key>`
 * (a secret of the connector's tenant admitting workers).
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

type Args = Record<string, string>;

function parseArgs(argv: string[]): { verb: string; args: Args } {
  const [verb = 'help', ...rest] = argv;
  const args: Args = {};
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i]!;
    if (!key.startsWith('--') || rest[i + 1] === undefined) throw new Error(`expected --name value pairs, got ${key}`);
    args[key.slice(2)] = rest[i + 1]!;
  }
  return { verb, args };
}

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function client(args: Args): any {
  const proto = args.proto ?? path.join(__dirname, '..', 'proto', 'gandalf', 'worker', 'v1', 'worker.proto');
  const definition = loadSync(proto, { keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as any;
  const address = args.socket ? `unix:${args.socket}` : (args.address ?? '127.0.0.1:8430');
  return new pkg.gandalf.worker.v1.Worker(address, grpc.credentials.createInsecure());
}

function call<T>(c: any, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => c[method](request, (err: Error | null, reply: T) => (err ? reject(err) : resolve(reply))));
}

/** Register, tried again while the connector answers UNAVAILABLE (it is starting: its tenants are not read yet), for up to 30 s. */
async function register<T>(c: any, request: unknown): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await call<T>(c, 'Register', request);
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || tries >= 150) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function serve(args: Args): Promise<void> {
  const c = client(args);
  const name = args.name ?? 'example';
  const commands = (args.commands ?? 'ECHO,FAIL,SLEEP').split(',').filter(Boolean);
  const reg = await register<{ worker_id: string; tenant: string; logical_name: string; node: string }>(c, {
    name,
    major: 1,
    minor: 0,
    commands,
    secret: args.secret ?? '',
  });
  print({ type: 'registered', ...reg });
  const id = reg.worker_id;
  if (args.subscribe) {
    const events = c.Subscribe({ worker_id: id, topics: args.subscribe.split(',') });
    events.on('data', (e: any) => print({ type: 'event', worker: id, ...e, payload: JSON.parse(e.payload_json || 'null') }));
    events.on('error', (err: grpc.ServiceError) => err.code !== grpc.status.CANCELLED && print({ type: 'error', where: 'subscribe', message: err.message }));
  }
  const stream = c.Commands({ worker_id: id, credit: Number(args.credit ?? 4) });
  stream.on('data', (cmd: any) => {
    const payload = JSON.parse(cmd.payload_json || 'null');
    print({ type: 'command', worker: id, uuid: cmd.uuid, command: cmd.command, attempt: cmd.attempt, payload, source_node: cmd.source_node });
    void call(c, 'Ack', { worker_id: id, uuid: cmd.uuid });
    const answer = (success: boolean, result: unknown) =>
      call(c, 'SendResult', { worker_id: id, reference_uuid: cmd.uuid, success, payload_json: JSON.stringify(result) }).catch((err: Error) =>
        print({ type: 'error', where: 'result', message: err.message }),
      );
    if (cmd.command === 'FAIL') void answer(false, { failed: true });
    else if (cmd.command === 'SLEEP') setTimeout(() => void answer(true, { slept: payload?.ms ?? 0, by: id }), Number(payload?.ms ?? 0));
    else void answer(true, { echo: payload, by: id });
  });
  stream.on('error', (err: grpc.ServiceError) => {
    print({ type: 'error', where: 'commands', code: err.code, message: err.message });
    process.exit(1);
  });
  stream.on('end', () => process.exit(0));
}

async function send(args: Args): Promise<void> {
  const c = client(args);
  // with a secret, it sends as a registered worker (an anonymous sender is refused once tenants exist)
  const worker = args.secret
    ? (await register<{ worker_id: string }>(c, { name: args.name ?? `sender-${process.pid}`, major: 1, minor: 0, commands: [], secret: args.secret }))
        .worker_id
    : (args.name ?? '');
  return new Promise((resolve) => {
    const answers = c.SendCommand({
      worker_id: worker,
      command: args.command ?? 'ECHO',
      target: args.target ?? '',
      connector_type: args['connector-type'] ?? '',
      payload_json: args.payload ?? 'null',
      timeout_ms: Number(args.timeout ?? 1000),
    });
    answers.on('data', (a: any) => print({ type: 'answer', ...a, payload: JSON.parse(a.payload_json || 'null') }));
    answers.on('error', (err: grpc.ServiceError) => {
      print({ type: 'error', code: err.code, message: err.details ?? err.message });
      process.exitCode = 1;
      resolve();
    });
    answers.on('end', () => resolve());
  });
}

async function publish(args: Args): Promise<void> {
  const c = client(args);
  const reg = await register<{ worker_id: string }>(c, {
    name: args.name ?? 'publisher',
    major: 1,
    minor: 0,
    commands: [],
    secret: args.secret ?? '',
  });
  const sent = await call(c, 'SendEvent', {
    worker_id: reg.worker_id,
    topic: args.topic ?? 'news',
    event: args.event ?? 'HELLO',
    payload_json: args.payload ?? 'null',
  });
  print({ type: 'published', ...(sent as object) });
}

const { verb, args } = parseArgs(process.argv.slice(2));
const run = verb === 'serve' ? serve : verb === 'send' ? send : verb === 'publish' ? publish : undefined;
if (!run) {
  process.stderr.write('usage: example-worker serve|send|publish --socket PATH [...]\n');
  process.exit(2);
}
run(args).then(
  () => {
    if (verb !== 'serve') process.exit(process.exitCode ?? 0);
  },
  (err: Error) => {
    print({ type: 'error', message: err.message });
    process.exit(1);
  },
);
