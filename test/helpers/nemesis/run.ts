/**
 * A nemesis run on real processes: five boards, each in its own network
 * namespace on a bridge created here (and removed), each data dir on its own
 * tmpfs (so one disk can fill), one board under libfaketime (so its wall
 * clock can jump). Clients in every namespace the whole time: SQL writers
 * (db.nem), strong count readers, key/value get + CAS, the mutex. Each round
 * injects one fault or a network fault and a node fault at once (chosen by
 * the seed), holds it 8-16 s, heals it and waits for writes to go on (a
 * cluster that does not recover within a minute fails the run). Then every
 * board's strong read must hold every acknowledged write, and the histories
 * go through the checks of ./checks.ts.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { checkKvHistory, type KvOperation } from '../raft-sim/system-sim';
import { mulberry32 } from '../sim/prng';
import { createLab } from '../netns';
import { Rack, sleep, type Board } from '../netns-rack';
import { BUNDLE, requireBuilt } from '../node-process';
import { tempDir } from '../tmp';
import { checkClientHolds, checkCountReads, longestUnavailability, lostWrites, type ClientHold, type CountRead, type SqlWrite } from './checks';
import { chooseFaults, inject, NETWORK_FAULTS, NODE_FAULTS, shuffle, type FaultKind } from './faults';

const IDS = ['a', 'b', 'c', 'd', 'e'];
const COOKIE = 'nemesis-netns-cookie';
const DISK = '192m';
const RECOVERY_MS = 60_000;

export interface NemesisOptions {
  seed: number;
  rounds: number;
  /** First three octets of the lab's subnet. */
  subnet?: string;
  /** Probability that a round combines a network fault with a node fault. */
  combine?: number;
  /** The first rounds inject every kind of fault once (in the seed's order), the rest as chosen by the seed. */
  everyKind?: boolean;
  log?: (line: string) => void;
  /** Where to write the histories, the fault windows and the report when a check fails (JSON), for a post-mortem. */
  dumpTo?: string;
}

export interface NemesisReport {
  seed: number;
  faults: string[];
  operations: { sqlWrites: number; sqlAcked: number; countReads: number; kvOps: number; kvUnknown: number; holds: number };
  /** Acknowledged writes missing from some board's strong read after healing. */
  lost: string[];
  violations: string[];
  /** Per fault kind: the longest time no write was acknowledged anywhere, from the fault to recovery (ms). */
  unavailability: Partial<Record<FaultKind, number>>;
  text: string;
}

function libfaketime(): string {
  for (const dir of readdirSync('/usr/lib')) {
    const f = path.join('/usr/lib', dir, 'faketime/libfaketime.so.1');
    if (existsSync(f)) return f;
  }
  throw new Error('libfaketime is missing: scripts/ensure-test-deps.sh installs it (npm test runs it)');
}

interface Clients {
  writes: SqlWrite[];
  reads: CountRead[];
  kv: KvOperation[];
  holds: ClientHold[];
  acked(): number;
}

function startClients(rack: Rack, seed: number, seconds: number): Clients {
  const c: Clients = { writes: [], reads: [], kv: [], holds: [], acked: () => c.writes.filter((w) => w.ret !== undefined).length };
  const secs = String(seconds);
  rack.boards.forEach((b, i) => {
    rack.spawnClient(b, ['write', 'nem', `${b.id}${seed}`, secs], (line) => {
      const [kind, ...rest] = line.split(' ');
      if (kind === 'ack') c.writes.push({ value: rest[0]!, call: Number(rest[1]), ret: Number(rest[2]) });
      else if (kind === 'err') c.writes.push({ value: rest[2]!, call: Number(rest[3]) });
    });
    if (i % 2 === 0) rack.spawnClient(b, ['count', 'nem', secs], (line) => c.reads.push({ ...(JSON.parse(line) as Omit<CountRead, 'client'>), client: b.id }));
    rack.spawnClient(b, ['kv', `${b.id}${seed}`, 'k0,k1,k2', secs], (line) => {
      const o = JSON.parse(line) as Record<string, unknown> & { key: string; call: number; ret: number | null };
      if (o.op === 'get')
        c.kv.push({
          input: { kind: 'get', key: o.key },
          output: { kind: 'get', value: o.value as string | null, rev: o.rev as number },
          call: o.call,
          ret: o.ret!,
        });
      else {
        const input = { kind: 'cas' as const, key: o.key, prev: o.prev as number, value: o.value as string };
        if (o.ret === null) c.kv.push({ input, output: undefined, call: o.call, ret: Infinity });
        else if (o.ok) c.kv.push({ input, output: { kind: 'cas', ok: true, rev: o.rev as number }, call: o.call, ret: o.ret });
        else c.kv.push({ input, output: { kind: 'cas', ok: false, current: o.current as number }, call: o.call, ret: o.ret });
      }
    });
    rack.spawnClient(b, ['mutex', 'm', secs], (line) =>
      c.holds.push({ ...(JSON.parse(line) as Omit<ClientHold, 'lock' | 'client'>), lock: 'm', client: b.id }),
    );
  });
  return c;
}

export async function runNemesis(opts: NemesisOptions): Promise<NemesisReport> {
  requireBuilt(BUNDLE);
  const log = opts.log ?? (() => undefined);
  const random = mulberry32(opts.seed);
  const lab = createLab(IDS.length, opts.subnet ?? '10.215.0');
  const root = tempDir('gandalf-nemesis-');
  const rack = new Rack(lab, root, IDS, { cookie: COOKIE, redundancy: 3 });
  const mounted: string[] = [];
  const faults: string[] = [];
  try {
    for (const b of rack.boards) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK}`, 'tmpfs', b.dir]);
      mounted.push(b.dir);
    }
    const clockBoard = rack.boards[Math.floor(random() * rack.boards.length)]!;
    const clockFile = path.join(root, 'faketime');
    writeFileSync(clockFile, '+0\n');
    clockBoard.env = {
      LD_PRELOAD: libfaketime(),
      FAKETIME_TIMESTAMP_FILE: clockFile,
      FAKETIME_DONT_FAKE_MONOTONIC: '1', // an NTP step moves the wall clock, not CLOCK_MONOTONIC
      FAKETIME_CACHE_DURATION: '1',
    };
    for (const b of rack.boards) rack.start(b);
    await rack.waitFor(
      'a system group of 5 voters',
      () => rack.status(rack.boards[0]!)?.replicas.find((r) => r.group === 'system')?.voters.length === 5,
      90_000,
    );
    rack.client(rack.boards[1]!, ['exec', 'nem', 'CREATE TABLE t (v TEXT PRIMARY KEY)']);
    const clients = startClients(rack, opts.seed, opts.rounds * 120 + 180);
    const progress = async (what: string) => {
      const before = clients.acked();
      await rack.waitFor(`writes to go on after ${what}`, () => clients.acked() >= before + 10, RECOVERY_MS);
    };
    await progress('the start');

    const windows: { kinds: FaultKind[]; start: number; end: number }[] = [];
    const ctx = { rack, random, clockBoard, clockFile, restart: (b: Board) => rack.start(b) };
    const firsts = opts.everyKind ? shuffle([...NETWORK_FAULTS, ...NODE_FAULTS], random) : [];
    for (let round = 1; round <= opts.rounds; round++) {
      const kinds = round <= firsts.length ? [firsts[round - 1]!] : chooseFaults(random, opts.combine ?? 0.3);
      const start = performance.timeOrigin + performance.now();
      const injected = kinds.map((k) => inject(k, ctx));
      const what = injected.map((f) => f.what).join(' + ');
      const hold = 8000 + Math.floor(random() * 8000);
      faults.push(`${what} for ${(hold / 1000).toFixed(1)} s`);
      log(`seed ${opts.seed} round ${round}: ${faults.at(-1)}`);
      await sleep(hold);
      for (const f of [...injected].reverse()) await f.heal();
      await progress(what);
      windows.push({ kinds, start, end: performance.timeOrigin + performance.now() });
    }
    await sleep(3000);
    await rack.stopClients();

    const lost = new Set<string>();
    for (const b of rack.boards) for (const v of lostWrites(clients.writes, await rack.strongRead(b, 'nem', 60_000))) lost.add(`${v} (through ${b.id})`);
    const violations: string[] = [];
    violations.push(...checkCountReads(clients.writes, clients.reads).violations.slice(0, 5));
    const kv = checkKvHistory(clients.kv);
    if (!kv.ok) violations.push(`key/value history not linearizable: ${kv.reason}`);
    violations.push(...checkClientHolds(clients.holds).violations.slice(0, 5));

    const gaps = longestUnavailability(
      clients.writes.filter((w) => w.ret !== undefined).map((w) => w.ret!),
      windows,
    );
    const unavailability: Partial<Record<FaultKind, number>> = {};
    windows.forEach((w, i) => {
      for (const k of w.kinds) unavailability[k] = Math.max(unavailability[k] ?? 0, gaps[i]!);
    });
    const operations = {
      sqlWrites: clients.writes.length,
      sqlAcked: clients.acked(),
      countReads: clients.reads.length,
      kvOps: clients.kv.length,
      kvUnknown: clients.kv.filter((o) => o.output === undefined).length,
      holds: clients.holds.length,
    };
    const text = [
      `nemesis seed ${opts.seed}: ${opts.rounds} rounds, clock board ${clockBoard.id}`,
      `  operations: ${operations.sqlWrites} SQL writes (${operations.sqlAcked} acknowledged), ${operations.countReads} strong count reads, ` +
        `${operations.kvOps} key/value gets and CASes (${operations.kvUnknown} outcomes unknown), ${operations.holds} mutex holds`,
      ...faults.map((f, i) => `  fault ${i + 1}: ${f}`),
      `  acknowledged writes lost: ${lost.size}`,
      `  violations: ${violations.length}${violations.length ? ' — ' + violations.join('; ') : ''}`,
      `  longest write unavailability per fault kind: ${Object.entries(unavailability)
        .map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`)
        .join(', ')}`,
    ].join('\n');
    if (opts.dumpTo && (lost.size > 0 || violations.length > 0)) {
      mkdirSync(path.dirname(opts.dumpTo), { recursive: true });
      writeFileSync(
        opts.dumpTo,
        JSON.stringify({ text, faults, windows, ...clients }, (_k, v: unknown) => (v === Infinity ? null : v)),
      );
      // the boards' own logs beside it, to see what each node did around a violation
      for (const b of rack.boards) if (existsSync(b.log)) copyFileSync(b.log, opts.dumpTo.replace(/\.json$/, `-${b.id}.log`));
    }
    return { seed: opts.seed, faults, operations, lost: [...lost], violations, unavailability, text };
  } catch (err) {
    throw new Error(`nemesis seed ${opts.seed}: ${(err as Error).message}\nfaults: ${faults.join('; ')}\n${rack.logTails()}`, { cause: err });
  } finally {
    await rack.stopClients().catch(() => undefined);
    lab.destroy();
    for (const dir of mounted) execFileSync('umount', ['-l', dir]);
  }
}
