/**
 * The member table: every known member (this node included) with its state,
 * changed only through `apply`, which enforces the precedence rules.
 */
import { copyMember, sameMeta, type Member, type MemberState } from './member';
import type { MemberUpdate } from './messages';
import { judge } from './precedence';

interface MemberRecord extends Member {
  /** clock.monotonic() of the last state change (for forgetting the dead). */
  changedAt: number;
}

export type ApplyResult =
  | { kind: 'ignored' }
  /** A suspicion at the member's current incarnation, of a member already suspect. */
  | { kind: 'confirmation' }
  | {
      kind: 'applied';
      /** undefined when the member was not known before. */
      previous: MemberState | undefined;
      stateChanged: boolean;
      /** endpoint or meta changed (always true for a new member). */
      infoChanged: boolean;
    };

const IGNORED: ApplyResult = { kind: 'ignored' };
const CONFIRMATION: ApplyResult = { kind: 'confirmation' };

export class MemberList {
  private readonly records = new Map<string, MemberRecord>();

  /** The live record (read it, do not keep or change it). */
  get(id: string): Readonly<Member> | undefined {
    return this.records.get(id);
  }

  /** Monotonic time of the member's last state change. */
  changedAt(id: string): number | undefined {
    return this.records.get(id)?.changedAt;
  }

  /** Applies `update` if the precedence rules let it win; `now` is wall-clock, `monotonic` for timers. */
  apply(update: MemberUpdate, now: number, monotonic: number): ApplyResult {
    const current = this.records.get(update.id);
    const verdict = judge(current, update);
    if (verdict === 'ignore') return IGNORED;
    if (verdict === 'confirm') return CONFIRMATION;
    const { id, endpoint, meta, state, incarnation } = update;
    if (!current) {
      this.records.set(id, { id, endpoint, meta: { ...meta }, state, incarnation, since: now, changedAt: monotonic });
      return { kind: 'applied', previous: undefined, stateChanged: true, infoChanged: true };
    }
    const previous = current.state;
    const stateChanged = previous !== state;
    const infoChanged = current.endpoint !== endpoint || !sameMeta(current.meta, meta);
    current.state = state;
    current.incarnation = incarnation;
    if (infoChanged) {
      current.endpoint = endpoint;
      current.meta = { ...meta };
    }
    if (stateChanged) {
      current.since = now;
      current.changedAt = monotonic;
    }
    return { kind: 'applied', previous, stateChanged, infoChanged };
  }

  remove(id: string): void {
    this.records.delete(id);
  }

  /** Ids of the members whose state is one of `states`. */
  ids(...states: MemberState[]): string[] {
    const out: string[] = [];
    for (const record of this.records.values()) if (states.includes(record.state)) out.push(record.id);
    return out;
  }

  /** Copies of every member, sorted by id. */
  snapshot(): Member[] {
    return [...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(copyMember);
  }
}
