/**
 * Which claim about a member wins: SWIM's incarnation rules, with `left`
 * (a graceful departure) beside `dead`. Only the member itself raises its
 * incarnation, so a higher incarnation is always newer news.
 *
 *   claim        replaces a member that is ...
 *   alive(i)     anything with incarnation < i (a refutation, a comeback)
 *   suspect(i)   alive with incarnation <= i; suspect with incarnation < i
 *                (suspect at the same incarnation is a confirmation, not a change)
 *   dead(i)      alive or suspect with incarnation <= i; dead with incarnation < i
 *   left(i)      alive, suspect or dead with incarnation <= i; left with incarnation < i
 *
 * An unknown member is added only by an alive claim: suspicion and death of a
 * node never seen (or already forgotten) carry nothing worth keeping.
 * Claims about the local node itself are not judged here: it refutes them.
 */
import type { MemberState } from './member';

export type Verdict = 'apply' | 'confirm' | 'ignore';

interface Claim {
  state: MemberState;
  incarnation: number;
}

export function judge(current: Claim | undefined, claim: Claim): Verdict {
  if (!current) return claim.state === 'alive' ? 'apply' : 'ignore';
  const newer = claim.incarnation > current.incarnation;
  const notOlder = claim.incarnation >= current.incarnation;
  switch (claim.state) {
    case 'alive':
      return newer ? 'apply' : 'ignore';
    case 'suspect':
      if (current.state === 'alive') return notOlder ? 'apply' : 'ignore';
      if (current.state === 'suspect') return newer ? 'apply' : claim.incarnation === current.incarnation ? 'confirm' : 'ignore';
      return 'ignore';
    case 'dead':
      if (current.state === 'alive' || current.state === 'suspect') return notOlder ? 'apply' : 'ignore';
      return current.state === 'dead' && newer ? 'apply' : 'ignore';
    case 'left':
      if (current.state === 'left') return newer ? 'apply' : 'ignore';
      return notOlder ? 'apply' : 'ignore';
  }
}
