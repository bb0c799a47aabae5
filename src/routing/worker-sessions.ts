/**
 * The workers of this connector, whatever carries them (the gRPC worker API,
 * the HTTP API): a worker registers (its name, version and the commands it
 * implements), takes commands within the credit it grants, acknowledges and
 * answers each, publishes events, subscribes to topics, and sends commands
 * whose receipt and result (or error) come back to it. This is where a
 * worker's messages get their envelope: tenant and source are this
 * connector's, never the worker's say.
 *
 * Once admission is required (a tenant was created), a worker registers
 * only with a secret of this connector's tenant that admits workers
 * (scrypt-checked off the event loop, remembered by its SHA-256); a refusal
 * is traced. When that secret is revoked or expires, or its tenant is
 * deleted, the worker's session ends and its streams close with
 * `unauthorized`.
 */
import type { Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import { isRoutingName, parseSecret, type RoutingIdentity } from '../core/routing-identity';
import { verifyScrypt } from '../core/scrypt-hash';
import { isResult } from './answers';
import type { QueuedCommand } from './command-queue';
import { parseEnvelope, type Envelope, type EventMessage } from './envelope';
import type { ConnectorTypes } from './connector-types';
import { digest } from './peer-admission';
import type { AdmissionRecord } from './ports';
import type { TenantRegistry } from './tenant-registry';
import type { Router } from './router';
import type { WorkerHub } from './worker-hub';

export interface Registration {
  name: string;
  major: number;
  minor: number;
  /** The commands it implements (empty: every command). */
  commands: string[];
  /** A secret of this connector's tenant admitting workers (needed once tenants exist). */
  secret?: string;
}

/** What a worker may send and wait for the result of (events go by `event`). */
export const COMMAND_KINDS = ['command', 'config', 'configuration', 'secret'] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

export function isCommandKind(v: unknown): v is CommandKind {
  return typeof v === 'string' && (COMMAND_KINDS as readonly string[]).includes(v);
}

export interface OutgoingCommand {
  /** Default `command`. */
  kind?: CommandKind;
  command: string;
  target?: string;
  connector_type?: string;
  payload?: unknown;
  context?: Record<string, unknown>;
  timeout?: number;
  major?: number;
  minor?: number;
}

export interface OutgoingEvent {
  topic: string;
  event: string;
  payload?: unknown;
  context?: Record<string, unknown>;
  reference_uuid?: string;
  timeout?: number;
}

/** A command as its worker gets it: the envelope and the time it has left (ms). */
export type WorkerCommand = { env: QueuedCommand; remainingMs: number };

interface Session {
  id: string;
  registration: Registration;
  /** Commands handed to it and not answered, by uuid. */
  holding: Map<string, QueuedCommand>;
  streaming: boolean;
  subscribed: boolean;
  /** The secret it was admitted with (its id). */
  secretId: string | undefined;
  /** Ends its open streams with an error (its admission ended). */
  cut: Set<(err: GandalfError) => void>;
}

const MAX_VERIFIED = 1024;

export class WorkerSessions {
  private readonly sessions = new Map<string, Session>();
  /** Senders waiting for the answers of their commands, by command uuid. */
  private readonly waiters = new Map<string, (answer: EventMessage) => void>();
  private anonymous = 0;
  /** SHA-256 of worker secrets whose key matched -> the secret's id. */
  private readonly verified = new Map<string, string>();

  constructor(
    private readonly o: {
      self: string;
      identity: RoutingIdentity;
      router: Router;
      hub: WorkerHub;
      clock: Clock;
      newUuid: () => string;
      /** The connector types, when registrations are checked against them. */
      types?: ConnectorTypes;
      /** Tenants and secrets, when workers are admitted by them. */
      tenants?: TenantRegistry;
      trace?: (record: AdmissionRecord) => void;
    },
  ) {
    o.tenants?.onChange(() => this.recheck());
  }

  /**
   * Registers a worker under a name unique on this connector while it is connected (it has a
   * command stream or a subscription open); a registration with neither is replaced.
   */
  async register(r: Registration): Promise<{ id: string }> {
    if (!this.o.identity.roles.includes('connector'))
      throw new GandalfError('invalid_request', 'this node runs no connector: workers register with a connector node');
    if (!isRoutingName(r.name))
      throw new GandalfError('invalid_request', 'worker name must be 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit');
    const existing = this.sessions.get(r.name);
    if (existing && (existing.streaming || existing.subscribed))
      throw new GandalfError('conflict', `a worker named ${r.name} is connected to this connector already`);
    if (existing) this.close(r.name);
    for (const c of r.commands) if (typeof c !== 'string' || c === '') throw new GandalfError('invalid_request', 'commands must be names');
    const refusal = this.o.types?.refusal(this.o.identity.connectorType, r.major, r.minor, r.commands);
    if (refusal) throw new GandalfError('invalid_request', refusal);
    const secretId = await this.admit(r);
    const again = this.sessions.get(r.name);
    if (again && (again.streaming || again.subscribed)) throw new GandalfError('conflict', `a worker named ${r.name} is connected to this connector already`);
    if (again) this.close(r.name);
    this.sessions.set(r.name, { id: r.name, registration: r, holding: new Map(), streaming: false, subscribed: false, secretId, cut: new Set() });
    this.o.hub.onAnswers(r.name, (answer) => this.answer(answer));
    return { id: r.name };
  }

  /** The worker's command stream: commands arrive at `deliver` within the credit granted; `cut` ends it when the worker's admission ends. */
  takeCommands(id: string, credit: number, deliver: (c: WorkerCommand) => void, cut?: (err: GandalfError) => void): void {
    const s = this.session(id);
    if (s.streaming) throw new GandalfError('conflict', `worker ${id} has a command stream open already`);
    s.streaming = true;
    if (cut) s.cut.add(cut);
    const serves = s.registration.commands.length > 0 ? s.registration.commands : undefined;
    this.o.hub.queue.attach(
      id,
      (env, deadline) => {
        s.holding.set(env.uuid, env);
        deliver({ env, remainingMs: Math.max(1, Math.floor(deadline - this.o.clock.monotonic())) });
      },
      serves,
    );
    this.o.hub.queue.grant(id, credit);
  }

  grant(id: string, credit: number): void {
    this.session(id);
    this.o.hub.queue.grant(id, credit);
  }

  /** The worker's result of a command it was handed: success or failure, with a payload. */
  result(id: string, referenceUuid: string, success: boolean, payload: unknown): { uuid: string } {
    const s = this.session(id);
    const command = s.holding.get(referenceUuid);
    if (!command) throw new GandalfError('not_found', `worker ${id} holds no command ${referenceUuid}`);
    s.holding.delete(referenceUuid);
    this.o.hub.queue.finish(id, referenceUuid);
    this.o.hub.queue.grant(id, 1);
    const env = this.envelope(id, {
      kind: 'event',
      topic: 'result',
      event: success ? 'SUCCESS' : 'FAIL',
      payload,
      reference_uuid: referenceUuid,
      destination: command.source.worker === undefined ? { node: command.source.node } : { node: command.source.node, worker: command.source.worker },
      timeout: Math.max(1, command.timeout),
    });
    this.submit(env);
    return { uuid: env.uuid };
  }

  /** Publishes an event from worker `id` (undefined: an anonymous publisher, e.g. an HTTP client). */
  event(id: string | undefined, e: OutgoingEvent): { uuid: string } {
    if (id !== undefined) this.session(id);
    const env = this.envelope(id ?? `sender.${++this.anonymous}`, { kind: 'event', ...e });
    this.submit(env);
    return { uuid: env.uuid };
  }

  /** An anonymous watcher of the tenant's events of `topics` (an HTTP client); its id, to end it with `unwatch`. */
  watch(topics: string[], listener: (e: EventMessage) => void): string {
    if (topics.length === 0) throw new GandalfError('invalid_request', 'watch at least one topic ("*": all)');
    const id = `watch.${++this.anonymous}`;
    this.o.hub.subscribe(id, topics, listener);
    return id;
  }

  unwatch(id: string): void {
    this.o.hub.unsubscribe(id);
  }

  /**
   * Sends a command from worker `id` (undefined: an anonymous sender, e.g. an HTTP client).
   * `onAnswer` sees its receipt and then its end: a result or an error event, by its deadline.
   */
  command(id: string | undefined, c: OutgoingCommand, onAnswer: (answer: EventMessage) => void): { uuid: string; cancel: () => void } {
    let worker = id;
    if (worker === undefined) {
      worker = `sender.${++this.anonymous}`;
      this.o.hub.onAnswers(worker, (answer) => this.answer(answer));
    } else this.session(worker);
    const env = this.envelope(worker, { kind: 'command', ...c });
    const anonymous = id === undefined ? worker : undefined;
    const cancel = () => {
      this.waiters.delete(env.uuid);
      if (anonymous) this.o.hub.onAnswers(anonymous, undefined);
    };
    this.waiters.set(env.uuid, (answer) => {
      onAnswer(answer);
      if (isResult(answer)) cancel();
    });
    try {
      this.submit(env);
    } catch (err) {
      cancel();
      throw err;
    }
    return { uuid: env.uuid, cancel };
  }

  subscribe(id: string, topics: string[], listener: (e: EventMessage) => void, cut?: (err: GandalfError) => void): void {
    const s = this.session(id);
    if (topics.length === 0) throw new GandalfError('invalid_request', 'subscribe to at least one topic ("*": all)');
    s.subscribed = true;
    if (cut) s.cut.add(cut);
    this.o.hub.subscribe(id, topics, listener);
  }

  unsubscribe(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    s.subscribed = false;
    this.o.hub.unsubscribe(id);
  }

  /** The worker went away: what it held goes to another worker, its subscriptions end. */
  close(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    this.o.hub.queue.detach(id);
    this.o.hub.unsubscribe(id);
    this.o.hub.onAnswers(id, undefined);
  }

  /** Ends a command stream only: its commands go to another worker; the registration stays. */
  stopCommands(id: string): void {
    const s = this.sessions.get(id);
    if (!s || !s.streaming) return;
    s.streaming = false;
    s.holding.clear();
    this.o.hub.queue.detach(id);
  }

  /** The worker started a command it holds (traced as delivered to it). */
  ack(id: string, uuid: string): void {
    const s = this.session(id);
    const env = s.holding.get(uuid);
    if (!env) throw new GandalfError('not_found', `worker ${id} holds no command ${uuid}`);
    this.o.router.traceWorker(env, id);
  }

  /** Ends a registration that has neither a command stream nor a subscription open. */
  release(id: string): void {
    const s = this.sessions.get(id);
    if (s && !s.streaming && !s.subscribed) this.close(id);
  }

  /** What a registered worker belongs to. */
  identity(): { tenant: string; logical_name: string; node: string } {
    return { tenant: this.o.identity.tenant, logical_name: this.o.identity.logicalName, node: this.o.self };
  }

  /** The versions the registered workers serve. */
  versions(): { major: number; minor: number }[] {
    return [...this.sessions.values()].map((s) => ({ major: s.registration.major, minor: s.registration.minor }));
  }

  /** Whether an unregistered sender may send (an open cluster; the HTTP API's senders are authenticated by it). */
  anonymousAllowed(): boolean {
    const t = this.o.tenants;
    return !t || (t.loaded && !t.required());
  }

  /** The secret id a registration is admitted with (undefined in an open cluster), or an `unauthorized` error, traced. */
  private async admit(r: Registration): Promise<string | undefined> {
    const { tenants, identity, self, clock } = this.o;
    if (!tenants) return undefined;
    if (!tenants.loaded) throw new GandalfError('starting', 'this connector has not read its tenants yet: register again in a moment');
    if (!tenants.required()) return undefined;
    let record = tenants.lookup(r.secret, identity.tenant, 'worker');
    if (typeof record === 'string' && r.secret) {
      // a secret created a moment ago may not have reached this board's view yet
      await tenants.refreshForMiss();
      record = tenants.lookup(r.secret, identity.tenant, 'worker');
    }
    const key = r.secret ? digest(r.secret) : '';
    let refusal = typeof record === 'string' ? record : undefined;
    if (typeof record !== 'string' && this.verified.get(key) !== record.id) {
      if (await verifyScrypt(parseSecret(r.secret!)!.key, record.hash)) {
        if (this.verified.size >= MAX_VERIFIED) this.verified.delete(this.verified.keys().next().value!);
        this.verified.set(key, record.id);
      } else refusal = `wrong key for secret ${record.id} of tenant ${record.tenant}`;
    }
    const secretId = typeof record === 'string' ? parseSecret(r.secret ?? '')?.id : record.id;
    this.o.trace?.({
      tenant: identity.tenant,
      node: self,
      subject: 'worker',
      name: r.name,
      roles: ['worker'],
      secretId,
      outcome: refusal === undefined ? 'admitted' : 'refused',
      ...(refusal !== undefined ? { reason: refusal } : {}),
      at: Math.floor(clock.now()),
    });
    if (refusal !== undefined) throw new GandalfError('unauthorized', `worker ${r.name} refused: ${refusal}`);
    return secretId;
  }

  /** After a registry refresh: workers whose secret is no longer in force are cut off. */
  private recheck(): void {
    const { tenants, identity } = this.o;
    if (!tenants) return;
    for (const s of [...this.sessions.values()]) {
      const inForce = s.secretId === undefined ? !tenants.required() : !!tenants.secret(identity.tenant, s.secretId)?.roles.includes('worker');
      if (inForce) continue;
      const err = new GandalfError('unauthorized', `worker ${s.id}: its admission ended (its secret was revoked or expired, or admission is now required)`);
      for (const cut of s.cut) cut(err);
      this.close(s.id);
    }
  }

  private answer(answer: EventMessage): void {
    if (answer.reference_uuid) this.waiters.get(answer.reference_uuid)?.(answer);
  }

  private session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new GandalfError('not_found', `no worker ${id} is registered on this connector`);
    return s;
  }

  private submit(env: Envelope): void {
    const r = this.o.router.submit(env);
    if (!r.ok) throw new GandalfError('invalid_request', `${r.reason}: ${r.error}`);
  }

  /** The envelope of a worker's message: this connector's tenant and source, checked like any other. */
  private envelope(worker: string, fields: Record<string, unknown>): Envelope {
    const { identity, self, clock } = this.o;
    const parsed = parseEnvelope({
      ...fields,
      uuid: this.o.newUuid(),
      tenant: identity.tenant,
      timestamp: Math.floor(clock.now()),
      source: { node: self, role: 'connector', logical_name: identity.logicalName, worker },
    });
    if (!parsed.ok) throw new GandalfError('invalid_request', parsed.error);
    return parsed.envelope;
  }
}
