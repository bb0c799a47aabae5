/**
 * Page-level differences between two versions of a snapshot image, so a
 * snapshot of a large database writes only the pages that changed since the
 * previous one (SD cards wear out by the bytes written).
 *
 * An image is cut into PAGE_BYTES pages (SQLite's own page size, so a changed
 * database page is one or two image pages). A page is known by the first
 * HASH_BYTES of its SHA-256; only these hashes of the previous image are kept
 * in memory (16 bytes per 4 KiB), never the image itself. Hashing runs in
 * slices with a turn of the event loop between them, so a 100 MiB image never
 * holds the loop for long.
 *
 * A delta body: u32le page count, then per page u32le page number and the
 * page's bytes (the last page of the image may be short). Applying it to the
 * previous image, cut to the new length, gives the new image.
 */
import { createHash } from 'node:crypto';

export const PAGE_BYTES = 4096;
export const HASH_BYTES = 16;
/** Pages hashed between two turns of the event loop (1 MiB). */
const PAGES_PER_SLICE = 256;

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function pageCount(length: number): number {
  return Math.ceil(length / PAGE_BYTES);
}

function page(image: Uint8Array, n: number): Uint8Array {
  return image.subarray(n * PAGE_BYTES, Math.min(image.length, (n + 1) * PAGE_BYTES));
}

/** The hash of every page of `image`, HASH_BYTES each, in page order. */
export async function pageHashes(image: Uint8Array): Promise<Buffer> {
  const pages = pageCount(image.length);
  const out = Buffer.alloc(pages * HASH_BYTES);
  for (let n = 0; n < pages; n++) {
    createHash('sha256')
      .update(page(image, n))
      .digest()
      .copy(out, n * HASH_BYTES, 0, HASH_BYTES);
    if ((n + 1) % PAGES_PER_SLICE === 0 && n + 1 < pages) await turn();
  }
  return out;
}

/** The pages of `image` (with hashes `hashes`) that differ from an image whose hashes were `previous`. */
export function changedPages(previous: Buffer, hashes: Buffer): number[] {
  const changed: number[] = [];
  const pages = hashes.length / HASH_BYTES;
  for (let n = 0; n < pages; n++) {
    const at = n * HASH_BYTES;
    if (at + HASH_BYTES > previous.length || previous.compare(hashes, at, at + HASH_BYTES, at, at + HASH_BYTES) !== 0) changed.push(n);
  }
  return changed;
}

/** The delta body holding `pages` of `image`, in one buffer. */
export function encodeDelta(image: Uint8Array, pages: number[]): Buffer {
  let size = 4;
  for (const n of pages) size += 4 + page(image, n).length;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(pages.length, 0);
  let at = 4;
  for (const n of pages) {
    out.writeUInt32LE(n, at);
    const bytes = page(image, n);
    out.set(bytes, at + 4);
    at += 4 + bytes.length;
  }
  return out;
}

export interface DeltaPage {
  n: number;
  bytes: Uint8Array;
}

/** The pages of a delta body for an image of `length` bytes grown from one of `baseLength`, or why it does not fit. */
export function parseDelta(delta: Uint8Array, length: number, baseLength: number): DeltaPage[] | string {
  const view = Buffer.from(delta.buffer, delta.byteOffset, delta.byteLength);
  if (view.length < 4) return 'delta too short';
  const count = view.readUInt32LE(0);
  const pages: DeltaPage[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > view.length) return 'delta ends inside a page header';
    const n = view.readUInt32LE(at);
    at += 4;
    const size = Math.min(PAGE_BYTES, length - n * PAGE_BYTES);
    if (size <= 0) return `page ${n} lies beyond the image's ${length} bytes`;
    if (at + size > view.length) return `delta ends inside page ${n}`;
    pages.push({ n, bytes: view.subarray(at, at + size) });
    at += size;
  }
  if (at !== view.length) return 'bytes after the last page';
  // Bytes past the base's end that the delta does not hold would be stale, not data.
  if (length > baseLength) {
    const held = new Set(pages.map((p) => p.n));
    for (let n = Math.floor(baseLength / PAGE_BYTES); n < pageCount(length); n++) {
      if (!held.has(n)) return `page ${n} is new but missing from the delta`;
    }
  }
  return pages;
}

/** The page hashes of an image after `pages` were written into it and it was cut or grown to `length`. */
export function updatedHashes(hashes: Buffer, pages: DeltaPage[], length: number): Buffer {
  const out = Buffer.alloc(pageCount(length) * HASH_BYTES);
  hashes.copy(out, 0, 0, Math.min(hashes.length, out.length));
  for (const p of pages)
    createHash('sha256')
      .update(p.bytes)
      .digest()
      .copy(out, p.n * HASH_BYTES, 0, HASH_BYTES);
  return out;
}

/** Writes `pages` into `target` (an image of at least the new length). */
export function writePages(target: Uint8Array, pages: DeltaPage[]): void {
  for (const p of pages) target.set(p.bytes, p.n * PAGE_BYTES);
}
