/**
 * The in-memory view of one node's Raft log: a snapshot base (index, term)
 * followed by entries, the commit and apply positions, and which suffix has
 * not been handed to the driver for persistence yet.
 */
import type { Entry } from './messages';

export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0, 0 without one). */
  snapIndex = 0;
  snapTerm = 0;
  /** entries[k].index === snapIndex + 1 + k */
  private entries: Entry[] = [];
  committed = 0;
  /** Last index handed to the driver in Ready.committed (or covered by a snapshot). */
  applied = 0;
  /** First index not yet handed to the driver for persistence. */
  private unstableFrom = 1;
  /** The driver must delete its entries >= this before appending the unstable ones. */
  private truncateFrom: number | undefined;

  /** Restart: a persisted snapshot base plus persisted entries (all stable). */
  static restore(snap: { index: number; term: number } | undefined, entries: Entry[], commit: number): RaftLog {
    const log = new RaftLog();
    if (snap) {
      log.snapIndex = snap.index;
      log.snapTerm = snap.term;
    }
    let expected = log.snapIndex + 1;
    for (const e of entries) {
      if (e.index < expected) continue;
      if (e.index !== expected) break;
      log.entries.push(e);
      expected++;
    }
    log.applied = log.snapIndex;
    log.committed = Math.max(log.snapIndex, Math.min(commit, log.lastIndex()));
    log.unstableFrom = log.lastIndex() + 1;
    return log;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastIndex(): number {
    return this.snapIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.term : this.snapTerm;
  }

  /** Term of the entry at `i`; undefined if compacted away (below the snapshot) or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapIndex - 1]!.term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapIndex - 1];
  }

  /** Entries [lo, hi), clamped to what is held. */
  slice(lo: number, hi: number): Entry[] {
    const from = Math.max(lo, this.firstIndex()) - this.snapIndex - 1;
    const to = Math.min(hi, this.lastIndex() + 1) - this.snapIndex - 1;
    return from < to ? this.entries.slice(from, to) : [];
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The largest index <= `index` whose term is <= `term` (fast backtracking). Stops at the
   * snapshot base, below which terms are unknown.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.snapIndex) {
      if (this.term(i)! <= term) return i;
      i--;
    }
    return Math.min(index, this.snapIndex);
  }

  /** Leader append: entries continue the log. */
  append(entries: Entry[]): void {
    for (const e of entries) this.entries.push(e);
  }

  /**
   * Follower append (AppendEntries after the prevIndex/prevTerm check passed): skips entries
   * already held, truncates at the first conflict and appends the rest. Returns false (and
   * changes nothing) if that would truncate a committed entry.
   */
  appendAfterMatch(entries: Entry[]): { ok: boolean; truncatedAt?: number } {
    let k = 0;
    while (k < entries.length) {
      const e = entries[k]!;
      const t = this.term(e.index);
      if (t === undefined && e.index <= this.snapIndex) {
        k++;
        continue;
      }
      if (t !== e.term) break;
      k++;
    }
    if (k === entries.length) return { ok: true };
    const first = entries[k]!.index;
    if (first <= this.committed) return { ok: false };
    let truncatedAt: number | undefined;
    if (first <= this.lastIndex()) {
      this.entries.length = first - this.snapIndex - 1;
      truncatedAt = first;
      if (first < this.unstableFrom) {
        this.unstableFrom = first;
        this.truncateFrom = first;
      }
    }
    for (let j = k; j < entries.length; j++) this.entries.push(entries[j]!);
    return truncatedAt === undefined ? { ok: true } : { ok: true, truncatedAt };
  }

  commitTo(i: number): boolean {
    const to = Math.min(i, this.lastIndex());
    if (to <= this.committed) return false;
    this.committed = to;
    return true;
  }

  /** Replace everything with a snapshot base (InstallSnapshot). */
  installSnapshot(index: number, term: number): void {
    this.snapIndex = index;
    this.snapTerm = term;
    this.entries = [];
    this.committed = index;
    this.applied = index;
    this.unstableFrom = index + 1;
    this.truncateFrom = undefined;
  }

  /** Drop entries up to `index` (covered by a snapshot the driver took). */
  compact(index: number): void {
    const term = this.term(index);
    if (term === undefined || index <= this.snapIndex) return;
    this.entries = this.entries.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = term;
  }

  /** Hands out the unstable suffix and the newly committed entries; the driver persists / applies them. */
  takeUnstable(): { entries: Entry[]; truncateFrom: number | undefined } {
    const entries = this.slice(this.unstableFrom, this.lastIndex() + 1);
    const truncateFrom = this.truncateFrom;
    this.unstableFrom = this.lastIndex() + 1;
    this.truncateFrom = undefined;
    return { entries, truncateFrom };
  }

  takeCommitted(): Entry[] {
    if (this.committed <= this.applied) return [];
    const out = this.slice(this.applied + 1, this.committed + 1);
    this.applied = this.committed;
    return out;
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex() || this.truncateFrom !== undefined;
  }

  hasCommittedToApply(): boolean {
    return this.committed > this.applied;
  }
}
