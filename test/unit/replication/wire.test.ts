/**
 * The wire paces large messages by the link's backlog: a link that (like a
 * mesh link) closes once more than 32 MiB wait in it carries a 100 MiB
 * message whole, with heartbeats passing between its chunks, and a damaged
 * chunk drops the message instead of delivering wrong bytes.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/core/clock';
import { SimClock } from '../../helpers/sim/sim-clock';
import { silentLogger } from '../../../src/core/logger';
import { CHUNK_BYTES, PACE_BYTES, Wire, type MeshPort } from '../../../src/replication/wire';

const LINK_LIMIT = 32 * 1024 * 1024;

/** A link from a to b that drains `drainBytes` every ms and closes when its backlog passes LINK_LIMIT. */
function link(drainBytes: number, damage?: (body: unknown) => unknown) {
  const inFlight: { body: unknown; bytes: number }[] = [];
  let backlog = 0;
  let maxBacklog = 0;
  let closed = false;
  let deliver: ((from: string, body: unknown) => void) | undefined;
  const size = (body: unknown) => (body instanceof Uint8Array ? body.length : ((body as { b?: Uint8Array }).b?.length ?? 0) + 32);
  const a: MeshPort = {
    selfId: 'a',
    send: (_to, body) => {
      if (closed) return false;
      const bytes = size(body);
      inFlight.push({ body, bytes });
      backlog += bytes;
      maxBacklog = Math.max(maxBacklog, backlog);
      if (backlog > LINK_LIMIT) closed = true;
      return !closed;
    },
    subscribe: () => {},
    backlog: () => (closed ? undefined : backlog),
  };
  const b: MeshPort = { selfId: 'b', send: () => true, subscribe: (h) => (deliver = h) };
  const timer = setInterval(() => {
    let budget = drainBytes;
    while (inFlight.length > 0 && budget > 0) {
      const m = inFlight.shift()!;
      backlog -= m.bytes;
      budget -= m.bytes;
      deliver?.('a', damage ? damage(m.body) : m.body);
    }
  }, 1);
  return { a, b, stats: () => ({ maxBacklog, closed }), stop: () => clearInterval(timer) };
}

describe('Wire: large messages', () => {
  it('paces a 100 MiB message through a link that closes past 32 MiB; small messages pass between its chunks', async () => {
    const l = link(4 * 1024 * 1024);
    const sender = new Wire(l.a, silentLogger, systemClock);
    const receiver = new Wire(l.b, silentLogger);
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    const big = new Uint8Array(100 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    expect(sender.send('b', { snapshot: big })).toBe(true);
    expect(sender.send('b', { heartbeat: 1 })).toBe(true);
    const deadline = Date.now() + 60_000;
    while (!got.some((m) => (m as { snapshot?: unknown }).snapshot) && Date.now() < deadline && !l.stats().closed) await new Promise((r) => setTimeout(r, 10));
    l.stop();
    expect(l.stats().closed).toBe(false);
    expect(l.stats().maxBacklog).toBeLessThanOrEqual(PACE_BYTES + 2 * CHUNK_BYTES);
    const snap = got.find((m) => (m as { snapshot?: unknown }).snapshot) as { snapshot: Uint8Array };
    expect(snap).toBeDefined();
    expect(Buffer.compare(Buffer.from(snap.snapshot), Buffer.from(big))).toBe(0);
    // the heartbeat did not wait for the whole snapshot
    expect(got.findIndex((m) => (m as { heartbeat?: unknown }).heartbeat)).toBe(0);
  }, 90_000);

  it('tells the sender when a large message has wholly reached the link, or was dropped with it', async () => {
    const l = link(4 * 1024 * 1024);
    const sender = new Wire(l.a, silentLogger, systemClock);
    new Wire(l.b, silentLogger);
    const reports: string[] = [];
    let during = true;
    expect(sender.send('b', { big: new Uint8Array(8 * PACE_BYTES) }, (sent) => reports.push(`big ${sent} ${during}`))).toBe(true);
    expect(sender.send('b', { small: 1 }, (sent) => reports.push(`small ${sent} ${during}`))).toBe(true);
    during = false;
    const deadline = Date.now() + 20_000;
    while (reports.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // never told during send(); the small one first, the large one once its last chunk left
    expect(reports).toEqual(['small true false', 'big true false']);
    l.stop();
    // a link that goes away mid-stream drops what is queued, and says so
    let open = true;
    const port: MeshPort = { selfId: 'a', send: () => open, subscribe: () => {}, backlog: () => (open ? PACE_BYTES + 1 : undefined) };
    const wire = new Wire(port, silentLogger, systemClock);
    const dropped: boolean[] = [];
    expect(wire.send('b', { big: new Uint8Array(4 * CHUNK_BYTES) }, (sent) => dropped.push(sent))).toBe(true);
    open = false;
    const until = Date.now() + 5_000;
    while (dropped.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(dropped).toEqual([false]);
  }, 30_000);

  it('drops a message with a damaged chunk', async () => {
    let n = 0;
    const l = link(1 << 30, (body) => {
      const c = body as { b?: Uint8Array; c?: number[] };
      if (c.b && c.c?.[1] === 3 && n++ === 0) {
        const b = new Uint8Array(c.b);
        b[10] ^= 0xff;
        return { ...c, b };
      }
      return body;
    });
    const sender = new Wire(l.a, silentLogger, systemClock);
    const receiver = new Wire(l.b, silentLogger);
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    sender.send('b', { data: new Uint8Array(10 * CHUNK_BYTES).fill(7) });
    sender.send('b', { after: true });
    const deadline = Date.now() + 5_000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 100));
    l.stop();
    expect(got).toEqual([{ after: true }]);
  });
});

/**
 * Two wires joined by a link that delivers after 1 ms of `clock`'s time (its backlog: what is in
 * flight) and can be cut (what was in flight is lost) and restored.
 */
function twoWay(clock: SimClock) {
  let up = true;
  const handlers = new Map<string, (from: string, body: unknown) => void>();
  const sent = { a: 0, b: 0 };
  const port = (self: 'a' | 'b', peer: 'a' | 'b'): MeshPort => ({
    selfId: self,
    send: (_to, body) => {
      if (!up) return false;
      const c = body as { b?: Uint8Array };
      const bytes = c?.b instanceof Uint8Array ? c.b.length : 0;
      sent[self] += bytes;
      inFlight[self] += bytes;
      const epoch = generation;
      clock.setTimeout(() => {
        inFlight[self] -= bytes;
        if (!up || epoch !== generation) return;
        if (bytes > 0) delivered[peer]++;
        handlers.get(peer)?.(self, body);
      }, 1);
      return true;
    },
    subscribe: (h) => handlers.set(self, h),
    backlog: () => (up ? inFlight[self] : undefined),
  });
  let generation = 0;
  const inFlight = { a: 0, b: 0 };
  /** Chunks delivered to each side. */
  const delivered = { a: 0, b: 0 };
  return {
    a: port('a', 'b'),
    b: port('b', 'a'),
    sent,
    delivered,
    cut: () => {
      up = false;
      generation++;
    },
    restore: () => (up = true),
  };
}

describe('Wire: resuming a large message after a dropped link', () => {
  /** Runs `clock` to `ms` later, timer by timer, letting promise continuations (the wire's reports) run between them. */
  const run = async (clock: SimClock, ms: number, until: () => boolean = () => false) => {
    const end = clock.monotonic() + ms;
    while (!until() && clock.fireNext(end)) await Promise.resolve();
    await Promise.resolve();
  };

  it('sends only the chunks the receiver does not hold yet, and delivers the message intact', async () => {
    const clock = new SimClock();
    const l = twoWay(clock);
    const sender = new Wire(l.a, silentLogger, clock);
    const receiver = new Wire(l.b, silentLogger);
    const got: unknown[] = [];
    receiver.onMessage((_from, m) => got.push(m));
    const big = Uint8Array.from({ length: 200 * CHUNK_BYTES }, (_, i) => (i * 7) & 0xff);
    const results: boolean[] = [];
    sender.send('b', { snapshot: big }, (ok) => results.push(ok));
    await run(clock, 10_000, () => l.sent.a > 120 * CHUNK_BYTES);
    l.cut();
    const held = l.delivered.b;
    await run(clock, 1_000, () => results.length === 1);
    expect(results).toEqual([false]);
    l.restore();
    const before = l.sent.a;
    sender.send('b', { snapshot: big }, (ok) => results.push(ok));
    await run(clock, 60_000, () => got.length === 1 && results.length === 2);
    expect(got).toHaveLength(1);
    expect(Buffer.from((got[0] as { snapshot: Uint8Array }).snapshot).equals(Buffer.from(big))).toBe(true);
    expect(results).toEqual([false, true]);
    // what arrived before the cut is kept, and not sent again
    expect(held).toBeGreaterThan(50);
    expect(sender.resumedChunks).toBeGreaterThan(0);
    // the second try: the missing chunks, plus what left before the sender heard what was kept
    expect(l.sent.a - before).toBeLessThanOrEqual((200 - held) * CHUNK_BYTES + PACE_BYTES + CHUNK_BYTES);
  });

  it('never pieces a message together from two that only share the resume key: dropped, then sent afresh', async () => {
    const clock = new SimClock();
    const l = twoWay(clock);
    const sender = new Wire(l.a, silentLogger, clock);
    const receiver = new Wire(l.b, silentLogger);
    const got: Uint8Array[] = [];
    receiver.onMessage((_from, m) => got.push((m as { snapshot: Uint8Array }).snapshot));
    const first = new Uint8Array(100 * CHUNK_BYTES);
    const second = new Uint8Array(100 * CHUNK_BYTES);
    second[10 * CHUNK_BYTES] = 1; // inside what the receiver kept: same length, first and last chunk
    sender.send('b', { snapshot: first });
    await run(clock, 10_000, () => l.sent.a > 50 * CHUNK_BYTES);
    l.cut();
    await run(clock, 20);
    l.restore();
    sender.send('b', { snapshot: second });
    await run(clock, 10_000);
    expect(got, 'a mixed message is never delivered').toHaveLength(0);
    sender.send('b', { snapshot: second });
    await run(clock, 60_000, () => got.length === 1);
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0]!).equals(Buffer.from(second))).toBe(true);
  });
});
