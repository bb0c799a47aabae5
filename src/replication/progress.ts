/**
 * What a leader knows about one follower's log (etcd's Progress, our own code).
 *
 * probe:     one AppendEntries at a time until one is accepted (after election or a reject)
 * replicate: optimistic nextIndex, up to maxInflight un-acked AppendEntries in flight
 * snapshot:  an InstallSnapshot is in flight; nothing else is sent until it is acked or times out
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** probe: an append is in flight, wait for its answer (or the next heartbeat answer). */
  paused = false;
  /** replicate: last index of each un-acked AppendEntries, oldest first. */
  inflight: number[] = [];
  /** snapshot: index of the snapshot in flight, and ticks since it was sent. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** snapshot: the transport has not yet reported it handed the whole snapshot to the link. */
  snapshotStreaming = false;
  /** replicate: heartbeat answers since the match index last moved while behind. */
  stalled = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = true;

  constructor(
    next: number,
    public learner: boolean,
  ) {
    this.next = next;
  }

  becomeProbe(next: number): void {
    this.state = 'probe';
    this.next = Math.max(next, this.match + 1);
    this.paused = false;
    this.inflight = [];
    this.stalled = 0;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = Math.max(this.next, this.match + 1);
    this.paused = false;
    this.inflight = [];
    this.stalled = 0;
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotTicks = 0;
    this.inflight = [];
  }

  /** An accepted append up to `index`. Returns true if the match index moved. */
  update(index: number): boolean {
    let moved = false;
    if (index > this.match) {
      this.match = index;
      this.stalled = 0;
      moved = true;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    return moved;
  }

  isPaused(maxInflight: number): boolean {
    if (this.state === 'probe') return this.paused;
    if (this.state === 'replicate') return this.inflight.length >= maxInflight;
    return true;
  }
}
