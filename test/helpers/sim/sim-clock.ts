/**
 * Virtual time for simulations: timers live in a priority queue ordered by
 * due time, ties by insertion order, and fire only when the test advances the
 * clock. monotonic() is the virtual time; now() is a fixed epoch plus it.
 */
import type { Clock, TimerHandle } from '../../../src/core/clock';

/** 2026-01-01T00:00:00Z: the wall clock reading at virtual time 0. */
const EPOCH_MS = 1_767_225_600_000;

class SimTimer implements TimerHandle {
  cancelled = false;
  constructor(
    readonly at: number,
    readonly order: number,
    readonly fn: () => void,
  ) {}

  /** Nothing keeps a simulation alive; present to satisfy TimerHandle. */
  unref(): void {}
}

function earlier(a: SimTimer, b: SimTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

export class SimClock implements Clock {
  private time = 0;
  private order = 0;
  /** Binary min-heap of pending timers. */
  private readonly heap: SimTimer[] = [];

  now(): number {
    return EPOCH_MS + this.time;
  }

  monotonic(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = new SimTimer(this.time + (Number.isFinite(ms) ? Math.max(0, ms) : 0), this.order++, fn);
    this.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof SimTimer) handle.cancelled = true;
  }

  defer(fn: () => void): void {
    this.setTimeout(fn, 0);
  }

  advance(ms: number): void {
    this.runUntil(this.time + ms);
  }

  /** Fires, in order, every timer due at or before `t` (including ones they schedule), then sets the time to `t`. */
  runUntil(t: number): void {
    while (this.fireNext(t));
  }

  /**
   * Fires the next timer if it is due at or before `t` and returns true; else sets the time to
   * `t` and returns false. For simulations whose timers start async work: the caller lets
   * promise continuations run between two timers, as the event loop does.
   */
  fireNext(t: number): boolean {
    while (this.heap.length > 0 && this.heap[0]!.at <= t) {
      const timer = this.pop();
      if (timer.cancelled) continue;
      this.time = timer.at;
      timer.fn();
      return true;
    }
    this.time = Math.max(this.time, t);
    return false;
  }

  private push(timer: SimTimer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): SimTimer {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < heap.length && earlier(heap[left]!, heap[least]!)) least = left;
        if (right < heap.length && earlier(heap[right]!, heap[least]!)) least = right;
        if (least === i) break;
        [heap[i], heap[least]] = [heap[least]!, heap[i]!];
        i = least;
      }
    }
    return top;
  }
}
