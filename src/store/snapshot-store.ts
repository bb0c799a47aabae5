/**
 * Snapshots of one replica, as chains: a full image, then deltas that each
 * hold only the pages that changed since the snapshot before (page-delta.ts),
 * so a snapshot of a large database that changed a little writes a little.
 *
 *   snap-<index, 20 digits>.snap   40-byte header (magic, index, term, body
 *                                  length, crc32c of the body) + the image
 *   snap-<index, 20 digits>.delta  72-byte header (magic, index, term, index
 *                                  of the snapshot it applies to, image
 *                                  length, body length, crc32c of the body,
 *                                  the new image's page-hash digest) + body
 *
 * Every file is written atomically (temp file, fsync, rename, fsync of the
 * directory). A delta is written while the deltas since the chain's full
 * image stay under half an image (and MAX_DELTAS); otherwise a new full image
 * starts a new chain. Kept on disk: the newest snapshot and the one before it
 * (its fallback), that is the newest chain and, while that chain is only its
 * full image, the chain before. Loading takes the newest full image that
 * passes its checksum and applies its deltas in order up to the first that
 * does not pass (checksum, page bounds, the rebuilt image's digest): a bad
 * newest snapshot falls back to the one before it, whose log is kept
 * (raft-storage.ts keeps the log from the older retained snapshot on).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { crc32c } from '../core/crc32c';
import type { Logger } from '../core/logger';
import type { DataFs } from './data-fs';
import { PAGE_BYTES, changedPages, encodeDelta, pageHashes, parseDelta, updatedHashes, writePages, type DeltaPage } from './page-delta';

const FULL_MAGIC = Buffer.from('GNDSNAP\x01', 'latin1');
const DELTA_MAGIC = Buffer.from('GNDDLTA\x01', 'latin1');
const FULL_HEADER = 40;
const DELTA_HEADER = 72;
const FILE_RE = /^snap-(\d{20})\.(snap|delta)$/;
/** Deltas after one full image at most (each is applied on every load). */
export const MAX_DELTAS = 64;
/** A new full image once the chain's deltas would exceed this share of the image. */
const DELTA_SHARE = 0.5;
/** Bytes checksummed between two turns of the event loop. */
const CRC_SLICE = 1024 * 1024;

export interface Snapshot {
  index: number;
  term: number;
  image: Uint8Array;
}

interface StoredFile {
  index: number;
  kind: 'snap' | 'delta';
  name: string;
}

/** The newest snapshot as this store last wrote or loaded it: what the next delta is taken against. */
interface ChainHead {
  index: number;
  /** Page hashes of the newest image. */
  hashes: Buffer;
  /** Index of the chain's full image. */
  fullIndex: number;
  deltas: number;
  deltaBytes: number;
}

export function snapshotName(index: number, kind: 'snap' | 'delta' = 'snap'): string {
  return `snap-${String(index).padStart(20, '0')}.${kind}`;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function crcSliced(parts: readonly Uint8Array[]): Promise<number> {
  let crc = 0;
  for (const part of parts) {
    for (let at = 0; at < part.length; at += CRC_SLICE) {
      crc = crc32c(part.subarray(at, at + CRC_SLICE), crc);
      await turn();
    }
  }
  return crc;
}

function digestOf(hashes: Buffer): Buffer {
  return createHash('sha256').update(hashes).digest().subarray(0, 16);
}

export class SnapshotStore {
  private head: ChainHead | undefined;

  constructor(
    private readonly dir: string,
    private readonly fs: DataFs,
    private readonly logger: Logger,
  ) {}

  /** Snapshot files, oldest first. */
  private async files(): Promise<StoredFile[]> {
    await this.fs.mkdirp(this.dir);
    return (await this.fs.readdir(this.dir))
      .map((name) => ({ name, m: FILE_RE.exec(name) }))
      .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
      .map(({ name, m }) => ({ index: Number(m[1]), kind: m[2] as 'snap' | 'delta', name }))
      .sort((a, b) => a.index - b.index || (a.kind === 'snap' ? -1 : 1));
  }

  /** The newest snapshot that can be rebuilt from files that pass their checks, or undefined when none can. */
  async loadNewestValid(): Promise<Snapshot | undefined> {
    const files = await this.files();
    const fulls = files.filter((f) => f.kind === 'snap').reverse();
    for (const full of fulls) {
      const file = path.join(this.dir, full.name);
      const snap = decodeFull(Buffer.from(await this.fs.readFile(file)), full.index);
      if (typeof snap === 'string') {
        this.logger.warn('snapshot is unusable, falling back to an older one', { file, reason: snap });
        continue;
      }
      const deltas = files.filter((f) => f.kind === 'delta' && f.index > full.index);
      return this.rebuild(snap, deltas);
    }
    this.head = undefined;
    return undefined;
  }

  /** A full image with as many of its deltas applied, in order, as pass their checks. */
  private async rebuild(full: Snapshot, files: StoredFile[]): Promise<Snapshot> {
    const deltas: { file: string; index: number; delta: DecodedDelta }[] = [];
    for (const f of files) {
      const file = path.join(this.dir, f.name);
      const delta = decodeDelta(Buffer.from(await this.fs.readFile(file)), f.index);
      const base = deltas.at(-1)?.index ?? full.index;
      const problem = typeof delta === 'string' ? delta : delta.base !== base ? `applies to snapshot ${delta.base}, not to ${base}` : undefined;
      if (problem !== undefined || typeof delta === 'string') {
        this.logger.warn('snapshot delta is unusable, falling back to the snapshot before it', { file, reason: problem });
        break;
      }
      deltas.push({ file, index: f.index, delta });
    }
    // One buffer for the whole chain: the full image's own, unless a delta grows the image past it.
    const longest = Math.max(full.image.length, ...deltas.map((d) => d.delta.length));
    let buffer = full.image;
    if (longest > full.image.length) {
      buffer = new Uint8Array(longest);
      buffer.set(full.image);
    }
    let current: Snapshot = full;
    let hashes = await pageHashes(full.image);
    let deltaBytes = 0;
    let applied = 0;
    for (const { file, index, delta } of deltas) {
      const pages = parseDelta(delta.body, delta.length, current.image.length);
      const next = typeof pages === 'string' ? undefined : updatedHashes(hashes, pages, delta.length);
      const problem =
        typeof pages === 'string' ? pages : !digestOf(next!).equals(delta.digest) ? 'the rebuilt image would differ from the one saved' : undefined;
      if (problem !== undefined) {
        this.logger.warn('snapshot delta is unusable, falling back to the snapshot before it', { file, reason: problem });
        break;
      }
      writePages(buffer, pages as DeltaPage[]);
      current = { index, term: delta.term, image: buffer.subarray(0, delta.length) };
      hashes = next!;
      deltaBytes += delta.body.length;
      applied++;
    }
    this.head = { index: current.index, hashes, fullIndex: full.index, deltas: applied, deltaBytes };
    return current;
  }

  /**
   * Writes a snapshot durably (a delta against the newest one where that is
   * small, else a full image), then deletes what neither it nor its fallback
   * needs.
   */
  async save(snapshot: Snapshot): Promise<void> {
    const hashes = await pageHashes(snapshot.image);
    const head = this.head;
    const changed = head && head.index < snapshot.index ? changedPages(head.hashes, hashes) : undefined;
    // An upper bound (the image's last page may be short); the delta written is measured.
    const deltaBytes = changed === undefined ? Infinity : changed.length * (PAGE_BYTES + 4) + 4;
    const asDelta = head !== undefined && head.deltas < MAX_DELTAS && head.deltaBytes + deltaBytes <= snapshot.image.length * DELTA_SHARE;
    if (asDelta) {
      const body = encodeDelta(snapshot.image, changed!);
      const header = Buffer.alloc(DELTA_HEADER);
      DELTA_MAGIC.copy(header, 0);
      header.writeBigUInt64LE(BigInt(snapshot.index), 8);
      header.writeBigUInt64LE(BigInt(snapshot.term), 16);
      header.writeBigUInt64LE(BigInt(head.index), 24);
      header.writeBigUInt64LE(BigInt(snapshot.image.length), 32);
      header.writeBigUInt64LE(BigInt(body.length), 40);
      header.writeUInt32LE(await crcSliced([body]), 48);
      digestOf(hashes).copy(header, 56);
      await this.fs.writeFileAtomic(path.join(this.dir, snapshotName(snapshot.index, 'delta')), [header, body]);
      this.head = { index: snapshot.index, hashes, fullIndex: head.fullIndex, deltas: head.deltas + 1, deltaBytes: head.deltaBytes + body.length };
    } else {
      const header = Buffer.alloc(FULL_HEADER);
      FULL_MAGIC.copy(header, 0);
      header.writeBigUInt64LE(BigInt(snapshot.index), 8);
      header.writeBigUInt64LE(BigInt(snapshot.term), 16);
      header.writeBigUInt64LE(BigInt(snapshot.image.length), 24);
      header.writeUInt32LE(await crcSliced([snapshot.image]), 32);
      await this.fs.writeFileAtomic(path.join(this.dir, snapshotName(snapshot.index)), [header, snapshot.image]);
      this.head = { index: snapshot.index, hashes, fullIndex: snapshot.index, deltas: 0, deltaBytes: 0 };
    }
    await this.prune(this.head);
  }

  /** Deletes every file older than the snapshot before the newest (and the chain that snapshot needs). */
  private async prune(head: ChainHead): Promise<void> {
    const files = await this.files();
    // The fallback is the snapshot before the newest: in this chain if it has a delta, else the end of the chain before.
    let keepFrom = head.fullIndex;
    if (head.deltas === 0) {
      const olderFull = files.filter((f) => f.kind === 'snap' && f.index < head.fullIndex).at(-1);
      keepFrom = olderFull?.index ?? head.fullIndex;
    }
    const drop = files.filter((f) => f.index < keepFrom || f.index > head.index);
    for (const f of drop) await this.fs.unlink(path.join(this.dir, f.name));
    if (drop.length > 0) await this.fs.syncDir(this.dir);
  }

  /** Removes temp files of a snapshot write interrupted by a crash. */
  async removeLeftovers(): Promise<void> {
    await this.fs.mkdirp(this.dir);
    for (const name of await this.fs.readdir(this.dir)) {
      if (name.endsWith('.tmp')) await this.fs.unlink(path.join(this.dir, name));
    }
  }
}

function decodeFull(buf: Buffer, expectedIndex: number): Snapshot | string {
  if (buf.length < FULL_HEADER || !buf.subarray(0, 8).equals(FULL_MAGIC)) return 'bad header';
  const index = Number(buf.readBigUInt64LE(8));
  const term = Number(buf.readBigUInt64LE(16));
  const length = Number(buf.readBigUInt64LE(24));
  if (index !== expectedIndex) return `header index ${index} does not match the file name`;
  if (buf.length !== FULL_HEADER + length) return `expected ${length} bytes of data, found ${buf.length - FULL_HEADER}`;
  const image = buf.subarray(FULL_HEADER);
  if (crc32c(image) !== buf.readUInt32LE(32)) return 'checksum mismatch';
  return { index, term, image };
}

interface DecodedDelta {
  term: number;
  base: number;
  length: number;
  body: Buffer;
  digest: Buffer;
}

function decodeDelta(buf: Buffer, expectedIndex: number): DecodedDelta | string {
  if (buf.length < DELTA_HEADER || !buf.subarray(0, 8).equals(DELTA_MAGIC)) return 'bad header';
  const index = Number(buf.readBigUInt64LE(8));
  if (index !== expectedIndex) return `header index ${index} does not match the file name`;
  const bodyLength = Number(buf.readBigUInt64LE(40));
  if (buf.length !== DELTA_HEADER + bodyLength) return `expected ${bodyLength} bytes of delta, found ${buf.length - DELTA_HEADER}`;
  const body = buf.subarray(DELTA_HEADER);
  if (crc32c(body) !== buf.readUInt32LE(48)) return 'checksum mismatch';
  return {
    term: Number(buf.readBigUInt64LE(16)),
    base: Number(buf.readBigUInt64LE(24)),
    length: Number(buf.readBigUInt64LE(32)),
    body,
    digest: buf.subarray(56, 72),
  };
}
