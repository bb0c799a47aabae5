import { describe, expect, it } from 'vitest';
import type { MemberState } from '../../../src/membership/member';
import { judge, type Verdict } from '../../../src/membership/precedence';

const at = (state: MemberState, incarnation: number) => ({ state, incarnation });

describe('precedence rules', () => {
  it('adds an unknown member only on an alive claim', () => {
    expect(judge(undefined, at('alive', 0))).toBe('apply');
    expect(judge(undefined, at('suspect', 5))).toBe('ignore');
    expect(judge(undefined, at('dead', 5))).toBe('ignore');
    expect(judge(undefined, at('left', 5))).toBe('ignore');
  });

  // [current, claim at lower / same / higher incarnation] -> verdicts
  const table: [MemberState, MemberState, [Verdict, Verdict, Verdict]][] = [
    ['alive', 'alive', ['ignore', 'ignore', 'apply']],
    ['alive', 'suspect', ['ignore', 'apply', 'apply']],
    ['alive', 'dead', ['ignore', 'apply', 'apply']],
    ['alive', 'left', ['ignore', 'apply', 'apply']],
    ['suspect', 'alive', ['ignore', 'ignore', 'apply']],
    ['suspect', 'suspect', ['ignore', 'confirm', 'apply']],
    ['suspect', 'dead', ['ignore', 'apply', 'apply']],
    ['suspect', 'left', ['ignore', 'apply', 'apply']],
    ['dead', 'alive', ['ignore', 'ignore', 'apply']],
    ['dead', 'suspect', ['ignore', 'ignore', 'ignore']],
    ['dead', 'dead', ['ignore', 'ignore', 'apply']],
    ['dead', 'left', ['ignore', 'apply', 'apply']],
    ['left', 'alive', ['ignore', 'ignore', 'apply']],
    ['left', 'suspect', ['ignore', 'ignore', 'ignore']],
    ['left', 'dead', ['ignore', 'ignore', 'ignore']],
    ['left', 'left', ['ignore', 'ignore', 'apply']],
  ];

  it.each(table)('%s, then a %s claim', (current, claim, [lower, same, higher]) => {
    expect(judge(at(current, 5), at(claim, 4))).toBe(lower);
    expect(judge(at(current, 5), at(claim, 5))).toBe(same);
    expect(judge(at(current, 5), at(claim, 6))).toBe(higher);
  });
});
