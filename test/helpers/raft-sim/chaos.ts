/**
 * One randomized run of a RaftCluster: clients writing and reading while the
 * network partitions, loses and duplicates, nodes crash and restart, disks
 * are slow, leadership is transferred and (optionally) one node loses its
 * disk and is replaced. Then everything heals and the run must converge: all
 * nodes apply the same list, every acknowledged write is in it, and the
 * client history is linearizable. Safety invariants are checked throughout by
 * the cluster itself.
 */
import { mulberry32 } from '../sim/prng';
import { checkAppendList } from './linearizability';
import { RaftCluster, type SimRaftNode } from './cluster';

export interface ChaosOptions {
  size: number;
  /** Simulated ms of faults. */
  chaosMs?: number;
  /** Replace one node that lost its disk (remove, add fresh as learner, promote). */
  diskLoss?: boolean;
  /** UNSAFE (to show it is caught): a node that lost its disk restarts empty under its old id, now and then. */
  unsafeWipe?: boolean;
  /** Most client operations. */
  maxOps?: number;
}

export interface ChaosResult {
  cluster: RaftCluster;
  acked: number;
  ops: number;
  finalLength: number;
  diskLossDone: boolean;
}

const CONVERGE_MS = 30_000;

/**
 * A simulated cluster whose network and Raft parameters are drawn from a second
 * stream (`seed ^ salt`), so they do not shift the cluster's own sequence.
 */
export function chaosCluster(seed: number, size: number, salt: number): RaftCluster {
  const pre = mulberry32(seed ^ salt);
  return new RaftCluster({
    seed,
    size,
    maxDelayMs: 2 + Math.floor(pre() * 12),
    loss: pre() < 0.4 ? 0 : pre() * 0.1,
    duplicate: pre() * 0.05,
    compactEvery: 10 + Math.floor(pre() * 50),
    config: { maxEntriesPerMessage: 1 + Math.floor(pre() * 16), maxInflight: 1 + Math.floor(pre() * 8) },
  });
}

export function runChaos(seed: number, opts: ChaosOptions): ChaosResult {
  const chaosMs = opts.chaosMs ?? 5_000;
  const maxOps = opts.maxOps ?? 300;
  const c = chaosCluster(seed, opts.size, 0x9e3779b9);
  const r = c.random;
  const pick = <T>(xs: T[]): T | undefined => (xs.length === 0 ? undefined : xs[Math.floor(r() * xs.length)]);
  const members = (): SimRaftNode[] => [...c.nodes.values()].filter((n) => !n.retired);
  let chaos = true;
  let clients = true;
  let ops = 0;

  // ---- clients ----
  const client = (): void => {
    if (!clients) return;
    if (ops < maxOps) {
      const via = r() < 0.8 ? (c.leader() ?? pick(c.live())) : pick(c.live());
      if (via) {
        const done = r() < 0.7 ? c.write(via) !== undefined : c.read(via);
        if (done) ops++;
      }
    }
    c.clock.setTimeout(client, 3 + Math.floor(r() * 25));
  };
  c.clock.setTimeout(client, 50);

  // ---- operator: replaces a node that lost its disk ----
  let op: { phase: 'remove' | 'add' | 'catchup' | 'done'; old: string; fresh: string } | undefined;
  const operator = (): void => {
    if (op && op.phase !== 'done') {
      const L = c.leader();
      const raft = L?.raft;
      if (raft) {
        const inConf = (id: string): boolean => raft.voters().includes(id) || raft.learners().includes(id);
        const committed = raft.commitIndex >= raft.configIndex;
        if (op.phase === 'remove') {
          if (inConf(op.old)) raft.proposeConfChange({ type: 'remove', node: op.old });
          else if (committed) {
            op.phase = 'add';
            c.addNode(op.fresh, []);
          }
        } else if (op.phase === 'add') {
          if (!inConf(op.fresh)) raft.proposeConfChange({ type: 'add-learner', node: op.fresh });
          else if (committed) op.phase = 'catchup';
        } else if (raft.learners().includes(op.fresh)) {
          if ((raft.matchIndex(op.fresh) ?? 0) >= raft.commitIndex) raft.proposeConfChange({ type: 'promote', node: op.fresh });
        } else if (raft.voters().includes(op.fresh) && committed) {
          op.phase = 'done';
        }
        c.poke(L!);
      }
    }
    c.clock.setTimeout(operator, 20);
  };
  c.clock.setTimeout(operator, 20);

  // ---- faults ----
  const fault = (): void => {
    if (!chaos) return;
    const x = r();
    const ids = members().map((n) => n.id);
    if (x < 0.22) {
      const shuffled = ids.slice();
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const cut = 1 + Math.floor(r() * (shuffled.length - 1));
      c.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
    } else if (x < 0.4) {
      c.heal();
    } else if (x < 0.6) {
      const victim = pick(c.live().filter((n) => !n.retired));
      if (victim) {
        c.crash(victim.id, r() < 0.5);
        c.clock.setTimeout(() => c.restart(victim.id), 50 + Math.floor(r() * 800));
      }
    } else if (x < 0.7) {
      const slow = pick(c.live());
      if (slow) {
        slow.diskDelayMs = 3 + Math.floor(r() * 30);
        c.clock.setTimeout(() => (slow.diskDelayMs = 0), 100 + Math.floor(r() * 800));
      }
    } else if (x < 0.8) {
      const L = c.leader();
      const to = L ? pick(L.raft!.voters().filter((v) => v !== L.id)) : undefined;
      if (L && to) {
        L.raft!.transferLeadership(to);
        c.poke(L);
      }
    } else if (x < 0.86) {
      if (opts.unsafeWipe) {
        const victim = pick(c.live());
        if (victim) c.wipeAndRestart(victim.id);
      } else if (opts.diskLoss && !op) {
        const victim = pick(c.bootstrap.filter((id) => !c.node(id).retired));
        if (victim) {
          c.loseDisk(victim);
          op = { phase: 'remove', old: victim, fresh: `${victim}b` };
        }
      }
    } else {
      c.loss = r() < 0.5 ? 0 : r() * 0.15;
    }
    c.clock.setTimeout(fault, 30 + Math.floor(r() * 250));
  };
  c.clock.setTimeout(fault, 200 + Math.floor(r() * 300));

  c.run(chaosMs);

  // ---- heal, then converge ----
  chaos = false;
  c.heal();
  c.loss = 0;
  c.duplicate = 0;
  for (const n of c.nodes.values()) {
    n.diskDelayMs = 0;
    c.restart(n.id);
  }
  c.run(300);
  clients = false;
  const converged = (): boolean => {
    if (op && op.phase !== 'done') return false;
    const L = c.leader();
    if (!L) return false;
    const raft = L.raft!;
    if (raft.commitIndex !== raft.lastIndex || raft.termAt(raft.commitIndex) !== raft.term) return false;
    return members().every((n) => n.raft && n.queue.length === 0 && n.applied === raft.commitIndex);
  };
  if (!c.runUntil(converged, CONVERGE_MS)) {
    throw new Error(`no convergence within ${CONVERGE_MS} ms after healing (operator: ${op ? op.phase : 'none'}):\n${c.describe()}`);
  }
  // let pending reads answer
  c.run(100);

  const nodes = members();
  const final = nodes[0]!.values;
  for (const n of nodes) {
    if (n.hash !== nodes[0]!.hash || n.values.length !== final.length) {
      throw new Error(`${n.id} applied ${n.values.length} values, ${nodes[0]!.id} ${final.length}: state machines differ`);
    }
  }
  const finalSet = new Set(final);
  for (const v of c.acked) if (!finalSet.has(v)) throw new Error(`acknowledged write ${v} is lost`);

  const history = c.completedHistory();
  c.finalRead(final);
  history.push(c.history[c.history.length - 1]!);
  const lin = checkAppendList(history, final);
  if (!lin.ok) throw new Error(`history of ${history.length} operations is not linearizable: ${lin.reason}`);
  return { cluster: c, acked: c.acked.size, ops: history.length, finalLength: final.length, diskLossDone: op?.phase === 'done' };
}
