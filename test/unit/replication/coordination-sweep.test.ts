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
  private readonly queries = new Map<string, (m: SystemMachine, a: Record<string, unknown>) => unknown>();
  private readonly calls = new Map<string, SystemCall>();

  systemPropose<T = unknown>(command: Record<string, unknown>): Promise<T> {
    if (command.op === 'session-close' && this.failCloses > 0) {
      this.failCloses--;
      return Promise.reject(new Error('no quorum this time'));
    }
    return Promise.resolve(this.machine.apply(command, ++this.index) as T);
  }
  systemRead<T = unknown>(query: string, args: Record<string, unknown>): Promise<T> {
    return Promise.resolve(this.queries.get(query)!(this.machine, args) as T);
  }
  systemCall<T = unknown>(name: string, args: Record<string, unknown>, timeoutMs: number): Promise<T> {
    const leader = { machine: this.machine, propose: (c: Record<string, unknown>) => this.systemPropose(c), readBarrier: async () => {}, isLeader: () => true };
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

  it('a node that is not the leader never closes a session', async () => {
    const { r, c, open, alive, pass } = setup();
    const s = await open();
    r.term = undefined;
    await pass(3000);
    expect(alive(s)).toBe(true);
    c.close();
  });
});
