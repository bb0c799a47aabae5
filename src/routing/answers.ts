/**
 * The events the routing layer itself sends: a receipt (`ON_GOING`) when a
 * connector accepted a command, and an `error` event naming why a message
 * went no further. Both answer one message and go to its sender only.
 */
import type { Envelope, EventMessage, Source } from './envelope';

export const RECEIPT = 'ON_GOING';
export const RESULT_EVENTS = ['SUCCESS', 'FAIL'] as const;
export const ERROR_TOPIC = 'error';

/** Machine-readable reasons of error events, each documented in DESIGN.md. */
export type RouteErrorReason =
  | 'timeout'
  | 'no_route'
  | 'no_target'
  | 'foreign_tenant'
  | 'not_admitted'
  | 'hop_limit'
  | 'invalid_message'
  | 'invalid_payload'
  | 'no_worker'
  | 'claimed_elsewhere';

/** Whether `env` answers a command (a receipt, a result or an error): those end or advance a pending command. */
export function isAnswer(env: Envelope): env is EventMessage & { reference_uuid: string } {
  return env.kind === 'event' && env.reference_uuid !== undefined && env.destination !== undefined;
}

export function isResult(env: EventMessage): boolean {
  return env.topic === ERROR_TOPIC || (RESULT_EVENTS as readonly string[]).includes(env.event);
}

/** An event answering `to` (from `source`, at `now`), directed to `to`'s sender. */
export function answerTo(
  to: Envelope,
  source: Source,
  uuid: string,
  now: number,
  topic: string,
  event: string,
  payload: unknown,
  timeoutMs: number,
): EventMessage {
  return {
    uuid,
    tenant: to.tenant,
    kind: 'event',
    timeout: timeoutMs,
    timestamp: now,
    major: 0,
    minor: 0,
    source,
    context: {},
    payload,
    attempt: 1,
    hops: 0,
    hop_limit: to.hop_limit,
    topic,
    event,
    reference_uuid: to.uuid,
    destination: to.source.worker === undefined ? { node: to.source.node } : { node: to.source.node, worker: to.source.worker },
  };
}
