/**
 * A deterministic Raft cluster in simulated time (1 unit = 1 ms, one tick per
 * node every TICK_MS), driven the way a real driver would drive RaftNode:
 *
 * - each node has durable storage (hardState, log, snapshot) that survives a
 *   crash and volatile state (the RaftNode, its state machine, queued Readys)
 *   that does not; a slow disk delays the processing of each Ready, and Readys
 *   are processed strictly in order (persist, then send, then apply);
 * - the network delivers every message as JSON (plain data, re-parsed by the
 *   receiver) after a random delay, and may lose, duplicate (hence reorder)
 *   and partition;
 * - clients write unique values to a leader (acknowledged once the leader
 *   applied the entry at the index it was given) and read through ReadIndex;
 *   every operation is recorded for the linearizability check;
 * - an operator replaces a node that lost its disk: remove the old id, then
 *   add a fresh, empty node under a new id as a learner, promote it once it
 *   caught up (the safe procedure, see src/replication/DESIGN.md).
 *
 * Safety invariants are checked after every event; a violation throws.
 * All randomness comes from one PRNG seeded per run.
 */
import { RaftNode, type Entry, type RaftConfig, type RaftMessage, type Ready, type Snapshot } from '../../../src/replication/raft';
import { mulberry32 } from '../sim/prng';
import { SimClock } from '../sim/sim-clock';
import { EMPTY_LIST_HASH, extendHash, type ListInput, type ListOutput, type Operation } from './linearizability';

export const TICK_MS = 10;

interface Durable {
  term: number;
  vote: string | null;
  commit: number;
  entries: Entry[];
  snapshot: Snapshot | undefined;
}

interface SnapshotImage {
  values: string[];
}

export interface SimRaftNode {
  id: string;
  /** Bootstrap peers passed at every start ([] for nodes added later). */
  peers: string[];
  durable: Durable;
  raft: RaftNode | undefined;
  values: string[];
  hash: number;
  applied: number;
  queue: Ready[];
  diskBusy: boolean;
  /** Extra ms per Ready processed (slow disk). */
  diskDelayMs: number;
  /** Bumped on crash: invalidates the node's pending timers. */
  generation: number;
  /** Permanently gone (disk lost, replaced under a new id). */
  retired: boolean;
  /** ReadIndex results waiting for the state machine to catch up: requestId -> index. */
  reads: Map<string, number>;
  /** Writes proposed here awaiting apply: index -> op number. */
  writes: Map<number, number>;
  prevState: string;
}

export interface ClusterOptions {
  seed: number;
  size: number;
  config?: Partial<RaftConfig>;
  /** Per-message delay, uniform in [1, maxDelayMs]. */
  maxDelayMs?: number;
  loss?: number;
  duplicate?: number;
  /** Take a snapshot once this many applied entries are beyond the last one. */
  compactEvery?: number;
}

export type History = Operation<ListInput, ListOutput>[];

export class RaftCluster {
  readonly clock = new SimClock();
  readonly random: () => number;
  readonly nodes = new Map<string, SimRaftNode>();
  readonly bootstrap: string[];
  readonly config: Partial<RaftConfig>;
  maxDelayMs: number;
  loss: number;
  duplicate: number;
  compactEvery: number;
  /** Node id -> partition group; nodes in different groups cannot talk. */
  private group = new Map<string, number>();
  readonly stats = { sent: 0, delivered: 0, dropped: 0, elections: 0, snapshotsSent: 0, readyProcessed: 0 };

  // ---- invariant bookkeeping ----
  private leaderOfTerm = new Map<number, string>();
  /** index -> the committed entry's term and data, and the lowest term at which anyone was seen to have it committed */
  private committed = new Map<number, { term: number; key: string; seenAtTerm: number }>();
  private commitSeen = new Map<string, number>();
  /** `${index}/${term}` -> data key and previous entry's term, for Log Matching */
  private logIndex = new Map<string, { key: string; prevTerm: number }>();
  private appliedAt = new Map<number, string>();
  /** index -> hash of the state machine's list after applying up to it */
  private stateAt = new Map<number, number>();

  // ---- clients ----
  readonly history: History = [];
  private seq = 0;
  private nextValue = 0;
  private nextRead = 0;
  private readOps = new Map<string, number>();
  acked = new Set<string>();

  constructor(opts: ClusterOptions) {
    this.random = mulberry32(opts.seed);
    this.config = opts.config ?? {};
    this.maxDelayMs = opts.maxDelayMs ?? 8;
    this.loss = opts.loss ?? 0;
    this.duplicate = opts.duplicate ?? 0;
    this.compactEvery = opts.compactEvery ?? 40;
    this.bootstrap = Array.from({ length: opts.size }, (_, i) => `n${i}`);
    for (const id of this.bootstrap) this.addNode(id, this.bootstrap);
  }

  // ---- nodes ----

  addNode(id: string, peers: string[]): SimRaftNode {
    const node: SimRaftNode = {
      id,
      peers,
      durable: { term: 0, vote: null, commit: 0, entries: [], snapshot: undefined },
      raft: undefined,
      values: [],
      hash: EMPTY_LIST_HASH,
      applied: 0,
      queue: [],
      diskBusy: false,
      diskDelayMs: 0,
      generation: 0,
      retired: false,
      reads: new Map(),
      writes: new Map(),
      prevState: 'follower',
    };
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  node(id: string): SimRaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  live(): SimRaftNode[] {
    return [...this.nodes.values()].filter((n) => n.raft !== undefined);
  }

  /** The live leader with the highest term, if any. */
  leader(): SimRaftNode | undefined {
    let best: SimRaftNode | undefined;
    for (const n of this.live()) {
      if (n.raft!.state === 'leader' && (!best || n.raft!.term > best.raft!.term)) best = n;
    }
    return best;
  }

  private start(node: SimRaftNode): void {
    const d = node.durable;
    node.generation++;
    node.raft = new RaftNode({
      id: node.id,
      peers: node.peers,
      config: this.config,
      random: this.random,
      storage: { term: d.term, vote: d.vote, commit: d.commit, entries: d.entries.slice(), ...(d.snapshot ? { snapshot: d.snapshot } : {}) },
    });
    const image = d.snapshot ? (d.snapshot.data as SnapshotImage) : { values: [] };
    node.values = image.values.slice();
    node.hash = node.values.reduce(extendHash, EMPTY_LIST_HASH);
    node.applied = d.snapshot?.index ?? 0;
    node.queue = [];
    node.diskBusy = false;
    node.reads = new Map();
    node.writes = new Map();
    node.prevState = 'follower';
    this.commitSeen.set(node.id, node.raft.commitIndex);
    const gen = node.generation;
    const tick = (): void => {
      if (node.generation !== gen || !node.raft) return;
      node.raft.tick();
      this.pump(node);
      this.clock.setTimeout(tick, TICK_MS);
    };
    this.clock.setTimeout(tick, 1 + Math.floor(this.random() * TICK_MS));
  }

  /**
   * Loses the node's volatile state. `torn`: the crash hits while the first queued Ready is being
   * written, so a random part of it (the hard state, maybe the snapshot, a prefix of the entries)
   * reached the disk and none of its messages or applies happened.
   */
  crash(id: string, torn = false): void {
    const node = this.node(id);
    if (!node.raft) return;
    const rd = node.queue[0];
    if (torn && rd) this.persistPart(node, rd);
    node.raft = undefined;
    node.generation++;
    node.queue = [];
    node.diskBusy = false;
  }

  restart(id: string): void {
    const node = this.node(id);
    if (node.raft || node.retired) return;
    this.start(node);
  }

  /** The node's disk is gone for good: it is crashed and never comes back under this id. */
  loseDisk(id: string): void {
    this.crash(id);
    this.node(id).retired = true;
  }

  /** The UNSAFE way to handle a lost disk, for tests that show the simulation catches it: the node comes back empty under its old id. */
  wipeAndRestart(id: string): void {
    const node = this.node(id);
    this.crash(id);
    node.durable = { term: 0, vote: null, commit: 0, entries: [], snapshot: undefined };
    this.start(node);
  }

  partition(groups: string[][]): void {
    this.group = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.group.set(id, i)));
  }

  heal(): void {
    this.group = new Map();
  }

  private connected(a: string, b: string): boolean {
    return (this.group.get(a) ?? -1) === (this.group.get(b) ?? -1);
  }

  // ---- the driver ----

  /** After calling into a node's RaftNode from outside (propose, transfer, …): process its output. */
  poke(node: SimRaftNode): void {
    this.pump(node);
  }

  /** Collects the node's Readys and processes them in order (after the disk delay, if slow). */
  private pump(node: SimRaftNode): void {
    const raft = node.raft;
    if (!raft) return;
    for (let rd = raft.advance(); rd; rd = raft.advance()) node.queue.push(rd);
    this.observe(node);
    this.drain(node);
  }

  private drain(node: SimRaftNode): void {
    if (node.diskBusy) return;
    while (node.queue.length > 0) {
      if (node.diskDelayMs > 0) {
        node.diskBusy = true;
        const gen = node.generation;
        this.clock.setTimeout(() => {
          if (node.generation !== gen) return;
          node.diskBusy = false;
          const rd = node.queue.shift();
          if (rd) this.process(node, rd);
          this.drain(node);
        }, node.diskDelayMs);
        return;
      }
      this.process(node, node.queue.shift()!);
    }
  }

  private process(node: SimRaftNode, rd: Ready): void {
    this.stats.readyProcessed++;
    const d = node.durable;
    // 1-4: persist
    if (rd.hardState) {
      d.term = rd.hardState.term;
      d.vote = rd.hardState.vote;
      d.commit = rd.hardState.commit;
    }
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = [];
      const image = rd.snapshot.data as SnapshotImage;
      node.values = image.values.slice();
      node.hash = node.values.reduce(extendHash, EMPTY_LIST_HASH);
      node.applied = rd.snapshot.index;
      this.checkState(node, rd.snapshot.index);
    }
    if (rd.truncateFrom !== undefined) {
      const t = rd.truncateFrom;
      if (t <= (d.snapshot?.index ?? 0)) throw new Error(`${node.id}: truncate at ${t} below the snapshot`);
      d.entries = d.entries.filter((e) => e.index < t);
    }
    if (rd.entries.length > 0) {
      const last = d.entries.length > 0 ? d.entries[d.entries.length - 1]!.index : (d.snapshot?.index ?? 0);
      if (rd.entries[0]!.index !== last + 1) throw new Error(`${node.id}: Ready entries start at ${rd.entries[0]!.index}, durable log ends at ${last}`);
      for (const e of rd.entries) {
        const prevTerm = d.entries.length > 0 ? d.entries[d.entries.length - 1]!.term : (d.snapshot?.term ?? 0);
        this.checkLogMatching(node.id, e, prevTerm);
        d.entries.push(e);
      }
    }
    if (d.commit > this.durableLast(node)) throw new Error(`${node.id}: persisted commit ${d.commit} beyond its durable log`);
    // 5: send
    for (const m of rd.messages) this.send(m);
    // 6: apply
    for (const e of rd.committed) this.apply(node, e);
    // 7: reads
    for (const r of rd.readStates) node.reads.set(r.requestId, r.index);
    this.serveReads(node);
    this.maybeCompact(node);
  }

  private persistPart(node: SimRaftNode, rd: Ready): void {
    const d = node.durable;
    if (rd.hardState) {
      d.term = rd.hardState.term;
      d.vote = rd.hardState.vote;
      d.commit = rd.hardState.commit;
    }
    if (this.random() < 0.5) return;
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = [];
    }
    if (rd.truncateFrom !== undefined) d.entries = d.entries.filter((e) => e.index < rd.truncateFrom!);
    const n = Math.floor(this.random() * (rd.entries.length + 1));
    for (const e of rd.entries.slice(0, n)) {
      const prevTerm = d.entries.length > 0 ? d.entries[d.entries.length - 1]!.term : (d.snapshot?.term ?? 0);
      this.checkLogMatching(node.id, e, prevTerm);
      d.entries.push(e);
    }
  }

  private durableLast(node: SimRaftNode): number {
    const d = node.durable;
    return d.entries.length > 0 ? d.entries[d.entries.length - 1]!.index : (d.snapshot?.index ?? 0);
  }

  private apply(node: SimRaftNode, e: Entry): void {
    if (e.index <= node.applied) return; // covered by a snapshot installed in the same Ready
    if (e.index !== node.applied + 1) throw new Error(`${node.id}: applies ${e.index} after ${node.applied}`);
    const key = entryKey(e);
    const seen = this.appliedAt.get(e.index);
    if (seen === undefined) this.appliedAt.set(e.index, key);
    else if (seen !== key) throw new Error(`State Machine Safety: ${node.id} applies ${key} at ${e.index}, another node applied ${seen}`);
    node.applied = e.index;
    if (e.kind === undefined) {
      const v = (e.data as { value: string }).value;
      node.values.push(v);
      node.hash = extendHash(node.hash, v);
    }
    this.checkState(node, e.index);
    const op = node.writes.get(e.index);
    if (op !== undefined) {
      node.writes.delete(e.index);
      const o = this.history[op]!;
      if (e.kind === undefined && (e.data as { value: string }).value === (o.input as { value: string }).value) {
        o.ret = ++this.seq;
        o.output = undefined;
        this.acked.add((o.input as { value: string }).value);
      }
    }
  }

  /** The state machine after applying up to `index` (or installing a snapshot there) is the same on every node. */
  private checkState(node: SimRaftNode, index: number): void {
    const h = this.stateAt.get(index);
    if (h === undefined) this.stateAt.set(index, node.hash);
    else if (h !== node.hash) throw new Error(`State Machine Safety: ${node.id}'s state at ${index} differs from another node's`);
  }

  private maybeCompact(node: SimRaftNode): void {
    const raft = node.raft;
    if (!raft) return;
    const base = node.durable.snapshot?.index ?? 0;
    if (node.applied - base < this.compactEvery) return;
    const image: SnapshotImage = { values: node.values.slice() };
    const snap = raft.compact(node.applied, image);
    if (!snap) return;
    node.durable.snapshot = snap;
    node.durable.entries = node.durable.entries.filter((e) => e.index > snap.index);
  }

  private serveReads(node: SimRaftNode): void {
    for (const [requestId, index] of node.reads) {
      if (node.applied < index) continue;
      node.reads.delete(requestId);
      const op = this.readOps.get(requestId);
      if (op === undefined) continue;
      this.readOps.delete(requestId);
      const o = this.history[op]!;
      o.output = { len: node.values.length, hash: node.hash };
      o.ret = ++this.seq;
    }
  }

  // ---- network ----

  private send(m: RaftMessage): void {
    this.stats.sent++;
    if (m.type === 'snapshot') this.stats.snapshotsSent++;
    if (!this.connected(m.from, m.to) || this.random() < this.loss) {
      this.stats.dropped++;
      return;
    }
    const json = JSON.stringify(m);
    const copies = this.random() < this.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.clock.setTimeout(() => this.deliver(m.from, m.to, json), 1 + Math.floor(this.random() * this.maxDelayMs));
    }
  }

  private deliver(from: string, to: string, json: string): void {
    const node = this.nodes.get(to);
    if (!node?.raft || !this.connected(from, to)) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
    node.raft.step(JSON.parse(json));
    this.pump(node);
  }

  // ---- clients ----

  /** A client writes a fresh value through `via` (if it is the leader). Returns the value if accepted. */
  write(via: SimRaftNode): string | undefined {
    if (!via.raft) return undefined;
    const value = `v${++this.nextValue}`;
    const call = ++this.seq;
    const r = via.raft.propose({ value });
    if (!('index' in r)) return undefined;
    this.history.push({ input: { kind: 'write', value }, output: undefined, call, ret: Infinity });
    via.writes.set(r.index, this.history.length - 1);
    this.pump(via);
    return value;
  }

  read(via: SimRaftNode): boolean {
    if (!via.raft) return false;
    const requestId = `r${++this.nextRead}`;
    const call = ++this.seq;
    const r = via.raft.readIndex(requestId);
    if (!('ok' in r)) return false;
    this.history.push({ input: { kind: 'read' }, output: undefined, call, ret: Infinity });
    this.readOps.set(requestId, this.history.length - 1);
    this.pump(via);
    return true;
  }

  /** Completed history: reads that never returned say nothing and are left out. */
  completedHistory(): History {
    return this.history.filter((o) => o.input.kind === 'write' || Number.isFinite(o.ret));
  }

  /** Adds the final read: the list as every node ended up with it (after convergence). */
  finalRead(values: string[]): void {
    const call = ++this.seq;
    this.history.push({ input: { kind: 'read' }, output: { len: values.length, hash: values.reduce(extendHash, EMPTY_LIST_HASH) }, call, ret: ++this.seq });
  }

  // ---- invariants ----

  private checkLogMatching(id: string, e: Entry, prevTerm: number): void {
    const k = `${e.index}/${e.term}`;
    const key = entryKey(e);
    const seen = this.logIndex.get(k);
    if (!seen) this.logIndex.set(k, { key, prevTerm });
    else if (seen.key !== key || seen.prevTerm !== prevTerm) {
      throw new Error(`Log Matching: ${id} holds ${key} (prev term ${prevTerm}) at ${k}; another log holds ${seen.key} (prev term ${seen.prevTerm})`);
    }
  }

  /** After every event on `node`: Election Safety, commit agreement, Leader Completeness. */
  private observe(node: SimRaftNode): void {
    const raft = node.raft;
    if (!raft) return;
    // committed entries agree everywhere; note the earliest term anyone saw each committed
    const from = this.commitSeen.get(node.id) ?? 0;
    for (let i = from + 1; i <= raft.commitIndex; i++) {
      const t = raft.termAt(i);
      const e = raft.entry(i);
      if (t === undefined) continue;
      const key = e ? entryKey(e) : undefined;
      const c = this.committed.get(i);
      if (!c) {
        if (key !== undefined) this.committed.set(i, { term: t, key, seenAtTerm: raft.term });
      } else {
        if (c.term !== t || (key !== undefined && c.key !== key)) {
          throw new Error(`committed entries disagree at ${i}: ${node.id} has term ${t}, committed was term ${c.term}`);
        }
        c.seenAtTerm = Math.min(c.seenAtTerm, raft.term);
      }
    }
    this.commitSeen.set(node.id, raft.commitIndex);

    const state = raft.state;
    if (state === 'leader') {
      const other = this.leaderOfTerm.get(raft.term);
      if (other === undefined) this.leaderOfTerm.set(raft.term, node.id);
      else if (other !== node.id) throw new Error(`Election Safety: ${other} and ${node.id} both leaders of term ${raft.term}`);
      if (node.prevState !== 'leader') {
        this.stats.elections++;
        // Leader Completeness: every entry committed in an earlier term is in the new leader's log
        for (const [i, c] of this.committed) {
          if (c.seenAtTerm >= raft.term || i <= raft.snapshotIndex) continue;
          const t = raft.termAt(i);
          if (t !== c.term)
            throw new Error(`Leader Completeness: ${node.id}, leader of term ${raft.term}, lacks committed entry ${i} (term ${c.term}), has ${t}`);
        }
      }
    }
    node.prevState = state;
  }

  // ---- running ----

  run(ms: number): void {
    this.clock.advance(ms);
  }

  /** Runs until `done` holds (checked every tick) or `ms` pass; returns whether it held. */
  runUntil(done: () => boolean, ms: number): boolean {
    const end = this.clock.monotonic() + ms;
    while (this.clock.monotonic() < end) {
      if (done()) return true;
      this.clock.advance(TICK_MS);
    }
    return done();
  }

  /** One line per node, for failure messages. */
  describe(): string {
    return [...this.nodes.values()]
      .map((n) => {
        const r = n.raft;
        if (!r) return `${n.id}: ${n.retired ? 'retired' : 'crashed'} (durable term ${n.durable.term}, log to ${this.durableLast(n)})`;
        return `${n.id}: ${r.state} term ${r.term} leader ${r.leader} commit ${r.commitIndex} last ${r.lastIndex} applied ${n.applied} voters [${r.voters()}] learners [${r.learners()}] disk ${n.diskDelayMs}ms queue ${n.queue.length}`;
      })
      .join('\n');
  }
}

function entryKey(e: Entry): string {
  if (e.kind === 'noop') return `noop@${e.term}`;
  if (e.kind === 'conf') return `conf:${JSON.stringify(e.data)}@${e.term}`;
  return `w:${(e.data as { value: string }).value}@${e.term}`;
}
