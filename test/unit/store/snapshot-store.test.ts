/**
 * Snapshot chains on real files: deltas hold only changed pages, a chain
 * rebuilds byte for byte, a bad newest snapshot falls back to the one before,
 * and only the newest snapshot and its fallback stay on disk.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { nodeDataFs } from '../../../src/store/data-fs';
import { PAGE_BYTES } from '../../../src/store/page-delta';
import { MAX_DELTAS, SnapshotStore } from '../../../src/store/snapshot-store';
import { mulberry32 } from '../../helpers/sim/prng';
import { tempDir } from '../../helpers/tmp';

const open = (dir: string) => new SnapshotStore(dir, nodeDataFs, silentLogger);
const files = (dir: string) => readdirSync(dir).sort();
const bytesOf = (dir: string) => files(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);

/** An image of `pages` pages with random bytes. */
function image(random: () => number, bytes: number): Uint8Array {
  return Uint8Array.from({ length: bytes }, () => Math.floor(random() * 256));
}

/** A copy of `base` with `count` random pages rewritten and resized to `length`. */
function mutate(random: () => number, base: Uint8Array, count: number, length = base.length): Uint8Array {
  const out = new Uint8Array(length);
  out.set(base.subarray(0, Math.min(base.length, length)));
  for (let i = base.length; i < length; i++) out[i] = Math.floor(random() * 256);
  for (let k = 0; k < count; k++) {
    const at = Math.floor(random() * length);
    out[at] = (out[at]! + 1) % 256;
  }
  return out;
}

describe('SnapshotStore', () => {
  it('writes changed pages only, and a reopened store rebuilds every image exactly', async () => {
    const dir = tempDir();
    const random = mulberry32(7);
    let store = open(dir);
    let current = image(random, 256 * PAGE_BYTES + 100); // ~1 MiB, a short last page
    await store.save({ index: 10, term: 1, image: current });
    expect(files(dir)).toEqual([`snap-${'10'.padStart(20, '0')}.snap`]);
    const fullBytes = bytesOf(dir);
    for (let i = 1; i <= 10; i++) {
      // a few pages changed; now and then the image grows or shrinks
      const length = i === 4 ? current.length + 3 * PAGE_BYTES + 7 : i === 7 ? current.length - 2 * PAGE_BYTES - 50 : current.length;
      current = mutate(random, current, 3, length);
      await store.save({ index: 10 + i, term: 2, image: current });
      const deltas = files(dir).filter((f) => f.endsWith('.delta'));
      expect(deltas).toHaveLength(i);
      const newest = statSync(path.join(dir, deltas.at(-1)!)).size;
      expect(newest, 'a delta holds the changed pages, not the image').toBeLessThan(12 * (PAGE_BYTES + 4) + 100);
      // every state rebuilds from the files alone
      store = open(dir);
      const loaded = await store.loadNewestValid();
      expect(loaded!.index).toBe(10 + i);
      expect(loaded!.term).toBe(2);
      expect(Buffer.from(loaded!.image).equals(Buffer.from(current))).toBe(true);
    }
    expect(bytesOf(dir)).toBeLessThan(fullBytes * 1.5);
  });

  it('starts a new full image when deltas add up to half an image, and keeps only the newest and its fallback', async () => {
    const dir = tempDir();
    const random = mulberry32(11);
    const store = open(dir);
    let current = image(random, 64 * PAGE_BYTES);
    await store.save({ index: 1, term: 1, image: current });
    const fulls: number[] = [];
    for (let i = 2; i <= 40; i++) {
      current = mutate(random, current, 6); // ~6 of 64 pages each time
      await store.save({ index: i, term: 1, image: current });
      const names = files(dir);
      const full = names.filter((f) => f.endsWith('.snap')).map((f) => Number(f.slice(5, 25)));
      if (names.at(-1)!.endsWith('.snap')) {
        fulls.push(i);
        // a fresh full image keeps the whole chain before it (its fallback is that chain's end)
        expect(full).toHaveLength(2);
      } else {
        // a delta on the newest chain: the older chain is gone
        expect(full).toHaveLength(1);
      }
      const again = await open(dir).loadNewestValid();
      expect(Buffer.from(again!.image).equals(Buffer.from(current))).toBe(true);
    }
    expect(fulls.length, 'the chain was restarted with a full image').toBeGreaterThanOrEqual(3);
  });

  it('falls back to the snapshot before a bad newest delta, and before a bad newest full image', async () => {
    const dir = tempDir();
    const random = mulberry32(3);
    const store = open(dir);
    const a = image(random, 32 * PAGE_BYTES);
    const b = mutate(random, a, 2);
    const c = mutate(random, b, 2);
    await store.save({ index: 1, term: 1, image: a });
    await store.save({ index: 2, term: 1, image: b });
    await store.save({ index: 3, term: 1, image: c });
    const newest = path.join(dir, files(dir).at(-1)!);
    expect(newest).toMatch(/\.delta$/);
    const bytes = readFileSync(newest);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(newest, bytes);
    const loaded = await open(dir).loadNewestValid();
    expect(loaded!.index).toBe(2);
    expect(Buffer.from(loaded!.image).equals(Buffer.from(b))).toBe(true);

    // A delta that is intact but written against another image fails its digest, not silently.
    const other = tempDir();
    const s2 = open(other);
    await s2.save({ index: 1, term: 1, image: a });
    await s2.save({ index: 2, term: 1, image: b });
    const swapped = tempDir();
    const s3 = open(swapped);
    await s3.save({ index: 1, term: 1, image: mutate(random, a, 1) });
    const delta = files(other).find((f) => f.endsWith('.delta'))!;
    writeFileSync(path.join(swapped, delta), readFileSync(path.join(other, delta)));
    expect((await open(swapped).loadNewestValid())!.index).toBe(1);

    // A bad newest full image falls back to the end of the chain before it.
    const d = image(random, 32 * PAGE_BYTES); // every page differs: a full image
    const s4 = open(dir);
    await s4.loadNewestValid();
    await s4.save({ index: 4, term: 2, image: d });
    expect(files(dir).at(-1)).toMatch(/04\.snap$/);
    const full = path.join(dir, files(dir).at(-1)!);
    const fb = readFileSync(full);
    fb[100] ^= 0xff;
    writeFileSync(full, fb);
    const back = await open(dir).loadNewestValid();
    expect(back!.index).toBe(2);
    expect(Buffer.from(back!.image).equals(Buffer.from(b))).toBe(true);
  });

  it('never chains more than MAX_DELTAS deltas', async () => {
    const dir = tempDir();
    const random = mulberry32(5);
    const store = open(dir);
    let current = image(random, 1024 * PAGE_BYTES);
    for (let i = 1; i <= MAX_DELTAS + 3; i++) {
      current = mutate(random, current, 1);
      await store.save({ index: i, term: 1, image: current });
    }
    expect(files(dir).filter((f) => f.endsWith('.snap')).length).toBe(1);
    expect(files(dir).filter((f) => f.endsWith('.delta')).length).toBeLessThanOrEqual(MAX_DELTAS);
    expect(Buffer.from((await open(dir).loadNewestValid())!.image).equals(Buffer.from(current))).toBe(true);
  });
});
