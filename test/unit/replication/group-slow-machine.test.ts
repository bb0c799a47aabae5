/**
 * A state machine that takes long (SQL on its worker thread) must not stall
 * Raft: the loop keeps persisting, sending heartbeats and committing while an
 * entry is being applied, and the machine still sees every call in log order.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/core/clock';
import { silentLogger } from '../../../src/core/logger';
import { ReplicaGroup, type GroupMachine } from '../../../src/replication/group';
import type { RaftMessage } from '../../../src/replication/raft';
import { nodeDataFs } from '../../../src/store/data-fs';
import { mulberry32 } from '../../helpers/sim/prng';
import { tempDir } from '../../helpers/tmp';

/** Applies `slow:<ms>` only after that many ms, everything else at once; answers in log order like a worker. */
class SlowMachine implements GroupMachine {
  items: string[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  apply(data: unknown): Promise<unknown> {
    const item = String(data);
    const ms = item.startsWith('slow:') ? Number(item.slice(5)) : 0;
    this.tail = this.tail.then(
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            this.items.push(item);
            resolve(this.items.length);
          }, ms),
        ),
    );
    return this.tail;
  }
  async snapshot(): Promise<Uint8Array> {
    await this.tail;
    return Buffer.from(JSON.stringify(this.items));
  }
  restore(image: Uint8Array | undefined): void {
    this.items = image ? (JSON.parse(Buffer.from(image).toString('utf8')) as string[]) : [];
  }
}

const IDS = ['a', 'b', 'c'];

describe('ReplicaGroup with a slow state machine', () => {
  it('keeps its leader and commits while an entry applies for 1.5 s; applies in log order', async () => {
    const live = new Map<string, { group: ReplicaGroup; machine: SlowMachine }>();
    for (const id of IDS) {
      const machine = new SlowMachine();
      const group = await ReplicaGroup.open({
        name: 'g',
        self: id,
        dir: tempDir(`gandalf-slow-${id}-`),
        fs: nodeDataFs,
        logger: silentLogger,
        clock: systemClock,
        random: mulberry32(id.charCodeAt(0)),
        machine,
        bootstrap: IDS,
        send: (m: RaftMessage) => setTimeout(() => live.get(m.to)?.group.step(structuredClone(m)), 0),
        tickMs: 10,
        raft: { electionTicks: 10 }, // an election timeout of 100-200 ms
        snapshotEntries: 3,
      });
      live.set(id, { group, machine });
    }
    const until = Date.now() + 5000;
    let leader: ReplicaGroup | undefined;
    while (!(leader = [...live.values()].find((r) => r.group.isLeaderReady())?.group)) {
      if (Date.now() > until) throw new Error('no leader');
      await new Promise((r) => setTimeout(r, 10));
    }
    const term = leader.status().term;
    const slow = leader.propose('slow:1500', 10_000);
    const fast = leader.propose('fast', 10_000);
    const start = Date.now();
    let committedWhileSlow = false;
    while (Date.now() - start < 1300) {
      await new Promise((r) => setTimeout(r, 20));
      if (leader.commitIndex >= leader.appliedIndex + 2) committedWhileSlow = true;
      // nobody campaigned: the loop kept heartbeating
      for (const r of live.values()) expect(r.group.status().term).toBe(term);
    }
    expect(committedWhileSlow).toBe(true);
    expect(leader.isLeader).toBe(true);
    expect(await slow).toBe(1);
    expect(await fast).toBe(2);
    const more = await leader.propose('after', 10_000);
    expect(more).toBe(3);
    await new Promise((r) => setTimeout(r, 1700)); // followers apply the slow entry too
    for (const r of live.values()) expect(r.machine.items).toEqual(['slow:1500', 'fast', 'after']);
    for (const r of live.values()) await r.group.close(0);
  }, 20_000);
});
