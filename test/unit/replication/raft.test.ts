/**
 * RaftNode behaviour, one property at a time, on the synchronous harness:
 * elections, replication (batching, pipelining, backtracking), snapshots,
 * learners and membership changes, leadership transfer, pre-vote,
 * check-quorum, ReadIndex, restarts and robustness against bad messages.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_RAFT_CONFIG, RaftNode, type RaftMessage } from '../../../src/replication/raft';
import { Harness } from '../../helpers/raft-sim/harness';
import { mulberry32 } from '../../helpers/sim/prng';

const three = ['n0', 'n1', 'n2'];
const E = DEFAULT_RAFT_CONFIG.electionTicks;

function types(ms: RaftMessage[]): string[] {
  return ms.map((m) => m.type);
}

describe('elections', () => {
  it('a single node elects itself and commits at once', () => {
    const h = new Harness(['solo']);
    const n = h.elect('solo');
    expect(n.term).toBe(1);
    const r = n.propose('x');
    expect(r).toEqual({ index: 2, term: 1 });
    h.flush();
    expect(n.commitIndex).toBe(2);
    expect(h.dataApplied('solo')).toEqual(['x']);
  });

  it('elects one leader, which appends a no-op that every node commits', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    expect(l.term).toBe(1);
    h.tick(2);
    for (const id of three) {
      const n = h.node(id);
      expect(n.leader).toBe('n0');
      expect(n.term).toBe(1);
      expect(n.commitIndex).toBe(1);
      expect(h.applied.get(id)!.map((e) => e.kind)).toEqual(['noop']);
    }
    expect(h.node('n1').state).toBe('follower');
  });

  it('campaigns after a randomized timeout in [electionTicks, 2 * electionTicks)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) {
      const h = new Harness(three, {}, seed);
      const n = h.node('n1');
      let ticks = 0;
      while (n.state === 'follower' && ticks < 100) {
        n.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(E);
      expect(ticks).toBeLessThan(2 * E);
      seen.add(ticks);
    }
    expect(seen.size).toBe(E);
  });

  it('a node with a shorter log cannot win', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.isolate('n2');
    h.node('n0').propose('a');
    h.deliver();
    h.heal();
    // n2 lacks 'a': its (pre-)votes are refused and n0 or n1 ends up leading
    for (let i = 0; i < 10 * E; i++) h.tick(1, ['n2']);
    expect(h.node('n2').state).not.toBe('leader');
    expect(h.node('n1').commitIndex).toBe(2);
  });

  it('persists the vote in the same Ready as the vote response, before it', () => {
    const h = new Harness(three, { preVote: false });
    h.elect('n0');
    const rd = h.readies.get('n1')!.find((r) => r.messages.some((m) => m.type === 'vote-resp'))!;
    expect(rd.hardState).toEqual({ term: 1, vote: 'n0', commit: 0 });
  });

  it('keeps term and vote across a restart and does not vote twice in a term', () => {
    const h = new Harness(three, { preVote: false });
    h.elect('n0');
    const n1 = h.restart('n1', three);
    expect(n1.term).toBe(1);
    n1.step({ type: 'vote', term: 1, from: 'n2', to: 'n1', pre: false, lastIndex: 5, lastTerm: 1, transfer: false });
    const rd = n1.advance()!;
    expect(rd.messages).toEqual([{ type: 'vote-resp', term: 1, from: 'n1', to: 'n2', pre: false, granted: false }]);
  });
});

describe('log replication', () => {
  it('batches up to maxEntriesPerMessage and keeps at most maxInflight appends in flight per follower', () => {
    const h = new Harness(three, { maxEntriesPerMessage: 4, maxInflight: 3 });
    const l = h.elect('n0');
    h.tick(2);
    // every proposal in the replicate state goes out at once, up to the window
    for (let i = 0; i < 40; i++) l.propose(i);
    h.flush();
    const toN1 = h.pending().filter((m) => m.to === 'n1' && m.type === 'append') as Extract<RaftMessage, { type: 'append' }>[];
    expect(toN1.filter((m) => m.entries.length > 0).length).toBe(3);
    // the rest goes out in batches as answers free the window
    h.deliver();
    for (const m of h.sent.filter((x) => x.type === 'append') as Extract<RaftMessage, { type: 'append' }>[]) {
      expect(m.entries.length).toBeLessThanOrEqual(4);
    }
    expect(h.sent.some((m) => m.type === 'append' && m.entries.length === 4)).toBe(true);
    h.tick(2);
    for (const id of three) expect(h.dataApplied(id)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('a follower learns the commit index from the leader', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    l.propose('a');
    h.deliver();
    expect(l.commitIndex).toBe(2);
    expect(h.node('n2').commitIndex).toBe(2);
    expect(h.dataApplied('n2')).toEqual(['a']);
  });

  it('overwrites a deposed leader’s uncommitted entries, backtracking in few round trips', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    for (let i = 0; i < 200; i++) h.node('n0').propose(`lost${i}`);
    h.deliver();
    expect(h.node('n0').commitIndex).toBe(1);
    const n1 = h.elect('n1');
    for (let i = 0; i < 50; i++) n1.propose(`kept${i}`);
    h.deliver();
    expect(n1.commitIndex).toBe(52);
    h.heal();
    const before = h.sent.length;
    h.tick(3);
    const rejects = h.sent.slice(before).filter((m) => m.type === 'append-resp' && !m.success && m.from === 'n0');
    expect(rejects.length).toBeLessThanOrEqual(2);
    expect(h.node('n0').state).toBe('follower');
    expect(h.dataApplied('n0')).toEqual(Array.from({ length: 50 }, (_, i) => `kept${i}`));
    expect(h.node('n0').lastIndex).toBe(52);
    // the durable log was truncated through Ready.truncateFrom
    expect(h.storage.get('n0')!.entries.map((e) => e.index)).toEqual(Array.from({ length: 52 }, (_, i) => i + 1));
    expect(h.readies.get('n0')!.some((r) => r.truncateFrom === 2)).toBe(true);
  });

  it('commits an earlier term’s entry only together with one of the current term (§5.4.2)', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.tick(1);
    // n0 replicates 'old' to n1 only, then is cut off before it can commit
    h.isolate('n0', ['n2']);
    h.node('n0').propose('old');
    h.deliver((m) => m.type !== 'append-resp');
    expect(h.node('n1').lastIndex).toBe(2);
    expect(h.node('n0').commitIndex).toBe(1);
    h.isolate('n0');
    h.heal();
    h.isolate('n0');
    const n1 = h.elect('n1');
    // the new leader's no-op (term 2) is what commits 'old' (term 1)
    const noop = n1.entry(3)!;
    expect(noop.kind).toBe('noop');
    expect(n1.commitIndex).toBe(3);
    expect(n1.termAt(2)).toBe(1);
  });

  it('restarts from its persisted log and re-applies committed entries', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    for (let i = 0; i < 5; i++) l.propose(i);
    h.tick(2);
    const n2 = h.restart('n2', three);
    expect(n2.lastIndex).toBe(6);
    h.flush();
    expect(h.dataApplied('n2')).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('snapshots', () => {
  it('sends InstallSnapshot to a follower behind the compacted log, then the entries after it', () => {
    const h = new Harness(three, { catchUpEntries: 0 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 30; i++) l.propose(i);
    h.deliver();
    expect(l.commitIndex).toBe(31);
    const snap = l.compact(31, { upTo: 31 })!;
    expect(snap).toMatchObject({ index: 31, term: 1, voters: three, learners: [] });
    expect(l.snapshotIndex).toBe(31);
    expect(l.firstIndex).toBe(32);
    expect(l.entry(10)).toBeUndefined();
    l.propose('after');
    h.deliver();
    h.heal();
    h.tick(6);
    expect(h.sent.filter((m) => m.type === 'snapshot' && m.to === 'n2').length).toBe(1);
    const n2 = h.node('n2');
    expect(h.snapshotOf('n2')).toMatchObject({ index: 31, term: 1, data: { upTo: 31 } });
    expect(n2.commitIndex).toBe(32);
    expect(h.dataApplied('n2')).toEqual(['after']);
    // and a restart of n2 starts from the snapshot
    const again = h.restart('n2', three);
    expect(again.snapshotIndex).toBe(31);
    expect(again.lastIndex).toBe(32);
  });

  it('keeps catchUpEntries below a snapshot, so a follower a little behind gets entries, not the snapshot', () => {
    const h = new Harness(three, { catchUpEntries: 10 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 30; i++) l.propose(i);
    h.deliver();
    expect(l.compact(31, 'img')).toMatchObject({ index: 31 });
    expect(l.snapshotIndex).toBe(31);
    expect(l.firstIndex).toBe(22);
    expect(l.entry(21)).toBeUndefined();
    expect(l.entry(22)?.index).toBe(22);
    // n2 holds 1..1: too far behind for the retained tail, so it needs the snapshot
    h.heal();
    h.tick(3);
    expect(h.sent.filter((m) => m.type === 'snapshot').length).toBe(1);
    // n1 falls 5 behind the next snapshot: entries reach it, no second snapshot is sent
    h.isolate('n1');
    for (let i = 0; i < 5; i++) l.propose(`x${i}`);
    h.deliver();
    h.heal();
    l.compact(l.commitIndex, 'img2');
    h.tick(3);
    expect(h.sent.filter((m) => m.type === 'snapshot').length).toBe(1);
    expect(h.node('n1').commitIndex).toBe(l.commitIndex);
    expect(h.dataApplied('n1').slice(-5)).toEqual(['x0', 'x1', 'x2', 'x3', 'x4']);
    // the configuration at the retained log's base is still known (compaction below a conf entry)
    expect(l.voters()).toEqual(three);
  });

  it('a leader never compacts past a snapshot still streaming, and the follower goes on with entries once it lands', () => {
    const h = new Harness(three, { catchUpEntries: 0 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 10; i++) l.propose(i);
    h.deliver();
    l.compact(l.commitIndex, 'first');
    const first = l.snapshotIndex;
    h.heal();
    // the snapshot leaves but is still on its way (held back here)
    const held: RaftMessage[] = [];
    const hold = (m: RaftMessage): boolean => {
      if (m.type !== 'snapshot') return true;
      held.push(m);
      return false;
    };
    for (let i = 0; i < 2 * E && held.length === 0; i++) {
      for (const id of three) h.node(id).tick();
      h.deliver(hold);
    }
    expect(held.map((m) => (m as { snapshot: { index: number } }).snapshot.index)).toEqual([first]);
    // writes go on and the leader snapshots again: it keeps its log from the streaming snapshot on
    for (let i = 0; i < 10; i++) l.propose(`later${i}`);
    h.deliver(hold);
    l.compact(l.commitIndex, 'second');
    expect(l.snapshotIndex).toBeGreaterThan(first);
    expect(l.firstIndex).toBe(first + 1);
    // the first snapshot lands: entries carry n2 the rest of the way, without a second snapshot
    h.node('n2').step(JSON.parse(JSON.stringify(held[0])));
    h.deliver(hold);
    for (let i = 0; i < 2; i++) {
      for (const id of three) h.node(id).tick();
      h.deliver(hold);
    }
    expect(held.length).toBe(1);
    expect(h.node('n2').commitIndex).toBe(l.commitIndex);
    expect(h.dataApplied('n2').slice(-10)).toEqual(Array.from({ length: 10 }, (_, i) => `later${i}`));
    // with no follower streaming any more, the next snapshot compacts all the way
    l.propose('last');
    h.deliver();
    l.compact(l.commitIndex, 'third');
    expect(l.firstIndex).toBe(l.snapshotIndex + 1);
  });

  it('a snapshot the transport still streams is not resent early; once sent it is awaited the usual time; a dropped one is resent after one timeout', () => {
    const h = new Harness(three, { catchUpEntries: 0 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 5; i++) l.propose(i);
    h.deliver();
    l.compact(l.commitIndex, 'img');
    h.isolate('n2');
    // the leader still believes n2 is at 1: probe it so the snapshot goes out
    const sentAt: number[] = [];
    let tick = 0;
    const lose = (m: RaftMessage): boolean => {
      if (m.type === 'snapshot') {
        sentAt.push(tick);
        return false;
      }
      return true;
    };
    h.heal();
    const run = (ticks: number): void => {
      for (let i = 0; i < ticks; i++, tick++) {
        for (const id of three) h.node(id).tick();
        h.deliver(lose);
      }
    };
    while (sentAt.length === 0 && tick < 3 * E) run(1);
    expect(sentAt.length).toBe(1);
    const start = tick;
    // never reported: waits STREAMING_PATIENCE (4) times the usual election timeout
    run(4 * E - 2);
    expect(sentAt.length).toBe(1);
    run(2);
    expect(sentAt.length).toBe(2);
    expect(sentAt[1]! - sentAt[0]!).toBeGreaterThanOrEqual(4 * E - 1);
    expect(start).toBeGreaterThan(0);
    // reported sent: waited for one election timeout from the report on
    const second = sentAt[1]!;
    run(3);
    l.reportSnapshot('n2', true);
    run(E - 1);
    expect(sentAt.length).toBe(2);
    run(1);
    expect(sentAt.length).toBe(3);
    expect(sentAt[2]! - second).toBe(3 + E);
    // reported dropped: resent after one election timeout
    l.reportSnapshot('n2', false);
    run(E - 1);
    expect(sentAt.length).toBe(3);
    run(1);
    expect(sentAt.length).toBe(4);
  });

  it('refuses to compact beyond what was handed out as committed', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.isolate('n0');
    l.propose('x');
    h.flush();
    expect(l.compact(2, null)).toBeUndefined();
    expect(l.compact(1, null)).toBeDefined();
    expect(l.compact(1, null)).toBeUndefined();
  });

  it('resends a lost snapshot after an election timeout', () => {
    const h = new Harness(three, { catchUpEntries: 0 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 5; i++) l.propose(i);
    h.deliver();
    l.compact(l.commitIndex, 'img');
    h.heal();
    let dropped = 0;
    // the transport reports the first snapshot sent, and the network loses it
    const dropFirst = (m: RaftMessage): boolean => {
      if (m.type !== 'snapshot') return true;
      l.reportSnapshot(m.to, true);
      return dropped++ !== 0;
    };
    for (let i = 0; i < 3 * E; i++) {
      for (const id of three) h.node(id).tick();
      h.deliver(dropFirst);
    }
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(h.node('n2').commitIndex).toBe(l.commitIndex);
  });

  it('a large snapshot in flight is not sent again before one election timeout per snapshotBytesPerTimeout of it', () => {
    const h = new Harness(three, { catchUpEntries: 0 });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 5; i++) l.propose(i);
    h.deliver();
    const image = new Uint8Array(4 * DEFAULT_RAFT_CONFIG.snapshotBytesPerTimeout); // takes 4 timeouts to stream
    l.compact(l.commitIndex, image);
    h.heal();
    const sentAt: number[] = [];
    let tick = 0;
    // every snapshot is lost (still streaming, as far as the leader can tell): count how often it is sent
    const lose = (m: RaftMessage): boolean => {
      if (m.type !== 'snapshot') return true;
      sentAt.push(tick);
      l.reportSnapshot(m.to, true);
      return false;
    };
    for (tick = 0; tick < 9 * E; tick++) {
      for (const id of three) h.node(id).tick();
      h.deliver(lose);
    }
    expect(sentAt.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < sentAt.length; i++) expect(sentAt[i]! - sentAt[i - 1]!).toBeGreaterThanOrEqual(4 * E);
  });
});

describe('membership changes', () => {
  it('adds a learner that receives the log but does not vote or count, then promotes it', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    l.propose('a');
    h.deliver();
    h.add('n3', []);
    expect(l.proposeConfChange({ type: 'add-learner', node: 'n3' })).toEqual({ index: 3, term: 1 });
    // one change at a time
    expect(l.proposeConfChange({ type: 'add-learner', node: 'n4' })).toEqual({ error: 'conf_change_pending' });
    expect(l.learners()).toEqual(['n3']);
    h.tick(3);
    const n3 = h.node('n3');
    expect(n3.learners()).toEqual(['n3']);
    expect(n3.voters()).toEqual(three);
    expect(h.dataApplied('n3')).toEqual(['a']);
    // a learner never campaigns
    for (let i = 0; i < 5 * E; i++) n3.tick();
    n3.advance();
    expect(n3.state).toBe('follower');
    // and does not count for quorum: with n1 and n2 cut off, nothing commits
    h.isolate('n1');
    h.isolate('n2');
    const r = l.propose('b') as { index: number };
    h.deliver();
    expect(n3.lastIndex).toBe(r.index);
    expect(l.commitIndex).toBe(r.index - 1);
    h.heal();
    h.tick(5);
    expect(l.commitIndex).toBe(r.index);
    // promote: now a voter everywhere, and counts
    expect('index' in l.proposeConfChange({ type: 'promote', node: 'n3' })).toBe(true);
    h.tick(2);
    for (const id of [...three, 'n3']) expect(h.node(id).voters()).toEqual(['n0', 'n1', 'n2', 'n3']);
    expect(h.node('n1').learners()).toEqual([]);
  });

  it('removes a voter, which cannot disrupt the cluster; invalid changes are refused', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    expect(l.proposeConfChange({ type: 'promote', node: 'n1' })).toEqual({ error: 'invalid_conf_change' });
    expect(l.proposeConfChange({ type: 'remove', node: 'n0' })).toEqual({ error: 'invalid_conf_change' });
    expect(l.proposeConfChange({ type: 'add-learner', node: 'n1' })).toEqual({ error: 'invalid_conf_change' });
    expect('index' in l.proposeConfChange({ type: 'remove', node: 'n2' })).toBe(true);
    h.tick(2);
    expect(l.voters()).toEqual(['n0', 'n1']);
    expect(h.node('n1').voters()).toEqual(['n0', 'n1']);
    // the leader stops replicating to n2 at once, so n2 may never learn it was removed (the driver
    // shuts it down); its pre-votes cannot disrupt: its log lacks the removal entry
    for (let i = 0; i < 5 * E; i++) h.tick(1);
    expect(l.state).toBe('leader');
    expect(l.term).toBe(1);
    expect(h.node('n2').term).toBe(1);
    // two voters now: commits need both
    h.isolate('n1');
    l.propose('x');
    h.deliver();
    expect(l.commitIndex).toBe(l.lastIndex - 1);
  });

  it('a conf change takes effect when appended and is undone if its entry is truncated', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    h.add('n3', []);
    expect('index' in l.proposeConfChange({ type: 'add-learner', node: 'n3' })).toBe(true);
    h.deliver();
    expect(l.learners()).toEqual(['n3']);
    const n1 = h.elect('n1');
    n1.propose('x');
    h.deliver();
    h.heal();
    h.tick(3);
    expect(l.state).toBe('follower');
    expect(l.learners()).toEqual([]);
    expect(l.voters()).toEqual(three);
    expect(h.dataApplied('n0')).toEqual(['x']);
  });
});

describe('forced configuration (quorum lost for good)', () => {
  it('a survivor re-forms the group alone: it leads at once, keeps its whole log, commits, and survives a restart', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    l.propose('a');
    h.tick(2);
    // n1 and n2 die for good; n0 holds one more entry nobody acknowledged
    h.isolate('n0');
    l.propose('b');
    h.deliver();
    for (let i = 0; i < 3 * E; i++) h.tick(1, ['n0']);
    expect(l.state).not.toBe('leader');
    expect(h.dataApplied('n0')).toEqual(['a']);
    expect(l.forceConfiguration(['n1'])).toEqual({ error: 'invalid_conf_change' });
    expect(l.forceConfiguration(['n0'])).toEqual({ ok: true });
    h.flush();
    expect(l.state).toBe('leader');
    expect(l.voters()).toEqual(['n0']);
    // 'b' was never acknowledged and is committed now: what the note on forceConfiguration warns of
    expect(h.dataApplied('n0')).toEqual(['a', 'b']);
    l.propose('c');
    h.flush();
    expect(h.dataApplied('n0')).toEqual(['a', 'b', 'c']);
    const back = h.restart('n0', three);
    expect(back.voters()).toEqual(['n0']);
    for (let i = 0; i < 3 * E; i++) h.tick(1, ['n0']);
    expect(back.state).toBe('leader');
  });

  it('with two survivors, the forced configuration has both and needs both', () => {
    const h = new Harness(['n0', 'n1', 'n2', 'n3', 'n4']);
    const l = h.elect('n0');
    l.propose('a');
    h.tick(2);
    for (const dead of ['n0', 'n2', 'n4']) h.isolate(dead);
    const n1 = h.node('n1');
    expect(n1.forceConfiguration(['n1', 'n3'])).toEqual({ ok: true });
    h.flush();
    h.tick(2, ['n1', 'n3']);
    expect(n1.state).toBe('leader');
    expect(h.node('n3').voters()).toEqual(['n1', 'n3']);
    n1.propose('b');
    h.tick(2, ['n1', 'n3']);
    expect(h.dataApplied('n3')).toEqual(['a', 'b']);
    h.isolate('n3');
    n1.propose('c');
    h.tick(2, ['n1']);
    expect(h.dataApplied('n1')).toEqual(['a', 'b']);
  });
});

describe('removed and empty replicas (the "ghost" that elected a stale leader)', () => {
  it('an empty replica (no configuration yet) never grants a vote, so a stale candidate cannot use it', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.tick(1);
    // n2's board lost its disk and the replica came back empty under its old id, as the old driver did
    h.nodes.delete('n2');
    const ghost = h.add('n2', []);
    h.isolate('n0');
    for (const pre of [true, false]) {
      ghost.step({ type: 'vote', term: 5, from: 'n1', to: 'n2', pre, lastIndex: 0, lastTerm: 0, transfer: false });
      const rd = ghost.advance();
      expect(rd?.messages.find((m) => m.type === 'vote-resp')).toMatchObject({ granted: false });
    }
  });

  it('a voter removed while it was away learns it from a member, and never campaigns or pre-votes again', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    expect('index' in l.proposeConfChange({ type: 'remove', node: 'n2' })).toBe(true);
    l.propose('after');
    h.tick(2);
    expect(l.voters()).toEqual(['n0', 'n1']);
    const n2 = h.node('n2');
    expect(n2.voters()).toEqual(three); // it never saw its removal
    h.heal();
    for (let i = 0; i < 3 * E; i++) h.tick(1, ['n2']);
    expect(n2.removed).toBe(true);
    const sentBefore = h.sent.filter((m) => m.from === 'n2' && m.type === 'vote').length;
    for (let i = 0; i < 10 * E; i++) h.tick(1);
    expect(h.sent.filter((m) => m.from === 'n2' && m.type === 'vote').length).toBe(sentBefore);
    expect(n2.state).toBe('follower');
    expect(l.state).toBe('leader');
    expect(l.term).toBe(1);
  });

  it('a restart that hands out committed conf entries again never makes a member believe it was removed', () => {
    // n0 founds alone, adds n1, then n2: n2's log holds the configurations from before it was added
    const h = new Harness(['n0']);
    const l = h.elect('n0');
    for (const id of ['n1', 'n2']) {
      h.add(id, []);
      expect('index' in l.proposeConfChange({ type: 'add-learner', node: id })).toBe(true);
      h.tick(3);
      expect('index' in l.proposeConfChange({ type: 'promote', node: id })).toBe(true);
      h.tick(3);
    }
    expect(h.node('n2').voters()).toEqual(['n0', 'n1', 'n2']);
    expect(h.node('n2').snapshotIndex).toBe(0);
    // n2 restarts: every committed entry, the early conf entries without n2 among them, is handed out again
    const n2 = h.restart('n2', []);
    h.tick(2 * E);
    expect(n2.removed).toBe(false);
    expect(n2.voters()).toEqual(['n0', 'n1', 'n2']);
  });

  it("a member calls a candidate removed only if the candidate's whole log lies within its committed prefix", () => {
    const h = new Harness(['n0', 'n1', 'n2', 'n3']);
    const l = h.elect('n0');
    h.tick(1);
    // n9 is not in n1's committed configuration; with a longer log it may be a voter added since
    const n1 = h.node('n1');
    const ask = (lastIndex: number) => {
      n1.step({ type: 'vote', term: 1, from: 'n9', to: 'n1', pre: true, lastIndex, lastTerm: 1, transfer: false });
      return n1.advance()!.messages.find((m) => m.type === 'vote-resp');
    };
    expect(ask(n1.commitIndex + 5)).not.toHaveProperty('removed');
    expect(ask(n1.commitIndex)).toMatchObject({ granted: false, removed: true });
    expect(l.state).toBe('leader');
  });

  it('a leader serves reads only while it has heard from a quorum within an election timeout', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    expect(l.hasQuorumContact()).toBe(true);
    h.isolate('n0');
    let ticks = 0;
    while (l.state === 'leader' && l.hasQuorumContact()) {
      l.tick();
      l.advance();
      ticks++;
    }
    // the lease runs out no later than check-quorum steps the leader down
    expect(ticks).toBeLessThanOrEqual(E);
    expect(l.hasQuorumContact()).toBe(false);
  });
});

describe('leadership transfer', () => {
  it('hands leadership to a caught-up voter with TimeoutNow', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    expect(l.transferLeadership('n2')).toBe(true);
    h.deliver();
    expect(h.sent.some((m) => m.type === 'timeout-now' && m.to === 'n2')).toBe(true);
    expect(h.node('n2').state).toBe('leader');
    expect(h.node('n2').term).toBe(2);
    expect(l.state).toBe('follower');
    expect(l.leader).toBe('n2');
  });

  it('catches a lagging target up first, and refuses proposals meanwhile', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 20; i++) l.propose(i);
    h.deliver();
    expect(l.transferLeadership('n2')).toBe(true);
    h.flush();
    expect(h.pending().some((m) => m.type === 'timeout-now')).toBe(false);
    expect(l.propose('during')).toEqual({ error: 'transferring' });
    h.heal();
    h.tick(6);
    expect(h.node('n2').state).toBe('leader');
    expect(h.dataApplied('n2')).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('gives up after an election timeout if the target stays unreachable', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    l.propose('x');
    expect(l.transferLeadership('n2')).toBe(true);
    for (let i = 0; i < E; i++) h.tick(1, ['n0']);
    expect(l.state).toBe('leader');
    expect('index' in l.propose('y')).toBe(true);
    expect(l.transferLeadership('n0')).toBe(false);
    expect(l.transferLeadership('nobody')).toBe(false);
  });
});

describe('pre-vote and check-quorum', () => {
  it('a partitioned node rejoining does not disrupt a stable leader (pre-vote)', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 10 * E; i++) h.tick(1);
    expect(h.node('n2').term).toBe(1); // pre-votes never raise the term
    expect(h.node('n2').state).toBe('pre-candidate');
    h.heal();
    h.tick(3);
    expect(l.state).toBe('leader');
    expect(l.term).toBe(1);
    expect(h.node('n2').leader).toBe('n0');
  });

  it('without pre-vote the same partition deposes the leader (the contrast)', () => {
    const h = new Harness(three, { preVote: false, checkQuorum: false });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 10 * E; i++) h.tick(1, ['n2']);
    expect(h.node('n2').term).toBeGreaterThan(5);
    h.heal();
    h.tick(3 * E);
    expect(l.term).toBeGreaterThan(1);
  });

  it('followers in a lease ignore vote requests from a node that heard no leader', () => {
    const h = new Harness(three, { preVote: false });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n2');
    for (let i = 0; i < 3 * E; i++) h.tick(1, ['n2']);
    const term = h.node('n2').term;
    expect(term).toBeGreaterThan(1);
    // n2 can reach n1 again (not n0): n1 hears from the leader every tick, so it ignores n2's votes
    h.connect('n1', 'n2');
    for (let i = 0; i < 3 * E; i++) h.tick(1);
    expect(h.sent.some((m) => m.type === 'vote' && m.from === 'n2' && m.to === 'n1')).toBe(true);
    expect(h.node('n1').term).toBe(1);
    expect(h.node('n1').leader).toBe('n0');
    expect(l.state).toBe('leader');
  });

  it('a leader cut off from a quorum steps down within an election timeout (check-quorum)', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    for (let i = 0; i < 2 * E + 1; i++) h.tick(1, ['n0']);
    expect(l.state).toBe('follower');
    expect(l.propose('x')).toEqual({ error: 'not_leader', leader: null });
  });

  it('without check-quorum the cut-off leader stays leader', () => {
    const h = new Harness(three, { checkQuorum: false });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    for (let i = 0; i < 5 * E; i++) h.tick(1, ['n0']);
    expect(l.state).toBe('leader');
  });

  it('a stale leader learns the new term from a follower’s answer and steps down', () => {
    const h = new Harness(three, { checkQuorum: false });
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    const n1 = h.elect('n1');
    expect(n1.term).toBe(2);
    h.heal();
    h.tick(1, ['n0']);
    expect(l.state).toBe('follower');
    expect(l.term).toBe(2);
  });
});

describe('ReadIndex', () => {
  it('answers only after a quorum acknowledged a heartbeat sent after the request', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    l.propose('a');
    h.deliver();
    expect(l.readIndex('r1')).toEqual({ ok: true });
    h.flush();
    expect(h.readStates.get('n0')).toEqual([]);
    expect(h.pending().filter((m) => m.type === 'heartbeat').length).toBe(2);
    h.deliver();
    expect(h.readStates.get('n0')).toEqual([{ requestId: 'r1', index: 2 }]);
  });

  it('a leader cut off from the quorum never answers', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    h.isolate('n0');
    l.readIndex('r1');
    h.tick(3, ['n0']);
    expect(h.readStates.get('n0')).toEqual([]);
  });

  it('a new leader answers only once an entry of its term is committed', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.tick(1);
    const n1 = h.node('n1');
    n1.step({ type: 'timeout-now', term: n1.term, from: 'n0', to: 'n1' });
    // n1 wins, but no answer to its appends gets through: its no-op stays uncommitted
    h.deliver((m) => m.type !== 'append-resp');
    expect(n1.state).toBe('leader');
    const noop = n1.lastIndex;
    expect(n1.entry(noop)?.kind).toBe('noop');
    expect(n1.commitIndex).toBeLessThan(noop);
    expect(n1.readIndex('early')).toEqual({ ok: true });
    h.deliver((m) => m.type !== 'append-resp');
    expect(h.readStates.get('n1')).toEqual([]);
    h.tick(2, ['n1']);
    expect(n1.commitIndex).toBe(noop);
    expect(h.readStates.get('n1')).toEqual([{ requestId: 'early', index: noop }]);
  });

  it('a follower refuses and names the leader', () => {
    const h = new Harness(three);
    h.elect('n0');
    h.tick(1);
    expect(h.node('n1').readIndex('r')).toEqual({ error: 'not_leader', leader: 'n0' });
    expect(h.node('n1').propose('x')).toEqual({ error: 'not_leader', leader: 'n0' });
  });

  it('a single node answers at once', () => {
    const h = new Harness(['solo']);
    const n = h.elect('solo');
    n.readIndex('r');
    h.flush();
    expect(h.readStates.get('solo')).toEqual([{ requestId: 'r', index: 1 }]);
  });
});

describe('robustness', () => {
  it('never throws on garbage, misaddressed, stale or out-of-place messages', () => {
    const h = new Harness(three);
    const l = h.elect('n0');
    h.tick(1);
    const random = mulberry32(3);
    const samples: unknown[] = [
      null,
      'x',
      { type: 'append', term: 1, from: 'n1', to: 'n0', prevIndex: 0, prevTerm: 0, entries: [], commit: 99 },
      { type: 'append-resp', term: 1, from: 'zz', to: 'n0', success: true, index: 1e9, hintIndex: 0, hintTerm: 0 },
      { type: 'heartbeat-resp', term: 1, from: 'n1', to: 'n0', ctx: 1e9 },
      { type: 'snapshot', term: 0, from: 'n1', to: 'n0', snapshot: { index: 5, term: 0, data: 1, voters: [], learners: [] } },
      { type: 'vote-resp', term: 1, from: 'n1', to: 'n0', pre: true, granted: true },
      { type: 'timeout-now', term: 1, from: 'n1', to: 'n2' },
      { type: 'heartbeat', term: 0, from: 'n1', to: 'n0', commit: 1, ctx: 0 },
    ];
    for (let i = 0; i < 2_000; i++) {
      const m = structuredClone(samples[Math.floor(random() * samples.length)]) as Record<string, unknown> | null;
      if (m && typeof m === 'object' && random() < 0.5) m.term = Math.floor(random() * 3);
      for (const id of three) expect(() => h.node(id).step(m)).not.toThrow();
    }
    h.deliver();
    h.tick(3);
    // the cluster still works
    const leader = [...h.nodes.values()].find((n) => n.state === 'leader') ?? l;
    const r = leader.propose('still');
    expect('index' in r).toBe(true);
    h.tick(2);
    expect(h.dataApplied('n1')).toContain('still');
  });

  it('rejects a bad configuration', () => {
    expect(() => new RaftNode({ id: 'a', peers: ['a'], random: () => 0.5, config: { electionTicks: 1, heartbeatTicks: 1 } })).toThrow(RangeError);
  });

  it('advance() returns undefined when there is nothing to do', () => {
    const h = new Harness(three);
    h.flush();
    expect(h.node('n1').advance()).toBeUndefined();
    expect(types(h.sent)).toEqual([]);
  });
});
