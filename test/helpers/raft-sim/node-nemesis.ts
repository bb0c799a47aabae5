/**
 * A nemesis over NodeSim: five boards, one database `nem` with R = 3, one
 * writer per board (every write a unique value), and a reader that makes
 * `level=strong` reads through a random board. The seed picks a sequence of
 * faults: partitions, isolating a group leader, pausing a leader or any board
 * for longer than --replace-after (so it is replaced while it sleeps),
 * SIGKILL and restart, and at most one lost disk. Then everything heals.
 *
 * Checked:
 * - every strong read holds every write acknowledged before it started;
 * - no two replicas lead one group in the same term (sampled every 50 ms);
 * - after healing, a strong read through every board succeeds (no wedged
 *   group) and holds every acknowledged write, and the replicas agree.
 */
import { dbGroup } from '../../../src/replication/replicator';
import type { ReadLevel } from '../../../src/replication/replicator';
import type { SqlEngine } from '../../../src/store/sql-engine';
import type { QueryResult } from '../../../src/store/sql-state-machine';
import { NodeSim } from './node-sim';

export const NEMESIS_IDS = ['a', 'b', 'c', 'd', 'e'];
const DB = 'nem';
const CLIENT_TIMEOUT_MS = 20_000;

export interface NemesisResult {
  acked: number;
  strongReads: number;
  faults: string[];
  violations: string[];
}

type Fault = { name: string; run: () => Promise<void> };
/** Faults overlap: up to this many run at once (a board paused while another is killed, and so on). */
const MAX_CONCURRENT_FAULTS = 2;

export async function runNodeNemesis(seed: number, engine: SqlEngine, options: { faults?: number; replaceAfterMs?: number } = {}): Promise<NemesisResult> {
  const sim = new NodeSim(seed, NEMESIS_IDS, engine, {
    redundancy: 3,
    replaceAfterMs: options.replaceAfterMs ?? 4_000,
    writeTimeoutMs: 5_000,
    snapshotEntries: 150,
  });
  const rand = sim.random;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const between = (lo: number, hi: number) => Math.floor(lo + rand() * (hi - lo));
  const violations: string[] = [];
  const faults: string[] = [];
  const acked = new Map<string, number>();
  let strongReads = 0;
  let stopClients = false;

  const withTimeout = <T>(p: Promise<T>): Promise<T> => Promise.race([p, sim.sleep(CLIENT_TIMEOUT_MS).then(() => Promise.reject(new Error('client timeout')))]);

  const read = async (via: string, level: ReadLevel): Promise<Set<string>> => {
    const r = sim.board(via).replicator!;
    const [res] = (await withTimeout(r.query(DB, [{ sql: 'SELECT v FROM t' }], level))) as QueryResult[];
    if (!res || 'error' in res) throw new Error(`query failed: ${JSON.stringify(res)}`);
    return new Set(res.values.map((row) => String(row[0])));
  };

  const trace = (m: string) => process.env.NODE_SIM_TRACE && console.error(`[${sim.now()}] ${m}`);
  for (const id of NEMESIS_IDS) await sim.start(id);
  await sim.run(6_000);
  // The database: created by its first write, through any board, once the system group serves.
  for (let i = 0; ; i++) {
    const via = sim.board(NEMESIS_IDS[i % NEMESIS_IDS.length]!).replicator!;
    const done = withTimeout(
      via.execute(DB, { kind: 'execute', statements: [{ sql: 'CREATE TABLE IF NOT EXISTS t (v TEXT PRIMARY KEY)' }], transaction: false }),
    );
    const settled = done.then(
      () => true,
      () => false,
    );
    let ok: boolean | undefined;
    void settled.then((v) => (ok = v));
    while (ok === undefined) await sim.run(100);
    trace(`create attempt ${i}: ${ok}`);
    if (ok) break;
    if (i > 20) throw new Error(`seed ${seed}: the database could not be created`);
  }

  const writer = async (id: string) => {
    for (let k = 0; !stopClients; k++) {
      await sim.sleep(between(20, 80));
      const board = sim.board(id);
      if (!board.serving) continue;
      const value = `${id}-${board.incarnation}-${k}`;
      try {
        const [res] = await withTimeout(
          board.replicator!.execute(DB, { kind: 'execute', statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }], transaction: false }),
        );
        if (res && !('error' in res)) acked.set(value, sim.now());
      } catch {
        // not acknowledged: it may or may not be there, which the checks allow
      }
    }
  };

  const reader = async () => {
    while (!stopClients) {
      await sim.sleep(between(200, 600));
      const via = pick(NEMESIS_IDS);
      if (!sim.board(via).serving) continue;
      const started = sim.now();
      const before = [...acked.keys()];
      let rows: Set<string>;
      try {
        rows = await read(via, 'strong');
      } catch {
        continue;
      }
      strongReads++;
      const missing = before.filter((v) => !rows.has(v));
      if (missing.length > 0) {
        violations.push(
          `a strong read through ${via} at ${started} ms missed ${missing.length} of ${before.length} acknowledged writes (e.g. ${missing.slice(0, 3).join(', ')}); faults: ${faults.join('; ')}`,
        );
      }
    }
  };

  // Election Safety, sampled: one leader per group and term.
  const leaders = new Map<string, string>();
  const sampler = async () => {
    while (!stopClients) {
      await sim.sleep(50);
      for (const b of sim.boards.values()) {
        if (!b.serving) continue;
        for (const st of b.replicator!.status()) {
          if (st.state !== 'leader') continue;
          const key = `${String(st.group)}@${String(st.term)}`;
          const who = String(st.replica ?? b.id);
          const seen = leaders.get(key);
          if (seen === undefined) leaders.set(key, who);
          else if (seen !== who) violations.push(`two leaders of ${key}: ${seen} and ${who}; faults: ${faults.join('; ')}`);
        }
      }
    }
  };

  const leaderOf = (group: string): string | undefined => {
    for (const b of sim.boards.values()) {
      if (!b.serving) continue;
      if (b.replicator!.status().some((st) => st.group === group && st.state === 'leader')) return b.id;
    }
    return undefined;
  };

  let diskLost = false;
  let partitioned = false;
  const busy = new Set<string>();
  const free = () => NEMESIS_IDS.filter((id) => !busy.has(id));
  /** The board leading `group`, if it is free for a fault, else any free board. */
  const target = (group: string, bias: number): string => {
    const leader = leaderOf(group);
    return leader && !busy.has(leader) && rand() < bias ? leader : pick(free());
  };
  const partitionFaults: (() => Fault)[] = [
    () => {
      const shuffled = [...NEMESIS_IDS].sort(() => rand() - 0.5);
      const cut = between(1, 3);
      const sides = [shuffled.slice(0, cut), shuffled.slice(cut)];
      const ms = between(3_000, 12_000);
      return {
        name: `partition ${sides.map((s) => s.join('')).join('|')} for ${ms} ms`,
        run: async () => {
          sim.partition(sides);
          await sim.sleep(ms);
          sim.heal();
        },
      };
    },
    () => {
      const who = leaderOf(pick([`db.${DB}`, 'system'])) ?? pick(NEMESIS_IDS);
      const ms = between(3_000, 20_000);
      return {
        name: `isolate ${who} for ${ms} ms`,
        run: async () => {
          sim.partition([[who], NEMESIS_IDS.filter((x) => x !== who)]);
          await sim.sleep(ms);
          sim.heal();
        },
      };
    },
  ];
  const boardFaults: (() => Fault)[] = [
    () => {
      const who = target(pick(['system', `db.${DB}`]), 0.7);
      const ms = between(2_000, 25_000);
      return {
        name: `pause ${who} for ${ms} ms`,
        run: async () => {
          busy.add(who);
          sim.pause(who);
          await sim.sleep(ms);
          sim.resume(who);
          busy.delete(who);
        },
      };
    },
    () => {
      const who = target(`db.${DB}`, 0.5);
      const ms = between(1_000, 15_000);
      const wipe = !diskLost && rand() < 0.35;
      if (wipe) diskLost = true;
      return {
        name: `${wipe ? 'lose the disk of' : 'kill'} ${who}, restart after ${ms} ms`,
        run: async () => {
          busy.add(who);
          if (wipe) sim.loseDisk(who);
          else sim.kill(who);
          await sim.sleep(ms);
          await sim.start(who);
          busy.delete(who);
        },
      };
    },
  ];

  const clients = [...NEMESIS_IDS.map((id) => writer(id)), reader(), sampler()];
  const nemesis = (async () => {
    const count = options.faults ?? between(4, 8);
    const running = new Set<Promise<void>>();
    for (let i = 0; i < count; i++) {
      await sim.sleep(between(500, 6_000));
      while (running.size >= MAX_CONCURRENT_FAULTS) await Promise.race(running);
      // one partition at a time; at most two boards down or paused at once (a quorum of five stays)
      const kinds = [...(partitioned ? [] : partitionFaults), ...(free().length > 3 ? boardFaults : [])];
      if (kinds.length === 0) continue;
      const make = pick(kinds);
      const isPartition = partitionFaults.includes(make);
      if (isPartition) partitioned = true;
      const fault = make();
      faults.push(`${sim.now()} ms: ${fault.name}`);
      const p: Promise<void> = fault.run().finally(() => {
        running.delete(p);
        if (isPartition) partitioned = false;
      });
      running.add(p);
    }
    await Promise.all(running);
  })();
  let nemesisDone = false;
  void nemesis.then(() => (nemesisDone = true));
  while (!nemesisDone) await sim.run(500);

  // Heal everything and let the cluster settle.
  sim.heal();
  for (const b of sim.boards.values()) {
    if (b.paused) sim.resume(b.id);
    if (!b.up) await sim.start(b.id);
  }
  await sim.run(40_000);
  stopClients = true;
  await sim.run(CLIENT_TIMEOUT_MS + 1_000);
  await Promise.all(clients);

  // Every board serves a strong read holding every acknowledged write.
  const all = [...acked.keys()];
  for (const id of NEMESIS_IDS) {
    let outcome: Set<string> | Error | undefined;
    void read(id, 'strong').then(
      (rows) => (outcome = rows),
      (err: unknown) => (outcome = err as Error),
    );
    while (outcome === undefined) await sim.run(100);
    if (outcome instanceof Error) {
      violations.push(`after healing, a strong read through ${id} failed: ${outcome.message}; faults: ${faults.join('; ')}`);
      if (process.env.NODE_SIM_TRACE) {
        for (const b of sim.boards.values())
          console.error(b.id, JSON.stringify(b.replicator?.status().find((r) => r.group === dbGroup(DB))), JSON.stringify(b.replicator?.databases()));
      }
      continue;
    }
    const rows = outcome;
    const missing = all.filter((v) => !rows.has(v));
    if (missing.length > 0)
      violations.push(`after healing, a strong read through ${id} missed ${missing.length} acknowledged writes; faults: ${faults.join('; ')}`);
  }
  // The replicas agree (each board's own copy, once everything has applied).
  await sim.run(5_000);
  const copies = new Map<string, number>();
  for (const b of sim.boards.values()) {
    if (
      !b
        .replicator!.status()
        .some(
          (st) =>
            st.group === `db.${DB}` && !st.removed && [...(st.voter_replicas as string[]), ...(st.learner_replicas as string[])].includes(String(st.replica)),
        )
    )
      continue;
    try {
      copies.set(b.id, (await read(b.id, 'none')).size);
    } catch (err) {
      const st = b.replicator!.status().find((x) => x.group === `db.${DB}`);
      violations.push(`the copy on ${b.id} cannot be read: ${(err as Error).message}; its replica: ${JSON.stringify(st)}; faults: ${faults.join('; ')}`);
    }
  }
  if (process.env.NODE_SIM_TRACE)
    for (const b of sim.boards.values()) console.error(b.id, JSON.stringify(b.replicator!.status().filter((st) => st.group === `db.${DB}`)));
  if (new Set(copies.values()).size > 1) violations.push(`replicas disagree: ${JSON.stringify(Object.fromEntries(copies))}; faults: ${faults.join('; ')}`);
  for (const b of sim.boards.values()) if (b.up) sim.kill(b.id);
  return { acked: acked.size, strongReads, faults, violations };
}
