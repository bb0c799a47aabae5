/**
 * Gandalf messages over HTTP, on a connector node (permission `route`):
 *   POST /gandalf/command {kind?, command, target | connector_type, payload?, context?, timeout?, major?, minor?}
 *        sends a command from an anonymous sender of this connector and answers with its end:
 *        200 {uuid, outcome: "SUCCESS" | "FAIL", payload, by, receipt}, or the error event's
 *        reason as the status (504 timeout, 404 no_target, 503 no_route, 400 invalid_payload …)
 *   POST /gandalf/event {topic, event, payload?, context?, timeout?}   -> 202 {uuid}
 *   GET  /gandalf/events?topic=a,b[&after=UUID]   the tenant's events of those topics ("*": all) as server-sent events,
 *        live; with `after` (or Last-Event-ID) first those traced after that event, from the sink
 *   PUT  /gandalf/connector-types/TYPE/MAJOR.MINOR {"commands": {"NAME": JSON Schema}}   (permission admin)
 *   GET  /gandalf/connector-types, DELETE /gandalf/connector-types/TYPE/MAJOR.MINOR
 */
import type * as http from 'node:http';
import { sleep, type Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { ERROR_TOPIC, RECEIPT } from '../routing/answers';
import { isUuid, type EventMessage } from '../routing/envelope';
import type { PastEvent, Replay } from '../routing/event-history';
import type { ConnectorTypes } from '../routing/connector-types';
import { isCommandKind, type OutgoingCommand, type WorkerSessions } from '../routing/worker-sessions';
import type { Routes } from './http-server';

/** The HTTP status of a command that ended with an error event. */
const ERROR_STATUS: Record<string, number> = {
  timeout: 504,
  no_target: 404,
  no_route: 503,
  foreign_tenant: 403,
  not_admitted: 403,
  invalid_payload: 400,
  invalid_message: 400,
  hop_limit: 508,
};

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) invalid('the body must be a JSON object');
  return body as Record<string, unknown>;
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') invalid(`${key} must be a string`);
  return v;
}

function optionalInt(o: Record<string, unknown>, key: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) invalid(`${key} must be an integer`);
  return v;
}

function commandOf(body: unknown): OutgoingCommand {
  const o = object(body);
  const command = optionalString(o, 'command');
  if (command === undefined) invalid('command is missing');
  const c: OutgoingCommand = { command };
  const target = optionalString(o, 'target');
  const type = optionalString(o, 'connector_type');
  const kind = o.kind ?? 'command';
  if (!isCommandKind(kind)) invalid('kind must be command, config, configuration or secret');
  if (kind !== 'command') c.kind = kind;
  // a configuration or a secret is the cluster's own business: it goes to no connector
  if (target === undefined && type === undefined && (kind === 'command' || kind === 'config'))
    invalid('a command needs a target (a connector logical name) or a connector_type');
  if (target !== undefined) c.target = target;
  if (type !== undefined) c.connector_type = type;
  if (o.payload !== undefined) c.payload = o.payload;
  if (o.context !== undefined) c.context = object(o.context);
  for (const key of ['timeout', 'major', 'minor'] as const) {
    const n = optionalInt(o, key);
    if (n !== undefined) c[key] = n;
  }
  return c;
}

function answerJson(e: EventMessage): PastEvent {
  return {
    uuid: e.uuid,
    topic: e.topic,
    event: e.event,
    payload: e.payload ?? null,
    node: e.source.node,
    worker: e.source.worker ?? null,
    timestamp: e.timestamp,
  };
}

/** How long a resuming watch waits before it reads the sink: what was traced just before it came is in the sink by then. */
const SINK_LAG_MS = 500;

type RoutingPart = { workers: WorkerSessions; types: ConnectorTypes; eventsAfter(topics: readonly string[], uuid: string): Promise<Replay> };

export function routingRoutes(routing: () => RoutingPart, clock: Clock): Routes {
  const workers = () => routing().workers;
  const typePath = (rest: string): [string, string] => {
    const m = /^([^/]+)\/([^/]+)$/.exec(rest);
    if (!m) invalid('use /gandalf/connector-types/TYPE/MAJOR.MINOR');
    return [m[1]!, m[2]!];
  };
  return {
    'PUT /gandalf/connector-types/*': async (req) => {
      const [type, version] = typePath(req.rest);
      const v = await routing().types.put(type, version, req.body);
      return { status: 200, body: { type: v.type, version: `${v.major}.${v.minor}`, commands: Object.keys(v.commands) } };
    },
    'DELETE /gandalf/connector-types/*': async (req) => {
      const [type, version] = typePath(req.rest);
      await routing().types.delete(type, version);
      return { status: 200, body: { type, version, deleted: true } };
    },
    'GET /gandalf/connector-types': async () => ({
      status: 200,
      body: { types: (await routing().types.list()).map((v) => ({ type: v.type, version: `${v.major}.${v.minor}`, commands: v.commands })) },
    }),
    'POST /gandalf/command': (req) =>
      new Promise((resolve, reject) => {
        let receipt: EventMessage | undefined;
        let sent: { uuid: string; cancel: () => void };
        try {
          sent = workers().command(undefined, commandOf(req.body), (answer) => {
            if (answer.event === RECEIPT) {
              receipt = answer;
              return;
            }
            if (answer.topic === ERROR_TOPIC) {
              const p = (answer.payload ?? {}) as { error?: string; details?: unknown };
              return resolve({
                status: ERROR_STATUS[answer.event] ?? 502,
                body: {
                  uuid: sent.uuid,
                  code: answer.event,
                  message: p.error ?? answer.event,
                  ...(p.details !== undefined ? { details: p.details } : {}),
                  by: answer.source.node,
                },
              });
            }
            resolve({
              status: 200,
              body: {
                uuid: sent.uuid,
                outcome: answer.event,
                payload: answer.payload ?? null,
                by: { node: answer.source.node, worker: answer.source.worker ?? null },
                receipt: receipt ? answerJson(receipt) : null,
              },
            });
          });
        } catch (err) {
          return reject(err);
        }
        // the command goes on without its HTTP client; its end is in the sink (gandalf-node trace)
        req.signal.addEventListener('abort', () => sent.cancel(), { once: true });
      }),
    'POST /gandalf/event': (req) => {
      const o = object(req.body);
      const topic = optionalString(o, 'topic');
      const event = optionalString(o, 'event');
      if (topic === undefined || event === undefined) invalid('an event needs a topic and an event');
      const timeout = optionalInt(o, 'timeout');
      const sent = workers().event(undefined, {
        topic,
        event,
        ...(o.payload !== undefined ? { payload: o.payload } : {}),
        ...(o.context !== undefined ? { context: object(o.context) } : {}),
        ...(timeout !== undefined ? { timeout } : {}),
      });
      return { status: 202, body: sent };
    },
    'GET /gandalf/events': (req) => {
      const topics = (req.url.searchParams.get('topic') ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      if (topics.length === 0) invalid('topic is required: a comma-separated list, or * for all');
      const header = req.raw.headers['last-event-id'];
      const after = req.url.searchParams.get('after') ?? (typeof header === 'string' && header !== '' ? header : undefined);
      if (after !== undefined && !isUuid(after)) invalid('after (or Last-Event-ID) must be the uuid of an event');
      return { status: 200, body: null, stream: (res) => watchEvents(routing(), topics, after?.toLowerCase(), res, clock) };
    },
  };
}

/**
 * Live events as server-sent events; with `after`, first the sink's events traced after that one
 * (live ones that arrive meanwhile wait, and none is sent twice).
 */
async function watchEvents(routing: RoutingPart, topics: string[], after: string | undefined, res: http.ServerResponse, clock: Clock): Promise<void> {
  const send = (e: PastEvent, reference: string | null = null) =>
    res.write(`id: ${e.uuid}\nevent: ${e.event}\ndata: ${JSON.stringify({ ...e, reference_uuid: reference })}\n\n`);
  let waiting: EventMessage[] | undefined = after === undefined ? undefined : [];
  const id = routing.workers.watch(topics, (e) => {
    if (waiting) waiting.push(e);
    else send(answerJson(e), e.reference_uuid ?? null);
  });
  const closed = new Promise<void>((resolve) =>
    res.on('close', () => {
      routing.workers.unwatch(id);
      resolve();
    }),
  );
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.write(`: watching topics ${topics.join(',')}${after ? ` after ${after}` : ''}\n\n`);
  if (after !== undefined) {
    const replayed = new Set<string>();
    const error = (code: string, message: string) => res.write(`event: error\ndata: ${JSON.stringify({ code, message })}\n\n`);
    try {
      await sleep(clock, SINK_LAG_MS);
      const r = await routing.eventsAfter(topics, after);
      if (!r.found) error('unknown_event', `event ${after} is not in the sink (pruned, or not traced yet): live events only`);
      else {
        for (const e of r.events) {
          replayed.add(e.uuid);
          send(e);
        }
        if (r.truncated) error('too_many', `more than ${r.events.length} events came after ${after}: read the rest from the sink with SQL`);
      }
    } catch (err) {
      error('sink_unavailable', `the sink could not be read (${(err as Error).message}): live events only`);
    }
    const live = waiting!;
    waiting = undefined;
    for (const e of live) if (!replayed.has(e.uuid)) send(answerJson(e), e.reference_uuid ?? null);
  }
  await closed;
}
