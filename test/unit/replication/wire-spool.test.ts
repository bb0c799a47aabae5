/**
 * A large incoming message goes to the receiver's spool directory as it
 * arrives, held back by what the receiver reports written, so a disk slower
 * than the link never fills the receiver's memory; it resumes from the spool
 * after a dropped link, a spool that cannot be written drops the message
 * (and loses nothing else), and a message sent with its body streamed from
 * the caller's buffer decodes like any other.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import { systemClock, type Clock } from '../../../src/core/clock';
import { silentLogger } from '../../../src/core/logger';
import { nodeDataFs, type DataFs } from '../../../src/store/data-fs';
import { SpoolDir } from '../../../src/replication/spool';
import { ACK_GRACE_MS, CHUNK_BYTES, PACE_BYTES, SPOOL_BYTES, WINDOW_BYTES, Wire, type MeshPort } from '../../../src/replication/wire';
import { tempDir } from '../../helpers/tmp';
import { SimClock } from '../../helpers/sim/sim-clock';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(2);
};

/** Both directions between a and b, each delivering after 1 ms of `clock`'s time; `cut` loses what is in flight. */
function twoWay(clock: Clock = systemClock) {
  let up = true;
  let generation = 0;
  const handlers = new Map<string, (from: string, body: unknown) => void>();
  const inFlight = { a: 0, b: 0 };
  /** Chunk bytes delivered to each side. */
  const delivered = { a: 0, b: 0 };
  const bytesOf = (body: unknown) => ((body as { b?: unknown })?.b instanceof Uint8Array ? (body as { b: Uint8Array }).b.length : 0);
  const port = (self: 'a' | 'b', peer: 'a' | 'b'): MeshPort => ({
    selfId: self,
    send: (_to, body) => {
      if (!up) return false;
      const bytes = bytesOf(body);
      inFlight[self] += bytes;
      const epoch = generation;
      clock.setTimeout(() => {
        inFlight[self] -= bytes;
        if (!up || epoch !== generation) return;
        delivered[peer] += bytes;
        handlers.get(peer)?.(self, body);
      }, 1);
      return true;
    },
    subscribe: (h) => handlers.set(self, h),
    backlog: () => (up ? inFlight[self] : undefined),
  });
  return {
    a: port('a', 'b'),
    b: port('b', 'a'),
    delivered,
    cut: () => {
      up = false;
      generation++;
    },
    restore: () => (up = true),
  };
}

/** The real file system, with appends slowed to `bytesPerMs` and counted; `failAppends` makes them fail with ENOSPC. */
function slowDisk(bytesPerMs: number) {
  const stats = { appended: 0, failAppends: false };
  const fs: DataFs = {
    ...nodeDataFs,
    openAppend: async (file) => {
      const real = await nodeDataFs.openAppend(file);
      return {
        get size() {
          return real.size;
        },
        append: async (buffers) => {
          const bytes = buffers.reduce((n, b) => n + b.length, 0);
          await sleep(Math.ceil(bytes / bytesPerMs));
          if (stats.failAppends) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
          await real.append(buffers);
          stats.appended += bytes;
        },
        sync: () => real.sync(),
        truncate: (n) => real.truncate(n),
        close: () => real.close(),
      };
    },
  };
  return { fs, stats };
}

const image = (bytes: number, salt = 0) => {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 512) out[i] = (i / 512 + salt) & 0xff;
  return out;
};

let dirs: string[] = [];
afterEach(() => (dirs = []));
const spoolDir = () => {
  const dir = path.join(tempDir(), 'spool');
  dirs.push(dir);
  return dir;
};

describe('Wire: spooling large messages to disk', () => {
  it('a message larger than the window arrives intact while the receiver holds no more than the window waiting for its slow disk', async () => {
    const l = twoWay();
    const dir = spoolDir();
    const disk = slowDisk(4 * 1024); // 4 MiB/s: far slower than the link
    const sender = new Wire(l.a, silentLogger, systemClock);
    const receiver = new Wire(l.b, silentLogger, systemClock, new SpoolDir(dir, disk.fs, silentLogger));
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    const body = image(4 * WINDOW_BYTES);
    let waiting = 0;
    let sawFile = false;
    sender.sendWithBody('b', body, (placeholder) => ({ g: 'db.x', m: { type: 'snapshot', snapshot: { index: 7, data: placeholder, voters: ['a'] } } }));
    const deadline = Date.now() + 60_000;
    while (got.length === 0 && Date.now() < deadline) {
      waiting = Math.max(waiting, l.delivered.b - disk.stats.appended);
      sawFile ||= readdirSync(dir).some((f) => f.endsWith('.part'));
      await sleep(2);
    }
    expect(got).toHaveLength(1);
    const m = got[0] as { g: string; m: { type: string; snapshot: { index: number; data: Uint8Array; voters: string[] } } };
    expect(m.g).toBe('db.x');
    expect(m.m.snapshot.index).toBe(7);
    expect(m.m.snapshot.voters).toEqual(['a']);
    expect(Buffer.from(m.m.snapshot.data).equals(Buffer.from(body))).toBe(true);
    expect(sawFile, 'the chunks went to a spool file').toBe(true);
    expect(disk.stats.appended).toBe(l.delivered.b);
    // the sender waited for the disk: chunks not yet written never exceeded its window (plus what was in the link)
    expect(waiting).toBeLessThanOrEqual(WINDOW_BYTES + PACE_BYTES + 2 * CHUNK_BYTES);
    await until(() => readdirSync(dir).length === 0, 2_000);
    expect(readdirSync(dir), 'the spool file is deleted once read').toEqual([]);
  }, 90_000);

  it('the bytes sent with a streamed body decode like the same message sent whole', async () => {
    const chunks: Uint8Array[] = [];
    const capture: MeshPort = { selfId: 'a', send: (_to, body) => (chunks.push((body as { b: Uint8Array }).b), true), subscribe: () => {} };
    const body = image(3 * CHUNK_BYTES + 17, 3);
    new Wire(capture, silentLogger).sendWithBody('b', body, (data) => ({ before: 'x', data, after: [1, 2] }));
    const decoded = cbor.decode(Buffer.concat(chunks)) as { before: string; data: Uint8Array; after: number[] };
    expect(decoded.before).toBe('x');
    expect(decoded.after).toEqual([1, 2]);
    expect(Buffer.from(decoded.data).equals(Buffer.from(body))).toBe(true);
    expect(() => new Wire(capture, silentLogger).sendWithBody('b', body, () => ({ no: 'placeholder' }))).toThrow(/placeholder/);
  });

  it('a receiver that never reports what it wrote (an older node) gets the rest after the grace period', async () => {
    const l = twoWay();
    const sender = new Wire(l.a, silentLogger, systemClock);
    const receiver = new Wire(l.b, silentLogger); // no spool: keeps chunks in memory, reports nothing
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    const body = image(2 * WINDOW_BYTES);
    const started = Date.now();
    sender.sendWithBody('b', body, (data) => ({ data }));
    await until(() => got.length === 1, ACK_GRACE_MS + 30_000);
    expect(got).toHaveLength(1);
    expect(Buffer.from((got[0] as { data: Uint8Array }).data).equals(Buffer.from(body))).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(ACK_GRACE_MS - 100);
  }, 60_000);

  it('after a dropped link the resent message goes on from what the spool holds', async () => {
    // the link and the sender's pacing run in simulated time, so the resume answer is never outrun
    // by a loaded machine; the spool's disk is real, and gets real time between two timers
    const clock = new SimClock();
    const run = async (cond: () => boolean, steps = 200_000) => {
      for (let i = 0; i < steps && !cond(); i++) {
        clock.fireNext(clock.monotonic() + 1);
        await new Promise((r) => setImmediate(r));
      }
    };
    const l = twoWay(clock);
    const dir = spoolDir();
    const sender = new Wire(l.a, silentLogger, clock);
    const receiver = new Wire(l.b, silentLogger, clock, new SpoolDir(dir, nodeDataFs, silentLogger));
    const got: Uint8Array[] = [];
    receiver.onMessage((_from, m) => got.push((m as { data: Uint8Array }).data));
    const body = image(3 * SPOOL_BYTES, 9);
    const results: boolean[] = [];
    sender.sendWithBody(
      'b',
      body,
      (data) => ({ data }),
      (ok) => results.push(ok),
    );
    await run(() => l.delivered.b > SPOOL_BYTES);
    l.cut();
    await run(() => results.length === 1);
    const held = l.delivered.b;
    l.restore();
    sender.sendWithBody(
      'b',
      body,
      (data) => ({ data }),
      (ok) => results.push(ok),
    );
    await run(() => got.length === 1 && results.length === 2);
    expect(results).toEqual([false, true]);
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0]!).equals(Buffer.from(body))).toBe(true);
    // the second try carried what the spool did not hold, plus what left before the sender heard of it
    expect(sender.resumedChunks).toBeGreaterThan(0);
    expect(l.delivered.b - held).toBeLessThanOrEqual(body.length - held + PACE_BYTES + 2 * CHUNK_BYTES);
    await until(() => readdirSync(dir).length === 0, 2_000);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);

  it('a spool that cannot be written drops that message only; the next try arrives', async () => {
    const l = twoWay();
    const dir = spoolDir();
    const disk = slowDisk(1 << 20);
    const sender = new Wire(l.a, silentLogger, systemClock);
    const receiver = new Wire(l.b, silentLogger, systemClock, new SpoolDir(dir, disk.fs, silentLogger));
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    const body = image(2 * SPOOL_BYTES, 5);
    disk.stats.failAppends = true;
    sender.sendWithBody('b', body, (data) => ({ data }));
    sender.send('b', { small: 1 });
    await until(() => got.length === 1);
    await sleep(300);
    expect(got, 'the small message passed; the spooled one was dropped').toEqual([{ small: 1 }]);
    disk.stats.failAppends = false;
    sender.sendWithBody('b', body, (data) => ({ data }));
    await until(() => got.length === 2);
    expect(Buffer.from((got[1] as { data: Uint8Array }).data).equals(Buffer.from(body))).toBe(true);
    await until(() => readdirSync(dir).length === 0, 2_000);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);

  it('a spool directory is cleared of what a crash left in it', async () => {
    const dir = spoolDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'message-3.part'), 'left by a crash');
    writeFileSync(path.join(dir, 'other'), 'not ours');
    const spool = new SpoolDir(dir, nodeDataFs, silentLogger);
    const file = spool.create(() => {});
    file.write(new Uint8Array([1, 2, 3]));
    expect(Array.from(await file.finish())).toEqual([1, 2, 3]);
    expect(existsSync(path.join(dir, 'message-3.part'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['other']);
  });
});
