import { describe, expect, it } from 'vitest';
import { checkCbor } from '../../../src/core/cbor-guard';
import { decodeFrame, encodeFrame, MAX_FRAME_BYTES } from '../../../src/transport/frames';
import { mulberry32 } from '../../helpers/sim/prng';

describe('frames', () => {
  it('round-trips what the encoder writes', () => {
    const messages = [
      { topic: 'swim', body: { type: 'ping', seq: 1, updates: [{ id: 'a', inc: 2, ok: true, none: null, f: 1.5, big: 2 ** 40, neg: -3 }] } },
      { topic: 'blob', body: Buffer.from([1, 2, 3]) },
      { topic: 'u8', body: new Uint8Array([4, 5]) },
      { topic: 'text', body: 'x'.repeat(1000) },
    ];
    const frame = encodeFrame(messages);
    expect(checkCbor(frame)).toBeUndefined();
    const r = decodeFrame(frame);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.messages.map((m) => m.topic)).toEqual(['swim', 'blob', 'u8', 'text']);
      expect(Buffer.from(r.messages[1]!.body as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    }
  });

  it('rejects, without hanging, the frame that froze the decoder (an unterminated indefinite array)', () => {
    const frame = Buffer.concat([Buffer.from('82018182647377696d9f0003', 'hex'), Buffer.alloc(22, 0x61)]);
    expect(decodeFrame(frame)).toEqual({ ok: false, error: 'malformed CBOR: indefinite length' });
  });

  it('rejects truncation, trailing bytes, huge counts, deep nesting, unknown tags and reserved encodings', () => {
    const cases: [string, string][] = [
      ['8201', 'more items than bytes left'],
      ['5a0000', 'truncated'],
      ['0101', 'trailing bytes'],
      ['9b00000000ffffffff', 'more items than bytes left'],
      ['7bffffffffffffffff', 'string longer than the input'],
      ['81'.repeat(70) + '00', 'nested too deep'],
      ['c100', 'tag 1 not accepted'],
      ['1c', 'reserved additional information'],
      ['f8ff', 'unsupported simple value'],
      ['ff', 'indefinite length'],
    ];
    for (const [hex, why] of cases) expect(checkCbor(Buffer.from(hex, 'hex')), hex).toBe(why);
  });

  it('every mutation of a valid frame is answered at once, never by a hang or a throw', () => {
    const random = mulberry32(20261122);
    const valid = encodeFrame([{ topic: 'swim', body: { type: 'ping', seq: 1, from: 'x', updates: [[1, 2], { a: 'b' }] } }]);
    for (let round = 0; round < 20_000; round++) {
      const frame = Buffer.from(valid);
      for (let k = 0; k < 1 + random() * 4; k++) frame[Math.floor(random() * frame.length)] = Math.floor(random() * 256);
      const cut = random() < 0.2 ? frame.subarray(0, Math.floor(random() * frame.length)) : frame;
      const r = decodeFrame(cut);
      expect(typeof r.ok).toBe('boolean');
    }
    expect(decodeFrame(Buffer.alloc(MAX_FRAME_BYTES + 1)).ok).toBe(false);
  });
});
