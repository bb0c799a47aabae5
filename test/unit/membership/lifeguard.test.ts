import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors';
import { Awareness } from '../../../src/membership/awareness';
import { BroadcastQueue } from '../../../src/membership/broadcast-queue';
import { resolveSwimConfig } from '../../../src/membership/config';
import type { MemberUpdate } from '../../../src/membership/messages';
import { Suspicion, suspicionBounds, suspicionTimeout } from '../../../src/membership/suspicion';
import { DEFAULT_SWIM_CONFIG } from '../../../src/membership/swim';

describe('dynamic suspicion timeout', () => {
  it('scales with log10(n), at least one interval-multiple, max = 6 x min, K = min(k, n - 2)', () => {
    expect(suspicionBounds(DEFAULT_SWIM_CONFIG, 8)).toEqual({ minMs: 4000, maxMs: 24000, expected: 3 });
    expect(suspicionBounds(DEFAULT_SWIM_CONFIG, 1)).toEqual({ minMs: 4000, maxMs: 24000, expected: 0 });
    expect(suspicionBounds(DEFAULT_SWIM_CONFIG, 3).expected).toBe(1);
    const big = suspicionBounds(DEFAULT_SWIM_CONFIG, 100);
    expect(big.minMs).toBeCloseTo(8000);
    expect(big.maxMs).toBeCloseTo(48000);
  });

  it('shrinks from max to min as confirmations arrive, logarithmically', () => {
    const bounds = suspicionBounds(DEFAULT_SWIM_CONFIG, 8);
    expect(suspicionTimeout(bounds, 0)).toBe(24000);
    expect(suspicionTimeout(bounds, 1)).toBe(14000); // 24000 - 20000 * log 2 / log 4
    expect(suspicionTimeout(bounds, 2)).toBe(Math.floor(24000 - (20000 * Math.log(3)) / Math.log(4)));
    expect(suspicionTimeout(bounds, 3)).toBe(4000);
    expect(suspicionTimeout(bounds, 10)).toBe(4000);
    expect(suspicionTimeout({ ...bounds, expected: 0 }, 0)).toBe(4000);
  });

  it('counts each accuser once and not the first one', () => {
    const s = new Suspicion(2, 1000, suspicionBounds(DEFAULT_SWIM_CONFIG, 8), 'a');
    expect(s.deadline()).toBe(25000);
    expect(s.confirm('a')).toBe(false);
    expect(s.confirm('b')).toBe(true);
    expect(s.confirm('b')).toBe(false);
    expect(s.confirmations).toBe(1);
    expect(s.deadline()).toBe(15000);
  });
});

describe('awareness', () => {
  it('stays within [0, max - 1] and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    a.applyDelta(-1);
    expect(a.value).toBe(0);
    expect(a.scale(500)).toBe(500);
    a.applyDelta(3);
    expect(a.scale(500)).toBe(2000);
    a.applyDelta(100);
    expect(a.value).toBe(7);
    a.applyDelta(-2);
    expect(a.value).toBe(5);
  });
});

describe('broadcast queue', () => {
  const u = (id: string, incarnation = 0): MemberUpdate => ({ id, endpoint: 'e', meta: {}, state: 'alive', incarnation, by: id });

  it('hands out least-sent then newest first, at most max per message, each at most limit times', () => {
    const q = new BroadcastQueue();
    q.enqueue(u('a'));
    q.enqueue(u('b'));
    q.enqueue(u('c'));
    expect(q.take(2, 2).map((x) => x.id)).toEqual(['c', 'b']);
    expect(q.take(2, 2).map((x) => x.id)).toEqual(['a', 'c']); // a is unsent; c newer than b
    expect(q.take(5, 2).map((x) => x.id)).toEqual(['b', 'a']); // c reached its limit
    expect(q.size).toBe(0);
    expect(q.take(5, 2)).toEqual([]);
  });

  it('keeps one update per member: a newer one replaces the old and starts its count again', () => {
    const q = new BroadcastQueue();
    q.enqueue(u('a', 1));
    q.take(1, 3);
    q.enqueue(u('a', 2));
    expect(q.size).toBe(1);
    expect(q.take(1, 3)).toEqual([u('a', 2)]);
    expect(q.take(1, 3)).toEqual([u('a', 2)]);
    expect(q.take(1, 3)).toEqual([u('a', 2)]);
    expect(q.take(1, 3)).toEqual([]);
  });
});

describe('config', () => {
  it('fills defaults, ignores undefined overrides and rejects invalid values with a ConfigError naming the setting', () => {
    expect(resolveSwimConfig({})).toEqual(DEFAULT_SWIM_CONFIG);
    expect(resolveSwimConfig({ probeIntervalMs: 200, probeTimeoutMs: 100, maxPiggyback: undefined })).toMatchObject({ probeIntervalMs: 200, maxPiggyback: 8 });
    for (const bad of [{ probeIntervalMs: 0 }, { indirectChecks: -1 }, { suspicionMult: NaN }, { maxPiggyback: 2000 }, { retransmitMult: 1.5 }]) {
      expect(() => resolveSwimConfig(bad), JSON.stringify(bad)).toThrow(new RegExp(Object.keys(bad)[0]!));
    }
    expect(() => resolveSwimConfig({ probeTimeoutMs: 1000 })).toThrow(/probeTimeoutMs .* less than probeIntervalMs/);
    expect(() => resolveSwimConfig({ gossipToTheDeadMs: -5 })).toThrow(ConfigError);
  });
});
