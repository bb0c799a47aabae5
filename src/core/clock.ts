/**
 * Time is an input. Everything that reads the wall clock or waits takes a
 * Clock, so tests can drive it in simulated time.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (wall clock; may jump). */
  now(): number;
  /** Monotonic milliseconds, for measuring intervals. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Runs `fn` soon, after pending I/O callbacks (setImmediate; in simulations, the next step at the current time). */
  defer(fn: () => void): void;
}

export interface TimerHandle {
  /** Do not keep the process alive for this timer. */
  unref?(): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  defer: (fn) => void setImmediate(fn),
};

/** Resolves after `ms` on `clock` (unref'd: a pending sleep does not keep the process alive). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, Math.max(0, ms)).unref?.());
}

/**
 * Runs `work` now and again `everyMs` after each run ends (a slow run delays the next, never
 * overlaps it), until stopped. A failed run goes to `onError`; the next one still comes.
 */
export function repeatAfter(clock: Clock, everyMs: number, work: () => Promise<void>, onError: (err: unknown) => void): { stop(): void } {
  let stopped = false;
  let timer: TimerHandle | undefined;
  const tick = () => {
    if (stopped) return;
    void work()
      .catch(onError)
      .finally(() => {
        if (stopped) return;
        timer = clock.setTimeout(tick, everyMs);
        timer.unref?.();
      });
  };
  tick();
  return {
    stop: () => {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
    },
  };
}
