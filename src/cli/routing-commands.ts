/**
 * Gandalf routing from the command line: `trace UUID` (the whole route of one
 * message, its receipt and its result or error, from its tenant's data sink,
 * the database `gandalf-<tenant>`, read at `strong` level from any node),
 * `command`, `event` and `events --watch` (through a connector node's HTTP
 * endpoints).
 */
import { isTenant, tenantDatabase, TENANT_RULE } from '../core/routing-identity';
import { isUuid } from '../routing/envelope';
import { systemClock } from '../core/clock';
import { request, type ClientTarget } from './api-client';
import { CommandFailed } from './errors';
import { readSse } from './sse-client';
import { renderTable } from './table';

export interface Trace {
  messages: Record<string, unknown>[];
  route: Record<string, unknown>[];
}

type Rows = { columns?: string[]; values?: unknown[][]; error?: string };

function records(r: Rows | undefined): Record<string, unknown>[] {
  if (!r || r.error) throw new CommandFailed(`the sink could not be read: ${r?.error ?? 'no result'}`);
  return (r.values ?? []).map((v) => Object.fromEntries((r.columns ?? []).map((c, i) => [c, v[i]])));
}

export async function fetchTrace(bind: ClientTarget, uuid: string, tenant: string): Promise<Trace> {
  if (!isUuid(uuid)) throw new CommandFailed(`"${uuid}" is not a message uuid`);
  if (!isTenant(tenant)) throw new CommandFailed(`"${tenant}" is not a tenant: ${TENANT_RULE}`);
  const id = uuid.toLowerCase();
  const db = tenantDatabase(tenant);
  const reply = await request(bind, 'POST', `/db/query?db=${encodeURIComponent(db)}&level=strong`, [
    [
      'SELECT uuid, kind, command, topic, event, target, source_node, source_worker, reference_uuid, attempt, at FROM messages WHERE uuid = ? OR reference_uuid = ? ORDER BY at',
      id,
      id,
    ],
    [
      'SELECT at, uuid, node, role, outcome, peer, reason FROM hops WHERE uuid = ? OR uuid IN (SELECT uuid FROM messages WHERE reference_uuid = ?) ORDER BY at, id',
      id,
      id,
    ],
  ]);
  if (reply.status === 404 || (reply.status === 400 && /unknown_database/.test(JSON.stringify(reply.body)))) {
    throw new CommandFailed(`tenant ${tenant} has no data sink yet (database ${db}): no message of it was routed`);
  }
  if (reply.status !== 200) throw new CommandFailed(`the node answered ${reply.status}: ${JSON.stringify(reply.body)}`);
  const [messages, route] = (reply.body as { results: Rows[] }).results;
  const trace = { messages: records(messages), route: records(route) };
  if (trace.messages.length === 0 && trace.route.length === 0) throw new CommandFailed(`no message ${id} in tenant ${tenant}'s sink`);
  return trace;
}

/** The trace as tables: the messages (the command and its answers), then every hop, in time order from the first. */
export function renderTrace(t: Trace): string {
  const start = Number(t.route[0]?.at ?? t.messages[0]?.at ?? 0);
  const short = (u: unknown) => (typeof u === 'string' ? u.slice(0, 8) : u);
  const what = (m: Record<string, unknown>) => (m.kind === 'event' ? `event ${m.topic}/${m.event}` : `${m.kind} ${m.command}`);
  const messages = renderTable(
    ['uuid', 'message', 'target', 'from', 'answers', 'attempt'],
    t.messages.map((m) => [
      short(m.uuid),
      what(m),
      m.target ?? '',
      `${m.source_node}${m.source_worker ? `/${m.source_worker}` : ''}`,
      short(m.reference_uuid ?? ''),
      m.attempt,
    ]),
  );
  const route = renderTable(
    ['+ms', 'uuid', 'node', 'role', 'outcome', 'peer', 'reason'],
    t.route.map((h) => [Number(h.at) - start, short(h.uuid), h.node, h.role, h.outcome, h.peer ?? '', h.reason ?? '']),
  );
  return `${messages}\n${route}`;
}

/** `gandalf-node command NAME`: sends a command through the node's connector and prints its end; exit 0 only on SUCCESS. */
export async function runCommand(
  bind: ClientTarget,
  c: { command: string; target?: string; connector_type?: string; payload?: unknown; timeout?: number },
  json: boolean,
  io: { out(s: string): void; err(s: string): void; isTTY: boolean },
): Promise<number> {
  const reply = await request(bind, 'POST', '/gandalf/command', c, (c.timeout ?? 1000) + 30_000);
  const body = reply.body as Record<string, unknown>;
  if (json || !io.isTTY) io.out(JSON.stringify({ status: reply.status, ...body }) + '\n');
  else if (reply.status === 200) io.out(`${body.outcome} ${JSON.stringify(body.payload)} (by ${JSON.stringify(body.by)}, uuid ${body.uuid})\n`);
  else io.err(`gandalf-node: ${reply.status} ${body.code}: ${body.message}${body.uuid ? ` (uuid ${body.uuid})` : ''}\n`);
  return reply.status === 200 && body.outcome === 'SUCCESS' ? 0 : 1;
}

/** `gandalf-node event TOPIC EVENT`: publishes an event to the node's tenant. */
export async function runEvent(bind: ClientTarget, e: { topic: string; event: string; payload?: unknown }, io: { out(s: string): void }): Promise<number> {
  const reply = await request(bind, 'POST', '/gandalf/event', e);
  if (reply.status !== 202) throw new CommandFailed(`the node answered ${reply.status}: ${JSON.stringify(reply.body)}`);
  io.out(JSON.stringify(reply.body) + '\n');
  return 0;
}

/** `gandalf-node events --watch`: prints the tenant's events of some topics as they come, reconnecting after a dropped stream. */
export async function watchEvents(
  bind: ClientTarget,
  topics: string[],
  json: boolean,
  io: { out(s: string): void; err(s: string): void; isTTY: boolean },
): Promise<number> {
  const path = `/gandalf/events?topic=${encodeURIComponent(topics.join(','))}`;
  for (;;) {
    const end = await readSse(bind, path, undefined, (block) => {
      if (!block.event || !block.data) return;
      const e = JSON.parse(block.data) as { topic: string; event: string; payload: unknown; node: string; worker: string | null; uuid: string };
      io.out(
        json || !io.isTTY
          ? JSON.stringify(e) + '\n'
          : `${e.topic}/${e.event} ${JSON.stringify(e.payload)} from ${e.node}${e.worker ? `/${e.worker}` : ''} (${e.uuid})\n`,
      );
    });
    if (!end.retry) {
      io.err(`gandalf-node: events: ${end.error}\n`);
      return 1;
    }
    io.err('gandalf-node: events: the stream dropped, connecting again (events meanwhile are in the sink: gandalf-node trace)\n');
    await new Promise<void>((r) => systemClock.setTimeout(r, 1000));
  }
}
