/**
 * One hop of a message: its candidates tried one at a time in random order,
 * each given `time left / candidates left` (at most RETRY_MS) to take it (an
 * `ack`), until one does, all refused (`nack`), or the message's deadline
 * passed. Time left after a round goes to another round over those that did
 * not refuse, so a frame lost to a link reset is sent again, also to a hop's
 * only candidate. Nothing waits without a bound: the deadline ends every try.
 * A candidate that took a message after its wait ran out may still pass it
 * on; the receivers' dedupe by uuid and the claim before a command runs make
 * that harmless.
 */
import type { Clock, TimerHandle } from '../core/clock';
import type { Role } from '../core/routing-identity';
import type { Envelope } from './envelope';
import type { RouteFrame } from './frames';

export type HopOutcome =
  | { ok: true; via: string; tried: number }
  /** `timeout`: the deadline passed; `refused`: every candidate said no (or was not linked); `no_candidate`: none to try. */
  | { ok: false; reason: 'timeout' | 'refused' | 'no_candidate'; tried: number; last?: string };

export interface HopPort {
  /** Sends a frame to a peer (or to this node itself); false when the peer is not linked. */
  send(to: string, frame: RouteFrame): boolean;
}

/** Longest wait for one candidate's answer before the next try. */
export const RETRY_MS = 300;

type Try = { to: string; resolve: (took: boolean, reason?: string) => void };

export class HopSender {
  private nextHop = 1;
  private readonly waiting = new Map<number, Try>();

  constructor(
    private readonly port: HopPort,
    private readonly clock: Clock,
    private readonly random: () => number,
  ) {}

  /**
   * Hands `env` (from role `from` to role `to`) to one of `candidates` before `deadline` (this
   * clock's monotonic ms). `onTry` sees each candidate tried, for the trace.
   */
  forward(
    env: Envelope,
    from: Role,
    to: Role,
    candidates: readonly string[],
    deadline: number,
    done: (outcome: HopOutcome) => void,
    onTry?: (candidate: string, outcome: 'taken' | 'refused' | 'no_answer' | 'not_linked', reason?: string) => void,
  ): void {
    let round = this.shuffle([...new Set(candidates)]);
    if (round.length === 0) return done({ ok: false, reason: 'no_candidate', tried: 0 });
    let at = 0;
    /** Candidates of this round that did not refuse: the next round's. */
    let again: string[] = [];
    let tried = 0;
    let last: string | undefined;
    const next = (): void => {
      const now = this.clock.monotonic();
      if (now >= deadline) return done({ ok: false, reason: 'timeout', tried, ...(last ? { last } : {}) });
      if (at === round.length) {
        if (again.length === 0) return done({ ok: false, reason: 'refused', tried, ...(last ? { last } : {}) });
        round = this.shuffle(again);
        again = [];
        at = 0;
      }
      const candidate = round[at]!;
      const left = round.length - at;
      at++;
      tried++;
      last = candidate;
      const hop = this.nextHop++;
      const wait = Math.max(1, Math.min(RETRY_MS, Math.floor((deadline - now) / left)));
      let timer: TimerHandle | undefined;
      this.waiting.set(hop, {
        to: candidate,
        resolve: (took, reason) => {
          if (!this.waiting.delete(hop)) return;
          if (timer) this.clock.clearTimeout(timer);
          onTry?.(candidate, took ? 'taken' : 'refused', reason);
          if (took) done({ ok: true, via: candidate, tried });
          else next();
        },
      });
      const frame: RouteFrame = { t: 'msg', hop, from, to, env: { ...env, timeout: Math.max(1, Math.floor(deadline - now)), hops: env.hops + 1 } };
      if (!this.port.send(candidate, frame)) {
        this.waiting.delete(hop);
        onTry?.(candidate, 'not_linked');
        again.push(candidate);
        // not linked: the next candidate now; this one again next round, after a pause when it is the only one
        if (at === round.length && again.length === round.length) {
          timer = this.clock.setTimeout(next, Math.min(wait, deadline - now));
          return;
        }
        return next();
      }
      timer = this.clock.setTimeout(() => {
        if (!this.waiting.delete(hop)) return;
        onTry?.(candidate, 'no_answer');
        again.push(candidate);
        next();
      }, wait);
    };
    next();
  }

  /** An answer from `from` to one of our hops (an answer from any other peer than the one asked is ignored). */
  answer(from: string, frame: Extract<RouteFrame, { t: 'ack' | 'nack' }>): void {
    const w = this.waiting.get(frame.hop);
    if (!w || w.to !== from) return;
    if (frame.t === 'ack') w.resolve(true);
    else w.resolve(false, frame.reason);
  }

  private shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
