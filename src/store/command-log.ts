/**
 * The append-only command log of one database: the durable half of the write
 * path (the state machine is the other). See DESIGN.md.
 *
 * On disk: segment files `log-<first index, 20 digits>.wal`, each a 16-byte
 * header (magic + first index) followed by frames, one per appended batch:
 *
 *     u32le payloadLength | u32le crc32c(payload) | payload
 *     payload = CBOR [[index, term, data], …]
 *
 * Indexes are contiguous across frames and segments. `appendBatch` writes a
 * whole batch as one frame with one write and one fdatasync (group commit is
 * the caller's batching). One frame per batch matters for recovery: a batch is
 * the unit that can be torn (it was never acknowledged, its fsync did not
 * return), and no later frame can exist behind it. So recovery truncates a bad
 * frame with nothing valid after it (a torn tail: cut short, zero-filled or
 * failing its checksum), while a bad frame followed by a valid one is damage to
 * acknowledged data and stops the database instead.
 */
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import { checkCbor } from '../core/cbor-guard';
import { crc32c } from '../core/crc32c';
import { CorruptDataError, DiskFullError, LogFailedError, errnoCode } from '../core/errors';
import type { Logger } from '../core/logger';
import type { AppendFile, DataFs } from './data-fs';

export interface LogRecord<T> {
  index: number;
  term: number;
  data: T;
}

const MAGIC = Buffer.from('GNDLOG\x00\x01', 'latin1');
const HEADER_SIZE = 16;
const FRAME_HEADER_SIZE = 8;
/** A frame larger than this is treated as a corrupt length field; batches are split well below it. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
const SEGMENT_RE = /^log-(\d{20})\.wal$/;

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

export function segmentName(firstIndex: number): string {
  return `log-${String(firstIndex).padStart(20, '0')}.wal`;
}

interface Segment {
  firstIndex: number;
  file: string;
  /** Index of the last record (firstIndex - 1 when empty). */
  lastIndex: number;
}

export interface OpenedLog<T> {
  log: CommandLog<T>;
  /** Every record with index >= `replayFrom`, in order. */
  records: LogRecord<T>[];
}

export interface CommandLogOptions {
  dir: string;
  fs: DataFs;
  logger: Logger;
  /** Records before this index are not returned (already in the snapshot). */
  replayFrom: number;
}

export class CommandLog<T> {
  private failed: Error | undefined;
  private bytesSinceRoll = 0;

  private constructor(
    private readonly dir: string,
    private readonly fs: DataFs,
    private readonly logger: Logger,
    private segments: Segment[],
    private active: AppendFile,
  ) {}

  static async open<T>(options: CommandLogOptions): Promise<OpenedLog<T>> {
    const { dir, fs, logger, replayFrom } = options;
    await fs.mkdirp(dir);
    const names = (await fs.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const segments: Segment[] = [];
    const records: LogRecord<T>[] = [];
    let expected: number | undefined;
    for (let s = 0; s < names.length; s++) {
      const file = path.join(dir, names[s]!);
      const isLast = s === names.length - 1;
      const firstIndex = Number(SEGMENT_RE.exec(names[s]!)![1]);
      const buf = Buffer.from(await fs.readFile(file));
      if (buf.length < HEADER_SIZE || !buf.subarray(0, 8).equals(MAGIC) || Number(buf.readBigUInt64LE(8)) !== firstIndex) {
        if (isLast && buf.length <= HEADER_SIZE) {
          // Crash while a new segment was being created: it holds no record.
          logger.warn('removing incomplete log segment', { file, bytes: buf.length });
          await fs.unlink(file);
          await fs.syncDir(dir);
          continue;
        }
        throw new CorruptDataError(`log segment ${file} has a bad header`);
      }
      if (expected !== undefined && firstIndex !== expected) {
        throw new CorruptDataError(`log segment ${file} starts at ${firstIndex}, expected ${expected}: a segment is missing`);
      }
      const scan = scanRecords<T>(buf, firstIndex);
      if (scan.badOffset !== undefined) {
        if (!isLast || scan.validAfterBad) {
          throw new CorruptDataError(
            `log segment ${file} is corrupt at byte ${scan.badOffset} (index ${scan.nextIndex}) with records after it: ` +
              `acknowledged data is damaged, refusing to start this database`,
          );
        }
        logger.warn('truncating torn log tail', {
          file,
          offset: scan.badOffset,
          droppedBytes: buf.length - scan.badOffset,
          lastIndex: scan.nextIndex - 1,
        });
        const f = await fs.openAppend(file);
        await f.truncate(scan.badOffset);
        await f.sync();
        await f.close();
      }
      for (const r of scan.records) if (r.index >= replayFrom) records.push(r);
      segments.push({ firstIndex, file, lastIndex: scan.nextIndex - 1 });
      expected = scan.nextIndex;
    }

    const lastIndex = segments.length > 0 ? segments[segments.length - 1]!.lastIndex : 0;
    if (replayFrom > lastIndex + 1 || segments.length === 0) {
      // Nothing on disk after the snapshot: start a fresh segment where the snapshot ends.
      const first = Math.max(replayFrom, lastIndex + 1);
      const seg = await createSegment(fs, dir, first);
      segments.push(seg);
    } else if (segments[0]!.firstIndex > replayFrom) {
      throw new CorruptDataError(`log in ${dir} starts at index ${segments[0]!.firstIndex} but replay needs ${replayFrom}: entries are missing`);
    }
    const tail = segments[segments.length - 1]!;
    const active = await fs.openAppend(tail.file);
    return { log: new CommandLog<T>(dir, fs, logger, segments, active), records };
  }

  /** Index of the last durable record (0 when the log has never held one). */
  get lastIndex(): number {
    return this.segments[this.segments.length - 1]!.lastIndex;
  }

  /** Bytes appended since the last roll (the log part a snapshot would truncate). */
  get bytesSinceSnapshot(): number {
    return this.bytesSinceRoll;
  }

  /** Set once a write could not be made durable; every append then fails with it. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /**
   * Appends records (indexes must continue the log) and returns once they are
   * on stable storage. On ENOSPC the file is cut back to where it was and a
   * DiskFullError is thrown: the log stays usable. Any other failure (or a
   * failed fsync, after which the page cache cannot be trusted) marks the log
   * failed: every later append throws LogFailedError until restart.
   */
  async appendBatch(records: readonly LogRecord<T>[]): Promise<void> {
    if (this.failed) throw new LogFailedError('the command log failed earlier; restart the node', this.failed);
    if (records.length === 0) return;
    const tail = this.segments[this.segments.length - 1]!;
    if (records[0]!.index !== tail.lastIndex + 1) {
      throw new Error(`append at index ${records[0]!.index}, expected ${tail.lastIndex + 1}`);
    }
    const frame = encodeFrame(records);
    const sizeBefore = this.active.size;
    try {
      await this.active.append([frame]);
    } catch (err) {
      await this.undoPartialWrite(sizeBefore, err);
    }
    try {
      await this.active.sync();
    } catch (err) {
      this.failed = err as Error;
      this.logger.error('fsync of the command log failed; refusing further writes', { err: err as Error });
      throw new LogFailedError(`fsync failed: ${(err as Error).message}`, err);
    }
    tail.lastIndex = records[records.length - 1]!.index;
    this.bytesSinceRoll += this.active.size - sizeBefore;
  }

  private async undoPartialWrite(sizeBefore: number, err: unknown): Promise<never> {
    try {
      await this.active.truncate(sizeBefore);
    } catch (truncErr) {
      this.failed = truncErr as Error;
      this.logger.error('cannot cut back a failed log write; refusing further writes', { err: truncErr as Error });
      throw new LogFailedError('a log write failed and could not be undone', truncErr);
    }
    if (errnoCode(err) === 'ENOSPC' || errnoCode(err) === 'EDQUOT') {
      throw new DiskFullError('no space left on the device holding the data dir; the write was not applied', err);
    }
    this.failed = err as Error;
    throw new LogFailedError(`log write failed: ${(err as Error).message}`, err);
  }

  /**
   * Starts a new segment at `lastIndex + 1`, so that a snapshot covering
   * everything up to `lastIndex` can later drop the older segments.
   */
  async roll(): Promise<void> {
    if (this.failed) throw new LogFailedError('the command log failed earlier; restart the node', this.failed);
    const tail = this.segments[this.segments.length - 1]!;
    if (tail.lastIndex < tail.firstIndex) return; // the active segment is still empty
    const first = this.lastIndex + 1;
    const seg = await createSegment(this.fs, this.dir, first);
    const next = await this.fs.openAppend(seg.file);
    await this.active.close();
    this.active = next;
    this.segments.push(seg);
    this.bytesSinceRoll = 0;
  }

  /** Deletes segments whose every record is at or below `index` (kept in a snapshot). Never the active one. */
  async compact(index: number): Promise<void> {
    let removed = 0;
    while (this.segments.length > 1 && this.segments[0]!.lastIndex <= index) {
      const seg = this.segments.shift()!;
      await this.fs.unlink(seg.file);
      removed++;
    }
    if (removed > 0) await this.fs.syncDir(this.dir);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  async close(): Promise<void> {
    await this.active.close();
  }
}

async function createSegment(fs: DataFs, dir: string, firstIndex: number): Promise<Segment> {
  const file = path.join(dir, segmentName(firstIndex));
  const header = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(header, 0);
  header.writeBigUInt64LE(BigInt(firstIndex), 8);
  await fs.writeFileAtomic(file, [header]);
  return { firstIndex, file, lastIndex: firstIndex - 1 };
}

export function encodeFrame<T>(records: readonly LogRecord<T>[]): Buffer {
  const payload = cbor.encode(records.map((r) => [r.index, r.term, r.data]));
  if (payload.length > MAX_FRAME_BYTES) {
    throw new Error(`log frame of ${payload.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32c(payload), 4);
  payload.copy(out, FRAME_HEADER_SIZE);
  return out;
}

interface ScanResult<T> {
  records: LogRecord<T>[];
  nextIndex: number;
  badOffset?: number;
  /** A valid record with a later index exists after the bad offset. */
  validAfterBad: boolean;
}

function tryDecodeAt<T>(buf: Buffer, offset: number, expectedIndex: number): { records: LogRecord<T>[]; end: number } | undefined {
  if (offset + FRAME_HEADER_SIZE > buf.length) return undefined;
  const len = buf.readUInt32LE(offset);
  if (len === 0 || len > MAX_FRAME_BYTES || offset + FRAME_HEADER_SIZE + len > buf.length) return undefined;
  const payload = buf.subarray(offset + FRAME_HEADER_SIZE, offset + FRAME_HEADER_SIZE + len);
  if (crc32c(payload) !== buf.readUInt32LE(offset + 4)) return undefined;
  // Recovery scans damaged bytes; never hand the decoder something that could make it hang.
  if (checkCbor(payload) !== undefined) return undefined;
  let decoded: unknown;
  try {
    decoded = cbor.decode(payload);
  } catch {
    return undefined;
  }
  if (!Array.isArray(decoded) || decoded.length === 0) return undefined;
  const records: LogRecord<T>[] = [];
  for (const item of decoded) {
    if (!Array.isArray(item) || item.length !== 3 || !Number.isSafeInteger(item[0]) || !Number.isSafeInteger(item[1])) return undefined;
    const index = item[0] as number;
    if (records.length === 0 ? index < expectedIndex : index !== records[records.length - 1]!.index + 1) return undefined;
    records.push({ index, term: item[1] as number, data: item[2] as T });
  }
  return { records, end: offset + FRAME_HEADER_SIZE + len };
}

function scanRecords<T>(buf: Buffer, firstIndex: number): ScanResult<T> {
  const records: LogRecord<T>[] = [];
  let offset = HEADER_SIZE;
  let nextIndex = firstIndex;
  while (offset < buf.length) {
    const hit = tryDecodeAt<T>(buf, offset, nextIndex);
    if (!hit || hit.records[0]!.index !== nextIndex) {
      return { records, nextIndex, badOffset: offset, validAfterBad: hasValidFrameAfter(buf, offset + 1, nextIndex) };
    }
    records.push(...hit.records);
    nextIndex += hit.records.length;
    offset = hit.end;
  }
  return { records, nextIndex, validAfterBad: false };
}

/** Looks for any checksummed frame with indexes >= `minIndex` at or after `from` (tells rot from a torn tail). */
function hasValidFrameAfter(buf: Buffer, from: number, minIndex: number): boolean {
  for (let o = from; o + FRAME_HEADER_SIZE < buf.length; o++) {
    if (tryDecodeAt<unknown>(buf, o, minIndex)) return true;
  }
  return false;
}
