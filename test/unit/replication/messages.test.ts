/**
 * parseRaftMessage: well-formed messages of every type come back as equal
 * plain copies; malformed ones (wrong types, bounds, inconsistent entries,
 * garbage, throwing getters) give undefined and never throw.
 */
import { describe, expect, it } from 'vitest';
import { parseRaftMessage, type RaftMessage } from '../../../src/replication/raft';
import { mulberry32 } from '../../helpers/sim/prng';

const base = { term: 5, from: 'a', to: 'b' };
const valid: RaftMessage[] = [
  { type: 'vote', ...base, pre: true, lastIndex: 10, lastTerm: 4, transfer: false },
  { type: 'vote-resp', ...base, pre: false, granted: true },
  {
    type: 'append',
    ...base,
    prevIndex: 3,
    prevTerm: 2,
    commit: 3,
    entries: [
      { index: 4, term: 2, data: { sql: 'x' } },
      { index: 5, term: 5, data: null, kind: 'noop' },
      { index: 6, term: 5, data: { change: { type: 'add-learner', node: 'c' }, voters: ['a', 'b'], learners: ['c'] }, kind: 'conf' },
    ],
  },
  { type: 'append-resp', ...base, success: false, index: 7, hintIndex: 3, hintTerm: 2 },
  { type: 'heartbeat', ...base, commit: 9, ctx: 2 },
  { type: 'heartbeat-resp', ...base, ctx: 2 },
  { type: 'snapshot', ...base, snapshot: { index: 100, term: 4, data: [1, 2], voters: ['a', 'b'], learners: [] } },
  { type: 'timeout-now', ...base },
];

describe('parseRaftMessage', () => {
  it('accepts every well-formed message type and returns an equal copy', () => {
    for (const m of valid) {
      const parsed = parseRaftMessage(JSON.parse(JSON.stringify(m)));
      expect(parsed).toEqual(m);
      expect(parsed).not.toBe(m);
    }
  });

  it('drops unknown fields', () => {
    expect(parseRaftMessage({ ...valid[5], extra: 1, __proto__: { x: 1 } })).toEqual(valid[5]);
  });

  it.each([
    ['not an object', 42],
    ['null', null],
    ['an array', [valid[0]]],
    ['unknown type', { ...base, type: 'nope' }],
    ['negative term', { ...valid[1], term: -1 }],
    ['fractional term', { ...valid[1], term: 1.5 }],
    ['unsafe integer', { ...valid[4], commit: 2 ** 60 }],
    ['empty node id', { ...valid[1], from: '' }],
    ['overlong node id', { ...valid[1], to: 'x'.repeat(300) }],
    ['message to itself', { ...valid[1], to: 'a' }],
    ['vote with lastTerm above term', { ...valid[0], lastTerm: 6 }],
    ['vote without pre', { ...valid[0], pre: undefined }],
    ['entries not contiguous', { ...valid[2], entries: [{ index: 5, term: 2, data: 1 }] }],
    ['entry term above message term', { ...valid[2], entries: [{ index: 4, term: 6, data: 1 }] }],
    [
      'entry term decreasing',
      {
        ...valid[2],
        entries: [
          { index: 4, term: 3, data: 1 },
          { index: 5, term: 2, data: 1 },
        ],
      },
    ],
    ['entry term below prevTerm', { ...valid[2], entries: [{ index: 4, term: 1, data: 1 }] }],
    ['entries not an array', { ...valid[2], entries: {} }],
    ['unknown entry kind', { ...valid[2], entries: [{ index: 4, term: 2, data: 1, kind: 'weird' }] }],
    [
      'conf entry with bad data',
      { ...valid[2], entries: [{ index: 4, term: 2, data: { change: { type: 'x', node: 'c' }, voters: [], learners: [] }, kind: 'conf' }] },
    ],
    [
      'conf entry with a voter that is also a learner',
      { ...valid[2], entries: [{ index: 4, term: 2, data: { change: { type: 'promote', node: 'c' }, voters: ['c'], learners: ['c'] }, kind: 'conf' }] },
    ],
    ['snapshot without voters', { ...valid[6], snapshot: { index: 1, term: 1, data: null } }],
    ['snapshot with duplicate voters', { ...valid[6], snapshot: { index: 1, term: 1, data: null, voters: ['a', 'a'], learners: [] } }],
    ['snapshot term above message term', { ...valid[6], snapshot: { index: 1, term: 9, data: null, voters: ['a'], learners: [] } }],
    ['append-resp without hint', { ...valid[3], hintTerm: 'x' }],
  ])('rejects %s', (_name, v) => {
    expect(parseRaftMessage(v)).toBeUndefined();
  });

  it('never throws, whatever it is given (10 000 mutated and random values)', () => {
    const random = mulberry32(7);
    const junk = (depth: number): unknown => {
      const k = Math.floor(random() * 10);
      if (depth > 3) return k;
      switch (k) {
        case 0:
          return null;
        case 1:
          return undefined;
        case 2:
          return -random() * 1e20;
        case 3:
          return Math.floor(random() * 10);
        case 4:
          return 'a'.repeat(Math.floor(random() * 4));
        case 5:
          return [junk(depth + 1), junk(depth + 1)];
        case 6:
          return { index: junk(depth + 1), term: junk(depth + 1), data: junk(depth + 1), kind: junk(depth + 1) };
        case 7:
          return NaN;
        case 8:
          return true;
        default:
          return {};
      }
    };
    const throwing = new Proxy(
      {},
      {
        get: () => {
          throw new Error('boom');
        },
      },
    );
    expect(parseRaftMessage(throwing)).toBeUndefined();
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const m = JSON.parse(JSON.stringify(valid[i % valid.length])) as Record<string, unknown>;
      const keys = Object.keys(m);
      const key = keys[Math.floor(random() * keys.length)]!;
      if (random() < 0.8) m[key] = junk(0);
      if (random() < 0.1) m.snapshot = throwing;
      expect(() => parseRaftMessage(m)).not.toThrow();
      if (parseRaftMessage(m)) accepted++;
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
