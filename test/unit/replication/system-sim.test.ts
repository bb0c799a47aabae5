/**
 * The system group (SystemState replicated by Raft) in simulation on 3, 5
 * and 7 nodes under partitions, loss, duplication, reordering, crashes and
 * slow disks, with KV and lock clients: per-key linearizable KV, mutex safety
 * with increasing fencing tokens, identical replicas. A failure names its
 * seed (replay with RAFT_SEED=<seed>; RAFT_SEEDS=<count> for a soak). Also:
 * the checkers reject histories that break them, and the simulation catches
 * deliberately broken clients.
 */
import { describe, expect, it } from 'vitest';
import { forEachRaftSeedAsync } from '../../helpers/raft-sim/seeds';
import { checkKvHistory, checkMutex, runSystemSim, type Hold, type KvOperation } from '../../helpers/raft-sim/system-sim';

const TIMEOUT_MS = process.env.RAFT_SEEDS !== undefined ? 3_600_000 : 60_000;

describe('system group simulation', () => {
  for (const [size, seeds] of [
    [3, 200],
    [5, 120],
    [7, 80],
  ] as const) {
    it(
      `${size} nodes: linearizable KV, safe locks, identical replicas (${seeds} seeds)`,
      async () => {
        const total = { commands: 0, kvOps: 0, reads: 0, holds: 0, expired: 0, holdsLost: 0, restores: 0, nodeCloses: 0 };
        const ran = await forEachRaftSeedAsync(seeds, 900_000 + size * 10_000, (seed) => {
          const res = runSystemSim(seed, { size });
          for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += res[k];
        });
        expect(ran).toBeGreaterThan(0);
        expect(total.commands).toBeGreaterThan(0);
        expect(total.reads).toBeGreaterThan(0);
        expect(total.holds).toBeGreaterThan(0);
        if (ran >= 20) {
          // the interesting cases happened: sessions expired mid-hold, replicas restored from snapshots
          expect(total.expired).toBeGreaterThan(0);
          expect(total.holdsLost).toBeGreaterThan(0);
          expect(total.restores).toBeGreaterThan(0);
        }
      },
      TIMEOUT_MS,
    );
  }
});

describe('system simulation checkers', () => {
  const open = (id: string, node = 'n0'): unknown => ({ op: 'session-open', id, node, ttlMs: 1000 });
  const acq = (name: string, session: string): unknown => ({ op: 'lock-acquire', name, session, wait: true });
  const rel = (name: string, session: string): unknown => ({ op: 'lock-release', name, session });

  it('mutex checker: accepts hand-offs, rejects overlapping holds, reused and decreasing tokens', () => {
    //           1          2          3                4                5                6
    const log = [open('a'), open('b', 'n1'), acq('L', 'a'), acq('L', 'b'), rel('L', 'a'), rel('L', 'b')];
    const good: Hold[] = [
      { lock: 'L', session: 'a', token: 1, grantedAt: 3 },
      { lock: 'L', session: 'b', token: 2, grantedAt: 5 },
    ];
    expect(checkMutex(good, log)).toEqual({ ok: true });
    // b believed it got the lock when it queued (position 4), while a held it until 5
    const overlap = [good[0]!, { lock: 'L', session: 'b', token: 2, grantedAt: 4 }];
    expect(checkMutex(overlap, log)).toMatchObject({ ok: false, reason: expect.stringContaining('holds from 4') });
    // the same token for two holds
    expect(checkMutex([good[0]!, { ...good[1]!, token: 1 }], log).ok).toBe(false);
    // a later grant with a smaller token
    expect(checkMutex([{ ...good[0]!, token: 5 }, good[1]!], log)).toMatchObject({ ok: false, reason: expect.stringContaining('token 2') });
    // a hold ended by the session's close, or its node's sessions closing, hands off cleanly
    const closed = [open('a'), open('b', 'n1'), acq('L', 'a'), acq('L', 'b'), { op: 'session-close', id: 'a', reason: 'expired' }];
    expect(checkMutex([{ ...good[0]! }, { ...good[1]! }], closed)).toEqual({ ok: true });
    const nodeDead = [open('a'), open('b', 'n1'), acq('L', 'a'), acq('L', 'b'), { op: 'sessions-of-node-close', node: 'n0' }];
    expect(checkMutex(good, nodeDead)).toEqual({ ok: true });
    // but not a close of another node, or a release of another lock
    expect(checkMutex(good, [open('a'), open('b', 'n1'), acq('L', 'a'), acq('L', 'b'), { op: 'sessions-of-node-close', node: 'n1' }]).ok).toBe(false);
    expect(checkMutex(good, [open('a'), open('b', 'n1'), acq('L', 'a'), acq('L', 'b'), rel('M', 'a')]).ok).toBe(false);
  });

  it('KV checker: accepts a linearizable history, rejects a stale read, a lost write and a wrong CAS', () => {
    const put = (key: string, value: string, rev: number, call: number, ret: number): KvOperation => ({
      input: { kind: 'put', key, value },
      output: { kind: 'put', rev },
      call,
      ret,
    });
    const get = (key: string, value: string | null, rev: number, call: number, ret: number): KvOperation => ({
      input: { kind: 'get', key },
      output: { kind: 'get', value, rev },
      call,
      ret,
    });
    const ok: KvOperation[] = [
      put('a', 'x', 1, 1, 2),
      put('b', 'y', 2, 3, 10),
      get('b', null, 0, 4, 5), // concurrent with the put of b: may miss it
      get('a', 'x', 1, 6, 7),
      { input: { kind: 'cas', key: 'a', prev: 1, value: 'z' }, output: { kind: 'cas', ok: true, rev: 3 }, call: 11, ret: 12 },
      { input: { kind: 'cas', key: 'a', prev: 1, value: 'w' }, output: { kind: 'cas', ok: false, current: 3 }, call: 13, ret: 14 },
      put('c', 'q', 4, 15, Infinity), // never returned, took effect
      get('c', 'q', 4, 16, 17),
      { input: { kind: 'del', key: 'a' }, output: { kind: 'del', deleted: 1 }, call: 18, ret: 19 },
      { input: { kind: 'cas', key: 'a', prev: 0, value: 'v' }, output: { kind: 'cas', ok: true, rev: 6 }, call: 20, ret: 21 },
    ];
    expect(checkKvHistory(ok)).toEqual({ ok: true });
    // stale read: the put of b returned before the read began, the read still sees nothing
    expect(checkKvHistory([put('b', 'y', 2, 3, 4), get('b', null, 0, 5, 6)])).toMatchObject({ ok: false, reason: expect.stringContaining('key b') });
    // a read going back to an older value
    expect(checkKvHistory([put('a', 'x', 1, 1, 2), put('a', 'y', 2, 3, 4), get('a', 'x', 1, 5, 6)]).ok).toBe(false);
    // a CAS that succeeded against the wrong revision
    expect(
      checkKvHistory([
        put('a', 'x', 5, 1, 2),
        { input: { kind: 'cas', key: 'a', prev: 4, value: 'z' }, output: { kind: 'cas', ok: true, rev: 6 }, call: 3, ret: 4 },
      ]).ok,
    ).toBe(false);
    // create-only CAS succeeding on an existing key
    expect(
      checkKvHistory([
        put('a', 'x', 5, 1, 2),
        { input: { kind: 'cas', key: 'a', prev: 0, value: 'z' }, output: { kind: 'cas', ok: true, rev: 6 }, call: 3, ret: 4 },
      ]).ok,
    ).toBe(false);
    // revisions going backwards
    expect(checkKvHistory([put('a', 'x', 5, 1, 2), put('a', 'y', 3, 3, 4)]).ok).toBe(false);
  });

  it('KV checker: a CAS or put whose answer was lost may have taken effect at a revision an answer shows later, or never', () => {
    const get = (value: string | null, rev: number, call: number, ret: number): KvOperation => ({
      input: { kind: 'get', key: 'a' },
      output: { kind: 'get', value, rev },
      call,
      ret,
    });
    const lost = (prev: number, value: string, call: number): KvOperation => ({
      input: { kind: 'cas', key: 'a', prev, value },
      output: undefined,
      call,
      ret: Infinity,
    });
    const cas = (prev: number, value: string, o: { ok: true; rev: number } | { ok: false; current: number }, call: number, ret: number): KvOperation => ({
      input: { kind: 'cas', key: 'a', prev, value },
      output: { kind: 'cas', ...o },
      call,
      ret,
    });
    // the lost CAS took effect: a get shows its value, at a revision nobody was told
    expect(checkKvHistory([get(null, 0, 1, 2), lost(0, 'x', 3), get('x', 7, 4, 5), cas(7, 'y', { ok: true, rev: 9 }, 6, 7)])).toEqual({ ok: true });
    // it took effect and only a failed CAS's current revision shows it
    expect(checkKvHistory([get(null, 0, 1, 2), lost(0, 'x', 3), cas(0, 'z', { ok: false, current: 4 }, 4, 5)])).toEqual({ ok: true });
    // it never took effect
    expect(checkKvHistory([get(null, 0, 1, 2), lost(0, 'x', 3), get(null, 0, 4, 5)])).toEqual({ ok: true });
    // it was too late: the key had moved on, so it failed
    expect(checkKvHistory([get(null, 0, 1, 2), cas(0, 'w', { ok: true, rev: 2 }, 3, 4), lost(0, 'x', 5), get('w', 2, 6, 7)])).toEqual({ ok: true });
    // a lost CAS against a revision the key no longer had cannot be what a get shows
    expect(checkKvHistory([get('w', 2, 1, 2), lost(1, 'x', 3), get('x', 7, 4, 5)]).ok).toBe(false);
    // nor can its revision be below the one it replaced
    expect(checkKvHistory([get('w', 5, 1, 2), lost(5, 'x', 3), get('x', 4, 4, 5)]).ok).toBe(false);
    // once a get showed it, a later get cannot see the value it replaced
    expect(checkKvHistory([get('w', 5, 1, 2), lost(5, 'x', 3), get('x', 8, 4, 5), get('w', 5, 6, 7)]).ok).toBe(false);
  });

  it('the simulation catches reads served without ReadIndex and clients that take a queued answer for a grant', () => {
    const caught = (bug: 'local-reads' | 'queued-is-granted', pattern: RegExp): number => {
      let n = 0;
      for (let seed = 1; seed <= 30 && n < 3; seed++) {
        try {
          runSystemSim(seed, { size: 3, bug });
        } catch (err) {
          expect(String(err)).toMatch(pattern);
          n++;
        }
      }
      return n;
    };
    expect(caught('local-reads', /not linearizable/)).toBeGreaterThan(0);
    expect(caught('queued-is-granted', /mutex safety/)).toBeGreaterThan(0);
  });
});
