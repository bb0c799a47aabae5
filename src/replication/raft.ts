/**
 * Raft consensus as a deterministic state machine (see DESIGN.md). Inputs:
 * tick() (logical clock), step() (received messages), propose(),
 * proposeConfChange(), readIndex(), transferLeadership(), compact(). Outputs:
 * collected by advance() as a Ready that the driver persists, sends and
 * applies, in that order. No I/O, no timers, no wall clock; the only
 * randomness is the injected `random` (election timeouts).
 */
import {
  isNodeId,
  parseRaftMessage,
  type ConfChange,
  type ConfEntryData,
  type ConfState,
  type Entry,
  type NodeId,
  type RaftMessage,
  type Snapshot,
} from './messages';
import { Progress } from './progress';
import { RaftLog } from './raft-log';

export { parseRaftMessage, type ConfChange, type ConfEntryData, type ConfState, type Entry, type NodeId, type RaftMessage, type Snapshot } from './messages';

export interface RaftConfig {
  /** Election timeout is uniform in [electionTicks, 2 * electionTicks). Also the check-quorum and lease period. */
  electionTicks: number;
  heartbeatTicks: number;
  maxEntriesPerMessage: number;
  /** Pipelining window: un-acked AppendEntries per follower. */
  maxInflight: number;
  preVote: boolean;
  checkQuorum: boolean;
  /**
   * A snapshot in flight is sent again after one election timeout per this
   * many bytes of it (at least one): a large database's snapshot takes many
   * timeouts to stream, and resending it early only queues more copies.
   */
  snapshotBytesPerTimeout: number;
  /**
   * Entries kept in memory below a snapshot the driver took, so a follower a
   * little behind gets entries instead of the whole snapshot. A leader also
   * keeps everything from the index of any snapshot still streaming to a
   * follower, so that follower can go on from it when it arrives (etcd keeps
   * 5000; a board's memory is smaller).
   */
  catchUpEntries: number;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = {
  electionTicks: 10,
  heartbeatTicks: 1,
  maxEntriesPerMessage: 256,
  maxInflight: 64,
  preVote: true,
  checkQuorum: true,
  snapshotBytesPerTimeout: 2 * 1024 * 1024,
  catchUpEntries: 1000,
};

/** A snapshot the transport still streams is resent only after this many times the usual wait. */
const STREAMING_PATIENCE = 4;

export type RaftState = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** What the driver must do, in this order (see DESIGN.md). */
export interface Ready {
  /** 1. Persist (fsync) before sending messages. */
  hardState?: HardState;
  /** 2. Install: replace the whole durable log and state machine with this snapshot. */
  snapshot?: Snapshot;
  /** 3. Delete durable log entries >= this index … */
  truncateFrom?: number;
  /** 4. … then append these (they continue the durable log). Persist (fsync) before sending. */
  entries: Entry[];
  /** 5. Send. */
  messages: RaftMessage[];
  /** 6. Apply to the state machine in order (noop and conf entries included; they change no data). */
  committed: Entry[];
  /** 7. ReadIndex results: serve the read once applied >= index. */
  readStates: { requestId: string; index: number }[];
}

/** State to restart from: what the driver persisted from earlier Readys (and compact()). */
export interface RaftStorage {
  term: number;
  vote: NodeId | null;
  commit: number;
  entries: Entry[];
  snapshot?: Snapshot;
}

export interface RaftNodeOptions {
  id: NodeId;
  /** Initial voters (self included) of a bootstrapped cluster; the same on every founding node and on every restart. [] for a node that joins later. */
  peers: NodeId[];
  config?: Partial<RaftConfig>;
  /** Uniform in [0, 1). */
  random: () => number;
  storage?: RaftStorage;
}

export type NotLeader = { error: 'not_leader'; leader: NodeId | null };
export type ProposeResult = { index: number; term: number } | NotLeader | { error: 'transferring' | 'conf_change_pending' | 'invalid_conf_change' };

/** Heartbeat answers without progress after which a pipelined follower is probed again. */
const STALL_HEARTBEATS = 3;

interface PendingRead {
  requestId: string;
  index: number;
  seq: number;
  acks: Set<NodeId>;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly random: () => number;
  private readonly bootstrap: ConfState;
  private readonly log: RaftLog;

  private _term = 0;
  private vote: NodeId | null = null;
  private _state: RaftState = 'follower';
  private _leader: NodeId | null = null;

  private voterSet = new Set<NodeId>();
  private learnerSet = new Set<NodeId>();
  /** Index of the conf entry that set the current configuration (0: snapshot or bootstrap). */
  private confIndex = 0;
  /** Latest snapshot: own compaction or installed. */
  private snap: Snapshot | undefined;
  /** The configuration in force at the log's base (log.snapIndex); undefined: the bootstrap one. */
  private logBaseConf: ConfState | undefined;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  /** Leader: index of the latest conf entry that may be uncommitted. */
  private pendingConfIndex = 0;
  private transferee: NodeId | null = null;
  private transferElapsed = 0;

  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads asked for before the leader committed an entry of its term. */
  private deferredReads: string[] = [];

  /** The configuration in force at the commit index, as far as this node has seen it committed. */
  private committedConf: ConfState = { voters: [], learners: [] };
  /** The log index committedConf was set at (its conf entry, or a snapshot): older conf entries handed out again after a restart change nothing. */
  private committedConfAt = 0;
  /** This node learned it was removed from the group: it never campaigns or votes in it again. */
  private _removed = false;
  /** Leader: ticks since it became leader, and the tick each voter was last heard from (its lease). */
  private leaderTicks = 0;
  private heard = new Map<NodeId, number>();

  private msgs: RaftMessage[] = [];
  private readStates: { requestId: string; index: number }[] = [];
  private pendingInstall: Snapshot | undefined;
  private prevHard: HardState;

  constructor(opts: RaftNodeOptions) {
    this.id = opts.id;
    this.cfg = { ...DEFAULT_RAFT_CONFIG, ...opts.config };
    if (!(this.cfg.electionTicks > this.cfg.heartbeatTicks && this.cfg.heartbeatTicks >= 1)) {
      throw new RangeError('raft: need electionTicks > heartbeatTicks >= 1');
    }
    if (this.cfg.maxEntriesPerMessage < 1 || this.cfg.maxInflight < 1) throw new RangeError('raft: maxEntriesPerMessage and maxInflight must be >= 1');
    this.random = opts.random;
    this.bootstrap = { voters: [...new Set(opts.peers)], learners: [] };
    const st = opts.storage;
    if (st) {
      this.log = RaftLog.restore(st.snapshot, st.entries, st.commit);
      this._term = st.term;
      this.vote = st.vote;
      if (st.snapshot) {
        this.snap = copySnapshot(st.snapshot);
        this.logBaseConf = { voters: [...st.snapshot.voters], learners: [...st.snapshot.learners] };
      }
    } else {
      this.log = new RaftLog();
    }
    // as persisted: a commit index beyond the persisted log (a torn write) is clamped and re-persisted
    this.prevHard = st ? { term: st.term, vote: st.vote, commit: st.commit } : this.hardState();
    this.refreshConf();
    this.committedConf = this.confAt(this.log.committed);
    this.committedConfAt = this.log.snapIndex;
    for (let i = this.log.committed; i > this.log.snapIndex; i--) {
      if (this.log.entry(i)?.kind === 'conf') {
        this.committedConfAt = i;
        break;
      }
    }
    this.resetTimeout();
  }

  // ---- read-only view ----

  get state(): RaftState {
    return this._state;
  }
  get leader(): NodeId | null {
    return this._leader;
  }
  get term(): number {
    return this._term;
  }
  get commitIndex(): number {
    return this.log.committed;
  }
  get lastIndex(): number {
    return this.log.lastIndex();
  }
  /** Index of the latest snapshot (own or installed); 0 without one. */
  get snapshotIndex(): number {
    return this.snap?.index ?? 0;
  }
  /** First index still held in the log: entries below it are compacted away (at most snapshotIndex + 1). */
  get firstIndex(): number {
    return this.log.firstIndex();
  }
  /** The entry at `index`, if held (not compacted, not beyond the end). */
  entry(index: number): Entry | undefined {
    return this.log.entry(index);
  }
  /** The term of the entry at `index`, if known. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }
  /** Index of the conf entry that set the current configuration (0: bootstrap or snapshot). */
  get configIndex(): number {
    return this.confIndex;
  }
  /** Where the current configuration is known to be in force: its conf entry, else the snapshot it came from (0: bootstrap). */
  get configSince(): number {
    return this.confIndex > 0 ? this.confIndex : (this.snap?.index ?? 0);
  }
  voters(): NodeId[] {
    return [...this.voterSet].sort();
  }
  learners(): NodeId[] {
    return [...this.learnerSet].sort();
  }
  /**
   * This node saw a committed configuration that no longer has it (after one that had it), or a
   * member proved as much in answer to its (pre-)vote request. A removed node never campaigns or
   * votes again; identities are never re-added (see replica-id.ts), so this is final.
   */
  get removed(): boolean {
    return this._removed;
  }
  /** Leader only: whether proposeConfChange would be refused for now (a change, or the leader's no-op, not committed yet; a transfer). */
  confChangeBlocked(): boolean {
    return this._state !== 'leader' || this.transferee !== null || this.pendingConfIndex > this.log.committed;
  }
  /**
   * Leader only: a quorum of voters (itself included) answered within the last election timeout.
   * Followers that heard from it within that time ignore vote requests (leader lease), so no newer
   * leader can exist yet, up to clock drift between boards; a leader without it serves no reads.
   */
  hasQuorumContact(): boolean {
    if (this._state !== 'leader') return false;
    let n = 0;
    for (const v of this.voterSet) {
      const at = this.heard.get(v);
      if (v === this.id || (at !== undefined && this.leaderTicks - at < this.cfg.electionTicks)) n++;
    }
    return n >= this.quorum();
  }
  /** Leader only: a follower's match index (undefined otherwise). */
  matchIndex(peer: NodeId): number | undefined {
    if (this._state !== 'leader') return undefined;
    return peer === this.id ? this.log.lastIndex() : this.progress.get(peer)?.match;
  }

  // ---- inputs ----

  tick(): void {
    if (this._state === 'leader') this.tickLeader();
    else this.tickElection();
  }

  step(raw: unknown): void {
    const m = parseRaftMessage(raw);
    if (!m || m.to !== this.id) return;
    if (m.type === 'vote-resp' && m.removed) {
      this.markRemoved();
      return;
    }
    if (m.type === 'vote' && this.provesRemoved(m)) {
      this.send({ type: 'vote-resp', term: this._term, from: this.id, to: m.from, pre: m.pre, granted: false, removed: true });
      return;
    }
    if (m.term > this._term) {
      if (m.type === 'vote') {
        const inLease = this.cfg.checkQuorum && this._leader !== null && this.electionElapsed < this.cfg.electionTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'vote' && m.pre) {
        // a pre-vote never changes our term
      } else if (m.type === 'vote-resp' && m.pre && m.granted) {
        // granted pre-votes carry the term we would campaign at
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this._term) {
      if ((m.type === 'append' || m.type === 'heartbeat') && (this.cfg.checkQuorum || this.cfg.preVote)) {
        // a stale leader (e.g. after a partition, whose followers moved on) learns our term and steps down
        this.send({ type: 'append-resp', term: this._term, from: this.id, to: m.from, success: false, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'vote' && m.pre) {
        this.send({ type: 'vote-resp', term: this._term, from: this.id, to: m.from, pre: true, granted: false });
      }
      return;
    }

    switch (m.type) {
      case 'vote':
        this.handleVote(m);
        return;
      case 'vote-resp':
        this.handleVoteResponse(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        if (this._state === 'leader') return; // another leader in our term cannot exist
        if (this._state !== 'follower') this.becomeFollower(m.term, m.from);
        this._leader = m.from;
        this.electionElapsed = 0;
        if (m.type === 'append') this.handleAppend(m);
        else if (m.type === 'heartbeat') this.handleHeartbeat(m);
        else this.handleSnapshot(m);
        return;
      case 'append-resp':
        if (this._state === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeat-resp':
        if (this._state === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'timeout-now':
        if (this._state !== 'leader' && this.promotable()) this.campaign(false, true);
        return;
    }
  }

  propose(data: unknown): ProposeResult {
    if (this._state !== 'leader') return { error: 'not_leader', leader: this._leader };
    if (this.transferee !== null) return { error: 'transferring' };
    return this.appendOwn({ data });
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    if (this._state !== 'leader') return { error: 'not_leader', leader: this._leader };
    if (this.transferee !== null) return { error: 'transferring' };
    // also waits for the first entry of the leader's term (its no-op) to commit: the fix for the
    // single-server change bug found after the thesis (raft-dev, 2015)
    if (this.pendingConfIndex > this.log.committed) return { error: 'conf_change_pending' };
    if (!isNodeId(change.node)) return { error: 'invalid_conf_change' };
    const voters = new Set(this.voterSet);
    const learners = new Set(this.learnerSet);
    const { node } = change;
    if (change.type === 'add-learner') {
      if (voters.has(node) || learners.has(node)) return { error: 'invalid_conf_change' };
      learners.add(node);
    } else if (change.type === 'promote') {
      if (!learners.has(node)) return { error: 'invalid_conf_change' };
      learners.delete(node);
      voters.add(node);
    } else {
      // a leader does not remove itself: transfer leadership first
      if (node === this.id || (!voters.has(node) && !learners.has(node))) return { error: 'invalid_conf_change' };
      voters.delete(node);
      learners.delete(node);
    }
    const data: ConfEntryData = { change: { type: change.type, node }, voters: [...voters].sort(), learners: [...learners].sort() };
    const result = this.appendOwn({ data, kind: 'conf' });
    if ('index' in result) this.pendingConfIndex = result.index;
    return result;
  }

  /**
   * Operator recovery of a group whose quorum is lost for good (etcd's
   * `--force-new-cluster`): this replica appends a configuration of
   * `voters` (itself among them, no learners) in a new term and campaigns at
   * once; alone, it leads at once and commits its whole log. Unsafe by
   * nature, and only for the operator: entries the lost quorum committed
   * that this replica lacks are gone, and entries it holds that were never
   * committed become committed. Other replicas of the old configuration are
   * not in the new one.
   */
  forceConfiguration(voters: NodeId[]): { ok: true } | { error: 'removed' | 'invalid_conf_change' } {
    if (this._removed) return { error: 'removed' };
    const set = [...new Set(voters)].sort();
    if (!set.includes(this.id)) return { error: 'invalid_conf_change' };
    this.becomeFollower(this._term + 1, null);
    const entry: Entry = {
      index: this.log.lastIndex() + 1,
      term: this._term,
      data: { change: { type: 'force', node: this.id }, voters: set, learners: [] } satisfies ConfEntryData,
      kind: 'conf',
    };
    this.log.append([entry]);
    this.applyConf(entry.index, entry.data as ConfEntryData);
    // like a leadership transfer, past the survivors' leases: the operator asked for it
    this.campaign(false, true);
    return { ok: true };
  }

  readIndex(requestId: string): { ok: true } | NotLeader {
    if (this._state !== 'leader') return { error: 'not_leader', leader: this._leader };
    if (this.log.term(this.log.committed) !== this._term) this.deferredReads.push(requestId);
    else this.startRead(requestId);
    return { ok: true };
  }

  /** Starts handing leadership to `to` (a voter): catch it up, then send TimeoutNow. Aborted after an election timeout. */
  transferLeadership(to: NodeId): boolean {
    if (this._state !== 'leader' || to === this.id || !this.voterSet.has(to)) return false;
    const pr = this.progress.get(to);
    if (!pr) return false;
    this.transferee = to;
    this.transferElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
    return true;
  }

  /**
   * The driver took a snapshot of its applied state at `index` (<= the last committed entry it was
   * given). The log up to `index` is dropped; the snapshot serves followers that are too far behind.
   * Returns the snapshot record for the driver to persist, or undefined if `index` is not usable.
   */
  compact(index: number, snapshotData: unknown): Snapshot | undefined {
    if (!Number.isSafeInteger(index) || index <= this.snapshotIndex || index > this.log.applied) return undefined;
    const term = this.log.term(index);
    if (term === undefined) return undefined;
    const conf = this.confAt(index);
    this.snap = { index, term, data: snapshotData, voters: conf.voters, learners: conf.learners };
    const base = this.retainFrom(index);
    if (base > this.log.snapIndex) {
      this.logBaseConf = this.confAt(base);
      this.log.compact(base);
    }
    return copySnapshot(this.snap);
  }

  /** Where the log may start after a snapshot at `index`: catchUpEntries below it, and never past a snapshot still streaming. */
  private retainFrom(index: number): number {
    let base = index - this.cfg.catchUpEntries;
    if (this._state === 'leader') {
      for (const pr of this.progress.values()) if (pr.state === 'snapshot') base = Math.min(base, pr.pendingSnapshot);
    }
    return Math.max(base, this.log.snapIndex);
  }

  /**
   * The transport finished handing the snapshot for `to` to the link (`sent`) or
   * dropped it. A sent snapshot is waited for from now on; a dropped one is sent
   * again after one election timeout. Without these reports the leader resends
   * on its own timer alone.
   */
  reportSnapshot(to: NodeId, sent: boolean): void {
    const pr = this.progress.get(to);
    if (this._state !== 'leader' || !pr || pr.state !== 'snapshot' || !pr.snapshotStreaming) return;
    pr.snapshotStreaming = false;
    pr.snapshotTicks = sent ? 0 : Math.max(0, this.snapshotRetryTicks() - this.cfg.electionTicks);
  }

  /** Collects what the driver must do; undefined if nothing. Processing it (in order) acknowledges it. */
  advance(): Ready | undefined {
    const hs = this.hardState();
    const hardChanged = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit;
    if (
      !hardChanged &&
      !this.pendingInstall &&
      !this.log.hasUnstable() &&
      !this.log.hasCommittedToApply() &&
      this.msgs.length === 0 &&
      this.readStates.length === 0
    ) {
      return undefined;
    }
    const { entries, truncateFrom } = this.log.takeUnstable();
    const rd: Ready = { entries, messages: this.msgs, committed: this.log.takeCommitted(), readStates: this.readStates };
    for (const e of rd.committed) {
      if (e.kind === 'conf') this.noteCommittedConf(e.index, e.data as ConfEntryData);
    }
    if (hardChanged) rd.hardState = hs;
    if (this.pendingInstall) rd.snapshot = this.pendingInstall;
    if (truncateFrom !== undefined) rd.truncateFrom = truncateFrom;
    this.prevHard = hs;
    this.pendingInstall = undefined;
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  // ---- elections ----

  private promotable(): boolean {
    return this.voterSet.has(this.id) && !this._removed;
  }

  private static has(conf: ConfState, id: NodeId): boolean {
    return conf.voters.includes(id) || conf.learners.includes(id);
  }

  /** A configuration became committed here (a committed conf entry handed out, or an installed snapshot's). */
  private noteCommittedConf(at: number, conf: ConfState): void {
    if (at <= this.committedConfAt) return;
    this.committedConfAt = at;
    const wasMember = RaftNode.has(this.committedConf, this.id);
    this.committedConf = { voters: [...conf.voters], learners: [...conf.learners] };
    if (wasMember && !RaftNode.has(this.committedConf, this.id)) this.markRemoved();
  }

  private markRemoved(): void {
    if (this._removed) return;
    this._removed = true;
    if (this._state !== 'follower') this.becomeFollower(this._term, null);
  }

  /**
   * Whether this member can prove that the (pre-)candidate was removed: its committed
   * configuration lacks the candidate, and the candidate's whole log lies within our committed
   * prefix. A candidate believes it votes, so the entries that made it a voter (its promotion,
   * after its committed addition; a snapshot that lists it; or its founding) are in that prefix:
   * it was a member of the committed log and a committed change removed it. It is never re-added
   * under the same identity.
   */
  private provesRemoved(m: Extract<RaftMessage, { type: 'vote' }>): boolean {
    return RaftNode.has(this.committedConf, this.id) && !RaftNode.has(this.committedConf, m.from) && m.lastIndex <= this.log.committed;
  }

  private quorum(): number {
    return Math.floor(this.voterSet.size / 2) + 1;
  }

  private resetTimeout(): void {
    const e = this.cfg.electionTicks;
    this.randomizedTimeout = e + Math.min(e - 1, Math.floor(this.random() * e));
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.cfg.preVote, false);
    }
  }

  private tickLeader(): void {
    this.leaderTicks++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this._term, null);
        return;
      }
    }
    if (this.transferee !== null && ++this.transferElapsed >= this.cfg.electionTicks) this.transferee = null;
    for (const [id, pr] of this.progress) {
      // still streaming (reported by the transport): wait longer, in case no report ever comes
      const retry = this.snapshotRetryTicks() * (pr.snapshotStreaming ? STREAMING_PATIENCE : 1);
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= retry) {
        // the snapshot (or its answer) was probably lost: probe again, which resends it if still needed
        pr.becomeProbe(pr.match + 1);
        this.sendAppend(id);
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  /** Check-quorum: were a quorum of voters (self included) heard from since the last check? Resets the marks. */
  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.voterSet) {
      if (v === this.id) active++;
      else if (this.progress.get(v)?.recentActive) active++;
    }
    for (const pr of this.progress.values()) pr.recentActive = false;
    return active >= this.quorum();
  }

  private campaign(pre: boolean, transfer: boolean): void {
    let voteTerm: number;
    if (pre) {
      this._state = 'pre-candidate';
      voteTerm = this._term + 1;
    } else {
      this._term++;
      this.vote = this.id;
      this._state = 'candidate';
      voteTerm = this._term;
    }
    this._leader = null;
    this.votes = new Map();
    this.electionElapsed = 0;
    this.resetTimeout();
    this.clearLeaderState();
    this.votes.set(this.id, true);
    if (this.tally()) return;
    for (const v of this.voterSet) {
      if (v === this.id) continue;
      this.send({ type: 'vote', term: voteTerm, from: this.id, to: v, pre, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(), transfer });
    }
  }

  /** Counts votes; moves on if decided. Returns true if the state changed. */
  private tally(): boolean {
    let granted = 0;
    let rejected = 0;
    for (const [id, g] of this.votes) {
      if (!this.voterSet.has(id)) continue;
      if (g) granted++;
      else rejected++;
    }
    const q = this.quorum();
    if (granted >= q) {
      if (this._state === 'pre-candidate') this.campaign(false, false);
      else this.becomeLeader();
      return true;
    }
    if (rejected > this.voterSet.size - q) {
      this.becomeFollower(this._term, null);
      return true;
    }
    return false;
  }

  private handleVote(m: Extract<RaftMessage, { type: 'vote' }>): void {
    // A replica votes only once it knows it is a member (an empty replica, or a removed one, never does).
    const member = !this._removed && (this.voterSet.has(this.id) || this.learnerSet.has(this.id));
    const canVote = member && (this.vote === m.from || (this.vote === null && this._leader === null) || (m.pre && m.term > this._term));
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.send({ type: 'vote-resp', term: m.term, from: this.id, to: m.from, pre: m.pre, granted: true });
      if (!m.pre) {
        this.vote = m.from;
        this.electionElapsed = 0;
      }
    } else {
      this.send({ type: 'vote-resp', term: this._term, from: this.id, to: m.from, pre: m.pre, granted: false });
    }
  }

  private handleVoteResponse(m: Extract<RaftMessage, { type: 'vote-resp' }>): void {
    if (this._state === 'pre-candidate' && m.pre) {
      if (m.granted ? m.term !== this._term + 1 : m.term !== this._term) return;
    } else if (this._state === 'candidate' && !m.pre) {
      if (m.term !== this._term) return;
    } else {
      return;
    }
    if (!this.votes.has(m.from)) this.votes.set(m.from, m.granted);
    this.tally();
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (term > this._term) {
      this._term = term;
      this.vote = null;
    }
    this._state = 'follower';
    this._leader = leader;
    this.electionElapsed = 0;
    this.votes = new Map();
    this.resetTimeout();
    this.clearLeaderState();
  }

  private clearLeaderState(): void {
    this.progress = new Map();
    this.transferee = null;
    this.pendingReads = [];
    this.deferredReads = [];
  }

  private becomeLeader(): void {
    this._state = 'leader';
    this._leader = this.id;
    // the voters that granted their votes just answered: the lease starts with them
    this.heard = new Map();
    for (const [id, granted] of this.votes) if (granted) this.heard.set(id, this.leaderTicks);
    this.votes = new Map();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.clearLeaderState();
    const next = this.log.lastIndex() + 1;
    for (const id of [...this.voterSet, ...this.learnerSet]) {
      if (id !== this.id) this.progress.set(id, new Progress(next, this.learnerSet.has(id)));
    }
    // any conf entry in the uncommitted tail may still be pending: no change until the no-op commits
    this.appendOwn({ data: null, kind: 'noop' });
    this.pendingConfIndex = this.log.lastIndex();
  }

  // ---- replication, leader side ----

  private appendOwn(e: { data: unknown; kind?: 'noop' | 'conf' }): { index: number; term: number } {
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this._term, data: e.data };
    if (e.kind) entry.kind = e.kind;
    this.log.append([entry]);
    if (entry.kind === 'conf') this.applyConf(entry.index, entry.data as ConfEntryData);
    this.maybeCommit();
    for (const id of this.progress.keys()) this.sendAppend(id);
    return { index: entry.index, term: entry.term };
  }

  private maybeCommit(): void {
    const matches: number[] = [];
    for (const v of this.voterSet) matches.push(v === this.id ? this.log.lastIndex() : (this.progress.get(v)?.match ?? 0));
    if (matches.length === 0) return;
    matches.sort((a, b) => b - a);
    const q = matches[this.quorum() - 1]!;
    // Raft §5.4.2: only entries of the current term are committed by counting
    if (q > this.log.committed && this.log.term(q) === this._term) {
      this.log.commitTo(q);
      if (this.deferredReads.length > 0) {
        const reads = this.deferredReads;
        this.deferredReads = [];
        for (const r of reads) this.startRead(r);
      }
      // tell followers the new commit index now rather than at the next heartbeat
      for (const id of this.progress.keys()) this.sendAppend(id, true);
    }
  }

  /** Sends AppendEntries to `to` while allowed (one in probe, up to the window in replicate). */
  private sendAppend(to: NodeId, allowEmpty = false): void {
    const pr = this.progress.get(to);
    if (!pr) return;
    let first = true;
    while (!pr.isPaused(this.cfg.maxInflight)) {
      const last = this.log.lastIndex();
      if (pr.next > last + 1) pr.next = last + 1;
      const prevIndex = pr.next - 1;
      const prevTerm = this.log.term(prevIndex);
      if (prevTerm === undefined) {
        this.sendSnapshot(to, pr);
        return;
      }
      const entries = this.log.slice(pr.next, pr.next + this.cfg.maxEntriesPerMessage);
      if (entries.length === 0 && !(first && allowEmpty) && !(pr.state === 'probe' && pr.match < prevIndex)) return;
      this.send({ type: 'append', term: this._term, from: this.id, to, prevIndex, prevTerm, entries, commit: this.log.committed });
      first = false;
      if (pr.state === 'probe') {
        pr.paused = true;
      } else if (entries.length > 0) {
        const lastSent = entries[entries.length - 1]!.index;
        pr.next = lastSent + 1;
        pr.inflight.push(lastSent);
      } else {
        return;
      }
    }
  }

  private snapshotRetryTicks(): number {
    const data = this.snap?.data;
    const bytes = data instanceof Uint8Array ? data.length : 0;
    return this.cfg.electionTicks * Math.max(1, Math.ceil(bytes / this.cfg.snapshotBytesPerTimeout));
  }

  private sendSnapshot(to: NodeId, pr: Progress): void {
    const s = this.snap;
    if (!s) return;
    pr.becomeSnapshot(s.index);
    pr.snapshotStreaming = true;
    this.send({ type: 'snapshot', term: this._term, from: this.id, to, snapshot: copySnapshot(s) });
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeout-now', term: this._term, from: this.id, to });
  }

  private broadcastHeartbeat(): void {
    for (const [to, pr] of this.progress) {
      this.send({ type: 'heartbeat', term: this._term, from: this.id, to, commit: Math.min(pr.match, this.log.committed), ctx: this.readSeq });
    }
  }

  private handleAppendResponse(m: Extract<RaftMessage, { type: 'append-resp' }>): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    this.heard.set(m.from, this.leaderTicks);
    if (!m.success) {
      if (pr.state === 'snapshot') return;
      // stale: an answer to an append sent before the match index moved (or before the last probe)
      if (m.index <= pr.match || (pr.state === 'probe' && m.index !== pr.next - 1)) return;
      const j = this.log.findConflictByTerm(Math.min(m.hintIndex, m.index), m.hintTerm);
      pr.becomeProbe(Math.max(1, Math.min(m.index, j + 1)));
      this.sendAppend(m.from);
      return;
    }
    const moved = pr.update(m.index);
    if (pr.state === 'probe') pr.becomeReplicate();
    // caught up with the snapshot, or (an older one arrived) with the log the leader still holds
    else if (pr.state === 'snapshot' && (pr.match >= pr.pendingSnapshot || pr.match + 1 >= this.log.firstIndex())) pr.becomeReplicate();
    if (moved) this.maybeCommit();
    this.sendAppend(m.from);
    if (this.transferee === m.from && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: Extract<RaftMessage, { type: 'heartbeat-resp' }>): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    this.heard.set(m.from, this.leaderTicks);
    if (pr.state === 'probe') pr.paused = false;
    if (pr.state === 'replicate' && pr.match < this.log.lastIndex()) {
      // no progress for a few heartbeat rounds: appends (or their answers) were lost, or the
      // follower lost its tail; probe again from the match index
      if (++pr.stalled >= STALL_HEARTBEATS) pr.becomeProbe(pr.match + 1);
    }
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    this.ackRead(m.from, m.ctx);
  }

  // ---- ReadIndex ----

  private startRead(requestId: string): void {
    const index = this.log.committed;
    if (this.voterSet.size === 1 && this.voterSet.has(this.id)) {
      this.readStates.push({ requestId, index });
      return;
    }
    this.readSeq++;
    this.pendingReads.push({ requestId, index, seq: this.readSeq, acks: new Set([this.id]) });
    this.broadcastHeartbeat();
  }

  private ackRead(from: NodeId, ctx: number): void {
    if (!this.voterSet.has(from)) return;
    for (const r of this.pendingReads) {
      if (r.seq > ctx) break;
      r.acks.add(from);
    }
    const q = this.quorum();
    while (this.pendingReads.length > 0) {
      const r = this.pendingReads[0]!;
      let n = 0;
      for (const a of r.acks) if (this.voterSet.has(a)) n++;
      if (n < q) break;
      this.pendingReads.shift();
      this.readStates.push({ requestId: r.requestId, index: r.index });
    }
  }

  // ---- replication, follower side ----

  private handleAppend(m: Extract<RaftMessage, { type: 'append' }>): void {
    const committed = this.log.committed;
    let { prevIndex, prevTerm, entries } = m;
    if (prevIndex < committed) {
      // Everything up to our commit index matches the leader's log (Leader Completeness): skip it.
      // Entries are contiguous from prevIndex + 1, so if any lie beyond, one lies at `committed`.
      const rest = entries.filter((e) => e.index > committed);
      if (rest.length === 0) {
        this.respondAppend(m.from, true, committed);
        return;
      }
      prevTerm = entries[committed - prevIndex - 1]!.term;
      prevIndex = committed;
      entries = rest;
    }
    if (!this.log.matchTerm(prevIndex, prevTerm)) {
      const hintIndex = this.log.findConflictByTerm(Math.min(prevIndex, this.log.lastIndex()), prevTerm);
      this.send({
        type: 'append-resp',
        term: this._term,
        from: this.id,
        to: m.from,
        success: false,
        index: m.prevIndex,
        hintIndex,
        hintTerm: this.log.term(hintIndex) ?? 0,
      });
      return;
    }
    const result = this.log.appendAfterMatch(entries);
    if (!result.ok) return; // would truncate a committed entry: cannot come from a legitimate leader
    if (result.truncatedAt !== undefined && result.truncatedAt <= this.confIndex) this.refreshConf();
    for (const e of entries) {
      if (e.kind === 'conf' && e.index > this.confIndex) this.applyConf(e.index, e.data as ConfEntryData);
    }
    const match = prevIndex + entries.length;
    this.log.commitTo(Math.min(m.commit, match));
    this.respondAppend(m.from, true, match);
  }

  private respondAppend(to: NodeId, success: boolean, index: number): void {
    this.send({ type: 'append-resp', term: this._term, from: this.id, to, success, index, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: Extract<RaftMessage, { type: 'heartbeat' }>): void {
    // m.commit <= our match index as the leader knows it, so that prefix is the leader's
    this.log.commitTo(m.commit);
    this.send({ type: 'heartbeat-resp', term: this._term, from: this.id, to: m.from, ctx: m.ctx });
  }

  private handleSnapshot(m: Extract<RaftMessage, { type: 'snapshot' }>): void {
    const s = m.snapshot;
    if (s.index <= this.log.committed) {
      this.respondAppend(m.from, true, this.log.committed);
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      this.log.commitTo(s.index);
      this.respondAppend(m.from, true, s.index);
      return;
    }
    this.log.installSnapshot(s.index, s.term);
    this.snap = copySnapshot(s);
    this.logBaseConf = { voters: [...s.voters], learners: [...s.learners] };
    this.pendingInstall = copySnapshot(s);
    this.refreshConf();
    this.noteCommittedConf(s.index, s);
    this.respondAppend(m.from, true, s.index);
  }

  // ---- configuration ----

  /** Configuration in force after the entry at `index` (index >= snapshot index). */
  private confAt(index: number): ConfState {
    for (let i = Math.min(index, this.log.lastIndex()); i > this.log.snapIndex; i--) {
      const e = this.log.entry(i)!;
      if (e.kind === 'conf') {
        const d = e.data as ConfEntryData;
        return { voters: [...d.voters], learners: [...d.learners] };
      }
    }
    const base = this.logBaseConf ?? this.bootstrap;
    return { voters: [...base.voters], learners: [...base.learners] };
  }

  /** Recomputes the configuration from the log (after a restart, truncation or snapshot). */
  private refreshConf(): void {
    const last = this.log.lastIndex();
    let idx = 0;
    for (let i = last; i > this.log.snapIndex; i--) {
      if (this.log.entry(i)!.kind === 'conf') {
        idx = i;
        break;
      }
    }
    const conf = this.confAt(last);
    this.setConf(idx, conf.voters, conf.learners);
  }

  /** Thesis §4.1: a configuration takes effect as soon as its entry is in the log. */
  private applyConf(index: number, d: ConfEntryData): void {
    this.setConf(index, d.voters, d.learners);
  }

  private setConf(index: number, voters: NodeId[], learners: NodeId[]): void {
    this.confIndex = index;
    this.voterSet = new Set(voters);
    this.learnerSet = new Set(learners);
    if (this._state === 'leader') {
      const next = this.log.lastIndex() + 1;
      for (const id of [...this.progress.keys()]) {
        if (!this.voterSet.has(id) && !this.learnerSet.has(id)) this.progress.delete(id);
      }
      for (const id of [...voters, ...learners]) {
        if (id === this.id) continue;
        const pr = this.progress.get(id);
        if (pr) pr.learner = this.learnerSet.has(id);
        else this.progress.set(id, new Progress(next, this.learnerSet.has(id)));
      }
      if (this.transferee !== null && !this.voterSet.has(this.transferee)) this.transferee = null;
      // fewer voters may mean a smaller quorum
      this.maybeCommit();
    } else if ((this._state === 'candidate' || this._state === 'pre-candidate') && !this.promotable()) {
      this.becomeFollower(this._term, null);
    }
  }

  // ---- plumbing ----

  private hardState(): HardState {
    return { term: this._term, vote: this.vote, commit: this.log.committed };
  }

  private send(m: RaftMessage): void {
    this.msgs.push(m);
  }
}

function copySnapshot(s: Snapshot): Snapshot {
  return { index: s.index, term: s.term, data: s.data, voters: [...s.voters], learners: [...s.learners] };
}
