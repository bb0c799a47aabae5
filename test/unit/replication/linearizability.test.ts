/**
 * The checker the simulations rely on: it accepts linearizable histories
 * (including concurrent and never-returned operations) and rejects ones that
 * are not (stale reads, reads going back in time, lost acknowledged writes).
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../helpers/sim/prng';
import {
  appendListModel,
  checkAppendList,
  checkLinearizable,
  listHash,
  type ListInput,
  type ListOutput,
  type Operation,
} from '../../helpers/raft-sim/linearizability';

type Op = Operation<ListInput, ListOutput>;
const w = (value: string, call: number, ret: number): Op => ({ input: { kind: 'write', value }, output: undefined, call, ret });
const r = (seen: string[], call: number, ret: number): Op => ({ input: { kind: 'read' }, output: { len: seen.length, hash: listHash(seen) }, call, ret });

describe('linearizability checker', () => {
  it('accepts a sequential history', () => {
    expect(checkLinearizable([w('a', 1, 2), r(['a'], 3, 4), w('b', 5, 6), r(['a', 'b'], 7, 8)], appendListModel()).ok).toBe(true);
  });

  it('accepts concurrent writes seen in either order', () => {
    const h = [w('a', 1, 10), w('b', 2, 9), r(['b', 'a'], 11, 12)];
    expect(checkLinearizable(h, appendListModel()).ok).toBe(true);
    expect(checkLinearizable([w('a', 1, 10), w('b', 2, 9), r(['a', 'b'], 11, 12)], appendListModel()).ok).toBe(true);
  });

  it('accepts a read concurrent with a write seeing it or not', () => {
    expect(checkLinearizable([w('a', 1, 4), r([], 2, 3)], appendListModel()).ok).toBe(true);
    expect(checkLinearizable([w('a', 1, 4), r(['a'], 2, 3)], appendListModel()).ok).toBe(true);
  });

  it('lets a write that never returned take effect or not', () => {
    expect(checkLinearizable([w('a', 1, Infinity), r(['a'], 5, 6)], appendListModel()).ok).toBe(true);
    expect(checkLinearizable([w('a', 1, Infinity), r([], 5, 6)], appendListModel()).ok).toBe(true);
  });

  it('rejects a stale read (a write acknowledged before the read began is missing)', () => {
    const res = checkLinearizable([w('a', 1, 2), r([], 3, 4)], appendListModel());
    expect(res.ok).toBe(false);
  });

  it('rejects reads that go back in time', () => {
    const h = [w('a', 1, 20), r(['a'], 2, 3), r([], 4, 5)];
    expect(checkLinearizable(h, appendListModel()).ok).toBe(false);
  });

  it('rejects two reads that saw concurrent writes in different orders', () => {
    const h = [w('a', 1, 10), w('b', 1.5, 10.5), r(['a', 'b'], 11, 12), r(['b', 'a'], 13, 14)];
    expect(checkLinearizable(h, appendListModel()).ok).toBe(false);
  });

  it('rejects a lost acknowledged write against the final state, with and without pruning', () => {
    const h = [w('a', 1, 2), w('b', 3, 4), r(['b'], 10, 11)];
    expect(checkLinearizable(h, appendListModel()).ok).toBe(false);
    expect(checkLinearizable(h, appendListModel(['b'])).ok).toBe(false);
  });

  it('agrees with and without the final-state pruning on a larger concurrent history', () => {
    const h: Op[] = [];
    const order = ['v3', 'v1', 'v2', 'v5', 'v4', 'v6'];
    for (let i = 1; i <= 6; i++) h.push(w(`v${i}`, i, 20 + i));
    h.push(r(order.slice(0, 3), 15, 30));
    h.push(r(order, 40, 41));
    expect(checkLinearizable(h, appendListModel()).ok).toBe(true);
    expect(checkLinearizable(h, appendListModel(order)).ok).toBe(true);
    const bad = [...h.slice(0, 6), r(['v3', 'v2'], 15, 30), r(order, 40, 41)];
    expect(checkLinearizable(bad, appendListModel()).ok).toBe(false);
    expect(checkLinearizable(bad, appendListModel(order)).ok).toBe(false);
  });

  it('the fast check of the simulations agrees with the search on 3000 random small histories', () => {
    const random = mulberry32(11);
    let rejected = 0;
    for (let run = 0; run < 3000; run++) {
      // a true sequential execution: each operation takes effect at a distinct instant inside its interval
      const k = 1 + Math.floor(random() * 6);
      const m = Math.floor(random() * 5);
      const kinds = [...Array(k).fill('w'), ...Array(m).fill('r')] as ('w' | 'r')[];
      for (let i = kinds.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
      }
      const list: string[] = [];
      const h: Op[] = [];
      kinds.forEach((kind, i) => {
        const at = (i + 1) * 10;
        const call = at - 1 - Math.floor(random() * 25);
        let ret = at + 1 + Math.floor(random() * 25);
        if (kind === 'w') {
          const value = `v${i}`;
          if (random() < 0.15) {
            ret = Infinity;
            if (random() < 0.5) return h.push(w(value, call + 0.01 * i, ret)); // never took effect
          }
          list.push(value);
          h.push(w(value, call + 0.01 * i, ret + 0.01 * i));
        } else {
          h.push(r(list.slice(), call + 0.01 * i, ret + 0.01 * i));
        }
      });
      const final = list.slice();
      // sometimes break it: a read sees another prefix, or an interval moves
      if (random() < 0.5 && h.length > 0) {
        const o = h[Math.floor(random() * h.length)]!;
        if (o.input.kind === 'read') {
          const len = Math.floor(random() * (final.length + 1));
          o.output = { len, hash: listHash(final.slice(0, len)) };
        } else if (Number.isFinite(o.ret)) {
          const shift = Math.floor(random() * 60) - 30;
          o.call += shift;
          o.ret += shift;
        }
      }
      h.push(r(final, 10_000, 10_001));
      const search = checkLinearizable(h, appendListModel());
      const fast = checkAppendList(h, final);
      if (search.ok !== fast.ok) throw new Error(`run ${run}: search ${JSON.stringify(search)} vs fast ${JSON.stringify(fast)}: ${JSON.stringify(h)}`);
      if (!fast.ok) rejected++;
    }
    expect(rejected).toBeGreaterThan(100);
  });
});
