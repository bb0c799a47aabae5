/**
 * A deterministic cluster of Swim instances on a simulated network.
 *
 * Every message is serialized when sent and delivered through the SimClock
 * after a random latency, as `parseSwimMessage(JSON.parse(json))` (which proves
 * messages are plain data; a message that does not parse fails the run).
 * Datagrams may be lost or duplicated; random latency reorders them.
 * Reliable messages are never lost and arrive in order per pair of nodes, but
 * both kinds are dropped across a partition (checked when sent and again when
 * delivered), from a crashed node, and to one (messages already in flight
 * when their sender crashes still arrive). A slow node's outgoing messages get an
 * extra delay. All randomness, the nodes' included, comes from one PRNG seeded
 * per run, so a run replays exactly from its seed.
 */
import type { LogFields, Logger } from '../../../src/core/logger';
import { parseSwimMessage, Swim, type MemberState, type SwimConfig, type SwimMessage } from '../../../src/membership/swim';
import { mulberry32 } from './prng';
import { SimClock } from './sim-clock';

export interface SimOptions {
  seed: number;
  /** Nodes n0 … n(size-1). */
  size: number;
  /** Per-message latency, uniform in [min, max] ms. Default 1..20. */
  latencyMs?: { min: number; max: number };
  /** Probability that a datagram is lost. */
  loss?: number;
  /** Probability that a datagram is delivered twice (with independent latencies). */
  duplicate?: number;
  config?: Partial<SwimConfig>;
}

export interface SimNode {
  id: string;
  swim: Swim;
  crashed: boolean;
  /** Extra delay (ms) of every message this node sends. */
  slowMs: number;
}

/** One onChange event, as seen by `observer`. */
export interface ChangeEvent {
  at: number;
  observer: string;
  member: string;
  state: MemberState;
  previous: MemberState | undefined;
  incarnation: number;
}

export class SimNetwork {
  readonly clock = new SimClock();
  readonly random: () => number;
  readonly nodes: SimNode[] = [];
  readonly events: ChangeEvent[] = [];
  /** warn- and error-level log lines of any node (in a simulation, each is a bug). */
  readonly errors: string[] = [];
  /** Message counts: sent, delivered, lost (loss probability), duplicated, blocked (partition or crash). */
  readonly stats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 };
  loss: number;
  duplicate: number;
  latency: { min: number; max: number };
  /** Partition group of each node; reachable only within a group. Undefined: no partition. */
  private groups: Map<string, number> | undefined;
  /** Time the last reliable message from -> to is delivered, to keep them in order. */
  private readonly reliableTail = new Map<string, number>();
  private readonly byId = new Map<string, SimNode>();
  private readonly config: Partial<SwimConfig> | undefined;

  constructor(options: SimOptions) {
    this.random = mulberry32(options.seed);
    this.loss = options.loss ?? 0;
    this.duplicate = options.duplicate ?? 0;
    this.latency = options.latencyMs ?? { min: 1, max: 20 };
    this.config = options.config;
    for (let i = 0; i < options.size; i++) {
      const node: SimNode = { id: `n${i}`, crashed: false, slowMs: 0, swim: this.createSwim(`n${i}`, i) };
      this.nodes.push(node);
      this.byId.set(node.id, node);
    }
  }

  get ids(): string[] {
    return this.nodes.map((n) => n.id);
  }

  node(id: string): SimNode {
    const node = this.byId.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  /** Nodes that have not crashed. */
  live(): SimNode[] {
    return this.nodes.filter((n) => !n.crashed);
  }

  /** Starts every node and has each (but n0) join through n0. */
  startAndJoinViaFirst(): void {
    const first = this.nodes[0]!;
    for (const node of this.nodes) node.swim.start();
    for (const node of this.nodes.slice(1)) node.swim.join([{ id: first.id, endpoint: `sim://${first.id}` }]);
  }

  /** The node stops: it neither sends, receives nor runs timers. */
  crash(id: string): void {
    const node = this.node(id);
    node.crashed = true;
    node.swim.stop();
  }

  /** A crashed node comes back as a new process (fresh state, incarnation 0) and joins through `via`. */
  restart(id: string, via: string): void {
    const node = this.node(id);
    if (!node.crashed) throw new Error(`${id} is running`);
    node.crashed = false;
    node.swim = this.createSwim(id, this.nodes.indexOf(node));
    node.swim.start();
    node.swim.join([{ id: via, endpoint: `sim://${via}` }]);
  }

  slow(id: string, extraMs: number): void {
    this.node(id).slowMs = extraMs;
  }

  /** Nodes in different groups cannot reach each other; nodes in no group are each on their own. */
  partition(...groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((group, i) => group.forEach((id) => this.groups!.set(id, i)));
  }

  heal(): void {
    this.groups = undefined;
  }

  reachable(from: string, to: string): boolean {
    if (!this.groups) return true;
    const a = this.groups.get(from);
    return a !== undefined && a === this.groups.get(to);
  }

  run(ms: number): void {
    this.clock.advance(ms);
  }

  /** Advances in steps until `done()` holds; returns the time it took, or undefined after `maxMs`. */
  runUntil(done: () => boolean, maxMs: number, stepMs = 50): number | undefined {
    const start = this.clock.monotonic();
    while (!done()) {
      if (this.clock.monotonic() - start >= maxMs) return undefined;
      this.clock.advance(stepMs);
    }
    return this.clock.monotonic() - start;
  }

  /** `observer`'s view: member id -> state. */
  view(observer: string): Map<string, MemberState> {
    return new Map(
      this.node(observer)
        .swim.members()
        .map((m) => [m.id, m.state]),
    );
  }

  /** Every live node lists exactly `ids` (default: the live nodes), all alive. */
  converged(ids: string[] = this.live().map((n) => n.id)): boolean {
    const want = [...ids].sort().join(',');
    return this.live().every((node) => {
      const members = node.swim.members();
      return members.every((m) => m.state === 'alive') && members.map((m) => m.id).join(',') === want;
    });
  }

  /** A readable dump of every live node's view, for failure messages. */
  describe(): string {
    return this.live()
      .map(
        (node) =>
          `${node.id} (health ${node.swim.health()}): ${node.swim
            .members()
            .map((m) => `${m.id}=${m.state}@${m.incarnation}`)
            .join(' ')}`,
      )
      .join('\n');
  }

  /** A uniform integer in [0, n) from the run's PRNG. */
  randomInt(n: number): number {
    return Math.floor(this.random() * n);
  }

  private createSwim(id: string, index: number): Swim {
    const swim = new Swim({
      self: { id, endpoint: `http://10.0.0.${index + 1}:8421`, meta: { arch: index % 2 ? 'arm64' : 'x64', roles: 'cluster' } },
      clock: this.clock,
      random: this.random,
      network: {
        sendDatagram: (to, message) => this.send(id, to, message, false),
        sendReliable: (to, message) => this.send(id, to, message, true),
      },
      logger: this.logger(id),
      ...(this.config ? { config: this.config } : {}),
    });
    swim.onChange((member, previous) => {
      this.events.push({ at: this.clock.monotonic(), observer: id, member: member.id, state: member.state, previous, incarnation: member.incarnation });
    });
    return swim;
  }

  private send(from: string, to: string, message: SwimMessage, reliable: boolean): void {
    const sender = this.node(from);
    this.stats.sent++;
    if (sender.crashed || !this.byId.has(to) || !this.reachable(from, to)) {
      this.stats.blocked++;
      return;
    }
    if (!reliable && this.random() < this.loss) {
      this.stats.lost++;
      return;
    }
    const json = JSON.stringify(message);
    const copies = !reliable && this.random() < this.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const now = this.clock.monotonic();
      let at = now + this.latency.min + this.random() * (this.latency.max - this.latency.min) + sender.slowMs;
      if (reliable) {
        const key = `${from}>${to}`;
        at = Math.max(at, this.reliableTail.get(key) ?? 0);
        this.reliableTail.set(key, at);
      }
      this.clock.setTimeout(() => this.deliver(from, to, json), at - now);
    }
  }

  private deliver(from: string, to: string, json: string): void {
    const receiver = this.node(to);
    if (receiver.crashed || !this.reachable(from, to)) {
      this.stats.blocked++;
      return;
    }
    const message = parseSwimMessage(JSON.parse(json));
    if (!message) throw new Error(`${from} sent ${to} a message that does not parse: ${json}`);
    this.stats.delivered++;
    receiver.swim.handle(from, message);
  }

  private logger(id: string): Logger {
    const record = (msg: string, fields?: LogFields) => this.errors.push(`${id}: ${msg} ${JSON.stringify(fields ?? {}, errorAsString)}`);
    const logger: Logger = { debug() {}, info() {}, warn: record, error: record, child: () => logger };
    return logger;
  }
}

function errorAsString(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}
