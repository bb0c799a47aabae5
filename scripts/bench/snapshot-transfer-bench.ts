/**
 * What a snapshot transfer costs in memory (npm run bench:snapshot): a
 * 200 MiB image from one wire to another inside this process, over a link
 * that delivers 64 MiB/s and holds what is in flight, the way the mesh paces
 * it. Each way runs in a child process of its own, so the peaks do not mix:
 *   whole    the message encoded into one buffer (`send`), its chunks kept in
 *            memory until the last (the transfer before spooling)
 *   streamed the image streamed from its own buffer (`sendWithBody`), the
 *            receiver spooling to a temp dir on disk
 * Printed per way: seconds, the peak resident memory above what the process
 * held with the sender's image alone, and of that what is beyond the one
 * copy the receiver ends up with (both ends are in one process).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { SpoolDir } from '../../src/replication/spool';
import { Wire, type MeshPort } from '../../src/replication/wire';
import { nodeDataFs } from '../../src/store/data-fs';

const MIB = 1024 * 1024;
const IMAGE_MIB = Number(process.env.BENCH_SNAPSHOT_MIB ?? 200);
const LINK_BYTES_PER_MS = 64 * 1024;

function link() {
  const handlers = new Map<string, (from: string, body: unknown) => void>();
  const queue: { to: string; from: string; body: unknown; bytes: number }[] = [];
  let backlog = 0;
  const port = (self: string): MeshPort => ({
    selfId: self,
    send: (to, body) => {
      const bytes = body instanceof Uint8Array ? body.length : ((body as { b?: Uint8Array }).b?.length ?? 16);
      queue.push({ to, from: self, body, bytes });
      if (self === 'a') backlog += bytes;
      return true;
    },
    subscribe: (h) => handlers.set(self, h),
    backlog: (to) => (to === 'b' ? backlog : 0),
  });
  const timer = setInterval(() => {
    let budget = LINK_BYTES_PER_MS * 2;
    while (queue.length > 0 && budget > 0) {
      const m = queue.shift()!;
      if (m.from === 'a') backlog -= m.bytes;
      budget -= m.bytes;
      handlers.get(m.to)?.(m.from, m.body);
    }
  }, 2);
  return { a: port('a'), b: port('b'), stop: () => clearInterval(timer) };
}

async function runOne(way: 'whole' | 'streamed'): Promise<void> {
  const image = new Uint8Array(IMAGE_MIB * MIB);
  for (let i = 0; i < image.length; i += 4096) image[i] = i & 0xff; // touched: resident
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const l = link();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gandalf-bench-spool-'));
  const sender = new Wire(l.a, silentLogger, systemClock);
  const receiver = new Wire(l.b, silentLogger, systemClock, way === 'streamed' ? new SpoolDir(dir, nodeDataFs, silentLogger) : undefined);
  const started = performance.now();
  const got = new Promise<Uint8Array>((resolve) => receiver.onMessage((_from, m) => resolve((m as { data: Uint8Array }).data)));
  if (way === 'whole') sender.send('b', { index: 1, data: image });
  else sender.sendWithBody('b', image, (data) => ({ index: 1, data }));
  const timeout = setTimeout(() => {
    console.error(`${way}: no delivery within 300 s`);
    process.exit(1);
  }, 300_000);
  const data = await got;
  clearTimeout(timeout);
  const seconds = (performance.now() - started) / 1000;
  peak = Math.max(peak, process.memoryUsage().rss);
  clearInterval(sampler);
  l.stop();
  rmSync(dir, { recursive: true, force: true });
  if (data.length !== image.length || data[4096 * 7] !== image[4096 * 7]) throw new Error(`${way}: the image arrived damaged`);
  console.log(JSON.stringify({ way, seconds, extraMib: Math.round((peak - base) / MIB) }));
}

function main(): void {
  const way = process.argv[2];
  if (way === 'whole' || way === 'streamed') {
    void runOne(way);
    return;
  }
  console.log(`snapshot transfer of a ${IMAGE_MIB} MiB image, both ends in one process, link ${(LINK_BYTES_PER_MS * 1000) / MIB} MiB/s`);
  console.log('way       seconds  peak above the image  beyond the received copy');
  for (const w of ['whole', 'streamed'] as const) {
    const out = execFileSync(process.execPath, ['--expose-gc', ...process.execArgv, __filename, w], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { seconds: number; extraMib: number };
    const beyond = Math.max(0, r.extraMib - IMAGE_MIB);
    console.log(`${w.padEnd(9)} ${r.seconds.toFixed(1).padStart(7)}  ${String(r.extraMib).padStart(16)} MiB  ${String(beyond).padStart(20)} MiB`);
  }
}

main();
