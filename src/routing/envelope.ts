/**
 * The one envelope of every Gandalf message (command, event, config,
 * configuration, secret), and `parseEnvelope`, which checks anything that
 * enters the routing layer (from the mesh, a worker, the HTTP API) and names
 * the first field that is wrong. It never throws and never trusts a field it
 * did not check. Authentication material is never part of an envelope: who
 * sent a message is what the link or worker was admitted as.
 */
import { isRole, isRoutingName, isTenant, TENANT_RULE, type Role } from '../core/routing-identity';
import { isNodeId } from '../core/node-id';

export const KINDS = ['command', 'event', 'config', 'configuration', 'secret'] as const;
export type Kind = (typeof KINDS)[number];

/** A message's default time to live (ms), as in Gandalf. */
export const DEFAULT_TIMEOUT_MS = 1000;
export const MAX_TIMEOUT_MS = 3_600_000;
/** Hops a message may take before it is dropped (worker -> connector -> aggregator -> cluster -> aggregator -> connector is 4). */
export const DEFAULT_HOP_LIMIT = 8;
export const MAX_HOP_LIMIT = 16;
/** Largest encoded `payload` plus `context`, in bytes of JSON. */
export const MAX_BODY_BYTES = 256 * 1024;

/** Who sent a message: the node and role it entered by, with the logical name, and the worker there if any. */
export interface Source {
  node: string;
  role: Role;
  logical_name: string;
  worker?: string;
}

/** Where a directed message (a receipt, a result, an error) goes: the node and worker that sent the command it answers. */
export interface Destination {
  node: string;
  worker?: string;
}

interface Common {
  uuid: string;
  tenant: string;
  /** Milliseconds left to live when it left the last hop (each hop takes off the time it held it). */
  timeout: number;
  /** When it was first sent (ms since the epoch, the sender's clock; for tracing only). */
  timestamp: number;
  /** Version of the payload's schema (`major` 0: the highest a worker serves). */
  major: number;
  minor: number;
  source: Source;
  /** Logical name of the destination connector (a command's is set by the cluster when absent). */
  target?: string;
  context: Record<string, unknown>;
  payload: unknown;
  /** Tries of this message so far (1 on the first). */
  attempt: number;
  hops: number;
  hop_limit: number;
}

export interface CommandMessage extends Common {
  kind: 'command';
  command: string;
  /** The connector type whose schemas the command follows (the cluster resolves `target` from it). */
  connector_type?: string;
}

/** `ON_GOING` (a receipt), `SUCCESS` / `FAIL` (a result) and `error` are the events the routing layer itself knows. */
export interface EventMessage extends Common {
  kind: 'event';
  topic: string;
  event: string;
  /** The command this event answers. */
  reference_uuid?: string;
  /** Set on an answer: it goes to that sender only, not to every aggregator. */
  destination?: Destination;
}

export interface ConfigMessage extends Common {
  kind: 'config' | 'configuration' | 'secret';
  command: string;
}

export type Envelope = CommandMessage | EventMessage | ConfigMessage;

export type ParseResult = { ok: true; envelope: Envelope } | { ok: false; error: string };

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Command, topic and event names: `CREATE_VM`, `vm.created`, `ns:verb`. */
const VERB_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}

class Invalid extends Error {}

function fail(message: string): never {
  throw new Invalid(message);
}

function int(o: Record<string, unknown>, key: string, min: number, max: number, fallback?: number): number {
  const v = o[key] ?? fallback;
  if (v === undefined) fail(`${key} is missing`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(`${key} must be an integer from ${min} to ${max}`);
  return v;
}

function name(o: Record<string, unknown>, key: string, optional = false): string | undefined {
  const v = o[key];
  if (v === undefined && optional) return undefined;
  if (v === undefined) fail(`${key} is missing`);
  if (!isRoutingName(v)) fail(`${key} must be a name: 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`);
  return v;
}

function verb(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (v === undefined) fail(`${key} is missing`);
  if (typeof v !== 'string' || !VERB_RE.test(v)) fail(`${key} must be 1-128 characters of A-Z a-z 0-9 . _ : / -, starting with a letter or digit`);
  return v;
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function source(v: unknown): Source {
  const o = object(v, 'source');
  if (!isNodeId(o.node)) fail('source.node must be a node id');
  if (!isRole(o.role)) fail('source.role must be one of cluster, aggregator, connector');
  if (!isRoutingName(o.logical_name)) fail('source.logical_name must be a name');
  if (o.worker !== undefined && !isRoutingName(o.worker)) fail('source.worker must be a name');
  const out: Source = { node: o.node, role: o.role, logical_name: o.logical_name };
  if (o.worker !== undefined) out.worker = o.worker as string;
  return out;
}

function destination(v: unknown): Destination {
  const o = object(v, 'destination');
  if (!isNodeId(o.node)) fail('destination.node must be a node id');
  if (o.worker !== undefined && !isRoutingName(o.worker)) fail('destination.worker must be a name');
  return o.worker === undefined ? { node: o.node } : { node: o.node, worker: o.worker as string };
}

/** JSON-safe data only (what a worker and the trace can hold), within MAX_BODY_BYTES together. */
function bodySize(context: unknown, payload: unknown): number {
  let text: string | undefined;
  try {
    text = JSON.stringify([context, payload ?? null]);
  } catch {
    fail('payload and context must be JSON data');
  }
  return Buffer.byteLength(text!);
}

function parse(input: unknown): Envelope {
  const o = object(input, 'a message');
  if (o.token !== undefined || o.secret !== undefined) fail('a message must not carry a token or secret: admission is by the link or worker');
  if (!isUuid(o.uuid)) fail('uuid must be a UUID (8-4-4-4-12 hex digits)');
  if (o.tenant === undefined) fail('tenant is missing');
  if (!isTenant(o.tenant)) fail(`tenant must be ${TENANT_RULE}`);
  const tenant = o.tenant;
  if (typeof o.kind !== 'string' || !(KINDS as readonly string[]).includes(o.kind)) fail(`kind must be one of ${KINDS.join(', ')}`);
  const kind = o.kind as Kind;
  const common: Common = {
    uuid: (o.uuid as string).toLowerCase(),
    tenant,
    timeout: int(o, 'timeout', 1, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS),
    timestamp: int(o, 'timestamp', 0, Number.MAX_SAFE_INTEGER),
    major: int(o, 'major', 0, 65535, 0),
    minor: int(o, 'minor', 0, 65535, 0),
    source: source(o.source),
    context: o.context === undefined ? {} : object(o.context, 'context'),
    payload: o.payload ?? null,
    attempt: int(o, 'attempt', 1, 1000, 1),
    hops: int(o, 'hops', 0, MAX_HOP_LIMIT, 0),
    hop_limit: int(o, 'hop_limit', 1, MAX_HOP_LIMIT, DEFAULT_HOP_LIMIT),
  };
  const target = name(o, 'target', true);
  if (target !== undefined) common.target = target;
  if (common.hops > common.hop_limit) fail(`hops (${common.hops}) is past hop_limit (${common.hop_limit})`);
  const bytes = bodySize(common.context, common.payload);
  if (bytes > MAX_BODY_BYTES) fail(`payload and context are ${bytes} bytes of JSON, more than ${MAX_BODY_BYTES}`);
  if (kind === 'command') {
    const m: CommandMessage = { ...common, kind, command: verb(o, 'command') };
    const type = name(o, 'connector_type', true);
    if (type !== undefined) m.connector_type = type;
    return m;
  }
  if (kind === 'event') {
    const m: EventMessage = { ...common, kind, topic: verb(o, 'topic'), event: verb(o, 'event') };
    if (o.reference_uuid !== undefined) {
      if (!isUuid(o.reference_uuid)) fail('reference_uuid must be a UUID');
      m.reference_uuid = o.reference_uuid.toLowerCase();
    }
    if (o.destination !== undefined) m.destination = destination(o.destination);
    return m;
  }
  return { ...common, kind, command: verb(o, 'command') };
}

/** Checks `input` as an envelope: the envelope (fields defaulted, nothing unchecked kept) or the first problem found. */
export function parseEnvelope(input: unknown): ParseResult {
  try {
    return { ok: true, envelope: parse(input) };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, error: err.message };
    throw err;
  }
}
