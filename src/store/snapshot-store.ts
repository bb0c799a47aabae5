/**
 * Snapshots of one database: `snap-<index, 20 digits>.snap`, each a 40-byte
 * header (magic, index, term, body length, crc32c of the body) followed by
 * the SQLite file image. Written atomically (temp file, fsync, rename, fsync of
 * the directory). The newest RETAINED snapshots are kept, so a snapshot that
 * fails its checksum falls back to the one before it (the log keeps every
 * entry after the oldest retained snapshot).
 */
import * as path from 'node:path';
import { crc32c } from '../core/crc32c';
import type { Logger } from '../core/logger';
import type { DataFs } from './data-fs';

const MAGIC = Buffer.from('GNDSNAP\x01', 'latin1');
const HEADER_SIZE = 40;
const SNAP_RE = /^snap-(\d{20})\.snap$/;
/** Snapshots kept on disk (the newest and its fallback). */
export const RETAINED = 2;

export interface Snapshot {
  index: number;
  term: number;
  image: Uint8Array;
}

export function snapshotName(index: number): string {
  return `snap-${String(index).padStart(20, '0')}.snap`;
}

export class SnapshotStore {
  constructor(
    private readonly dir: string,
    private readonly fs: DataFs,
    private readonly logger: Logger,
  ) {}

  private async indexes(): Promise<number[]> {
    await this.fs.mkdirp(this.dir);
    return (await this.fs.readdir(this.dir))
      .map((n) => SNAP_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
  }

  /** The newest snapshot that passes its checksum, or undefined when none does (or none exists). */
  async loadNewestValid(): Promise<Snapshot | undefined> {
    for (const index of await this.indexes()) {
      const file = path.join(this.dir, snapshotName(index));
      const snap = decode(Buffer.from(await this.fs.readFile(file)), index);
      if (typeof snap === 'string') {
        this.logger.warn('snapshot is unusable, falling back to an older one', { file, reason: snap });
        continue;
      }
      return snap;
    }
    return undefined;
  }

  /**
   * Writes a snapshot durably, then deletes all but the newest RETAINED.
   * Returns the index up to which the log may be dropped: that of the oldest
   * retained snapshot once RETAINED exist, else 0 (the fallback for a lone
   * snapshot is the empty database plus the whole log).
   */
  async save(snapshot: Snapshot): Promise<number> {
    const header = Buffer.alloc(HEADER_SIZE);
    MAGIC.copy(header, 0);
    header.writeBigUInt64LE(BigInt(snapshot.index), 8);
    header.writeBigUInt64LE(BigInt(snapshot.term), 16);
    header.writeBigUInt64LE(BigInt(snapshot.image.length), 24);
    header.writeUInt32LE(crc32c(snapshot.image), 32);
    await this.fs.writeFileAtomic(path.join(this.dir, snapshotName(snapshot.index)), [header, snapshot.image]);
    const all = await this.indexes();
    for (const old of all.slice(RETAINED)) await this.fs.unlink(path.join(this.dir, snapshotName(old)));
    if (all.length > RETAINED) await this.fs.syncDir(this.dir);
    return all.length >= RETAINED ? Math.min(...all.slice(0, RETAINED)) : 0;
  }

  /** Removes temp files of a snapshot write interrupted by a crash. */
  async removeLeftovers(): Promise<void> {
    await this.fs.mkdirp(this.dir);
    for (const name of await this.fs.readdir(this.dir)) {
      if (name.endsWith('.tmp')) await this.fs.unlink(path.join(this.dir, name));
    }
  }

  async list(): Promise<number[]> {
    return this.indexes();
  }
}

function decode(buf: Buffer, expectedIndex: number): Snapshot | string {
  if (buf.length < HEADER_SIZE || !buf.subarray(0, 8).equals(MAGIC)) return 'bad header';
  const index = Number(buf.readBigUInt64LE(8));
  const term = Number(buf.readBigUInt64LE(16));
  const length = Number(buf.readBigUInt64LE(24));
  if (index !== expectedIndex) return `header index ${index} does not match the file name`;
  if (buf.length !== HEADER_SIZE + length) return `expected ${length} bytes of data, found ${buf.length - HEADER_SIZE}`;
  const image = buf.subarray(HEADER_SIZE);
  if (crc32c(image) !== buf.readUInt32LE(32)) return 'checksum mismatch';
  return { index, term, image };
}
