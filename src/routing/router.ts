/**
 * Gandalf's routing on one node, for the roles it runs. A message goes
 * worker -> connector -> aggregator -> cluster -> aggregator -> connector
 * (-> worker), one hop at a time (hop-sender.ts); each node checks at entry
 * that the message is well formed, that the peer runs the role it speaks for,
 * and that the tenant is the one the peer (and this node) was admitted for.
 *
 * - A command: the cluster sets its `target` (resolver), an aggregator of the
 *   tenant hands it to a connector of that logical name, which claims it
 *   (ledger: one connector runs a command), queues it for one worker and
 *   sends the sender an `ON_GOING` receipt. The worker's result goes back to
 *   the sender the same way. The sender's connector ends the command at its
 *   deadline with a `timeout` error event if nothing ended it before.
 * - A broadcast event: its aggregator hands it to the connectors it serves
 *   (but the one it came from) and to the cluster, which hands it to every
 *   other aggregator of the tenant; each delivers it to the connectors it
 *   serves. Every hop drops a uuid it has seen: no storms.
 * - A directed event (receipt, result, error) goes to its destination node.
 *
 * Every hop is traced (tracer), every message once by the cluster.
 */
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import type { Role, RoutingIdentity } from '../core/routing-identity';
import { answerTo, ERROR_TOPIC, isAnswer, isResult, RECEIPT, type RouteErrorReason } from './answers';
import { aggregatorsOf, clusterMembers, connectorsOf, homeAggregator, identityOf, type Directory } from './directory';
import { parseEnvelope, type CommandMessage, type ConfigMessage, type Envelope, type EventMessage, type Source } from './envelope';
import { parseFrame, type RouteFrame } from './frames';
import { HopSender, type HopOutcome } from './hop-sender';
import type { Admission, CommandLedger, Configurations, HopOutcomeName, LocalWorkers, TargetResolver, Tracer } from './ports';
import { SeenSet } from './seen-set';

/** A uuid is remembered this much longer than its message lives. */
const DEDUPE_GRACE_MS = 30_000;
/** How often a sender looks whether the connector that took one of its commands is still there. */
export const HOLDER_CHECK_MS = 100;
const MAX_SEEN = 200_000;
/** Reports of refused messages to the cluster, per reason, per second. */
const REPORTS_PER_SECOND = 10;

export interface RouterOptions {
  self: string;
  identity: RoutingIdentity;
  clock: Clock;
  random: () => number;
  newUuid: () => string;
  /** The mesh's reliable channel to another node; false when not linked. */
  send: (to: string, frame: RouteFrame) => boolean;
  directory: Directory;
  admission: Admission;
  ledger: CommandLedger;
  tracer: Tracer;
  workers: LocalWorkers;
  resolver: TargetResolver;
  /** Where a cluster member keeps logical configurations (none: it answers FAIL). */
  configurations?: Configurations;
  logger: Logger;
}

export type SubmitResult = { ok: true } | { ok: false; reason: RouteErrorReason; error: string };

/** `holder`: the connector whose receipt came (it runs the command). */
type Pending = { env: CommandMessage | ConfigMessage; timer: TimerHandle; deadline: number; holder?: string };
type Routed = CommandMessage | ConfigMessage;

export class Router {
  private readonly hops: HopSender;
  private readonly seen: SeenSet;
  /** Commands this connector's workers sent that have not ended, by uuid. */
  private readonly pending = new Map<string, Pending>();
  private readonly reports = new Map<string, { second: number; count: number }>();
  private holderWatch: TimerHandle | undefined;
  /** Commands claimed here whose result is not recorded yet, by uuid. */
  private readonly claims = new Map<string, { attempt: number; deadline: number }>();
  /** Commands sent again because the connector that took them went away (for tests and metrics). */
  resent = 0;
  /** Counts for metrics: frames refused at entry by reason, and malformed frames. */
  readonly refused = new Map<string, number>();
  malformed = 0;

  constructor(private readonly o: RouterOptions) {
    this.hops = new HopSender({ send: (to, frame) => this.sendFrame(to, frame) }, o.clock, o.random);
    this.seen = new SeenSet(o.clock, MAX_SEEN);
  }

  /** A frame from peer `from` (this node's own hops come here too). Never throws on bad input. */
  receive(from: string, body: unknown): void {
    const frame = parseFrame(body);
    if (typeof frame === 'string') return this.bad(from, frame);
    if (frame.t !== 'msg') return this.hops.answer(from, frame);
    const parsed = parseEnvelope(frame.env);
    if (!parsed.ok) {
      this.sendFrame(from, { t: 'nack', hop: frame.hop, reason: `invalid_message: ${parsed.error}` });
      return this.bad(from, parsed.error);
    }
    const env = parsed.envelope;
    const refusal = this.admit(from, frame.from, frame.to, env);
    if (refusal) {
      this.sendFrame(from, { t: 'nack', hop: frame.hop, reason: `${refusal.reason}: ${refusal.error}` });
      this.count(refusal.reason);
      this.trace(env, frame.to, 'dropped', from, `${refusal.reason}: ${refusal.error}`);
      if (refusal.reason === 'foreign_tenant' || refusal.reason === 'not_admitted') this.report(env, refusal.reason, from);
      return;
    }
    const repeat = this.seen.check(dedupeKey(frame.from, frame.to, env), env.timeout + DEDUPE_GRACE_MS);
    this.sendFrame(from, { t: 'ack', hop: frame.hop });
    if (repeat) return;
    this.trace(env, frame.to, 'received', from);
    const deadline = this.o.clock.monotonic() + env.timeout;
    if (frame.to === 'cluster') this.atCluster(from, env, deadline);
    else if (frame.to === 'aggregator' && frame.from === 'connector') this.aggregatorUp(from, env, deadline);
    else if (frame.to === 'aggregator') this.aggregatorDown(env, deadline);
    else this.atConnector(env, deadline);
  }

  /**
   * A message from one of this connector's workers (the worker API built `source`). A command
   * ends, for that worker, with its result or an error event, by its deadline.
   */
  submit(env: Envelope): SubmitResult {
    const { identity, self } = this.o;
    if (!identity.roles.includes('connector')) return { ok: false, reason: 'no_route', error: 'this node runs no connector' };
    if (env.tenant !== identity.tenant) {
      this.count('foreign_tenant');
      this.trace(env, 'connector', 'dropped', undefined, `foreign_tenant: a worker of tenant ${identity.tenant} sent a message of tenant ${env.tenant}`);
      return { ok: false, reason: 'foreign_tenant', error: `this connector serves tenant ${identity.tenant}, not ${env.tenant}` };
    }
    if (env.source.node !== self || env.source.role !== 'connector') return { ok: false, reason: 'invalid_message', error: 'source must be this connector' };
    const key = dedupeKey('worker', 'connector', env);
    if (this.pending.has(env.uuid) || this.seen.has(key)) return { ok: false, reason: 'invalid_message', error: `uuid ${env.uuid} was sent already` };
    this.seen.check(key, env.timeout + DEDUPE_GRACE_MS);
    // its own broadcast event, when it comes back through an aggregator, is not delivered here again
    if (env.kind === 'event' && !env.destination) this.seen.check(dedupeKey('aggregator', 'connector', env), env.timeout + DEDUPE_GRACE_MS);
    const deadline = this.o.clock.monotonic() + env.timeout;
    this.trace(env, 'connector', 'received', undefined, env.source.worker ? `from worker ${env.source.worker}` : undefined);
    if (env.kind === 'event') {
      if (!env.destination) this.o.workers.event(env);
      if (isAnswer(env) && isResult(env)) this.finish(env, deadline);
      else this.up(env, deadline);
      return { ok: true };
    }
    const timer = this.o.clock.setTimeout(() => this.expire(env.uuid), env.timeout);
    timer.unref?.();
    this.pending.set(env.uuid, { env, timer, deadline });
    this.up(env, deadline);
    return { ok: true };
  }

  /** Stops the timers (the node stops; its pending commands end with it). */
  stop(): void {
    for (const p of this.pending.values()) this.o.clock.clearTimeout(p.timer);
    this.pending.clear();
    if (this.holderWatch) this.o.clock.clearTimeout(this.holderWatch);
    this.holderWatch = undefined;
  }

  /** A worker of this connector acknowledged a command it was handed. */
  traceWorker(env: Envelope, worker: string): void {
    this.trace(env, 'connector', 'delivered', undefined, `acknowledged by worker ${worker}`);
  }

  // --- entry checks -------------------------------------------------------

  private admit(from: string, fromRole: Role, toRole: Role, env: Envelope): { reason: RouteErrorReason; error: string } | undefined {
    const { identity, admission, directory } = this.o;
    if (!identity.roles.includes(toRole)) return { reason: 'no_route', error: `this node runs no ${toRole}` };
    const peer = identityOf(directory, from);
    if (!peer?.roles.includes(fromRole)) return { reason: 'not_admitted', error: `${from} is not a known ${fromRole}` };
    const tenant = admission.tenantOf(from, fromRole);
    if (tenant === undefined) return { reason: 'not_admitted', error: `${from} was not admitted as a ${fromRole}` };
    if (tenant !== '*' && tenant !== env.tenant)
      return { reason: 'foreign_tenant', error: `${from} was admitted for tenant ${tenant}, the message claims ${env.tenant}` };
    if (toRole !== 'cluster' && env.tenant !== identity.tenant)
      return { reason: 'foreign_tenant', error: `this ${toRole} serves tenant ${identity.tenant}, not ${env.tenant}` };
    return undefined;
  }

  // --- the roles ----------------------------------------------------------

  private aggregatorUp(from: string, env: Envelope, deadline: number): void {
    if (env.kind === 'event' && !env.destination) this.toServedConnectors(env, deadline, from);
    this.forward(env, 'aggregator', 'cluster', clusterMembers(this.o.directory), deadline);
  }

  private aggregatorDown(env: Envelope, deadline: number): void {
    const { directory, identity } = this.o;
    if (env.kind === 'event') {
      if (!env.destination) return this.toServedConnectors(env, deadline, undefined);
      const node = env.destination.node;
      const candidates = connectorsOf(directory, identity.tenant).some((p) => p.id === node) ? [node] : [];
      return this.forward(env, 'aggregator', 'connector', candidates, deadline);
    }
    if (env.target === undefined) return this.fail(env, 'aggregator', 'no_target', 'the cluster sent a message without a target');
    const candidates = connectorsOf(directory, identity.tenant, env.target).map((p) => p.id);
    this.forward(env, 'aggregator', 'connector', candidates, deadline);
  }

  private atCluster(from: string, env: Envelope, deadline: number): void {
    const { directory, tracer, self, resolver } = this.o;
    tracer.message(env, self);
    const aggregators = aggregatorsOf(directory, env.tenant);
    if (env.kind === 'event') {
      if (env.destination) return this.forward(env, 'cluster', 'aggregator', aggregators, deadline);
      if (env.topic === ERROR_TOPIC) return; // a report to the cluster: recorded above, goes no further
      for (const aggregator of aggregators) if (aggregator !== from) this.forward(env, 'cluster', 'aggregator', [aggregator], deadline);
      return;
    }
    if (env.kind === 'configuration') return this.configuration(env);
    if (env.kind === 'secret') return this.secretCheck(env);
    let routed = env;
    if (routed.target !== undefined && connectorsOf(directory, env.tenant, routed.target).length === 0) {
      return this.fail(env, 'cluster', 'no_target', `no connector named ${routed.target} in tenant ${env.tenant}`);
    }
    if (routed.target === undefined) {
      if (routed.kind !== 'command') return this.fail(env, 'cluster', 'no_target', `a ${env.kind} needs a target`);
      const r = resolver.resolve(routed);
      if ('error' in r) return this.fail(env, 'cluster', 'no_target', r.error);
      routed = { ...routed, target: r.target };
    }
    this.forward(routed, 'cluster', 'aggregator', aggregators, deadline);
  }

  private atConnector(env: Envelope, deadline: number): void {
    const { identity, ledger, self, workers } = this.o;
    if (env.kind === 'event') {
      if (!env.destination) return workers.event(env);
      if (env.destination.node !== self) return this.trace(env, 'connector', 'dropped', undefined, 'no_route: directed to another node');
      return this.answered(env);
    }
    if (env.target !== identity.logicalName) return this.fail(env, 'connector', 'no_target', `this connector is ${identity.logicalName}, not ${env.target}`);
    const ttl = Math.max(1, Math.floor(deadline - this.o.clock.monotonic()));
    ledger.claim(env.tenant, env.uuid, env.attempt, self, ttl + DEDUPE_GRACE_MS).then(
      (claim) => {
        if (!claim.won && claim.result) {
          // an earlier attempt finished it: its sender gets that result again, the command does not run again
          this.trace(env, 'connector', 'dropped', undefined, 'finished by an earlier attempt: its result goes again');
          return this.up(claim.result, deadline);
        }
        if (!claim.won) return this.trace(env, 'connector', 'dropped', undefined, 'claimed_elsewhere: another connector runs it');
        if (this.o.clock.monotonic() >= deadline) return this.trace(env, 'connector', 'timed_out', undefined, 'claimed after its deadline');
        this.holding(env, deadline);
        const offer = workers.command(env, deadline);
        if (offer.queued) {
          this.trace(env, 'connector', 'delivered');
          return this.answer(env, RECEIPT, RECEIPT, { status: RECEIPT });
        }
        if (offer.duplicate) return;
        this.fail(env, 'connector', 'invalid_payload', offer.error, offer.details);
      },
      (err: unknown) => this.fail(env, 'connector', 'no_route', `the command could not be claimed: ${(err as Error).message}`),
    );
  }

  /** Remembers a command claimed here until its deadline: its result is recorded under that claim. */
  private holding(env: Routed, deadline: number): void {
    const now = this.o.clock.monotonic();
    for (const [uuid, c] of this.claims) {
      if (c.deadline > now) break;
      this.claims.delete(uuid);
    }
    this.claims.set(env.uuid, { attempt: env.attempt, deadline });
  }

  /** A worker's result of a command claimed here: recorded in the ledger under that claim, then sent (never if superseded). */
  private finish(env: EventMessage & { reference_uuid: string }, deadline: number): void {
    const claim = this.claims.get(env.reference_uuid);
    if (!claim) return this.up(env, deadline);
    this.claims.delete(env.reference_uuid);
    this.o.ledger.complete(env.tenant, env.reference_uuid, claim.attempt, this.o.self, env).then(
      (recorded) => {
        if (recorded) return this.up(env, deadline);
        this.trace(env, 'connector', 'dropped', undefined, 'superseded: a later attempt of the command runs elsewhere');
      },
      (err: unknown) => this.trace(env, 'connector', 'dropped', undefined, `the result could not be recorded: ${(err as Error).message}`),
    );
  }

  // --- hops ---------------------------------------------------------------

  /** From this connector up to an aggregator of its tenant. */
  private up(env: Envelope, deadline: number): void {
    this.forward(env, 'connector', 'aggregator', aggregatorsOf(this.o.directory, this.o.identity.tenant), deadline);
  }

  /** A broadcast event to each connector of this tenant this aggregator serves, but `except`. */
  private toServedConnectors(env: EventMessage, deadline: number, except: string | undefined): void {
    const { directory, identity, self } = this.o;
    for (const c of connectorsOf(directory, identity.tenant)) {
      if (c.id !== except && homeAggregator(directory, c) === self) this.forward(env, 'aggregator', 'connector', [c.id], deadline);
    }
  }

  /** Hands a message to one of `candidates`: only to those this node admits for the message's tenant (a message never goes to a peer whose messages it would refuse). */
  private forward(env: Envelope, from: Role, to: Role, candidates: readonly string[], deadline: number): void {
    if (env.hops + 1 > env.hop_limit) return this.fail(env, from, 'hop_limit', `${env.hops} hops taken, the limit is ${env.hop_limit}`);
    const admitted = candidates.filter((id) => {
      const tenant = this.o.admission.tenantOf(id, to);
      return tenant === '*' || tenant === env.tenant;
    });
    if (admitted.length === 0 && candidates.length > 0) {
      return this.fail(env, from, 'not_admitted', `no ${to} of ${candidates.join(', ')} is admitted for tenant ${env.tenant} here`);
    }
    this.hops.forward(
      env,
      from,
      to,
      admitted,
      deadline,
      (outcome) => this.forwarded(env, from, to, outcome),
      (peer, result, reason) => {
        if (result === 'taken') this.trace(env, from, 'routed', peer);
        else this.trace(env, from, 'retried', peer, reason ?? result);
      },
    );
  }

  private forwarded(env: Envelope, from: Role, to: Role, outcome: HopOutcome): void {
    if (outcome.ok) return;
    const why =
      outcome.reason === 'no_candidate'
        ? `no ${to} to hand it to`
        : outcome.reason === 'timeout'
          ? `no ${to} took it before its deadline`
          : `every ${to} refused it`;
    if (outcome.reason === 'timeout') this.trace(env, from, 'timed_out', outcome.last, why);
    this.fail(env, from, outcome.reason === 'timeout' ? 'timeout' : 'no_route', why);
  }

  // --- answers ------------------------------------------------------------

  /** A directed event reached the connector it was for: it advances or ends a pending command, and goes to the worker. */
  private answered(env: EventMessage): void {
    if (isAnswer(env)) {
      const p = this.pending.get(env.reference_uuid);
      if (!p) return this.trace(env, 'connector', 'dropped', undefined, 'the command it answers has ended');
      if (isResult(env)) {
        this.o.clock.clearTimeout(p.timer);
        this.pending.delete(env.reference_uuid);
      } else if (env.event === RECEIPT) {
        p.holder = env.source.node;
        this.watchHolders();
      }
    }
    this.trace(env, 'connector', 'delivered', undefined, env.destination?.worker ? `to worker ${env.destination.worker}` : undefined);
    this.o.workers.event(env);
  }

  /** While commands are held by connectors, looks every HOLDER_CHECK_MS whether those are still there. */
  private watchHolders(): void {
    if (this.holderWatch) return;
    this.holderWatch = this.o.clock.setTimeout(() => {
      this.holderWatch = undefined;
      this.checkHolders();
    }, HOLDER_CHECK_MS);
    this.holderWatch.unref?.();
  }

  /**
   * A connector that took a command and is gone (membership no longer lists it) will not send
   * its result: the command goes again, as its next attempt, to a connector of the same logical
   * name, which may claim it over the gone one's claim.
   */
  private checkHolders(): void {
    const now = this.o.clock.monotonic();
    let watching = false;
    for (const p of this.pending.values()) {
      if (p.holder === undefined) continue;
      if (identityOf(this.o.directory, p.holder) !== undefined) {
        watching = true;
        continue;
      }
      if (p.deadline - now < 1) continue;
      this.trace(p.env, 'connector', 'retried', p.holder, 'the connector that took it is gone: sent again');
      this.resent++;
      p.holder = undefined;
      p.env = { ...p.env, attempt: p.env.attempt + 1, timeout: Math.max(1, Math.floor(p.deadline - now)) };
      this.up(p.env, p.deadline);
    }
    if (watching) this.watchHolders();
  }

  private expire(uuid: string): void {
    const p = this.pending.get(uuid);
    if (!p) return;
    this.pending.delete(uuid);
    this.trace(p.env, 'connector', 'timed_out', undefined, 'no result before its deadline');
    const error = answerTo(
      p.env,
      this.source('connector'),
      this.o.newUuid(),
      Math.floor(this.o.clock.now()),
      ERROR_TOPIC,
      'timeout',
      errorPayload('timeout', 'no result before the deadline'),
      1,
    );
    this.o.workers.event(error);
  }

  /** Something went wrong with `env` at role `at`: traced, and a command's sender gets an error event. */
  private fail(env: Envelope, at: Role, reason: RouteErrorReason, error: string, details?: unknown): void {
    this.trace(env, at, 'dropped', undefined, `${reason}: ${error}`);
    if (env.kind === 'event') return; // an event that went nowhere is answered by nobody: no error storms
    this.answer(env, ERROR_TOPIC, reason, errorPayload(reason, error, details), at);
  }

  /** Sends the sender of `to` an event (a receipt or an error) from this node, by the route that starts at `at`. */
  private answer(to: Routed, topic: string, event: string, payload: unknown, at: Role = 'connector'): void {
    // it lives as long as the message it answers had left when it came here: a later one finds the command ended
    const env = answerTo(to, this.source(at), this.o.newUuid(), Math.floor(this.o.clock.now()), topic, event, payload, to.timeout);
    if (to.source.node === this.o.self && this.pending.has(to.uuid)) {
      // the sender is on this node: the answer goes no further, and is traced here
      this.o.tracer.message(env, this.o.self);
      return this.answered(env);
    }
    const deadline = this.o.clock.monotonic() + env.timeout;
    if (at === 'cluster') this.atClusterAnswer(env, deadline);
    else if (at === 'aggregator') this.aggregatorDown(env, deadline);
    else this.up(env, deadline);
  }

  /**
   * A logical configuration, kept by the cluster (the documents' "save and update its logical
   * configuration"): `SAVE` stores the payload as the configuration of the sender's logical name,
   * `GET` gives the stored one back; either way the answer is a SUCCESS result with it, or FAIL.
   */
  private configuration(env: ConfigMessage): void {
    const { configurations } = this.o;
    const name = env.source.logical_name;
    const answer = (event: 'SUCCESS' | 'FAIL', payload: unknown) => this.answer(env, 'result', event, payload, 'cluster');
    if (!configurations) return answer('FAIL', { error: 'this cluster member keeps no configurations' });
    if (env.command !== 'SAVE' && env.command !== 'GET') return answer('FAIL', { error: `a configuration's command is SAVE or GET, not ${env.command}` });
    const done = env.command === 'SAVE' ? configurations.save(env.tenant, name, env.payload ?? null) : configurations.load(env.tenant, name);
    void done.then(
      (stored) => answer('SUCCESS', stored ?? { logical_name: name, configuration: null, version: 0, updated_at: null }),
      (err: unknown) => answer('FAIL', { error: `the configuration could not be ${env.command === 'SAVE' ? 'saved' : 'read'}: ${(err as Error).message}` }),
    );
  }

  /**
   * A secret message asks the cluster to confirm its sender's admission (the documents' "validate
   * its secret"); the secret itself never travels in a message: the connector presented it over
   * the mesh. SUCCESS {admitted: true} when this cluster member admits the sending connector for
   * the message's tenant, else FAIL with the reason.
   */
  private secretCheck(env: ConfigMessage): void {
    const node = env.source.node;
    const tenant = this.o.admission.tenantOf(node, 'connector');
    const admitted = tenant === env.tenant || tenant === '*';
    this.answer(
      env,
      'result',
      admitted ? 'SUCCESS' : 'FAIL',
      admitted
        ? { admitted: true, tenant: env.tenant, node }
        : { admitted: false, tenant: env.tenant, node, reason: `${node} is not admitted as a connector of ${env.tenant} here` },
      'cluster',
    );
  }

  private atClusterAnswer(env: EventMessage, deadline: number): void {
    this.o.tracer.message(env, this.o.self);
    this.forward(env, 'cluster', 'aggregator', aggregatorsOf(this.o.directory, env.tenant), deadline);
  }

  private source(role: Role): Source {
    return { node: this.o.self, role, logical_name: this.o.identity.logicalName };
  }

  // --- plumbing -----------------------------------------------------------

  private sendFrame(to: string, frame: RouteFrame): boolean {
    if (to !== this.o.self) return this.o.send(to, frame);
    this.o.clock.defer(() => this.receive(this.o.self, frame));
    return true;
  }

  private trace(env: Envelope, role: Role, outcome: HopOutcomeName, peer?: string, reason?: string): void {
    this.o.tracer.hop({
      uuid: env.uuid,
      tenant: env.tenant,
      kind: env.kind,
      node: this.o.self,
      role,
      outcome,
      ...(peer !== undefined ? { peer } : {}),
      ...(reason !== undefined ? { reason } : {}),
      at: Math.floor(this.o.clock.now()),
    });
  }

  /** Tells the cluster that a message was refused here (rate-limited per reason); the sink records it. */
  private report(refusedEnv: Envelope, reason: RouteErrorReason, peer: string): void {
    const { identity, clock } = this.o;
    const second = Math.floor(clock.monotonic() / 1000);
    const r = this.reports.get(reason);
    if (r && r.second === second && r.count >= REPORTS_PER_SECOND) return;
    if (r && r.second === second) r.count++;
    else this.reports.set(reason, { second, count: 1 });
    const role: Role = identity.roles.includes('aggregator') ? 'aggregator' : identity.roles.includes('connector') ? 'connector' : 'cluster';
    const env: EventMessage = {
      uuid: this.o.newUuid(),
      tenant: identity.tenant,
      kind: 'event',
      timeout: 5000,
      timestamp: Math.floor(clock.now()),
      major: 0,
      minor: 0,
      source: this.source(role),
      context: {},
      payload: { reason, peer, refused: refusedEnv.uuid, claimed_tenant: refusedEnv.tenant },
      attempt: 1,
      hops: 0,
      hop_limit: refusedEnv.hop_limit,
      topic: ERROR_TOPIC,
      event: reason,
      reference_uuid: refusedEnv.uuid,
    };
    const deadline = clock.monotonic() + env.timeout;
    if (role === 'cluster') this.o.tracer.message(env, this.o.self);
    else if (role === 'aggregator') this.forward(env, 'aggregator', 'cluster', clusterMembers(this.o.directory), deadline);
    else this.up(env, deadline);
  }

  private count(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  private bad(from: string, problem: string): void {
    if (this.malformed++ % 100 === 0) this.o.logger.warn('dropped a malformed routing frame', { from, problem, total: this.malformed });
  }
}

/** A message is handled once per hop it arrives by (`from` role to `to` role) and attempt. */
function dedupeKey(from: Role | 'worker', to: Role, env: Envelope): string {
  return `${from}>${to}|${env.kind}|${env.uuid}|${env.attempt}`;
}

function errorPayload(reason: RouteErrorReason, error: string, details?: unknown): Record<string, unknown> {
  return details === undefined ? { reason, error } : { reason, error, details };
}
