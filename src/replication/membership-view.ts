/**
 * The replicator's view of the boards: who is alive (SWIM behind the port),
 * who may vote, who watches without voting, who was removed for good, and
 * since when each missing voter has been missing (for --replace-after).
 * Placement, founding and forwarding all ask it; nothing here does I/O.
 */
import type { Clock } from '../core/clock';

export interface MemberInfo {
  id: string;
  state: 'alive' | 'suspect' | 'dead' | 'left';
  meta: Record<string, string>;
}

/** Membership as the replicator sees it (SWIM behind it). */
export interface MembershipPort {
  members(): MemberInfo[];
  /** Publishes one attribute of this node (merged into its meta). */
  publish(key: string, value: string): void;
}

export interface MembershipViewOptions {
  self: string;
  membership: MembershipPort;
  clock: Clock;
  replaceAfterMs: number;
  /** false (--voter=false): this board never counts for quorum. */
  voter?: boolean;
  /** True once this node is closing: it stops counting itself alive. */
  closed: () => boolean;
  /** This board's system group (SWIM meta `sysid` of boards that hold one), once known. */
  clusterId: () => string | undefined;
}

const present = (m: MemberInfo) => m.state === 'alive' || m.state === 'suspect';

export class MembershipView {
  private readonly removedSet = new Set<string>();
  private readonly missingSince = new Map<string, number>();

  constructor(private readonly options: MembershipViewOptions) {}

  members(): MemberInfo[] {
    return this.options.membership.members();
  }

  member(id: string): MemberInfo | undefined {
    return this.members().find((m) => m.id === id);
  }

  isAlive(id: string): boolean {
    if (id === this.options.self) return !this.options.closed();
    if (this.removedSet.has(id) || this.isForeign(id)) return false;
    const m = this.member(id);
    return m !== undefined && present(m);
  }

  /** Alive boards that may vote (placement's pool: founding, voters of every group). */
  aliveIds(): string[] {
    return this.members()
      .filter((m) => m.id === this.options.self || (present(m) && !this.removedSet.has(m.id) && !this.foreign(m)))
      .map((m) => m.id)
      .filter((id) => this.canVote(id))
      .sort();
  }

  /** A board started with --voter=false holds database replicas as a learner only: it never counts for quorum. */
  canVote(id: string): boolean {
    if (id === this.options.self) return this.options.voter !== false;
    return this.member(id)?.meta.voter !== '0';
  }

  /** Alive non-voting boards: each holds a learner replica of every database. */
  observerIds(): string[] {
    return this.members()
      .filter((m) => m.id !== this.options.self && present(m) && !this.removedSet.has(m.id) && !this.foreign(m) && m.meta.voter === '0')
      .map((m) => m.id)
      .concat(this.options.voter === false ? [this.options.self] : [])
      .sort();
  }

  /** Notes which of `ids` are missing now (and since when), and which are back. */
  trackMissing(ids: Iterable<string>): void {
    const now = this.options.clock.monotonic();
    for (const id of ids) {
      if (this.isAlive(id)) this.missingSince.delete(id);
      else if (!this.missingSince.has(id)) this.missingSince.set(id, now);
    }
  }

  /** A member unreachable (as seen from here) for longer than --replace-after. */
  replaceable(id: string): boolean {
    const since = this.missingSince.get(id);
    return since !== undefined && this.options.clock.monotonic() - since >= this.options.replaceAfterMs;
  }

  /** Usable for placement: alive, or unreachable for less than --replace-after (not replaced yet). */
  usable(id: string): boolean {
    if (this.removedSet.has(id)) return false;
    return this.isAlive(id) || !this.replaceable(id);
  }

  /**
   * A board of another system group under the same cluster name (two sides
   * that each founded one, then met): not a member of ours for anything, so
   * neither side places on, adds or forwards to the other's boards.
   */
  isForeign(id: string): boolean {
    const m = this.member(id);
    return m !== undefined && this.foreign(m);
  }

  private foreign(m: MemberInfo): boolean {
    const ours = this.options.clusterId();
    const theirs = m.meta.sysid;
    return ours !== undefined && theirs !== undefined && theirs !== '' && theirs !== ours;
  }

  /** The other system groups in sight, each with its alive boards (empty: no split). */
  foreignClusters(): { cluster: string; boards: string[] }[] {
    const by = new Map<string, string[]>();
    for (const m of this.members()) {
      if (m.id === this.options.self || !present(m) || !this.foreign(m)) continue;
      const list = by.get(m.meta.sysid!) ?? [];
      list.push(m.id);
      by.set(m.meta.sysid!, list);
    }
    return [...by.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([cluster, boards]) => ({ cluster, boards: boards.sort() }));
  }

  /** A board of `cluster` that saw it merge into another system group says which (SWIM meta `merged` = old, `sysid` = new). */
  mergedInto(cluster: string): string | undefined {
    const m = this.members().find((x) => x.id !== this.options.self && present(x) && x.meta.merged === cluster && !!x.meta.sysid && x.meta.sysid !== cluster);
    return m?.meta.sysid;
  }

  isRemoved(id: string): boolean {
    return this.removedSet.has(id);
  }

  /** Records boards removed for good (as committed in the system group); returns those new to this view. */
  noteRemoved(ids: string[]): string[] {
    const fresh = ids.filter((id) => !this.removedSet.has(id));
    for (const id of fresh) this.removedSet.add(id);
    return fresh;
  }

  /** The boards removed from the cluster for good. */
  removed(): string[] {
    return [...this.removedSet].sort();
  }
}
