/**
 * A connector's commands waiting for its workers: competing consumers, one
 * worker per command. A worker takes commands up to the credit it gave; a
 * command it was handed stays its own until it sends the result (`finish`) or
 * goes away (`detach`), when the command goes back to the front of the queue
 * for another worker, if its deadline has not passed. A command whose
 * deadline passed while it waited is dropped (its sender has had its
 * `timeout` error event). Commands are held in memory up to `max`: more are
 * refused, never silently dropped.
 */
import type { Clock } from '../core/clock';
import type { CommandMessage, ConfigMessage } from './envelope';
import type { Offer } from './ports';
import { SeenSet } from './seen-set';

export type QueuedCommand = CommandMessage | ConfigMessage;

/** What a worker is told: a command to run (with its deadline, in monotonic ms of this node). */
export type Deliver = (env: QueuedCommand, deadline: number) => void;

interface Consumer {
  id: string;
  deliver: Deliver;
  credit: number;
  /** Commands handed to it and not finished, by uuid. */
  holding: Map<string, Entry>;
  /** Command names it serves (undefined: all). */
  serves: ReadonlySet<string> | undefined;
}

interface Entry {
  env: QueuedCommand;
  deadline: number;
  /** Times it was handed to a worker. */
  deliveries: number;
}

const DEDUPE_GRACE_MS = 30_000;

export class CommandQueue {
  private readonly waiting: Entry[] = [];
  private readonly consumers = new Map<string, Consumer>();
  private readonly seen: SeenSet;
  /** Commands handed again after their worker went away (for tests and metrics). */
  redelivered = 0;
  expired = 0;
  private dispatching = false;
  private again = false;

  constructor(
    private readonly clock: Clock,
    private readonly max = 10_000,
  ) {
    this.seen = new SeenSet(clock, 200_000);
  }

  offer(env: QueuedCommand, deadline: number): Offer {
    if (this.seen.has(env.uuid)) return { queued: false, duplicate: true };
    if (this.size >= this.max) return { queued: false, error: `this connector holds ${this.max} commands already` };
    this.seen.check(env.uuid, Math.max(0, deadline - this.clock.monotonic()) + DEDUPE_GRACE_MS);
    this.waiting.push({ env, deadline, deliveries: 0 });
    this.dispatch();
    return { queued: true };
  }

  /** A worker that takes commands (`serves`: the command names it implements; undefined: any). Refuses a second worker of one id. */
  attach(id: string, deliver: Deliver, serves?: readonly string[]): void {
    if (this.consumers.has(id)) throw new Error(`command queue: worker ${id} is attached already`);
    this.consumers.set(id, { id, deliver, credit: 0, holding: new Map(), serves: serves ? new Set(serves) : undefined });
  }

  /** The worker can take `n` more commands. */
  grant(id: string, n: number): void {
    const c = this.consumers.get(id);
    if (!c || !Number.isSafeInteger(n) || n <= 0) return;
    c.credit += n;
    this.dispatch();
  }

  /** The worker sent the result of `uuid` (false: it did not hold it). */
  finish(id: string, uuid: string): boolean {
    return this.consumers.get(id)?.holding.delete(uuid) ?? false;
  }

  /** The worker went away: what it held and had not finished goes to another worker. */
  detach(id: string): void {
    const c = this.consumers.get(id);
    if (!c) return;
    this.consumers.delete(id);
    const back = [...c.holding.values()];
    this.redelivered += back.length;
    this.waiting.unshift(...back);
    this.dispatch();
  }

  holds(id: string, uuid: string): boolean {
    return this.consumers.get(id)?.holding.has(uuid) ?? false;
  }

  /** Commands waiting or held by a worker. */
  get size(): number {
    let held = 0;
    for (const c of this.consumers.values()) held += c.holding.size;
    return this.waiting.length + held;
  }

  /** Hands waiting commands to workers with credit. A worker told of one may call back (grant, finish): that pass runs after this one. */
  private dispatch(): void {
    if (this.dispatching) {
      this.again = true;
      return;
    }
    this.dispatching = true;
    try {
      do {
        this.again = false;
        this.pass();
      } while (this.again);
    } finally {
      this.dispatching = false;
    }
  }

  private pass(): void {
    const now = this.clock.monotonic();
    for (let i = 0; i < this.waiting.length;) {
      const entry = this.waiting[i]!;
      if (entry.deadline <= now) {
        this.waiting.splice(i, 1);
        this.expired++;
        continue;
      }
      const consumer = this.pick(entry.env);
      if (!consumer) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      consumer.credit--;
      entry.deliveries++;
      consumer.holding.set(entry.env.uuid, entry);
      consumer.deliver(entry.env, entry.deadline);
    }
  }

  /** The worker with credit that serves the command and holds the least. */
  private pick(env: QueuedCommand): Consumer | undefined {
    let best: Consumer | undefined;
    for (const c of this.consumers.values()) {
      if (c.credit <= 0 || (c.serves && !c.serves.has(env.command))) continue;
      if (!best || c.holding.size < best.holding.size) best = c;
    }
    return best;
  }
}
