/**
 * A linear, allocation-free check that bytes from a peer are exactly one
 * well-formed CBOR item of the kind our encoder writes, run before the
 * decoder sees them. A general CBOR decoder is a large attack surface: cbor-x
 * never returns on some malformed input (an indefinite-length array without
 * its break code), which would freeze the node. Accepted: definite lengths
 * only, depth <= MAX_DEPTH, lengths and counts that fit the input, tag 64
 * (Uint8Array) only, simple values false/true/null/undefined and floats.
 */
export const MAX_DEPTH = 64;
const ALLOWED_TAGS = new Set([64]);

/** Returns undefined when `data` is one well-formed item, else why not. */
export function checkCbor(data: Uint8Array): string | undefined {
  let offset = 0;
  // Items still to read at each open array/map/tag level (the top level expects one).
  const pending: number[] = [1];
  while (pending.length > 0) {
    if (pending[pending.length - 1] === 0) {
      pending.pop();
      continue;
    }
    pending[pending.length - 1]!--;
    if (offset >= data.length) return 'truncated';
    const initial = data[offset++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    let value: number;
    if (info < 24) value = info;
    else if (info >= 24 && info <= 27) {
      const size = 1 << (info - 24);
      if (offset + size > data.length) return 'truncated';
      value = 0;
      for (let i = 0; i < size; i++) value = value * 256 + data[offset + i]!;
      offset += size;
    } else return info === 31 ? 'indefinite length' : 'reserved additional information';
    switch (major) {
      case 0:
      case 1:
        break;
      case 2:
      case 3:
        if (value > data.length - offset) return 'string longer than the input';
        offset += value;
        break;
      case 4:
      case 5: {
        const items = major === 5 ? value * 2 : value;
        if (items > data.length - offset) return 'more items than bytes left';
        if (pending.length > MAX_DEPTH) return 'nested too deep';
        pending.push(items);
        break;
      }
      case 6:
        if (!ALLOWED_TAGS.has(value)) return `tag ${value} not accepted`;
        if (pending.length > MAX_DEPTH) return 'nested too deep';
        pending.push(1);
        break;
      case 7:
        // 20..23: false, true, null, undefined; 25..27: half, single, double floats.
        if (!((info >= 20 && info <= 23) || (info >= 25 && info <= 27))) return 'unsupported simple value';
        break;
    }
  }
  return offset === data.length ? undefined : 'trailing bytes';
}
