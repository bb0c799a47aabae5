import { describe, expect, it } from 'vitest';
import { InboundQueue, MAX_HELD_BYTES } from '../../../src/transport/inbound-queue';

describe('InboundQueue', () => {
  it('holds early messages up to its bound, then hands them over in order before later ones', async () => {
    const q = new InboundQueue();
    const chunk = new Uint8Array(MAX_HELD_BYTES / 4);
    for (let i = 0; i < 6; i++) q.push(chunk.fill(i).slice());
    expect(q.dropped).toBe(2);
    const got: number[] = [];
    q.attach((d) => got.push(d[0]!));
    q.push(Uint8Array.of(42)); // arrives before the held ones are handed over
    expect(got).toEqual([]);
    await Promise.resolve();
    expect(got).toEqual([0, 1, 2, 3, 42]);
    q.push(Uint8Array.of(7));
    expect(got.at(-1)).toBe(7);
  });
});
