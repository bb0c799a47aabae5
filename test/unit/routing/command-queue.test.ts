/**
 * A connector's command queue: one worker per command, credit-bounded,
 * commands of a worker that goes away go to another, expired ones are
 * dropped, repeats refused, and the queue is bounded.
 */
import { describe, expect, it } from 'vitest';
import { CommandQueue, type QueuedCommand } from '../../../src/routing/command-queue';
import { SimClock } from '../../helpers/sim/sim-clock';

const cmd = (n: number, command = 'RUN'): QueuedCommand => ({
  uuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  tenant: 't',
  kind: 'command',
  command,
  timeout: 1000,
  timestamp: 0,
  major: 0,
  minor: 0,
  source: { node: 'n', role: 'connector', logical_name: 'l' },
  context: {},
  payload: null,
  attempt: 1,
  hops: 0,
  hop_limit: 8,
});

describe('CommandQueue', () => {
  it('hands each command to one worker, within its credit, the least busy first', () => {
    const clock = new SimClock();
    const q = new CommandQueue(clock);
    const got: Record<string, string[]> = { a: [], b: [] };
    q.attach('a', (env) => got.a!.push(env.uuid));
    q.attach('b', (env) => got.b!.push(env.uuid));
    for (let i = 0; i < 5; i++) expect(q.offer(cmd(i), 1000)).toEqual({ queued: true });
    expect(got.a!.length + got.b!.length).toBe(0); // no credit yet
    q.grant('a', 2);
    q.grant('b', 2);
    expect(got.a).toHaveLength(2);
    expect(got.b).toHaveLength(2);
    expect(new Set([...got.a!, ...got.b!]).size).toBe(4);
    expect(q.size).toBe(5);
    expect(q.finish('a', got.a![0]!)).toBe(true);
    expect(q.finish('a', got.a![0]!)).toBe(false);
    q.grant('a', 1);
    expect(got.a).toHaveLength(3);
    expect(() => q.attach('a', () => {})).toThrow(/attached already/);
  });

  it('refuses a repeated uuid, gives a gone worker\u2019s commands to another, drops expired ones, and is bounded', () => {
    const clock = new SimClock();
    const q = new CommandQueue(clock, 3);
    const got: string[] = [];
    q.attach('a', () => {});
    q.grant('a', 2);
    q.offer(cmd(1), 1000);
    q.offer(cmd(2), 1000);
    expect(q.offer(cmd(1), 1000)).toEqual({ queued: false, duplicate: true });
    q.offer(cmd(3), 10);
    expect(q.offer(cmd(4), 1000)).toMatchObject({ queued: false, error: expect.stringMatching(/holds 3 commands/) });
    clock.advance(20);
    q.attach('b', (env) => got.push(env.uuid));
    q.detach('a');
    q.grant('b', 10);
    expect(got).toEqual([cmd(1).uuid, cmd(2).uuid]); // 3 expired while it waited
    expect(q.redelivered).toBe(2);
    expect(q.expired).toBe(1);
  });

  it('gives a command only to a worker that implements it', () => {
    const clock = new SimClock();
    const q = new CommandQueue(clock);
    const got: string[] = [];
    q.attach('lister', (env) => got.push(`lister ${env.command}`), ['LIST']);
    q.attach('any', (env) => got.push(`any ${env.command}`));
    q.grant('lister', 5);
    q.offer(cmd(1, 'CREATE'), 1000);
    q.offer(cmd(2, 'LIST'), 1000);
    expect(got).toEqual(['lister LIST']);
    q.grant('any', 1);
    expect(got).toEqual(['lister LIST', 'any CREATE']);
  });
});
