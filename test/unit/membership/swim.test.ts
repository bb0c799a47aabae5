/**
 * One Swim instance driven by hand: messages in through handle(), messages
 * out recorded, time from a SimClock.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors';
import type { Logger } from '../../../src/core/logger';
import { Swim, type Member, type MemberState, type MemberUpdate, type SwimConfig, type SwimMessage } from '../../../src/membership/swim';
import { mulberry32 } from '../../helpers/sim/prng';
import { SimClock } from '../../helpers/sim/sim-clock';

interface Sent {
  at: number;
  to: string;
  reliable: boolean;
  message: SwimMessage;
}

function setup(config: Partial<SwimConfig> = {}) {
  const clock = new SimClock();
  const sent: Sent[] = [];
  const logs: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => logs.push(m), error: (m) => logs.push(m), child: () => logger };
  const record = (reliable: boolean) => (to: string, message: SwimMessage) => sent.push({ at: clock.monotonic(), to, reliable, message });
  const swim = new Swim({
    self: { id: 'a', endpoint: 'http://a', meta: { arch: 'x64' } },
    clock,
    random: mulberry32(7),
    network: { sendDatagram: record(false), sendReliable: record(true) },
    logger,
    config,
  });
  const events: [string, MemberState, MemberState | undefined][] = [];
  swim.onChange((m, previous) => events.push([m.id, m.state, previous]));
  return {
    clock,
    swim,
    logs,
    events,
    /** Messages sent since the last call. */
    take: (): Sent[] => sent.splice(0),
    /** Makes `ids` known and alive (a push-pull answer from the first of them). */
    know: (...ids: string[]) => swim.handle(ids[0]!, { type: 'push-pull', reply: true, members: ids.map((id) => claim(id, 'alive')) }),
  };
}

function claim(id: string, state: MemberState, incarnation = 0, by = id, meta: Record<string, string> = {}): MemberUpdate {
  return { id, endpoint: `http://${id}`, meta, state, incarnation, by };
}

const gossip = (...updates: MemberUpdate[]): SwimMessage => ({ type: 'gossip', updates });
const ofType = <T extends SwimMessage['type']>(sent: Sent[], type: T) =>
  sent.filter((s) => s.message.type === type) as (Sent & { message: Extract<SwimMessage, { type: T }> })[];
const stateOf = (swim: Swim, id: string) => swim.member(id)?.state;

describe('Swim', () => {
  it('rejects an invalid self or config with a ConfigError', () => {
    const base = {
      clock: new SimClock(),
      random: Math.random,
      network: { sendDatagram() {}, sendReliable() {} },
      logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => base.logger },
    };
    expect(() => new Swim({ ...base, self: { id: '', endpoint: 'e', meta: {} } })).toThrow(ConfigError);
    expect(() => new Swim({ ...base, self: { id: 'a', endpoint: '', meta: {} } })).toThrow(ConfigError);
    expect(() => new Swim({ ...base, self: { id: 'a', endpoint: 'e', meta: { 'bad key': 'x' } } })).toThrow(ConfigError);
    expect(() => new Swim({ ...base, self: { id: 'a', endpoint: 'e', meta: {} }, config: { probeTimeoutMs: 5000 } })).toThrow(ConfigError);
  });

  it('lists itself alive at incarnation 0, members sorted by id, copies only', () => {
    const { swim, know } = setup();
    know('c', 'b');
    expect(swim.members().map((m) => m.id)).toEqual(['a', 'b', 'c']);
    const self = swim.member('a')!;
    expect(self).toMatchObject({ id: 'a', endpoint: 'http://a', meta: { arch: 'x64' }, state: 'alive', incarnation: 0 });
    self.meta.arch = 'changed';
    expect(swim.member('a')!.meta.arch).toBe('x64');
  });

  it('answers a ping meant for it with an ack carrying its news, and ignores one meant for someone else', () => {
    const { swim, take, know } = setup();
    know('b');
    take();
    swim.handle('b', { type: 'ping', seq: 9, target: 'a', updates: [] });
    const [ack] = ofType(take(), 'ack');
    expect(ack).toMatchObject({ to: 'b', reliable: false, message: { seq: 9 } });
    expect(ack!.message.updates.map((u) => u.id).sort()).toEqual(['a', 'b']);
    swim.handle('b', { type: 'ping', seq: 10, target: 'zz', updates: [claim('c', 'alive')] });
    expect(take().filter((s) => s.message.type === 'ack')).toEqual([]);
    expect(stateOf(swim, 'c')).toBe('alive');
  });

  it('probe round: ping, ping-req to k helpers at the timeout, suspect at the end of the interval; missed nacks cost health', () => {
    const { swim, take, clock, know } = setup();
    know('b', 'c', 'd', 'e');
    swim.start();
    take();
    clock.runUntil(1000);
    const [ping] = ofType(take(), 'ping');
    expect(ping).toBeDefined();
    const target = ping!.to;
    clock.runUntil(ping!.at + 499);
    expect(take()).toEqual([]);
    clock.runUntil(ping!.at + 500);
    const requests = ofType(take(), 'ping-req');
    expect(requests.map((r) => r.to).sort()).toEqual(['b', 'c', 'd', 'e'].filter((id) => id !== target));
    expect(requests.every((r) => r.message.seq === ping!.message.seq && r.message.target === target)).toBe(true);
    // Two of three helpers report that the target did not answer them either; one stays silent.
    for (const r of requests.slice(0, 2)) swim.handle(r.to, { type: 'nack', seq: ping!.message.seq, updates: [] });
    clock.runUntil(ping!.at + 999);
    expect(stateOf(swim, target)).toBe('alive');
    clock.runUntil(ping!.at + 1000);
    expect(stateOf(swim, target)).toBe('suspect');
    expect(swim.health()).toBe(1);
    // The next round starts at once; the one after that is stretched by health + 1.
    const [next] = ofType(take(), 'ping');
    expect(next!.at).toBe(ping!.at + 1000);
    swim.handle(next!.to, { type: 'ack', seq: next!.message.seq, updates: [] });
    expect(swim.health()).toBe(0);
    expect(swim.rttMs(next!.to)).toBe(0);
    clock.runUntil(next!.at + 2 * 1000 - 1);
    expect(ofType(take(), 'ping')).toEqual([]);
  });

  it('an ack relayed by a helper counts; a ping to a suspect member carries its suspicion', () => {
    const { swim, take, clock, know } = setup();
    know('b', 'c');
    swim.handle('c', gossip(claim('b', 'suspect', 0, 'c')));
    swim.start();
    take();
    clock.runUntil(1000);
    let [ping] = ofType(take(), 'ping');
    if (ping!.to !== 'b') {
      swim.handle('c', { type: 'ack', seq: ping!.message.seq, updates: [] });
      clock.runUntil(ping!.at + 1000);
      [ping] = ofType(take(), 'ping');
    }
    expect(ping!.to).toBe('b');
    expect(ping!.message.updates[0]).toMatchObject({ id: 'b', state: 'suspect' });
    clock.runUntil(ping!.at + 500);
    const [request] = ofType(take(), 'ping-req');
    expect(request!.to).toBe('c');
    swim.handle('c', { type: 'ack', seq: ping!.message.seq, updates: [] });
    clock.runUntil(ping!.at + 1000);
    expect(swim.health()).toBe(0);
    expect(swim.rttMs('b')).toBeUndefined();
  });

  it('suspicion: dead after the Lifeguard timeout, shortened by each independent confirmation', () => {
    const { swim, clock, know, events } = setup();
    know('b', 'c', 'd', 'e'); // n = 5: min 4 s, max 24 s, K = 3
    swim.handle('c', gossip(claim('b', 'suspect', 0, 'c')));
    clock.runUntil(1000);
    swim.handle('c', gossip(claim('b', 'suspect', 0, 'c'))); // same accuser: not a confirmation
    swim.handle('d', gossip(claim('b', 'suspect', 0, 'd'))); // 1 confirmation: 24 - 20 * log 2 / log 4 = 14 s
    clock.runUntil(13_999);
    expect(stateOf(swim, 'b')).toBe('suspect');
    clock.runUntil(14_000);
    expect(stateOf(swim, 'b')).toBe('dead');
    expect(events.filter(([id]) => id === 'b')).toEqual([
      ['b', 'alive', undefined],
      ['b', 'suspect', 'alive'],
      ['b', 'dead', 'suspect'],
    ]);
  });

  it('a refutation (alive at a higher incarnation) cancels the suspicion', () => {
    const { swim, clock, know } = setup();
    know('b', 'c');
    swim.handle('c', gossip(claim('b', 'suspect', 0, 'c')));
    swim.handle('b', gossip(claim('b', 'alive', 1)));
    clock.runUntil(60_000);
    expect(swim.member('b')).toMatchObject({ state: 'alive', incarnation: 1 });
  });

  it('refutes a suspicion of itself with a higher incarnation and answers the teller directly; an old one is only answered', () => {
    const { swim, take, know } = setup();
    know('b', 'c');
    take();
    swim.handle('b', gossip(claim('a', 'suspect', 0, 'b')));
    expect(swim.member('a')).toMatchObject({ state: 'alive', incarnation: 1 });
    expect(swim.health()).toBe(1);
    expect(take()).toEqual([expect.objectContaining({ to: 'b', message: gossip({ ...claim('a', 'alive', 1), endpoint: 'http://a', meta: { arch: 'x64' } }) })]);
    swim.handle('c', gossip(claim('a', 'dead', 0, 'c')));
    expect(swim.member('a')!.incarnation).toBe(1);
    expect(take().map((s) => [s.to, s.message.type])).toEqual([['c', 'gossip']]);
    swim.handle('c', gossip(claim('a', 'dead', 4, 'c')));
    expect(swim.member('a')).toMatchObject({ state: 'alive', incarnation: 5 });
    // An alive claim from an earlier life of this id is outdone too.
    swim.handle('b', gossip(claim('a', 'alive', 9)));
    expect(swim.member('a')!.incarnation).toBe(10);
  });

  it('leave: left with a raised incarnation, told to every member by datagram and to three reliably; then no probing', () => {
    const { swim, take, clock, know, events } = setup();
    know('b', 'c', 'd', 'e', 'f');
    swim.start();
    clock.runUntil(5000);
    take();
    swim.leave();
    expect(swim.member('a')).toMatchObject({ state: 'left', incarnation: 1 });
    expect(events.at(-1)).toEqual(['a', 'left', 'alive']);
    const sent = take();
    const left = gossip({ ...claim('a', 'left', 1), endpoint: 'http://a', meta: { arch: 'x64' } });
    expect(sent.every((s) => JSON.stringify(s.message) === JSON.stringify(left))).toBe(true);
    expect(
      sent
        .filter((s) => !s.reliable)
        .map((s) => s.to)
        .sort(),
    ).toEqual(['b', 'c', 'd', 'e', 'f']);
    expect(sent.filter((s) => s.reliable)).toHaveLength(3);
    clock.runUntil(60_000);
    expect(ofType(take(), 'ping')).toEqual([]);
    // A left node does not refute; it still answers pings, carrying the news.
    swim.handle('b', gossip(claim('a', 'suspect', 1, 'b')));
    expect(swim.member('a')).toMatchObject({ state: 'left', incarnation: 1 });
    swim.handle('b', { type: 'ping', seq: 1, target: 'a', updates: [] });
    expect(ofType(take(), 'ack')).toHaveLength(1);
    expect(() => swim.setMeta({})).toThrow(/leave/);
  });

  it('setMeta disseminates the new meta with a raised incarnation and reports the change', () => {
    const { swim, take, know, events } = setup();
    know('b');
    take();
    swim.setMeta({ arch: 'x64', transport: 'native' });
    expect(swim.member('a')).toMatchObject({ incarnation: 1, meta: { arch: 'x64', transport: 'native' } });
    expect(events.at(-1)).toEqual(['a', 'alive', 'alive']);
    swim.handle('b', { type: 'ping', seq: 1, target: 'a', updates: [] });
    const [ack] = ofType(take(), 'ack');
    expect(ack!.message.updates).toContainEqual({ ...claim('a', 'alive', 1), endpoint: 'http://a', meta: { arch: 'x64', transport: 'native' } });
    expect(() => swim.setMeta({ 'bad key': 'x' })).toThrow(ConfigError);
  });

  it('piggybacks at most maxPiggyback updates per message, each at most retransmitMult * ceil(log10(n + 1)) times', () => {
    const { swim, take, know } = setup({ maxPiggyback: 3 });
    const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
    know(...ids);
    take();
    const limit = 4 * Math.ceil(Math.log10(11 + 1));
    const counts = new Map<string, number>();
    for (let seq = 0; seq < 40; seq++) {
      swim.handle('m0', { type: 'ping', seq, target: 'a', updates: [] });
      const [ack] = ofType(take(), 'ack');
      expect(ack!.message.updates.length).toBeLessThanOrEqual(3);
      for (const u of ack!.message.updates) counts.set(u.id, (counts.get(u.id) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual(Array(11).fill(limit));
  });

  it('push-pull: answers with its own state; a member called dead there is only suspected here', () => {
    const { swim, take, know } = setup();
    know('b', 'c');
    take();
    swim.handle('b', { type: 'push-pull', reply: false, members: [claim('b', 'alive'), claim('c', 'dead', 0, 'b'), claim('d', 'alive'), claim('e', 'dead')] });
    expect(stateOf(swim, 'c')).toBe('suspect');
    expect(stateOf(swim, 'd')).toBe('alive');
    expect(swim.member('e')).toBeUndefined();
    const [reply] = ofType(take(), 'push-pull');
    expect(reply).toMatchObject({ to: 'b', reliable: true, message: { reply: true } });
    expect(reply!.message.members.map((m) => `${m.id}=${m.state}`)).toEqual(['a=alive', 'b=alive', 'c=suspect', 'd=alive']);
  });

  it('join: push-pull to each peer (not itself); all join peers tried again at push-pull ticks while alone', () => {
    const { swim, take, clock } = setup();
    swim.join([
      { id: 'b', endpoint: 'http://b' },
      { id: 'a', endpoint: 'http://a' },
    ]);
    swim.join([{ id: 'c', endpoint: 'http://c' }]);
    expect(take().map((s) => [s.to, s.reliable, s.message.type])).toEqual([
      ['b', true, 'push-pull'],
      ['c', true, 'push-pull'],
    ]);
    swim.start();
    clock.runUntil(30_000);
    expect(ofType(take(), 'push-pull').map((s) => s.to)).toEqual(['b', 'c']);
    swim.handle('b', { type: 'push-pull', reply: true, members: [claim('b', 'alive')] });
    expect(stateOf(swim, 'b')).toBe('alive');
  });

  it('exchanges state with an unknown sender, at most once per push-pull interval', () => {
    const { swim, take, clock } = setup();
    swim.handle('z', { type: 'ping', seq: 1, target: 'a', updates: [] });
    swim.handle('z', { type: 'ping', seq: 2, target: 'a', updates: [] });
    expect(ofType(take(), 'push-pull').map((s) => s.to)).toEqual(['z']);
    clock.runUntil(30_000);
    swim.handle('z', { type: 'ack', seq: 1, updates: [] });
    expect(ofType(take(), 'push-pull').map((s) => s.to)).toEqual(['z']);
  });

  it('relays a ping-req: pings the target, relays its ack, or sends a nack when none came', () => {
    const { swim, take, clock, know } = setup();
    know('b', 'c');
    take();
    swim.handle('b', { type: 'ping-req', seq: 7, target: 'c', updates: [] });
    const [ping] = ofType(take(), 'ping');
    expect(ping).toMatchObject({ to: 'c', message: { target: 'c' } });
    swim.handle('c', { type: 'ack', seq: ping!.message.seq, updates: [] });
    expect(take().map((s) => [s.to, s.message.type, (s.message as { seq: number }).seq])).toEqual([['b', 'ack', 7]]);
    swim.handle('b', { type: 'ping-req', seq: 8, target: 'c', updates: [] });
    take();
    clock.runUntil(399);
    expect(take()).toEqual([]);
    clock.runUntil(400);
    expect(take().map((s) => [s.to, s.message.type, (s.message as { seq: number }).seq])).toEqual([['b', 'nack', 8]]);
  });

  it('forgets the dead after gossipToTheDeadMs (telling them meanwhile) and takes them back when alive again', () => {
    const { swim, take, clock, know, events } = setup();
    know('b', 'c');
    swim.handle('c', gossip(claim('b', 'dead', 0, 'c')));
    swim.start();
    clock.runUntil(29_000);
    expect(stateOf(swim, 'b')).toBe('dead');
    const notices = ofType(take(), 'gossip').filter((s) => s.to === 'b');
    expect(notices.length).toBeGreaterThan(0);
    expect(notices.every((s) => s.message.updates[0]?.state === 'dead')).toBe(true);
    clock.runUntil(31_000 * 8); // ticks may be stretched by health (c never answers)
    expect(swim.member('b')).toBeUndefined();
    swim.handle('c', gossip(claim('b', 'alive', 1)));
    expect(swim.member('b')).toMatchObject({ state: 'alive', incarnation: 1 });
    expect(events.at(-1)).toEqual(['b', 'alive', undefined]);
  });

  it('never throws from handle; a throwing listener is logged and the others still hear', () => {
    const { swim, logs } = setup();
    const heard: Member[] = [];
    swim.onChange(() => {
      throw new Error('listener bug');
    });
    const unsubscribe = swim.onChange((m) => heard.push(m));
    expect(() => swim.handle('b', null as unknown as SwimMessage)).not.toThrow();
    expect(() => swim.handle('b', { type: 'ping' } as unknown as SwimMessage)).not.toThrow();
    swim.handle('b', gossip(claim('b', 'alive')));
    expect(heard.map((m) => m.id)).toEqual(['b']);
    expect(logs.some((l) => /listener failed/.test(l))).toBe(true);
    expect(logs.some((l) => /failed to handle/.test(l))).toBe(true);
    unsubscribe();
    swim.handle('c', gossip(claim('c', 'alive')));
    expect(heard).toHaveLength(1);
  });

  it('stop: no timers and no messages afterwards', () => {
    const { swim, take, clock, know } = setup();
    know('b', 'c');
    swim.handle('c', gossip(claim('b', 'suspect', 0, 'c')));
    swim.start();
    clock.runUntil(3000);
    swim.stop();
    take();
    clock.runUntil(120_000);
    swim.handle('b', { type: 'ping', seq: 1, target: 'a', updates: [] });
    swim.join([{ id: 'c', endpoint: 'http://c' }]);
    swim.leave();
    expect(take()).toEqual([]);
    expect(stateOf(swim, 'b')).toBe('suspect');
    expect(() => swim.start()).toThrow();
  });
});
