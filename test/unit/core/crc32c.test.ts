import { describe, expect, it } from 'vitest';
import { crc32c } from '../../../src/core/crc32c';

describe('crc32c', () => {
  it('matches the CRC-32C check value and RFC 3720 vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('detects any single flipped bit', () => {
    const data = Buffer.from('the quick brown fox jumps over the lazy dog');
    const good = crc32c(data);
    for (let bit = 0; bit < data.length * 8; bit++) {
      const copy = Buffer.from(data);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      expect(crc32c(copy)).not.toBe(good);
    }
  });
});
