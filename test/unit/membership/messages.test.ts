import { describe, expect, it } from 'vitest';
import { MAX_UPDATES } from '../../../src/membership/messages';
import { parseSwimMessage, type MemberUpdate, type SwimMessage } from '../../../src/membership/swim';
import { mulberry32 } from '../../helpers/sim/prng';
import { forEachSeed } from '../../helpers/sim/seeds';

const update = (over: Partial<MemberUpdate> = {}): MemberUpdate => ({
  id: 'n1',
  endpoint: 'http://10.0.0.2:8421',
  meta: { arch: 'arm64', transport: 'native', roles: 'cluster' },
  state: 'alive',
  incarnation: 3,
  by: 'n1',
  ...over,
});

const updates: MemberUpdate[] = [
  update(),
  update({ id: 'n2', state: 'suspect', by: 'n3', meta: {} }),
  update({ id: 'n3', state: 'dead', incarnation: 0, by: 'n0' }),
  update({ id: 'n4', state: 'left', incarnation: Number.MAX_SAFE_INTEGER }),
];

const VALID: SwimMessage[] = [
  { type: 'ping', seq: 0, target: 'n1', updates: [] },
  { type: 'ping', seq: 17, target: 'n1', updates },
  { type: 'ping-req', seq: 18, target: 'n2', updates },
  { type: 'ack', seq: 17, updates },
  { type: 'nack', seq: 18, updates: [] },
  { type: 'gossip', updates },
  { type: 'push-pull', reply: false, members: updates },
  { type: 'push-pull', reply: true, members: [] },
];

const roundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
const withField = (message: SwimMessage, field: string, value: unknown): unknown => ({ ...message, [field]: value });
const withUpdate = (over: Record<string, unknown>): unknown => ({ type: 'gossip', updates: [{ ...update(), ...over }] });

describe('parseSwimMessage', () => {
  it('accepts every message type round-tripped through JSON, unchanged', () => {
    for (const message of VALID) expect(parseSwimMessage(roundTrip(message)), message.type).toEqual(message);
  });

  it('returns a copy holding only the known fields', () => {
    const input = { ...VALID[1], extra: 1, updates: [{ ...update(), extra: 'x' }] };
    const parsed = parseSwimMessage(input);
    expect(parsed).toEqual({ type: 'ping', seq: 17, target: 'n1', updates: [update()] });
    expect((parsed as { updates: unknown[] }).updates[0]).not.toBe(input.updates[0]);
  });

  it('rejects values that are not messages', () => {
    const garbage: unknown[] = [
      undefined,
      null,
      0,
      1,
      'ping',
      true,
      [],
      [VALID[0]],
      {},
      { type: 'pong', seq: 1, updates: [] },
      { type: 'PING', seq: 1, target: 'a', updates: [] },
      new Map([['type', 'gossip']]),
      Object.assign(Object.create({ inherited: 1 }) as object, { type: 'gossip', updates: [] }),
    ];
    for (const value of garbage) expect(parseSwimMessage(value), String(value)).toBeUndefined();
  });

  it('rejects wrong types and out-of-bounds numbers', () => {
    const ping = VALID[1]!;
    for (const seq of [-1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1, '1', null, undefined]) {
      expect(parseSwimMessage(withField(ping, 'seq', seq)), `seq ${String(seq)}`).toBeUndefined();
    }
    for (const target of ['', 'x'.repeat(129), 7, null, ['n1']]) {
      expect(parseSwimMessage(withField(ping, 'target', target)), `target ${String(target)}`).toBeUndefined();
    }
    expect(parseSwimMessage(withField(ping, 'target', 'x'.repeat(128)))).toBeDefined();
    expect(parseSwimMessage(withField(ping, 'updates', undefined))).toBeUndefined();
    expect(parseSwimMessage(withField(ping, 'updates', {}))).toBeUndefined();
    expect(parseSwimMessage(withField(VALID[6]!, 'reply', 'false'))).toBeUndefined();
    expect(parseSwimMessage({ type: 'push-pull', reply: true })).toBeUndefined();
  });

  it('rejects malformed updates', () => {
    const bad: Record<string, unknown>[] = [
      { id: '' },
      { id: 'x'.repeat(129) },
      { id: 3 },
      { endpoint: '' },
      { endpoint: 'h'.repeat(513) },
      { endpoint: null },
      { state: 'zombie' },
      { state: 'ALIVE' },
      { incarnation: -1 },
      { incarnation: 0.5 },
      { incarnation: '2' },
      { by: '' },
      { by: undefined },
      { meta: null },
      { meta: [] },
      { meta: 'arch=x64' },
      { meta: { arch: 64 } },
      { meta: { '': 'x' } },
      { meta: { 'bad key': 'x' } },
      { meta: JSON.parse('{"__proto__": "x"}') as unknown },
      { meta: { _x: 'x' } },
      { meta: { k: 'v'.repeat(257) } },
      { meta: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
    ];
    for (const over of bad) expect(parseSwimMessage(roundTrip(withUpdate(over))), JSON.stringify(over)).toBeUndefined();
    expect(parseSwimMessage({ type: 'gossip', updates: [null] })).toBeUndefined();
    expect(parseSwimMessage({ type: 'gossip', updates: [{ ...update(), meta: new Map() }] })).toBeUndefined();
    const { by: _by, ...withoutBy } = update();
    expect(parseSwimMessage({ type: 'gossip', updates: [withoutBy] })).toBeUndefined();
  });

  it(`bounds arrays at ${MAX_UPDATES} updates`, () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => update({ id: `n${i}` }));
    expect(parseSwimMessage({ type: 'push-pull', reply: false, members: many(MAX_UPDATES) })).toBeDefined();
    expect(parseSwimMessage({ type: 'push-pull', reply: false, members: many(MAX_UPDATES + 1) })).toBeUndefined();
    expect(parseSwimMessage({ type: 'gossip', updates: many(MAX_UPDATES + 1) })).toBeUndefined();
  });

  it('never throws, even on hostile objects', () => {
    const hostile = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom');
        },
        ownKeys: () => {
          throw new Error('boom');
        },
      },
    );
    expect(parseSwimMessage(hostile)).toBeUndefined();
    const getter = {
      type: 'gossip',
      get updates(): unknown {
        throw new Error('boom');
      },
    };
    expect(parseSwimMessage(getter)).toBeUndefined();
  });

  it('survives thousands of random mutations of valid messages: undefined or a valid message, never a throw', () => {
    forEachSeed(5, (seed) => {
      const random = mulberry32(seed);
      for (let i = 0; i < 1000; i++) {
        const input = mutate(roundTrip(VALID[Math.floor(random() * VALID.length)]), random);
        let parsed: SwimMessage | undefined;
        expect(() => (parsed = parseSwimMessage(input))).not.toThrow();
        if (parsed) {
          // What is accepted is plain data and a fixed point of the parser.
          expect(parseSwimMessage(roundTrip(parsed))).toEqual(parsed);
        }
      }
      for (let i = 0; i < 500; i++) {
        const value = randomValue(random, 3);
        expect(() => parseSwimMessage(value)).not.toThrow();
      }
    });
  });
});

/** Applies 1..3 random edits (replace, delete, add, grow an array) somewhere inside `value`. */
function mutate(value: unknown, random: () => number): unknown {
  let root = value;
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const containers: (Record<string, unknown> | unknown[])[] = [];
    collect(root, containers);
    if (containers.length === 0) return randomValue(random, 2);
    const target = containers[Math.floor(random() * containers.length)]!;
    const keys = Object.keys(target);
    const key = keys.length ? keys[Math.floor(random() * keys.length)]! : 'type';
    const op = random();
    if (op < 0.5) (target as Record<string, unknown>)[key] = randomValue(random, 2);
    else if (op < 0.7) delete (target as Record<string, unknown>)[key];
    else if (op < 0.85)
      (target as Record<string, unknown>)[pick(random, ['type', 'seq', 'target', 'updates', 'members', 'reply', 'meta', 'state', 'x'])] = randomValue(
        random,
        1,
      );
    else if (Array.isArray(target)) for (let n = Math.floor(random() * 1100); n > 0; n--) target.push(update({ id: `m${n}` }));
    else root = randomValue(random, 2);
  }
  return root;
}

function collect(value: unknown, out: (Record<string, unknown> | unknown[])[]): void {
  if (typeof value !== 'object' || value === null) return;
  out.push(value as Record<string, unknown> | unknown[]);
  for (const child of Object.values(value)) collect(child, out);
}

function randomValue(random: () => number, depth: number): unknown {
  const choices: (() => unknown)[] = [
    () => null,
    () => undefined,
    () => random() < 0.5,
    () => Math.floor(random() * 2000) - 1000,
    () => random() * 1e20,
    () => pick(random, [NaN, Infinity, -Infinity, -0, Number.MAX_SAFE_INTEGER + 2, 2 ** 31]),
    () => pick(random, ['', 'ping', 'ping-req', 'ack', 'nack', 'gossip', 'push-pull', 'alive', 'suspect', 'dead', 'left', 'n1', '__proto__']),
    () => 'x'.repeat(Math.floor(random() * 600)),
    () => (depth > 0 ? Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth - 1)) : []),
    () =>
      depth > 0
        ? Object.fromEntries(
            Array.from({ length: Math.floor(random() * 4) }, () => [pick(random, ['type', 'seq', 'id', 'meta', 'by', 'k']), randomValue(random, depth - 1)]),
          )
        : {},
    () => update({ incarnation: Math.floor(random() * 10) }),
  ];
  return pick(random, choices)();
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}
