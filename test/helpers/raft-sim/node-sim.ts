/**
 * Whole boards' replication in simulated time: real `Replicator`s (the system
 * group, placement, replica creation and removal, forwarding, ReplicaGroup
 * drivers, Raft, sql.js) on in-memory disks, joined by a simulated mesh, with
 * an oracle for membership (a board unreachable for SUSPECT_MS is suspect,
 * for DEAD_MS dead, as SWIM would say). Faults, as the node sees them:
 *
 * - partition: boards on different sides cannot exchange messages (links drop);
 * - pause (SIGSTOP): the board runs nothing, its timers and inbound messages
 *   wait and all arrive on resume, its links stay up;
 * - kill (SIGKILL) and restart from disk (what was not fsynced is lost);
 * - disk loss: kill, then restart on an empty disk under the same node id.
 *
 * Everything is deterministic from the seed: one SimClock, one PRNG, memory
 * I/O only, and promise continuations drained between two timers (as the
 * event loop does). Every wait in the code under test goes through its
 * injected clock.
 */
import { SqlMachine } from '../../../src/replication/sql-machine';
import type { Clock, TimerHandle } from '../../../src/core/clock';
import { createLogger, silentLogger, type Logger } from '../../../src/core/logger';
import { Replicator, type MemberInfo } from '../../../src/replication/replicator';
import { SystemStateMachine } from '../../../src/replication/system-machine';
import { Rpc, Wire, type MeshPort } from '../../../src/replication/wire';
import type { SqlEngine } from '../../../src/store/sql-engine';
import { MemoryFs } from '../memory-fs';
import { mulberry32 } from '../sim/prng';
import { SimClock } from '../sim/sim-clock';

export const SUSPECT_MS = 1_500;
export const DEAD_MS = 5_000;

class NodeTimer implements TimerHandle {
  cancelled = false;
  inner: TimerHandle | undefined;
  unref(): void {}
}

type Held = { timer: NodeTimer; fn: () => void };

export class SimBoard {
  incarnation = 0;
  up = false;
  paused = false;
  fs = new MemoryFs();
  meta: Record<string, string> = {};
  replicator: Replicator | undefined;
  rpc: Rpc | undefined;
  receive: ((from: string, body: unknown) => void) | undefined;
  held: Held[] = [];
  constructor(readonly id: string) {}

  /** Up and running (not paused): it can serve a client now. */
  get serving(): boolean {
    return this.up && !this.paused && this.replicator !== undefined;
  }
}

export interface NodeSimOptions {
  /** Membership lists a board only once it was linked to it (as SWIM learns of members): sides cut apart from the start do not know each other. */
  meetOnLink?: boolean;
  redundancy: number;
  replaceAfterMs: number;
  writeTimeoutMs: number;
  snapshotEntries: number;
}

function hashId(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** A deep copy in which every byte array is copied as its own view (structuredClone would copy whole backing buffers). */
function copyBytes(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(copyBytes);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyBytes(x)]));
  return v;
}

/** Lets every promise continuation that is ready run (no real I/O is pending in a simulation). */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class NodeSim {
  readonly clock = new SimClock();
  readonly boards = new Map<string, SimBoard>();
  readonly random: () => number;
  private side = new Map<string, number>();
  private readonly unreachableSince = new Map<string, number>();
  private readonly lastDelivery = new Map<string, number>();
  /** Observer>target pairs that were linked at some point. */
  private readonly met = new Set<string>();
  private events = 0;

  constructor(
    readonly seed: number,
    ids: string[],
    private readonly engine: SqlEngine,
    private readonly options: NodeSimOptions,
  ) {
    this.random = mulberry32(seed);
    for (const id of ids) this.boards.set(id, new SimBoard(id));
  }

  board(id: string): SimBoard {
    const b = this.boards.get(id);
    if (!b) throw new Error(`no board ${id}`);
    return b;
  }

  ids(): string[] {
    return [...this.boards.keys()];
  }

  now(): number {
    return this.clock.monotonic();
  }

  /** Runs the simulation for `ms` of simulated time, one timer at a time. */
  async run(ms: number): Promise<void> {
    const until = this.clock.monotonic() + ms;
    while (this.clock.fireNext(until)) {
      await drain();
      if (process.env.NODE_SIM_TRACE && ++this.events % 20_000 === 0)
        console.log(`sim ${this.now()} ms, ${this.events} events, heap ${process.memoryUsage().heapUsed >> 20} MiB`);
    }
    await drain();
  }

  /** Runs the simulation for `ms` while `op` settles: its value, or the error it failed with (throws if it has not settled by then). */
  async settle<T>(op: Promise<T>, ms = 6_000): Promise<T | Error> {
    let out: T | Error | undefined;
    op.then(
      (v) => (out = v),
      (e: Error) => (out = e),
    );
    await this.run(ms);
    if (out === undefined) throw new Error(`did not settle within ${ms} ms of simulated time`);
    return out;
  }

  /** A timer of the simulation itself (clients, the nemesis), not of any board. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  // ---- boards ----

  private clockFor(board: SimBoard): Clock {
    const sim = this.clock;
    const incarnation = board.incarnation;
    const run = (timer: NodeTimer, fn: () => void) => {
      if (timer.cancelled || board.incarnation !== incarnation || !board.up) return;
      if (board.paused) board.held.push({ timer, fn });
      else fn();
    };
    return {
      now: () => sim.now(),
      monotonic: () => sim.monotonic(),
      setTimeout: (fn, ms) => {
        const timer = new NodeTimer();
        timer.inner = sim.setTimeout(() => run(timer, fn), ms);
        return timer;
      },
      clearTimeout: (handle) => {
        if (!(handle instanceof NodeTimer)) return;
        handle.cancelled = true;
        if (handle.inner) sim.clearTimeout(handle.inner);
      },
      defer: (fn) => void sim.setTimeout(() => run(new NodeTimer(), fn), 0),
    };
  }

  async start(id: string): Promise<void> {
    const board = this.board(id);
    board.incarnation++;
    board.up = true;
    board.paused = false;
    board.held = [];
    board.meta = {};
    const clock = this.clockFor(board);
    const mesh: MeshPort = {
      selfId: id,
      send: (to, body) => this.send(id, to, body),
      subscribe: (handler) => (board.receive = handler),
    };
    // NODE_SIM_LOG=<board id>: that board's log lines, stamped with simulated time
    const logger: Logger =
      process.env.NODE_SIM_LOG === id ? createLogger({ level: 'debug', format: 'json', now: () => this.clock.now() }, { board: id }) : silentLogger;
    const wire = new Wire(mesh, logger);
    const rpc = new Rpc(wire, clock, logger);
    const seed = (this.seed * 7919 + hashId(id) + board.incarnation * 104729) >>> 0;
    const random = mulberry32(seed);
    const random32 = () => Math.floor(random() * 4294967296) >>> 0;
    const replicator = new Replicator({
      self: id,
      dataDir: `/data/${id}`,
      fs: board.fs,
      logger,
      clock,
      random,
      random32,
      createDatabaseMachine: () => new SqlMachine(this.engine),
      queryTimeoutMs: 5_000,
      wire,
      rpc,
      membership: {
        members: () => this.membersSeenBy(id),
        publish: (key, value) => {
          board.meta = { ...board.meta, [key]: value };
        },
      },
      createSystemMachine: () => new SystemStateMachine(),
      redundancy: this.options.redundancy,
      replaceAfterMs: this.options.replaceAfterMs,
      rebalanceMs: 60_000,
      writeTimeoutMs: this.options.writeTimeoutMs,
      snapshotEntries: this.options.snapshotEntries,
      bootstrapGraceMs: 3_000,
      tickMs: 100,
    });
    board.replicator = replicator;
    board.rpc = rpc;
    this.refreshReach();
    await replicator.start();
  }

  /** SIGKILL: nothing more runs; what was appended but not fsynced is lost. */
  kill(id: string): void {
    const board = this.board(id);
    board.up = false;
    board.paused = false;
    board.held = [];
    board.replicator = undefined;
    board.rpc = undefined;
    board.receive = undefined;
    board.fs.crash();
    this.refreshReach();
  }

  /** The board's card died: it comes back (start) on an empty disk under the same node id. */
  loseDisk(id: string): void {
    this.kill(id);
    this.board(id).fs = new MemoryFs();
  }

  /** SIGSTOP. */
  pause(id: string): void {
    this.board(id).paused = true;
    this.refreshReach();
  }

  /** SIGCONT: the timers and messages that came due meanwhile run now, in order. */
  resume(id: string): void {
    const board = this.board(id);
    if (!board.paused) return;
    board.paused = false;
    const held = board.held;
    board.held = [];
    const incarnation = board.incarnation;
    for (const { timer, fn } of held) {
      this.clock.setTimeout(() => {
        if (timer.cancelled || board.incarnation !== incarnation || !board.up) return;
        if (board.paused) board.held.push({ timer, fn });
        else fn();
      }, 0);
    }
    this.refreshReach();
  }

  /** Boards on different sides cannot talk; boards not named stay with side 0. */
  partition(sides: string[][]): void {
    this.side = new Map();
    sides.forEach((ids, i) => ids.forEach((id) => this.side.set(id, i)));
    this.refreshReach();
  }

  heal(): void {
    this.side = new Map();
    this.refreshReach();
  }

  // ---- the mesh ----

  private linked(a: string, b: string): boolean {
    return this.board(a).up && this.board(b).up && (this.side.get(a) ?? 0) === (this.side.get(b) ?? 0);
  }

  /** Reliable and ordered per pair while the link lasts (a data channel); 1-4 ms per message. */
  private send(from: string, to: string, body: unknown): boolean {
    if (from === to || !this.boards.has(to) || !this.linked(from, to)) return false;
    const src = this.board(from);
    const dst = this.board(to);
    const fromInc = src.incarnation;
    const toInc = dst.incarnation;
    const key = `${from}>${to}`;
    const now = this.now();
    const at = Math.max(this.lastDelivery.get(key) ?? 0, now + 1 + Math.floor(this.random() * 4));
    this.lastDelivery.set(key, at);
    // what a real link does at once: the bytes are copied out (the sender's encoder reuses its buffer)
    body = copyBytes(body);
    this.clock.setTimeout(() => {
      if (!this.linked(from, to) || src.incarnation !== fromInc || dst.incarnation !== toInc) return;
      const deliver = () => dst.receive?.(from, body);
      if (dst.paused) dst.held.push({ timer: new NodeTimer(), fn: deliver });
      else deliver();
    }, at - now);
    return true;
  }

  // ---- membership (an oracle standing in for SWIM) ----

  private reachable(observer: string, target: string): boolean {
    const t = this.board(target);
    return this.linked(observer, target) && !t.paused;
  }

  private refreshReach(): void {
    const now = this.now();
    for (const o of this.ids()) {
      for (const n of this.ids()) {
        if (o === n) continue;
        const key = `${o}>${n}`;
        if (this.reachable(o, n)) {
          this.met.add(key);
          this.unreachableSince.delete(key);
          continue;
        }
        if (this.unreachableSince.has(key)) continue;
        this.unreachableSince.set(key, now);
        // membership suspects the peer: calls waiting on it fail fast (the node wires SWIM to rpc.peerDown)
        this.clock.setTimeout(() => {
          const observer = this.board(o);
          if (this.unreachableSince.get(key) === now && observer.serving) observer.rpc?.peerDown(n);
        }, SUSPECT_MS);
      }
    }
  }

  private membersSeenBy(observer: string): MemberInfo[] {
    const now = this.now();
    const known = this.ids().filter((id) => id === observer || !this.options.meetOnLink || this.met.has(`${observer}>${id}`));
    return known.map((id) => {
      const meta = this.board(id).meta;
      if (id === observer) return { id, state: 'alive', meta };
      const since = this.unreachableSince.get(`${observer}>${id}`);
      const down = since === undefined ? 0 : now - since;
      const state = down < SUSPECT_MS ? 'alive' : down < DEAD_MS ? 'suspect' : 'dead';
      return { id, state, meta };
    });
  }
}
