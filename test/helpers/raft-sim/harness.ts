/**
 * A synchronous, lossless harness for unit tests of RaftNode: messages are
 * delivered in FIFO order until none are left (unless a link is cut), ticks
 * are given explicitly, each node's storage is kept so it can be restarted.
 */
import { RaftNode, type Entry, type RaftConfig, type RaftMessage, type RaftStorage, type Ready, type Snapshot } from '../../../src/replication/raft';
import { mulberry32 } from '../sim/prng';

export class Harness {
  readonly nodes = new Map<string, RaftNode>();
  readonly storage = new Map<string, RaftStorage>();
  readonly applied = new Map<string, Entry[]>();
  readonly readStates = new Map<string, { requestId: string; index: number }[]>();
  readonly readies = new Map<string, Ready[]>();
  /** Every message sent, in order. */
  readonly sent: RaftMessage[] = [];
  private queue: RaftMessage[] = [];
  private cut = new Set<string>();
  private readonly random: () => number;

  constructor(
    ids: string[],
    readonly config: Partial<RaftConfig> = {},
    seed = 1,
  ) {
    this.random = mulberry32(seed);
    for (const id of ids) this.add(id, ids);
  }

  add(id: string, peers: string[], storage?: RaftStorage): RaftNode {
    const node = new RaftNode({ id, peers, config: this.config, random: this.random, ...(storage ? { storage } : {}) });
    this.nodes.set(id, node);
    if (!storage) this.storage.set(id, { term: 0, vote: null, commit: 0, entries: [] });
    if (!this.applied.has(id)) this.applied.set(id, []);
    this.readStates.set(id, []);
    this.readies.set(id, []);
    return node;
  }

  node(id: string): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Crash (lose volatile state) and restart from what was persisted. */
  restart(id: string, peers: string[]): RaftNode {
    const st = this.storage.get(id)!;
    this.applied.set(id, []);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    return this.add(id, peers, { ...st, entries: st.entries.slice() });
  }

  /** Cuts (both directions) every link between `a` and the others listed (default: everyone). */
  isolate(a: string, others: string[] = [...this.nodes.keys()]): void {
    for (const b of others) {
      if (b === a) continue;
      this.cut.add(`${a}|${b}`);
      this.cut.add(`${b}|${a}`);
    }
  }

  /** Restores the link between `a` and `b` (both directions). */
  connect(a: string, b: string): void {
    this.cut.delete(`${a}|${b}`);
    this.cut.delete(`${b}|${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Processes every node's Ready (persist, queue messages, apply). */
  flush(): void {
    for (const [id, node] of this.nodes) {
      for (let rd = node.advance(); rd; rd = node.advance()) this.process(id, rd);
    }
  }

  private process(id: string, rd: Ready): void {
    this.readies.get(id)!.push(rd);
    const st = this.storage.get(id)!;
    if (rd.hardState) {
      st.term = rd.hardState.term;
      st.vote = rd.hardState.vote;
      st.commit = rd.hardState.commit;
    }
    if (rd.snapshot) {
      st.snapshot = rd.snapshot;
      st.entries = [];
    }
    if (rd.truncateFrom !== undefined) st.entries = st.entries.filter((e) => e.index < rd.truncateFrom!);
    st.entries.push(...rd.entries);
    for (const m of rd.messages) {
      this.sent.push(m);
      this.queue.push(m);
    }
    this.applied.get(id)!.push(...rd.committed);
    this.readStates.get(id)!.push(...rd.readStates);
  }

  /** Delivers messages until none are left; returns how many were delivered. */
  deliver(filter: (m: RaftMessage) => boolean = () => true): number {
    let n = 0;
    this.flush();
    while (this.queue.length > 0) {
      const m = this.queue.shift()!;
      const to = this.nodes.get(m.to);
      if (!to || this.cut.has(`${m.from}|${m.to}`) || !filter(m)) continue;
      to.step(JSON.parse(JSON.stringify(m)));
      n++;
      this.flush();
      if (n > 1_000_000) throw new Error('message storm');
    }
    return n;
  }

  /** Ticks the given nodes (default all) `times` times, delivering after each round. */
  tick(times = 1, ids: string[] = [...this.nodes.keys()]): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.nodes.get(id)?.tick();
      this.deliver();
    }
  }

  /**
   * Makes `id` leader: ticks only it until it campaigns and wins (the others' timers stand still).
   * If the others hold a leader lease (they heard from a leader recently and do not tick), that
   * cannot work, so the node is then told to campaign at once as a leadership transfer would.
   */
  elect(id: string): RaftNode {
    const node = this.node(id);
    for (let i = 0; i < 30 && node.state !== 'leader'; i++) this.tick(1, [id]);
    if (node.state !== 'leader') {
      node.step({ type: 'timeout-now', term: node.term, from: '(harness)', to: id });
      this.deliver();
    }
    if (node.state !== 'leader') throw new Error(`${id} did not become leader`);
    return node;
  }

  /** Messages currently queued (not yet delivered). */
  pending(): RaftMessage[] {
    return this.queue.slice();
  }

  snapshotOf(id: string): Snapshot | undefined {
    return this.storage.get(id)?.snapshot;
  }

  dataApplied(id: string): unknown[] {
    return this.applied
      .get(id)!
      .filter((e) => e.kind === undefined)
      .map((e) => e.data);
  }
}
