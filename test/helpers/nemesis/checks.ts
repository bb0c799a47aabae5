/**
 * Checks of the histories real clients recorded during a nemesis run (times:
 * milliseconds of the host clock every namespace shares).
 *  - SQL: every acknowledged write is in a strong read after healing; every
 *    strong count read lies between the writes acknowledged before it was
 *    called and the writes called before it returned (a stale or phantom read
 *    breaks that; a count is linearizable only if it holds).
 *  - Key/value: each key's gets and CASes through the linearizability checker
 *    (the register model of test/helpers/raft-sim/system-sim.ts).
 *  - Mutex: the holds clients relied on (grant answer to release call, cut at
 *    their session's lease) never overlap, and fencing tokens rise with them.
 */
import type { CheckResult } from '../raft-sim/linearizability';

export interface SqlWrite {
  value: string;
  call: number;
  /** When its acknowledgement arrived; undefined for a write that failed or whose outcome is unknown. */
  ret?: number;
}

export interface CountRead {
  n: number;
  call: number;
  ret: number;
  client: string;
}

export interface ClientHold {
  lock: string;
  token: number;
  session: string;
  from: number;
  to: number;
  client: string;
}

export function lostWrites(writes: readonly SqlWrite[], rows: ReadonlySet<string>): string[] {
  return writes.filter((w) => w.ret !== undefined && !rows.has(w.value)).map((w) => w.value);
}

/** Sorted copy. */
const sorted = (xs: number[]): number[] => xs.sort((a, b) => a - b);
/** How many of the sorted `xs` are below `t`. */
function countBelow(xs: readonly number[], t: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `base`: rows the table held before the clients started (0 for a fresh table). */
export function checkCountReads(writes: readonly SqlWrite[], reads: readonly CountRead[], base = 0): CheckResult & { violations: string[] } {
  const acked = sorted(writes.filter((w) => w.ret !== undefined).map((w) => w.ret!));
  const called = sorted(writes.map((w) => w.call));
  const violations: string[] = [];
  for (const r of reads) {
    const lo = base + countBelow(acked, r.call);
    const hi = base + countBelow(called, r.ret);
    if (r.n < lo) violations.push(`stale read through ${r.client}: ${r.n} rows, but ${lo} writes were acknowledged before the read began`);
    else if (r.n > hi) violations.push(`phantom read through ${r.client}: ${r.n} rows, but only ${hi} writes had begun when it returned`);
  }
  return violations.length === 0 ? { ok: true, violations } : { ok: false, reason: violations[0]!, violations };
}

export function checkClientHolds(holds: readonly ClientHold[]): CheckResult & { violations: string[] } {
  const violations: string[] = [];
  const byLock = new Map<string, ClientHold[]>();
  for (const h of holds) {
    let l = byLock.get(h.lock);
    if (!l) byLock.set(h.lock, (l = []));
    l.push(h);
  }
  for (const [lock, all] of byLock) {
    // A session that asks again for a lock it still holds (its release failed) gets the same
    // token: one hold, from its first grant to its last release.
    const tokens = new Map<number, ClientHold>();
    for (const h of all) {
      const seen = tokens.get(h.token);
      if (seen && seen.session !== h.session)
        violations.push(`${lock}: token ${h.token} granted to ${seen.client} (${seen.session}) and to ${h.client} (${h.session})`);
      else if (seen) tokens.set(h.token, { ...seen, from: Math.min(seen.from, h.from), to: Math.max(seen.to, h.to) });
      else tokens.set(h.token, h);
    }
    const hs = [...tokens.values()];
    let last: ClientHold | undefined; // of the holds granted before: the one that ends last
    let top: ClientHold | undefined; // and the one with the highest token
    for (const h of [...hs].sort((a, b) => a.from - b.from)) {
      if (last && h.from < last.to)
        violations.push(
          `${lock}: ${h.client} holds token ${h.token} from ${h.from.toFixed(0)} while ${last.client} holds token ${last.token} until ${last.to.toFixed(0)}`,
        );
      if (top && h.token <= top.token) violations.push(`${lock}: token ${h.token} (${h.client}) granted after token ${top.token} (${top.client})`);
      if (!last || h.to > last.to) last = h;
      if (!top || h.token > top.token) top = h;
    }
  }
  return violations.length === 0 ? { ok: true, violations } : { ok: false, reason: violations[0]!, violations };
}

/**
 * The longest stretch of each window with no write acknowledged anywhere: from the window's start
 * (or an acknowledgement) to the next acknowledgement (or the window's end).
 */
export function longestUnavailability(ackTimes: readonly number[], windows: readonly { start: number; end: number }[]): number[] {
  const acks = sorted([...ackTimes]);
  return windows.map(({ start, end }) => {
    let longest = 0;
    let last = start;
    for (let i = countBelow(acks, start); i < acks.length && acks[i]! <= end; i++) {
      longest = Math.max(longest, acks[i]! - last);
      last = acks[i]!;
    }
    return Math.max(longest, end - last);
  });
}
