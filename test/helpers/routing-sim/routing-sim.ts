/**
 * Gandalf routing on simulated nodes: real Routers, WorkerHubs and command
 * queues, on a simulated clock and network, with simulated workers, a shared
 * command ledger (linearizable, with latency) and a shared data sink. Faults:
 * lost frames (a link reset drops what was in flight), partitions, node
 * crashes and restarts (membership learns of a crash after a detection delay),
 * worker crashes mid-command. Everything random comes from one PRNG seeded per
 * run: a failing seed replays exactly.
 *
 * It records what the properties need: every submission, every delivery to a
 * worker (commands and events), every answer a sender got and when.
 */
import { silentLogger } from '../../../src/core/logger';
import type { Role, RoutingIdentity } from '../../../src/core/routing-identity';
import { RECEIPT } from '../../../src/routing/answers';
import { type Directory, type RoutingPeer } from '../../../src/routing/directory';
import { directoryResolver } from '../../../src/routing/target-resolver';
import { parseEnvelope, type CommandMessage, type Envelope, type EventMessage } from '../../../src/routing/envelope';
import type { RouteFrame } from '../../../src/routing/frames';
import type { Claim, CommandLedger, HopRecord, StoredConfiguration, Tracer } from '../../../src/routing/ports';
import { Router } from '../../../src/routing/router';
import { WorkerHub } from '../../../src/routing/worker-hub';
import { mulberry32 } from '../sim/prng';
import { SimClock } from '../sim/sim-clock';

export interface SimNodeSpec {
  id: string;
  roles: Role[];
  tenant: string;
  logicalName: string;
  connectorType?: string;
  /** Workers on this connector (default 2 when it runs the connector role). */
  workers?: number;
  /** false: every other node refuses its aggregator and connector (as if its secret were wrong). */
  admitted?: boolean;
}

export interface RoutingSimOptions {
  seed: number;
  nodes: SimNodeSpec[];
  latencyMs?: { min: number; max: number };
  /** Probability that a frame is lost. */
  loss?: number;
  /** How long membership takes to notice a crashed node, uniform in [min, max] ms. */
  detectMs?: { min: number; max: number };
  /** Worker execution time, uniform in [min, max] ms. */
  workMs?: { min: number; max: number };
  /** Topics every worker subscribes to. */
  topics?: string[];
}

interface Worker {
  name: string;
  crashed: boolean;
}

interface SimNode {
  spec: SimNodeSpec;
  identity: RoutingIdentity;
  router: Router;
  hub: WorkerHub;
  workers: Worker[];
  crashed: boolean;
  /** Bumped on every restart: timers of an earlier life do nothing. */
  life: number;
}

/** A command as its sender saw it. */
export interface SentCommand {
  env: CommandMessage;
  node: string;
  worker: string;
  sentAt: number;
  deadline: number;
  /** The answers that reached the sending worker: [time, event, topic]. */
  answers: { at: number; env: EventMessage }[];
  /** Its sender's node crashed before the command ended (nothing is owed to it). */
  senderLost: boolean;
}

export interface Execution {
  uuid: string;
  node: string;
  worker: string;
  tenant: string;
  /** The worker ran it to the end and sent its result. */
  ran: boolean;
  /** Its result was recorded in the ledger (under the claim in force). */
  finished: boolean;
}

export class RoutingSim {
  readonly clock = new SimClock();
  readonly random: () => number;
  readonly nodes = new Map<string, SimNode>();
  readonly sent = new Map<string, SentCommand>();
  /** The logical configurations the cluster keeps (one store shared by the cluster members, as the replicated state is). */
  readonly configurations = new Map<string, StoredConfiguration>();
  readonly published = new Map<string, { env: EventMessage; node: string; worker: string }>();
  readonly executions: Execution[] = [];
  /** Broadcast events as workers got them (`life`: the node's, its workers are new processes after a restart). */
  readonly eventDeliveries: { uuid: string; node: string; worker: string; tenant: string; life: number }[] = [];
  /** The sink: messages by uuid (a second record of one uuid is counted, as INSERT OR IGNORE would drop it), and hops. */
  readonly sink = { messages: new Map<string, Envelope>(), repeats: 0, hops: [] as HopRecord[] };
  readonly stats = { frames: 0, lost: 0, blocked: 0 };
  private readonly ledgerState = new Map<string, { node: string; attempt: number; until: number; result?: EventMessage }>();
  private readonly gone = new Map<string, Map<string, number>>();
  private groups: Map<string, number> | undefined;
  private uuids = 0;

  constructor(private readonly options: RoutingSimOptions) {
    this.random = mulberry32(options.seed);
    for (const spec of options.nodes) this.start(spec);
  }

  // --- faults -------------------------------------------------------------

  crash(id: string): void {
    const node = this.nodes.get(id)!;
    if (node.crashed) return;
    node.crashed = true;
    node.router.stop();
    for (const s of this.sent.values()) if (s.node === id && s.answers.every((a) => !isEnd(a.env))) s.senderLost = true;
    const detect = this.options.detectMs ?? { min: 200, max: 600 };
    for (const observer of this.nodes.keys()) {
      if (observer === id) continue;
      this.seenGone(observer).set(id, this.clock.monotonic() + this.uniform(detect.min, detect.max));
    }
  }

  restart(id: string): void {
    const node = this.nodes.get(id)!;
    if (!node.crashed) return;
    for (const observer of this.nodes.keys()) this.gone.get(observer)?.delete(id);
    this.start(node.spec, node.life + 1);
  }

  /** Crashes a worker of `id` that holds a command, if any: the queue gives its commands to another worker. */
  crashBusyWorker(id: string): boolean {
    const node = this.nodes.get(id)!;
    if (node.crashed) return false;
    const busy = node.workers.find((w) => !w.crashed && [...this.sent.keys()].some((u) => node.hub.queue.holds(w.name, u)));
    if (!busy) return false;
    busy.crashed = true;
    node.hub.queue.detach(busy.name);
    node.hub.unsubscribe(busy.name);
    // a new worker process takes its place
    this.attachWorker(node, { name: `${busy.name}r`, crashed: false });
    return true;
  }

  partition(groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.groups!.set(id, i)));
  }

  heal(): void {
    this.groups = undefined;
  }

  // --- traffic ------------------------------------------------------------

  /** Worker `worker` of connector `node` sends a command (target or connector type). */
  sendCommand(node: string, worker: string, command: Partial<CommandMessage> & { timeout: number }): SentCommand | undefined {
    return this.sendMessage(node, worker, { kind: 'command', command: 'RUN', ...command });
  }

  /** A configuration or secret message (the cluster answers it itself). */
  sendConfig(node: string, worker: string, kind: 'configuration' | 'secret', command: string, payload: unknown, timeout = 2000): SentCommand | undefined {
    return this.sendMessage(node, worker, { kind, command, payload, timeout });
  }

  private sendMessage(node: string, worker: string, fields: Record<string, unknown>): SentCommand | undefined {
    const n = this.nodes.get(node)!;
    if (n.crashed) return undefined;
    const env = this.envelope(n, worker, fields) as CommandMessage;
    const record: SentCommand = {
      env,
      node,
      worker,
      sentAt: this.clock.monotonic(),
      deadline: this.clock.monotonic() + env.timeout,
      answers: [],
      senderLost: false,
    };
    this.sent.set(env.uuid, record);
    const r = n.router.submit(env);
    if (!r.ok) throw new Error(`submit refused: ${r.error}`);
    return record;
  }

  publish(node: string, worker: string, topic: string, timeout = 2000): EventMessage | undefined {
    const n = this.nodes.get(node)!;
    if (n.crashed) return undefined;
    const env = this.envelope(n, worker, { kind: 'event', topic, event: 'HAPPENED', timeout }) as EventMessage;
    this.published.set(env.uuid, { env, node, worker });
    const r = n.router.submit(env);
    if (!r.ok) throw new Error(`submit refused: ${r.error}`);
    return env;
  }

  /** Submits a raw envelope on `node` (for tests of refusals). */
  submitRaw(node: string, env: Envelope) {
    return this.nodes.get(node)!.router.submit(env);
  }

  /** Delivers a raw frame to `to` as if `from` sent it (a forged or foreign message). */
  inject(from: string, to: string, frame: unknown): void {
    this.nodes.get(to)!.router.receive(from, JSON.parse(JSON.stringify(frame)));
  }

  /** Runs `ms` of simulated time, timer by timer, letting promise continuations (ledger claims) run between timers. */
  async run(ms: number): Promise<void> {
    const end = this.clock.monotonic() + ms;
    while (this.clock.fireNext(end)) for (let i = 0; i < 4; i++) await Promise.resolve();
  }

  newUuid(): string {
    const n = (this.uuids++).toString(16).padStart(12, '0');
    const r = Math.floor(this.random() * 0xffffffff)
      .toString(16)
      .padStart(8, '0');
    return `${r}-0000-4000-8000-${n}`;
  }

  // --- the nodes ----------------------------------------------------------

  private start(spec: SimNodeSpec, life = 0): void {
    const identity: RoutingIdentity = {
      roles: spec.roles,
      tenant: spec.tenant,
      logicalName: spec.logicalName,
      connectorType: spec.connectorType ?? 'default',
      product: undefined,
    };
    const hub = new WorkerHub(spec.id, this.clock);
    const directory: Directory = { peers: () => this.view(spec.id) };
    const tracer: Tracer = {
      message: (env) => {
        if (this.sink.messages.has(env.uuid)) this.sink.repeats++;
        else this.sink.messages.set(env.uuid, env);
      },
      hop: (record) => this.sink.hops.push(record),
      // admission by secrets is simulated in peer-admission.test.ts; here peers are admitted by their published identity
      admission: () => undefined,
    };
    const ledger: CommandLedger = {
      claim: (tenant, uuid, attempt, node, ttl) => this.claim(tenant, uuid, attempt, node, ttl),
      complete: (tenant, uuid, attempt, node, result) => this.complete(tenant, uuid, attempt, node, result),
    };
    const router = new Router({
      self: spec.id,
      identity,
      clock: this.clock,
      random: this.random,
      newUuid: () => this.newUuid(),
      send: (to, frame) => this.transmit(spec.id, to, frame),
      directory,
      admission: {
        tenantOf: (peer, role) => {
          const p = this.nodes.get(peer);
          if (!p || !p.identity.roles.includes(role)) return undefined;
          if (role === 'cluster') return '*';
          return p.spec.admitted === false && peer !== spec.id ? undefined : p.identity.tenant;
        },
      },
      ledger,
      tracer,
      workers: hub,
      resolver: directoryResolver(directory),
      configurations: {
        save: async (tenant, name, configuration) => {
          const stored = {
            logical_name: name,
            configuration,
            version: (this.configurations.get(`${tenant}/${name}`)?.version ?? 0) + 1,
            updated_at: this.clock.now(),
          };
          this.configurations.set(`${tenant}/${name}`, stored);
          return stored;
        },
        load: async (tenant, name) => this.configurations.get(`${tenant}/${name}`),
      },
      logger: silentLogger,
    });
    const node: SimNode = { spec, identity, router, hub, workers: [], crashed: false, life };
    this.nodes.set(spec.id, node);
    if (!spec.roles.includes('connector')) return;
    for (let i = 0; i < (spec.workers ?? 2); i++) this.attachWorker(node, { name: `w${i}`, crashed: false });
  }

  private attachWorker(node: SimNode, worker: Worker): void {
    node.workers.push(worker);
    const life = node.life;
    const { hub, router, spec } = node;
    hub.queue.attach(worker.name, (env, deadline) => {
      this.executions.push({ uuid: env.uuid, node: spec.id, worker: worker.name, tenant: node.identity.tenant, ran: false, finished: false });
      const run = this.executions[this.executions.length - 1]!;
      const work = this.options.workMs ?? { min: 1, max: 60 };
      this.clock.setTimeout(
        () => {
          if (worker.crashed || node.crashed || node.life !== life) return;
          hub.queue.finish(worker.name, env.uuid);
          hub.queue.grant(worker.name, 1);
          if (this.clock.monotonic() >= deadline) return; // too late: its sender has its timeout
          run.ran = true;
          const result = this.envelope(node, worker.name, {
            kind: 'event',
            topic: 'result',
            event: 'SUCCESS',
            reference_uuid: env.uuid,
            destination: env.source.worker === undefined ? { node: env.source.node } : { node: env.source.node, worker: env.source.worker },
            timeout: Math.max(1, Math.floor(deadline - this.clock.monotonic())),
          }) as EventMessage;
          router.submit(result);
        },
        this.uniform(work.min, work.max),
      );
    });
    hub.queue.grant(worker.name, 4);
    hub.subscribe(worker.name, this.options.topics ?? ['news'], (env) => {
      if (!worker.crashed) this.eventDeliveries.push({ uuid: env.uuid, node: spec.id, worker: worker.name, tenant: node.identity.tenant, life });
    });
    hub.onAnswers(worker.name, (env) => {
      const sent = env.reference_uuid ? this.sent.get(env.reference_uuid) : undefined;
      if (sent && sent.node === spec.id && sent.worker === worker.name) sent.answers.push({ at: this.clock.monotonic(), env });
    });
  }

  /** What `observer`'s membership lists: every node it has not noticed gone. */
  private view(observer: string): RoutingPeer[] {
    const gone = this.gone.get(observer);
    const now = this.clock.monotonic();
    const out: RoutingPeer[] = [];
    for (const [id, n] of this.nodes) {
      const noticed = gone?.get(id);
      if (noticed !== undefined && noticed <= now) continue;
      if (id === observer && n.crashed) continue;
      out.push({ id, identity: n.identity });
    }
    return out;
  }

  private seenGone(observer: string): Map<string, number> {
    let m = this.gone.get(observer);
    if (!m) this.gone.set(observer, (m = new Map()));
    return m;
  }

  private transmit(from: string, to: string, frame: RouteFrame): boolean {
    const target = this.nodes.get(to);
    if (!target) return false;
    this.stats.frames++;
    const body = JSON.stringify(frame); // frames are plain data
    const sender = this.nodes.get(from)!;
    const senderLife = sender.life;
    if (this.random() < (this.options.loss ?? 0)) {
      this.stats.lost++;
      return true;
    }
    const latency = this.options.latencyMs ?? { min: 1, max: 10 };
    this.clock.setTimeout(
      () => {
        const t = this.nodes.get(to)!;
        if (t.crashed || sender.crashed || sender.life !== senderLife || this.cut(from, to)) {
          this.stats.blocked++;
          return;
        }
        t.router.receive(from, JSON.parse(body));
      },
      this.uniform(latency.min, latency.max),
    );
    return true;
  }

  private cut(a: string, b: string): boolean {
    return this.groups !== undefined && this.groups.get(a) !== this.groups.get(b);
  }

  /** Linearized at a random moment 1-5 ms after the call, like a Raft write. */
  private linearized<T>(apply: () => T): Promise<T> {
    return new Promise((resolve) => this.clock.setTimeout(() => resolve(apply()), this.uniformReal(1, 5)));
  }

  private claim(tenant: string, uuid: string, attempt: number, node: string, ttl: number): Promise<Claim> {
    return this.linearized(() => {
      const key = `${tenant}/${uuid}`;
      const now = this.clock.monotonic();
      const held = this.ledgerState.get(key);
      if (held?.result) return { won: false, result: held.result };
      const won = !held || held.until <= now || held.node === node || attempt > held.attempt;
      if (!won) return { won: false };
      this.ledgerState.set(key, { node, attempt: Math.max(attempt, held?.attempt ?? 0), until: now + ttl });
      return { won: true };
    });
  }

  private complete(tenant: string, uuid: string, attempt: number, node: string, result: EventMessage): Promise<boolean> {
    return this.linearized(() => {
      const held = this.ledgerState.get(`${tenant}/${uuid}`);
      if (!held || held.result || held.node !== node || held.attempt !== attempt) return false;
      held.result = result;
      const run = [...this.executions].reverse().find((e) => e.uuid === uuid && e.node === node && e.ran && !e.finished);
      if (run) run.finished = true;
      return true;
    });
  }

  private envelope(node: SimNode, worker: string, fields: Record<string, unknown>): Envelope {
    const raw = {
      uuid: this.newUuid(),
      tenant: node.identity.tenant,
      timestamp: Math.floor(this.clock.now()),
      source: { node: node.spec.id, role: 'connector', logical_name: node.identity.logicalName, worker },
      ...fields,
    };
    const parsed = parseEnvelope(raw);
    if (!parsed.ok) throw new Error(`sim built a bad envelope: ${parsed.error}`);
    return parsed.envelope;
  }

  private uniform(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  /** Latencies are fractional, as performance.now() is on a board. */
  private uniformReal(min: number, max: number): number {
    return min + this.random() * (max - min);
  }
}

/** A result or an error: what ends a command for its sender. */
export function isEnd(env: EventMessage): boolean {
  return env.event !== RECEIPT;
}
