/**
 * A linearizability checker in the manner of Wing & Gong with Lowe's
 * memoization (the algorithm Porcupine uses; our own code): depth-first search
 * for an order of the operations that respects real time (an operation that
 * returned before another was called comes first) and the sequential model.
 * Operations that never returned (ret = Infinity) may take effect at any point
 * after their call, including never (they are placed after everything else).
 *
 * The model of the simulations: an append-only list of unique values. A
 * write appends its value; a read returns the list's length and a hash of it.
 */

export interface Operation<I, O> {
  input: I;
  /** undefined for an operation that never returned. */
  output: O | undefined;
  /** Logical times: distinct, totally ordered across all operations. */
  call: number;
  ret: number;
}

export interface Model<S, I, O> {
  init(): S;
  step(state: S, input: I, output: O | undefined): S | undefined;
  key(state: S): string;
}

export type CheckResult = { ok: true } | { ok: false; reason: string };

interface Ev {
  op: number;
  isCall: boolean;
  match: Ev | undefined;
  prev: Ev | undefined;
  next: Ev | undefined;
}

export function checkLinearizable<S, I, O>(history: Operation<I, O>[], model: Model<S, I, O>, maxSteps = 5_000_000): CheckResult {
  const n = history.length;
  const events: { time: number; isCall: boolean; op: number }[] = [];
  history.forEach((o, i) => {
    if (!(o.ret > o.call)) throw new Error(`operation ${i}: ret must be after call`);
    events.push({ time: o.call, isCall: true, op: i });
    events.push({ time: o.ret, isCall: false, op: i });
  });
  // by time; never-returned operations last (in call order); a call before a return at the same time
  events.sort((a, b) => a.time - b.time || (Number.isFinite(a.time) ? 0 : a.op - b.op) || (a.isCall ? -1 : 1));
  const head: Ev = { op: -1, isCall: false, match: undefined, prev: undefined, next: undefined };
  const calls = new Map<number, Ev>();
  let tail = head;
  for (const e of events) {
    const ev: Ev = { op: e.op, isCall: e.isCall, match: undefined, prev: tail, next: undefined };
    tail.next = ev;
    tail = ev;
    if (e.isCall) calls.set(e.op, ev);
    else calls.get(e.op)!.match = ev;
  }

  const lift = (call: Ev): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Ev): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const words = new Uint32Array(Math.ceil(n / 32) + 1);
  const bitsKey = (): string => words.join(',');
  const cache = new Set<string>();
  const stack: { call: Ev; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  let longest = 0;
  while (head.next !== undefined) {
    if (++steps > maxSteps) return { ok: false, reason: `gave up after ${maxSteps} steps` };
    const ev = entry!;
    if (ev.isCall) {
      const o = history[ev.op]!;
      const next = model.step(state, o.input, o.output);
      if (next !== undefined) {
        words[ev.op >>> 5]! |= 1 << (ev.op & 31);
        const key = `${bitsKey()}|${model.key(next)}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call: ev, state });
          longest = Math.max(longest, stack.length);
          state = next;
          lift(ev);
          entry = head.next;
          continue;
        }
        words[ev.op >>> 5]! &= ~(1 << (ev.op & 31));
      }
      entry = ev.next;
    } else {
      // reached a return whose operation could not be placed: backtrack
      const top = stack.pop();
      if (!top) {
        return { ok: false, reason: `no linearization: operation ${ev.op} cannot take effect (longest linearizable prefix: ${longest} operations)` };
      }
      words[top.call.op >>> 5]! &= ~(1 << (top.call.op & 31));
      state = top.state;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { ok: true };
}

// ---- the append-only list model ----

export type ListInput = { kind: 'write'; value: string } | { kind: 'read' };
/** What a read saw: the list's length and hash (listHash). */
export type ListOutput = { len: number; hash: number } | undefined;
export interface ListState {
  len: number;
  hash: number;
}

/** FNV-1a of `value` continuing from `hash`: the hash of a list is the fold of its values. */
export function extendHash(hash: number, value: string): number {
  let h = hash;
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= 0x2c; // separator
  return Math.imul(h, 0x01000193) >>> 0;
}

export const EMPTY_LIST_HASH = 0x811c9dc5;

export function listHash(values: readonly string[]): number {
  let h = EMPTY_LIST_HASH;
  for (const v of values) h = extendHash(h, v);
  return h;
}

/**
 * The append-only list. With `final` (the list as it ended up, which the history must also hold
 * as a read that returned it after every other operation returned), a write is only tried where
 * `final` puts it: a pruning that is exact, since states only grow and every state before that
 * read is a prefix of what it returned; writes missing from `final` can only follow it.
 */
export function appendListModel(final?: readonly string[]): Model<ListState, ListInput, ListOutput> {
  const finalSet = final ? new Set(final) : undefined;
  return {
    init: () => ({ len: 0, hash: EMPTY_LIST_HASH }),
    step(state, input, output) {
      if (input.kind === 'read') {
        if (output === undefined) return state;
        return output.len === state.len && output.hash === state.hash ? state : undefined;
      }
      if (final && finalSet) {
        if (state.len < final.length ? final[state.len] !== input.value : finalSet.has(input.value)) return undefined;
      }
      return { len: state.len + 1, hash: extendHash(state.hash, input.value) };
    },
    key: (s) => `${s.len}:${s.hash}`,
  };
}

/**
 * An exact, polynomial check for the append-only list when the final list is known (the history
 * must end with a read that returned `final` after every other operation returned): `final` fixes
 * the order of the writes that took effect and each read's length fixes where it goes between
 * them, so the earliest consistent linearization point of every operation can be computed in
 * order (a system of difference constraints solved by its least solution). Writes missing from
 * `final` that never returned are left out; one that returned is a lost write.
 */
export function checkAppendList(history: Operation<ListInput, ListOutput>[], final: readonly string[]): CheckResult {
  const EPS = 1e-6;
  const prefix: number[] = [EMPTY_LIST_HASH];
  for (const v of final) prefix.push(extendHash(prefix[prefix.length - 1]!, v));
  const writeOf = new Map<string, Operation<ListInput, ListOutput>>();
  const readsAt: Operation<ListInput, ListOutput>[][] = Array.from({ length: final.length + 1 }, () => []);
  const inFinal = new Set(final);
  for (const o of history) {
    if (o.input.kind === 'write') {
      if (writeOf.has(o.input.value)) return { ok: false, reason: `value ${o.input.value} written twice` };
      writeOf.set(o.input.value, o);
      if (!inFinal.has(o.input.value) && Number.isFinite(o.ret)) return { ok: false, reason: `acknowledged write ${o.input.value} is not in the final list` };
    } else if (o.output !== undefined) {
      const { len, hash } = o.output;
      if (len > final.length || prefix[len] !== hash) return { ok: false, reason: `a read returned a list of ${len} that is not a prefix of the final list` };
      readsAt[len]!.push(o);
    }
  }
  let t = -Infinity;
  for (let p = 0; p <= final.length; p++) {
    let lower = t;
    for (const r of readsAt[p]!) {
      const at = Math.max(r.call, t) + EPS;
      if (!(at < r.ret)) return { ok: false, reason: `a read [${r.call}, ${r.ret}] of ${p} values cannot take effect after value ${p} (at ${t})` };
      lower = Math.max(lower, at);
    }
    if (p === final.length) break;
    const w = writeOf.get(final[p]!);
    if (!w) return { ok: false, reason: `value ${final[p]} in the final list was never written` };
    t = Math.max(lower, w.call) + EPS;
    if (!(t < w.ret)) return { ok: false, reason: `write of ${final[p]} [${w.call}, ${w.ret}] cannot take effect at position ${p}` };
  }
  return { ok: true };
}
