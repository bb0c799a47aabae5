/**
 * CRC-32C (Castagnoli), the checksum of every log record and snapshot.
 * Node 18 has no built-in CRC, so this is a table-driven implementation
 * (slicing-by-1; ~400 MB/s on x64, ample for an fsync-bound log).
 */
const POLY = 0x82f63b78;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
