/**
 * The nemesis's checks (test/helpers/nemesis/checks.ts) catch what they are
 * for: lost writes, stale and phantom count reads, overlapping mutex holds,
 * reused and falling fencing tokens; and they accept what is allowed.
 */
import { describe, expect, it } from 'vitest';
import { checkClientHolds, checkCountReads, longestUnavailability, lostWrites, type ClientHold } from '../../helpers/nemesis/checks';

describe('nemesis checks', () => {
  it('lost writes: only acknowledged ones count', () => {
    const writes = [
      { value: 'a', call: 1, ret: 2 },
      { value: 'b', call: 3 }, // failed or unknown: may be missing
      { value: 'c', call: 4, ret: 5 },
    ];
    expect(lostWrites(writes, new Set(['a', 'c']))).toEqual([]);
    expect(lostWrites(writes, new Set(['a', 'b']))).toEqual(['c']);
  });

  it('count reads: between the writes acknowledged before and those begun before the answer', () => {
    const writes = [
      { value: 'a', call: 0, ret: 10 },
      { value: 'b', call: 5, ret: 30 },
      { value: 'c', call: 20 }, // outcome unknown
    ];
    const read = (n: number, call: number, ret: number) => ({ n, call, ret, client: 'x' });
    expect(checkCountReads(writes, [read(1, 11, 12), read(2, 11, 12), read(3, 25, 26), read(2, 31, 32)]).ok).toBe(true);
    expect(checkCountReads(writes, [read(0, 11, 12)])).toMatchObject({ ok: false, reason: expect.stringContaining('stale read') });
    expect(checkCountReads(writes, [read(1, 31, 32)])).toMatchObject({ ok: false, reason: expect.stringContaining('stale read') });
    expect(checkCountReads(writes, [read(3, 11, 12)])).toMatchObject({ ok: false, reason: expect.stringContaining('phantom read') });
    expect(checkCountReads(writes, [read(5, 1, 2)], 4).ok).toBe(true); // rows there before the clients
  });

  it('mutex holds: hand-offs pass; overlaps, a token granted twice and falling tokens fail', () => {
    const h = (client: string, token: number, from: number, to: number, session = client): ClientHold => ({ lock: 'm', token, session, from, to, client });
    expect(checkClientHolds([h('a', 1, 0, 10), h('b', 2, 10, 20), h('a', 3, 25, 30)]).ok).toBe(true);
    // a session that asked again while it still held the lock: one hold, same token
    expect(checkClientHolds([h('a', 1, 0, 10), h('a', 1, 12, 15), h('b', 2, 16, 20)]).ok).toBe(true);
    expect(checkClientHolds([h('a', 1, 0, 10), h('b', 2, 9, 20)])).toMatchObject({ ok: false, reason: expect.stringContaining('while a holds token 1') });
    // the merged hold of a re-asking session still must not overlap another's
    expect(checkClientHolds([h('a', 1, 0, 10), h('b', 2, 11, 14), h('a', 1, 12, 15)]).ok).toBe(false);
    expect(checkClientHolds([h('a', 4, 0, 10), h('b', 4, 11, 20)])).toMatchObject({ ok: false, reason: expect.stringContaining('token 4 granted to a') });
    expect(checkClientHolds([h('a', 5, 0, 10), h('b', 3, 11, 20)])).toMatchObject({
      ok: false,
      reason: expect.stringContaining('token 3 (b) granted after token 5'),
    });
    // a long hold overlapping a later one that is not its direct successor
    expect(checkClientHolds([h('a', 1, 0, 50), h('b', 2, 10, 20), h('c', 3, 30, 40)]).violations.length).toBe(2);
  });

  it('unavailability: the longest stretch of each window without an acknowledgement', () => {
    const acks = [1, 2, 3, 10, 11, 30];
    expect(longestUnavailability(acks, [{ start: 0, end: 12 }])).toEqual([7]);
    expect(longestUnavailability(acks, [{ start: 12, end: 20 }])).toEqual([8]); // none inside: the whole window
    expect(longestUnavailability(acks, [{ start: 11, end: 40 }])).toEqual([19]);
  });
});
