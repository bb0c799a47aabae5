/**
 * A connector's side of its workers: commands go to its command queue (after
 * their payload is checked, when a checker is given), broadcast events to the
 * workers subscribed to their topic (never back to the worker that published
 * one), and answers (receipts, results, errors) to the worker that sent the
 * command they answer.
 */
import type { Clock } from '../core/clock';
import { CommandQueue, type QueuedCommand } from './command-queue';
import type { EventMessage } from './envelope';
import type { LocalWorkers, Offer } from './ports';

export type PayloadCheck = (env: QueuedCommand) => { ok: true } | { ok: false; error: string; details?: unknown };
export type EventListener = (env: EventMessage) => void;

export class WorkerHub implements LocalWorkers {
  readonly queue: CommandQueue;
  private readonly subscribers = new Map<string, { topics: ReadonlySet<string>; listener: EventListener }>();
  private readonly answerListeners = new Map<string, EventListener>();

  constructor(
    private readonly self: string,
    clock: Clock,
    private readonly check?: PayloadCheck,
  ) {
    this.queue = new CommandQueue(clock);
  }

  command(env: QueuedCommand, deadline: number): Offer {
    const verdict = this.check?.(env) ?? { ok: true };
    if (!verdict.ok) return { queued: false, error: verdict.error, ...(verdict.details !== undefined ? { details: verdict.details } : {}) };
    return this.queue.offer(env, deadline);
  }

  event(env: EventMessage): void {
    if (env.destination) {
      if (env.destination.worker !== undefined) this.answerListeners.get(env.destination.worker)?.(env);
      return;
    }
    const publisher = env.source.node === this.self ? env.source.worker : undefined;
    for (const [worker, s] of this.subscribers) {
      if (worker !== publisher && (s.topics.has(env.topic) || s.topics.has('*'))) s.listener(env);
    }
  }

  /** `worker` gets broadcast events of `topics` (`*`: every topic); a second subscription replaces the first. */
  subscribe(worker: string, topics: readonly string[], listener: EventListener): void {
    this.subscribers.set(worker, { topics: new Set(topics), listener });
  }

  unsubscribe(worker: string): void {
    this.subscribers.delete(worker);
  }

  /** `worker` gets the answers to the commands it sends. */
  onAnswers(worker: string, listener: EventListener | undefined): void {
    if (listener) this.answerListeners.set(worker, listener);
    else this.answerListeners.delete(worker);
  }
}
