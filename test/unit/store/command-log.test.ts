import { readFileSync, readdirSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { CommandLog, segmentName, type LogRecord } from '../../../src/store/command-log';
import { nodeDataFs } from '../../../src/store/data-fs';
import { FaultyFs } from '../../helpers/faulty-fs';
import { tempDir } from '../../helpers/tmp';

type Data = { v: string };

const open = (dir: string, replayFrom = 1, fs = nodeDataFs) => CommandLog.open<Data>({ dir, fs, logger: silentLogger, replayFrom });
const recs = (from: number, n: number, tag = 'x'): LogRecord<Data>[] =>
  Array.from({ length: n }, (_, i) => ({ index: from + i, term: 1, data: { v: `${tag}${from + i}` } }));

describe('CommandLog', () => {
  it('round-trips batches across reopen and rolls', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 3));
    await log.roll();
    await log.appendBatch(recs(4, 2));
    await log.close();
    const again = await open(dir);
    expect(again.records.map((r) => r.data.v)).toEqual(['x1', 'x2', 'x3', 'x4', 'x5']);
    expect(again.log.lastIndex).toBe(5);
    const partial = await open(dir, 3);
    expect(partial.records.map((r) => r.index)).toEqual([3, 4, 5]);
    await again.log.close();
    await partial.log.close();
  });

  it('refuses an append that does not continue the log', async () => {
    const { log } = await open(tempDir());
    await expect(log.appendBatch(recs(2, 1))).rejects.toThrow(/expected 1/);
    await log.close();
  });

  it('truncates a torn tail at every possible cut and keeps every earlier batch', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2, 'a'));
    await log.appendBatch(recs(3, 2, 'b'));
    const file = path.join(dir, segmentName(1));
    const goodSize = statSync(file).size;
    await log.appendBatch(recs(5, 3, 'c')); // the batch a power cut tears
    await log.close();
    const full = readFileSync(file);
    for (let cut = goodSize; cut < full.length; cut++) {
      writeFileSync(file, full.subarray(0, cut));
      const { log: l, records } = await open(dir);
      expect(
        records.map((r) => r.index),
        `cut at ${cut}`,
      ).toEqual([1, 2, 3, 4]);
      expect(statSync(file).size).toBe(goodSize);
      await l.appendBatch(recs(5, 1, 'after')); // and the log goes on from there
      await l.close();
    }
  });

  it('truncates a zero-filled or garbage tail (delayed allocation after a crash)', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2));
    await log.close();
    const file = path.join(dir, segmentName(1));
    appendFileSync(file, Buffer.alloc(4096));
    let r = await open(dir);
    expect(r.records).toHaveLength(2);
    await r.log.close();
    appendFileSync(file, Buffer.from('garbage that is not a frame at all'));
    r = await open(dir);
    expect(r.records).toHaveLength(2);
    await r.log.close();
  });

  it('refuses to start when an acknowledged frame is damaged (valid frames follow it)', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2));
    await log.appendBatch(recs(3, 2));
    await log.close();
    const file = path.join(dir, segmentName(1));
    const buf = readFileSync(file);
    buf[16 + 8 + 3]! ^= 0xff; // inside the first frame's payload
    writeFileSync(file, buf);
    await expect(open(dir)).rejects.toMatchObject({ code: 'corrupt_data' });
  });

  it('refuses to start when a segment in the middle is missing', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2));
    await log.roll();
    await log.appendBatch(recs(3, 2));
    await log.roll();
    await log.appendBatch(recs(5, 2));
    await log.close();
    const segs = readdirSync(dir).sort();
    expect(segs).toHaveLength(3);
    nodeDataFs.unlink(path.join(dir, segs[1]!));
    await new Promise((r) => setTimeout(r, 10));
    await expect(open(dir)).rejects.toMatchObject({ code: 'corrupt_data' });
  });

  it('on ENOSPC cuts a partial write back, reports disk_full, and stays usable', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const { log } = await open(dir, 1, fs);
    await log.appendBatch(recs(1, 2));
    fs.faults.push({ op: 'append', code: 'ENOSPC', partialBytes: 5 });
    await expect(log.appendBatch(recs(3, 2))).rejects.toMatchObject({ code: 'disk_full' });
    expect(log.lastIndex).toBe(2);
    await log.appendBatch(recs(3, 1, 'later'));
    await log.close();
    const again = await open(dir);
    expect(again.records.map((r) => r.data.v)).toEqual(['x1', 'x2', 'later3']);
    await again.log.close();
  });

  it('after a failed fsync refuses every later append (the page cache cannot be trusted)', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const { log } = await open(dir, 1, fs);
    fs.faults.push({ op: 'sync', code: 'EIO' });
    await expect(log.appendBatch(recs(1, 1))).rejects.toMatchObject({ code: 'log_failed' });
    await expect(log.appendBatch(recs(1, 1))).rejects.toMatchObject({ code: 'log_failed' });
    expect(log.failure).toBeDefined();
    await log.close();
  });

  it('compacts only segments fully covered, never the active one', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 3));
    await log.roll();
    await log.appendBatch(recs(4, 3));
    await log.roll();
    await log.compact(5); // segment 1 (1..3) goes, segment 4 (4..6) holds 6 > 5 and stays
    expect(readdirSync(dir).sort()).toEqual([segmentName(4), segmentName(7)]);
    await log.compact(100);
    expect(readdirSync(dir)).toEqual([segmentName(7)]);
    await log.close();
    const again = await open(dir, 7);
    expect(again.log.lastIndex).toBe(6);
    await again.log.appendBatch(recs(7, 1));
    await again.log.close();
  });

  it('removes a segment left empty by a crash during a roll', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2));
    await log.close();
    writeFileSync(path.join(dir, segmentName(3)), Buffer.alloc(7));
    const again = await open(dir);
    expect(again.records).toHaveLength(2);
    expect(readdirSync(dir)).toEqual([segmentName(1)]);
    await again.log.close();
  });

  it('a truncated segment header in the middle of the log is corruption', async () => {
    const dir = tempDir();
    const { log } = await open(dir);
    await log.appendBatch(recs(1, 2));
    await log.roll();
    await log.appendBatch(recs(3, 2));
    await log.close();
    truncateSync(path.join(dir, segmentName(1)), 10);
    await expect(open(dir)).rejects.toMatchObject({ code: 'corrupt_data' });
  });
});
