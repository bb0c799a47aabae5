/**
 * Session expiry on the system leader, in simulated time, over a replicator
 * stand-in whose leader can be busy (not ready to serve for a moment) or lose
 * its term: a session ends one TTL after its last keepalive however often the
 * leader is busy, gets a full TTL again when leadership moves, and a close
 * that failed is tried again.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { Coordination, type CoordinationReplicator } from '../../../src/replication/coordination';
import type { SystemCall, SystemMachine } from '../../../src/replication/replicator';
import { SystemStateMachine } from '../../../src/replication/system-machine';
import { seededRandom32 } from '../../../src/store/sql-state-machine';
import { SimClock } from '../../helpers/sim/sim-clock';

class StandIn implements CoordinationReplicator {
  readonly machine = new SystemStateMachine();
  private index = 0;
  term: number | undefined = 1;
  ready = true;
  failCloses = 0;
  /** false: this leader was deposed without knowing it yet, so no quorum confirms it (ReadIndex fails). */
  confirmed = true;
  private readonly queries = new Map<string, (m: SystemMachine, a: Record<string, unknown>) => unknown>();
  private readonly calls = new Map<string, SystemCall>();

  /** Closes proposed while set commit only at commitHeld() (a slow commit: a full disk, a slow follower). */
  holdCloses = false;
  private held: (() => void)[] = [];
  commitHeld(): void {
    for (const commit of this.held.splice(0)) commit();
  }

  systemPropose<T = unknown>(command: Record<string, unknown>): Promise<T> {
    if (command.op === 'session-close' && this.failCloses > 0) {
      this.failCloses--;
      return Promise.reject(new Error('no quorum this time'));
    }
    if (command.op === 'session-close' && this.holdCloses) {
      return new Promise<T>((resolve) => this.held.push(() => resolve(this.machine.apply(command, ++this.index) as T)));
    }
    return Promise.resolve(this.machine.apply(command, ++this.index) as T);
  }
  systemProposeAsLeader<T = unknown>(term: number, command: Record<string, unknown>): Promise<T> {
    if (this.term !== term) return Promise.reject(new Error(`not the leader in term ${term}`));
    return this.systemPropose<T>(command);
  }
  systemRead<T = unknown>(query: string, args: Record<string, unknown>): Promise<T> {
    return Promise.resolve(this.queries.get(query)!(this.machine, args) as T);
  }
  systemCall<T = unknown>(name: string, args: Record<string, unknown>, timeoutMs: number): Promise<T> {
    const leader = {
      machine: this.machine,
      propose: (c: Record<string, unknown>) => this.systemPropose(c),
      readBarrier: () => (this.confirmed ? Promise.resolve() : Promise.reject(new Error('no quorum confirmed leadership'))),
      isLeader: () => true,
    };
    return this.calls.get(name)!(leader, args, timeoutMs) as Promise<T>;
  }
  registerSystemQuery(name: string, fn: (m: SystemMachine, a: Record<string, unknown>) => unknown): void {
    this.queries.set(name, fn);
  }
  registerSystemCall(name: string, fn: SystemCall): void {
    this.calls.set(name, fn);
  }
  systemLeaderMachine(): SystemMachine | undefined {
    return this.term !== undefined && this.ready ? this.machine : undefined;
  }
  systemLeaderTerm(): number | undefined {
    return this.term;
  }
}

function setup() {
  const clock = new SimClock();
  const r = new StandIn();
  const c = new Coordination({ self: 'n1', replicator: r, clock, logger: silentLogger, random32: seededRandom32(7), timeoutMs: 1000 });
  c.start();
  const open = async (): Promise<string> => {
    const p = c.openSession(1000);
    clock.advance(0);
    return (await p).session;
  };
  const alive = (id: string) => r.machine.state.session(id) !== undefined;
  /** Advances `ms` in 50 ms steps, letting the sweep's promises settle between them; `each` gets the time of each step. */
  const pass = async (ms: number, each?: (t: number) => void) => {
    for (let t = 0; t < ms; t += 50) {
      each?.(clock.monotonic());
      clock.advance(50);
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
  };
  return { clock, r, c, open, alive, pass };
}

describe('session expiry on the system leader', () => {
  it('a session ends one TTL after its last keepalive, however often the leader is busy', async () => {
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    // busy half of every 500 ms: every other sweep finds the leader busy (before, each such sweep gave every session a new TTL)
    const busy = (t: number) => (r.ready = t % 500 >= 250);
    await pass(1400, busy);
    expect(alive(s), 'not before its TTL').toBe(true);
    await pass(1100, busy);
    expect(alive(s), 'expired within its TTL and a few sweeps').toBe(false);
    c.close();
  });

  it('a new term gives every session a full TTL; a failed close is tried again', async () => {
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    await pass(700);
    r.term = 2; // leadership moved (here again, in a new term)
    await pass(700);
    expect(alive(s), 'a full TTL from the new term').toBe(true);
    r.failCloses = 2;
    await pass(1000);
    expect(alive(s)).toBe(false);
    c.close();
  });

  it('a leader no quorum confirms extends no lease: a keepalive fails there and the session still ends by its TTL', async () => {
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    await pass(900);
    // deposed without knowing it: a newer leader started this session's TTL already, so no keepalive may count here
    r.confirmed = false;
    await expect(c.keepAlive(s)).rejects.toThrow(/no quorum/);
    r.confirmed = true;
    await pass(600);
    expect(alive(s), 'one TTL after the last keepalive that counted').toBe(false);
    c.close();
  });

  it('a session past its deadline takes no keepalive while its close is still on its way', async () => {
    // nemesis (seed 3, a full disk): a keepalive answered while the close was being committed gave the client a
    // lease the close then broke, and its lock went to another session while the client still relied on it
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    r.holdCloses = true;
    await pass(1300);
    expect(alive(s), 'its close is proposed, not committed').toBe(true);
    await expect(c.keepAlive(s)).rejects.toMatchObject({ code: 'unknown_session' });
    r.commitHeld();
    await pass(100);
    expect(alive(s)).toBe(false);
    // a session kept alive in time is not refused
    r.holdCloses = false;
    const t = await open();
    await pass(600);
    await expect(c.keepAlive(t)).resolves.toMatchObject({ session: t });
    c.close();
  });

  it("a sweep stops once leadership moves while one of its closes is being committed: the other deadlines were that term's", async () => {
    // nemesis (seed 3): the system leader, resumed after SIGSTOP, began a sweep with deadlines from before its pause;
    // while its first close waited it lost and won leadership again, and the sweep went on closing sessions that
    // the leader of the meantime had kept alive (their locks went to others while their clients held them)
    const { r, c, open, alive, pass } = setup();
    const s1 = await open();
    const s2 = await open();
    r.holdCloses = true;
    await pass(1300); // both past their deadlines: the sweep waits on the first close
    r.term = undefined; // deposed ...
    r.term = 2; // ... and leading again, in a new term
    r.holdCloses = false;
    r.commitHeld();
    await pass(50);
    const closed = [s1, s2].filter((s) => !alive(s));
    expect(closed, 'the close decided in term 1 and proposed then commits; no other').toHaveLength(1);
    await pass(600);
    expect([s1, s2].filter(alive), 'the other session got a full TTL in the new term').toHaveLength(1);
    c.close();
  });

  it('a node that is not the leader never closes a session', async () => {
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    r.term = undefined;
    await pass(3000);
    expect(alive(s)).toBe(true);
    c.close();
  });
});
