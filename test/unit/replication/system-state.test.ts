/**
 * The system group's state machine: locks (FIFO, fencing tokens), sessions
 * and their close cascade, KV (revisions, CAS, watch history), validation,
 * snapshots and determinism.
 */
import { describe, expect, it } from 'vitest';
import { SystemState, type SystemResult, type SystemOk } from '../../../src/replication/system-state';
import { parseCommand } from '../../../src/replication/system-commands';
import { mulberry32 } from '../../helpers/sim/prng';

const ok = (r: SystemResult): SystemOk => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.message}`);
  return r;
};

function withSessions(...ids: string[]): SystemState {
  const s = new SystemState();
  for (const id of ids) ok(s.apply({ op: 'session-open', id, node: `node-${id}`, ttlMs: 5000 }));
  return s;
}

const acquire = (s: SystemState, name: string, session: string, wait = true, index = 0): SystemResult =>
  s.apply({ op: 'lock-acquire', name, session, wait }, index);

describe('SystemState: locks', () => {
  it('grants a free lock at once, queues waiters FIFO and grants them in order with new, increasing tokens', () => {
    const s = withSessions('a', 'b', 'c', 'd');
    const ra = ok(acquire(s, 'L', 'a', true, 10));
    expect(ra).toMatchObject({ granted: true, since: 10 });
    expect(ra.grants).toEqual([{ lock: 'L', session: 'a', node: 'node-a', token: ra.token }]);
    expect(ok(acquire(s, 'L', 'c')).position).toBe(1);
    expect(ok(acquire(s, 'L', 'b')).position).toBe(2);
    expect(ok(acquire(s, 'L', 'd')).position).toBe(3);
    expect(s.lock('L')!.waiters).toEqual(['c', 'b', 'd']);

    const order: string[] = [];
    const tokens: number[] = [ra.token!];
    let holder = 'a';
    for (let i = 0; i < 3; i++) {
      const r = ok(s.apply({ op: 'lock-release', name: 'L', session: holder }, 20 + i));
      expect(r.grants).toHaveLength(1);
      const g = r.grants[0]!;
      order.push(g.session);
      tokens.push(g.token);
      holder = g.session;
      expect(s.lock('L')!.holder).toEqual({ session: g.session, node: `node-${g.session}`, token: g.token, since: 20 + i });
    }
    expect(order).toEqual(['c', 'b', 'd']);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
    const last = ok(s.apply({ op: 'lock-release', name: 'L', session: 'd' }));
    expect(last.grants).toEqual([]);
    expect(s.lock('L')).toEqual({ name: 'L', waiters: [], lastToken: tokens[3] });
  });

  it('re-acquire by the holder is idempotent; a waiter re-acquiring keeps its place', () => {
    const s = withSessions('a', 'b', 'c');
    const t = ok(acquire(s, 'L', 'a', true, 5)).token;
    const again = ok(acquire(s, 'L', 'a', false, 9));
    expect(again).toMatchObject({ granted: true, token: t, since: 5, grants: [] });
    ok(acquire(s, 'L', 'b'));
    ok(acquire(s, 'L', 'c'));
    expect(ok(acquire(s, 'L', 'b')).position).toBe(1);
    expect(s.lock('L')!.waiters).toEqual(['b', 'c']);
    expect(s.lock('L')!.lastToken).toBe(t);
  });

  it('try-lock fails with lock_busy and changes nothing', () => {
    const s = withSessions('a', 'b');
    ok(acquire(s, 'L', 'a'));
    const before = s.snapshot();
    const r = acquire(s, 'L', 'b', false);
    expect(r).toMatchObject({ ok: false, code: 'lock_busy', holder: 'a' });
    expect(s.snapshot()).toEqual(before);
  });

  it('release by a non-holder fails (not_holder), unknown sessions fail (unknown_session)', () => {
    const s = withSessions('a', 'b');
    ok(acquire(s, 'L', 'a'));
    ok(acquire(s, 'L', 'b'));
    expect(s.apply({ op: 'lock-release', name: 'L', session: 'b' })).toMatchObject({ ok: false, code: 'not_holder' });
    expect(s.apply({ op: 'lock-release', name: 'M', session: 'b' })).toMatchObject({ ok: false, code: 'not_holder' });
    expect(acquire(s, 'L', 'zz')).toMatchObject({ ok: false, code: 'unknown_session' });
    expect(s.apply({ op: 'lock-release', name: 'L', session: 'zz' })).toMatchObject({ ok: false, code: 'unknown_session' });
    expect(s.lock('L')!.holder!.session).toBe('a');
  });

  it('cancel: a waiter leaves the queue; a holder cancelling releases to the next waiter', () => {
    const s = withSessions('a', 'b', 'c');
    const t1 = ok(acquire(s, 'L', 'a')).token!;
    ok(acquire(s, 'L', 'b'));
    ok(acquire(s, 'L', 'c'));
    expect(ok(s.apply({ op: 'lock-cancel', name: 'L', session: 'b' })).cancelled).toBe(true);
    expect(s.lock('L')!.waiters).toEqual(['c']);
    expect(ok(s.apply({ op: 'lock-cancel', name: 'L', session: 'b' })).cancelled).toBe(false);
    const r = ok(s.apply({ op: 'lock-cancel', name: 'L', session: 'a' }));
    expect(r.cancelled).toBe(true);
    expect(r.grants).toEqual([{ lock: 'L', session: 'c', node: 'node-c', token: t1 + 1 }]);
    expect(s.session('b')!.locks).toEqual([]);
  });

  it("a timed-out attempt's cancel, committed after the same session asked again and got the lock, leaves that lock alone", () => {
    // nemesis (seed 1, a full disk on the system leader): the cancel of b's first attempt was proposed, timed
    // out, and committed only after b's second attempt had been granted, so a got the lock while b held it
    const s = withSessions('a', 'b');
    ok(acquire(s, 'L', 'a', true, 10));
    const first = ok(acquire(s, 'L', 'b', true, 11));
    expect(first).toMatchObject({ granted: false, attempt: 11 });
    const second = ok(acquire(s, 'L', 'b', true, 14));
    expect(second).toMatchObject({ granted: false, position: 1, attempt: 14 });
    const handover = ok(s.apply({ op: 'lock-release', name: 'L', session: 'a' }, 15));
    expect(handover.grants.map((g) => g.session)).toEqual(['b']);
    ok(acquire(s, 'L', 'a', true, 16));
    // the stale cancel names the first attempt: nothing changes
    expect(ok(s.apply({ op: 'lock-cancel', name: 'L', session: 'b', attempt: 11 }, 17))).toMatchObject({ cancelled: false, grants: [] });
    expect(s.lock('L')!.holder!.session).toBe('b');
    expect(s.lock('L')!.waiters).toEqual(['a']);
    // the same after a snapshot (attempts are part of it)
    const r = SystemState.restore(s.snapshot());
    expect(ok(r.apply({ op: 'lock-cancel', name: 'L', session: 'b', attempt: 11 }, 17)).cancelled).toBe(false);
    // the current attempt's cancel does release it (the grant raced its timeout)
    const own = ok(r.apply({ op: 'lock-cancel', name: 'L', session: 'b', attempt: 14 }, 18));
    expect(own.cancelled).toBe(true);
    expect(own.grants.map((g) => g.session)).toEqual(['a']);
    // a waiter's own cancel leaves the queue; an older one's does not
    const q = withSessions('a', 'b');
    ok(acquire(q, 'L', 'a', true, 1));
    ok(acquire(q, 'L', 'b', true, 2));
    ok(acquire(q, 'L', 'b', true, 3));
    expect(ok(q.apply({ op: 'lock-cancel', name: 'L', session: 'b', attempt: 2 }, 4)).cancelled).toBe(false);
    expect(q.lock('L')!.waiters).toEqual(['b']);
    expect(ok(q.apply({ op: 'lock-cancel', name: 'L', session: 'b', attempt: 3 }, 5)).cancelled).toBe(true);
    expect(q.lock('L')!.waiters).toEqual([]);
    expect(() => parseCommand({ op: 'lock-cancel', name: 'L', session: 'b', attempt: -1 })).toThrow(/attempt/);
  });

  it('a release naming a token ends only the hold with that token', () => {
    const s = withSessions('a', 'b');
    const first = ok(acquire(s, 'L', 'a', true, 1)).token!;
    ok(s.apply({ op: 'lock-release', name: 'L', session: 'a', token: first }, 2));
    const second = ok(acquire(s, 'L', 'a', true, 3)).token!;
    ok(acquire(s, 'L', 'b', true, 4));
    // the first hold's release once more (arriving late): the second hold stays, b keeps waiting
    expect(s.apply({ op: 'lock-release', name: 'L', session: 'a', token: first }, 5)).toMatchObject({ ok: false, code: 'not_holder' });
    expect(s.lock('L')).toMatchObject({ holder: { session: 'a', token: second }, waiters: ['b'] });
    expect(ok(s.apply({ op: 'lock-release', name: 'L', session: 'a', token: second }, 6)).grants.map((g) => g.session)).toEqual(['b']);
    expect(() => parseCommand({ op: 'lock-release', name: 'L', session: 'a', token: 0 })).toThrow(/token/);
  });

  it('a snapshot from before attempts restores (holder and waiters as they were)', () => {
    const s = withSessions('a', 'b');
    ok(acquire(s, 'L', 'a', true, 5));
    ok(acquire(s, 'L', 'b', true, 6));
    const image = JSON.parse(new TextDecoder().decode(s.snapshot())) as { locks: [string, unknown[] | null, [string, number][], number][] };
    expect(image.locks).toEqual([['L', ['a', 1, 5, 5], [['b', 6]], 1]]);
    image.locks = image.locks.map(([n, h, w, t]) => [n, h ? h.slice(0, 3) : null, w.map(([sid]) => sid) as never, t]);
    const r = SystemState.restore(new TextEncoder().encode(JSON.stringify(image)));
    expect(r.lock('L')).toMatchObject({ holder: { session: 'a' }, waiters: ['b'] });
    // a cancel without an attempt (a node before attempts proposed it) cancels whatever the session has
    expect(ok(r.apply({ op: 'lock-cancel', name: 'L', session: 'b' }, 7)).cancelled).toBe(true);
  });

  it('FIFO order survives snapshot/restore', () => {
    const s = SystemState.restore(withSessions('d', 'c', 'a', 'b').snapshot());
    ok(acquire(s, 'L', 'd'));
    for (const w of ['c', 'a', 'b']) ok(acquire(s, 'L', w));
    const r = SystemState.restore(s.snapshot());
    expect(r.lock('L')!.waiters).toEqual(['c', 'a', 'b']);
    const order: string[] = [];
    let holder = 'd';
    for (let i = 0; i < 3; i++) {
      holder = ok(r.apply({ op: 'lock-release', name: 'L', session: holder })).grants[0]!.session;
      order.push(holder);
    }
    expect(order).toEqual(['c', 'a', 'b']);
  });

  it('tokens keep increasing across releases, expiries and snapshot/restore', () => {
    let s = withSessions('a', 'b');
    const seen: number[] = [];
    for (let round = 0; round < 6; round++) {
      const who = round % 2 === 0 ? 'a' : 'b';
      seen.push(ok(acquire(s, 'L', who)).token!);
      if (round % 3 === 0) {
        ok(s.apply({ op: 'session-close', id: who, reason: 'expired' }));
        ok(s.apply({ op: 'session-open', id: who, node: `node-${who}`, ttlMs: 5000 }));
      } else ok(s.apply({ op: 'lock-release', name: 'L', session: who }));
      s = SystemState.restore(s.snapshot());
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
    expect(s.lock('L')!.lastToken).toBe(seen[seen.length - 1]);
  });
});

describe('SystemState: sessions', () => {
  it('closing a session releases its locks to the next waiters, leaves queues and deletes its keys with events', () => {
    const s = withSessions('a', 'b', 'c');
    ok(acquire(s, 'L1', 'a'));
    ok(acquire(s, 'L2', 'b'));
    ok(acquire(s, 'L2', 'a')); // a waits on L2
    ok(acquire(s, 'L1', 'b')); // b waits on L1
    ok(acquire(s, 'L1', 'c'));
    ok(s.apply({ op: 'kv-put', key: 'owned/x', value: '1', session: 'a' }));
    ok(s.apply({ op: 'kv-put', key: 'owned/y', value: '2', session: 'a' }));
    ok(s.apply({ op: 'kv-put', key: 'free', value: '3' }));
    expect(s.session('a')!.keys).toEqual(['owned/x', 'owned/y']);
    const rev = s.revision;
    const r = ok(s.apply({ op: 'session-close', id: 'a', reason: 'expired' }, 42));
    expect(r.closed).toEqual(['a']);
    expect(r.deleted).toBe(2);
    expect(r.revision).toBe(rev + 1);
    expect(r.grants.map((g) => [g.lock, g.session])).toEqual([['L1', 'b']]);
    expect(s.lock('L1')!.holder).toMatchObject({ session: 'b', since: 42 });
    expect(s.lock('L1')!.waiters).toEqual(['c']);
    expect(s.lock('L2')!.waiters).toEqual([]);
    expect(s.kvList('owned/')).toEqual([]);
    expect(s.kvGet('free')!.value).toBe('3');
    expect(s.session('a')).toBeUndefined();
    const ev = s.eventsSince(rev);
    expect(ev).toEqual({
      compacted: false,
      events: [
        { revision: rev + 1, type: 'delete', key: 'owned/x', modRevision: rev + 1 },
        { revision: rev + 1, type: 'delete', key: 'owned/y', modRevision: rev + 1 },
      ],
    });
    expect(s.apply({ op: 'session-close', id: 'a', reason: 'closed' })).toMatchObject({ ok: false, code: 'unknown_session' });
  });

  it('closing all sessions of a node never grants to one of them, and a close without keys keeps the revision', () => {
    const s = new SystemState();
    ok(s.apply({ op: 'session-open', id: 'x1', node: 'n1', ttlMs: 1000 }));
    ok(s.apply({ op: 'session-open', id: 'x2', node: 'n1', ttlMs: 1000 }));
    ok(s.apply({ op: 'session-open', id: 'y', node: 'n2', ttlMs: 1000 }));
    ok(acquire(s, 'L', 'x1'));
    ok(acquire(s, 'L', 'x2'));
    ok(acquire(s, 'L', 'y'));
    const r = ok(s.apply({ op: 'sessions-of-node-close', node: 'n1' }));
    expect(r.closed).toEqual(['x1', 'x2']);
    expect(r.grants.map((g) => g.session)).toEqual(['y']);
    expect(r.revision).toBe(0);
    expect(s.sessions().map((x) => x.id)).toEqual(['y']);
    expect(ok(s.apply({ op: 'sessions-of-node-close', node: 'n9' })).closed).toEqual([]);
  });

  it('session-open is idempotent for the same id, node and ttl only', () => {
    const s = withSessions('a');
    expect(ok(s.apply({ op: 'session-open', id: 'a', node: 'node-a', ttlMs: 5000 })).existing).toBe(true);
    expect(s.apply({ op: 'session-open', id: 'a', node: 'other', ttlMs: 5000 })).toMatchObject({ ok: false, code: 'invalid_command' });
    expect(s.session('a')!.node).toBe('node-a');
  });
});

describe('SystemState: kv', () => {
  it('counts revisions etcd-style: create/mod revision, version, one revision per command', () => {
    const s = new SystemState();
    expect(s.revision).toBe(0);
    expect(ok(s.apply({ op: 'kv-put', key: 'a', value: '1' })).revision).toBe(1);
    expect(ok(s.apply({ op: 'kv-put', key: 'b', value: '1' })).revision).toBe(2);
    expect(ok(s.apply({ op: 'kv-put', key: 'a', value: '2' })).revision).toBe(3);
    expect(s.kvGet('a')).toEqual({ key: 'a', value: '2', createRevision: 1, modRevision: 3, version: 2 });
    expect(ok(s.apply({ op: 'kv-delete', key: 'nope' }))).toMatchObject({ deleted: 0, revision: 3 });
    expect(s.revision).toBe(3);
    ok(s.apply({ op: 'kv-put', key: 'p/1', value: 'x' }));
    ok(s.apply({ op: 'kv-put', key: 'p/2', value: 'y' }));
    expect(ok(s.apply({ op: 'kv-delete', key: 'p/', prefix: true }))).toMatchObject({ deleted: 2, revision: 6 });
    expect(s.kvList('p/')).toEqual([]);
    ok(s.apply({ op: 'kv-delete', key: 'a' }));
    ok(s.apply({ op: 'kv-put', key: 'a', value: 'again' }));
    expect(s.kvGet('a')).toMatchObject({ createRevision: 8, modRevision: 8, version: 1 });
    expect(s.kvList().map((e) => e.key)).toEqual(['a', 'b']);
  });

  it('CAS: prevRevision must equal the modRevision, 0 means create-only; failures report the current revision', () => {
    const s = new SystemState();
    const r1 = ok(s.apply({ op: 'kv-put', key: 'k', value: 'v1', prevRevision: 0 }));
    expect(s.apply({ op: 'kv-put', key: 'k', value: 'v2', prevRevision: 0 })).toMatchObject({ ok: false, code: 'revision_mismatch', current: r1.revision });
    expect(s.apply({ op: 'kv-put', key: 'k', value: 'v2', prevRevision: 99 })).toMatchObject({ ok: false, code: 'revision_mismatch', current: 1 });
    expect(s.apply({ op: 'kv-put', key: 'other', value: 'x', prevRevision: 3 })).toMatchObject({ ok: false, code: 'revision_mismatch', current: 0 });
    expect(s.revision).toBe(1);
    const r2 = ok(s.apply({ op: 'kv-put', key: 'k', value: 'v2', prevRevision: 1 }));
    expect(s.kvGet('k')!.value).toBe('v2');
    // against the modRevision, not the createRevision (still 1)
    expect(s.apply({ op: 'kv-put', key: 'k', value: 'v3', prevRevision: 1 })).toMatchObject({ ok: false, code: 'revision_mismatch', current: r2.revision });
    expect(s.kvGet('k')).toMatchObject({ value: 'v2', createRevision: 1, modRevision: r2.revision, version: 2 });
    expect(s.apply({ op: 'kv-delete', key: 'k', prevRevision: 1 })).toMatchObject({ ok: false, code: 'revision_mismatch', current: r2.revision });
    expect(s.apply({ op: 'kv-delete', key: 'zz', prevRevision: 1 })).toMatchObject({ ok: false, code: 'key_not_found' });
    expect(ok(s.apply({ op: 'kv-delete', key: 'k', prevRevision: r2.revision! })).deleted).toBe(1);
  });

  it('a put with a session needs it open and binds the key; a later put without one unbinds it', () => {
    const s = withSessions('a');
    expect(s.apply({ op: 'kv-put', key: 'k', value: 'v', session: 'zz' })).toMatchObject({ ok: false, code: 'unknown_session' });
    ok(s.apply({ op: 'kv-put', key: 'k', value: 'v', session: 'a' }));
    expect(s.kvGet('k')!.session).toBe('a');
    ok(s.apply({ op: 'kv-put', key: 'k', value: 'w' }));
    ok(s.apply({ op: 'session-close', id: 'a', reason: 'closed' }));
    expect(s.kvGet('k')!.value).toBe('w');
  });

  it('eventsSince filters by key and prefix and reports compaction', () => {
    const s = new SystemState({ historyLimit: 5 });
    for (let i = 1; i <= 4; i++) ok(s.apply({ op: 'kv-put', key: `a/${i}`, value: `${i}` }));
    ok(s.apply({ op: 'kv-put', key: 'b', value: 'x' }));
    const all = s.eventsSince(0);
    expect(all.compacted).toBe(false);
    if (!all.compacted) expect(all.events.map((e) => e.revision)).toEqual([1, 2, 3, 4, 5]);
    const one = s.eventsSince(2, { key: 'a/3' });
    expect(one).toEqual({ compacted: false, events: [{ revision: 3, type: 'put', key: 'a/3', value: '3', modRevision: 3 }] });
    const pre = s.eventsSince(0, { key: 'a/', prefix: true });
    if (pre.compacted) throw new Error('compacted');
    expect(pre.events.map((e) => e.key)).toEqual(['a/1', 'a/2', 'a/3', 'a/4']);
    // a prefix delete of 4 keys: one revision, 4 events; the history keeps 5 events, never part of a revision
    ok(s.apply({ op: 'kv-delete', key: 'a/', prefix: true }));
    ok(s.apply({ op: 'kv-put', key: 'c', value: 'y' }));
    expect(s.eventsSince(3)).toEqual({ compacted: true, oldest: 6 });
    expect(s.eventsSince(4)).toEqual({ compacted: true, oldest: 6 });
    const tail = s.eventsSince(5);
    if (tail.compacted) throw new Error('compacted');
    expect(tail.events.map((e) => [e.revision, e.type, e.key])).toEqual([
      [6, 'delete', 'a/1'],
      [6, 'delete', 'a/2'],
      [6, 'delete', 'a/3'],
      [6, 'delete', 'a/4'],
      [7, 'put', 'c'],
    ]);
    expect(s.eventsSince(7)).toEqual({ compacted: false, events: [] });
    expect(s.eventsSince(100)).toEqual({ compacted: false, events: [] });
    const fresh = new SystemState();
    ok(fresh.apply({ op: 'kv-put', key: 'a', value: '1' }));
    expect(fresh.eventsSince(-5)).toEqual(fresh.eventsSince(0));
    // the same after a restore
    const r = SystemState.restore(s.snapshot(), { historyLimit: 5 });
    expect(r.eventsSince(5)).toEqual(tail);
    expect(r.eventsSince(4)).toEqual({ compacted: true, oldest: 6 });
  });
});

describe('SystemState: databases', () => {
  it('create, place, drop with their errors, listed by name', () => {
    const s = new SystemState();
    ok(s.apply({ op: 'db-create', name: 'zeta', redundancy: 3, voters: ['n1', 'n2', 'n3'] }));
    ok(s.apply({ op: 'db-create', name: 'alpha', redundancy: 1, voters: ['n2'] }));
    expect(s.apply({ op: 'db-create', name: 'alpha', redundancy: 1, voters: [] })).toMatchObject({ ok: false, code: 'database_exists' });
    ok(s.apply({ op: 'db-place', name: 'alpha', voters: ['n4'] }));
    expect(s.apply({ op: 'db-place', name: 'beta', voters: [] })).toMatchObject({ ok: false, code: 'unknown_database' });
    expect(s.databases()).toEqual([
      { name: 'alpha', redundancy: 1, voters: ['n4'], founder: 'n2', founded: false },
      { name: 'zeta', redundancy: 3, voters: ['n1', 'n2', 'n3'], founder: 'n1', founded: false },
    ]);
    ok(s.apply({ op: 'db-drop', name: 'zeta' }));
    expect(s.apply({ op: 'db-drop', name: 'zeta' })).toMatchObject({ ok: false, code: 'unknown_database' });
    expect(s.database('zeta')).toBeUndefined();
    // answers are copies
    s.database('alpha')!.voters.push('evil');
    expect(s.database('alpha')!.voters).toEqual(['n4']);
  });

  it('records the founder and the founding; another founder only before the founding; all through snapshots', () => {
    const s = new SystemState();
    ok(s.apply({ op: 'db-create', name: 'a', redundancy: 3, voters: ['n1', 'n2', 'n3'] }));
    ok(s.apply({ op: 'db-create', name: 'b', redundancy: 3, voters: ['n2', 'n3', 'n1'] }));
    // the founder left the placement before founding: another board founds it
    ok(s.apply({ op: 'db-place', name: 'a', voters: ['n4', 'n2', 'n3'] }));
    ok(s.apply({ op: 'db-founder', name: 'a', founder: 'n2' }));
    ok(s.apply({ op: 'db-founded', name: 'b' }));
    expect(s.apply({ op: 'db-founder', name: 'b', founder: 'n1' })).toMatchObject({ ok: false, code: 'database_exists' });
    expect(s.apply({ op: 'db-founded', name: 'c' })).toMatchObject({ ok: false, code: 'unknown_database' });
    expect(s.apply({ op: 'db-founder', name: 'a', founder: 'bad id!' })).toMatchObject({ ok: false, code: 'invalid_command' });
    const r = SystemState.restore(s.snapshot());
    expect(r.database('a')).toMatchObject({ founder: 'n2', founded: false });
    expect(r.database('b')).toMatchObject({ founder: 'n2', founded: true });
    expect(r.snapshot()).toEqual(s.snapshot());
  });

  it('takes its cluster identity once, keeps it through snapshots, and refuses a malformed one', () => {
    const s = new SystemState();
    expect(s.clusterId()).toBeUndefined();
    expect(s.apply({ op: 'cluster-id', id: 'bad id' })).toMatchObject({ ok: false, code: 'invalid_command' });
    ok(s.apply({ op: 'cluster-id', id: 'a~00c0ffee' }));
    expect(s.apply({ op: 'cluster-id', id: 'b~12345678' })).toMatchObject({ ok: true, existing: true });
    expect(s.clusterId()).toBe('a~00c0ffee');
    expect(SystemState.restore(s.snapshot()).clusterId()).toBe('a~00c0ffee');
    expect(SystemState.restore(new SystemState().snapshot()).clusterId()).toBeUndefined();
  });

  it('an image from before founding was tracked restores its databases as founded', () => {
    const s = new SystemState();
    ok(s.apply({ op: 'db-create', name: 'old', redundancy: 3, voters: ['n1', 'n2', 'n3'] }));
    const image = JSON.parse(new TextDecoder().decode(s.snapshot()));
    image.databases = image.databases.map((d: unknown[]) => d.slice(0, 3));
    const r = SystemState.restore(new TextEncoder().encode(JSON.stringify(image)));
    expect(r.database('old')).toEqual({ name: 'old', redundancy: 3, voters: ['n1', 'n2', 'n3'], founder: 'n1', founded: true });
  });
});

describe('SystemState: validation', () => {
  const invalid: unknown[] = [
    undefined,
    null,
    42,
    'kv-put',
    [],
    new Uint8Array([1]),
    {},
    { op: 'nope' },
    { op: 'kv-put', key: '', value: 'x' },
    { op: 'kv-put', key: 'k', value: 7 },
    { op: 'kv-put', key: 'k'.repeat(1025), value: 'x' },
    { op: 'kv-put', key: 'é'.repeat(513), value: 'x' }, // 1026 bytes
    { op: 'kv-put', key: 'k', value: 'x'.repeat(1024 * 1024 + 1) },
    { op: 'kv-put', key: '\ud800', value: 'x' },
    { op: 'kv-put', key: 'k', value: 'x', prevRevision: -1 },
    { op: 'kv-put', key: 'k', value: 'x', prevRevision: 1.5 },
    { op: 'kv-put', key: 'k', value: 'x', session: 'bad id' },
    { op: 'kv-put', key: 'k', value: 'x', extra: 1 },
    { op: 'kv-delete', key: 'k', prefix: true, prevRevision: 1 },
    { op: 'kv-delete', key: 'k', prevRevision: 0 },
    { op: 'kv-delete', key: 'k', prefix: 'yes' },
    { op: 'db-create', name: 'a b', redundancy: 1, voters: [] },
    { op: 'db-create', name: 'x'.repeat(129), redundancy: 1, voters: [] },
    { op: 'db-create', name: 'ok', redundancy: -1, voters: [] },
    { op: 'db-create', name: 'ok', redundancy: 65, voters: [] },
    { op: 'db-create', name: 'ok', redundancy: 1, voters: ['n1', 'n1'] },
    { op: 'db-create', name: 'ok', redundancy: 1, voters: 'n1' },
    { op: 'db-place', name: 'ok', voters: [1] },
    { op: 'session-open', id: 'x'.repeat(65), node: 'n', ttlMs: 1000 },
    { op: 'session-open', id: 's.1', node: 'n', ttlMs: 1000 },
    { op: 'session-open', id: 's', node: 'n', ttlMs: 999 },
    { op: 'session-open', id: 's', node: 'n', ttlMs: 3_600_001 },
    { op: 'session-close', id: 'a', reason: 'bored' },
    { op: 'lock-acquire', name: 'L', session: 'a' },
    { op: 'lock-acquire', name: 'L/x', session: 'a', wait: true },
    { op: 'lock-release', name: 'L', session: ['a'] },
    { op: 'sessions-of-node-close' },
    Object.assign(Object.create(null) as object, { op: 'db-drop' }),
  ];

  it('rejects malformed commands with invalid_command, never throws, and changes nothing', () => {
    const s = withSessions('a');
    ok(acquire(s, 'L', 'a'));
    ok(s.apply({ op: 'kv-put', key: 'k', value: 'v' }));
    const before = s.snapshot();
    for (const cmd of invalid) {
      const r = s.apply(cmd);
      expect(r, JSON.stringify(cmd)?.slice(0, 80)).toMatchObject({ ok: false, code: 'invalid_command' });
      expect(s.snapshot()).toEqual(before);
    }
  });

  it('never throws, even on objects whose fields throw when read', () => {
    const s = withSessions('a');
    const hostile = new Proxy(
      { op: 'kv-put', key: 'k', value: 'v' },
      {
        get: () => {
          throw new Error('boom');
        },
      },
    );
    const getter = Object.defineProperty({ op: 'kv-put', value: 'v' }, 'key', {
      enumerable: true,
      get: () => {
        throw new Error('boom');
      },
    });
    expect(s.apply(hostile)).toMatchObject({ ok: false, code: 'invalid_command' });
    expect(s.apply(getter)).toMatchObject({ ok: false, code: 'invalid_command' });
    expect(s.revision).toBe(0);
    expect(s.lock('never-used')).toBeUndefined();
  });

  it('accepts the limits exactly', () => {
    const s = new SystemState();
    ok(s.apply({ op: 'kv-put', key: 'k'.repeat(1024), value: 'x'.repeat(1024 * 1024) }));
    ok(s.apply({ op: 'kv-put', key: '😀', value: '' }));
    ok(s.apply({ op: 'db-create', name: 'A-z_0.9', redundancy: 0, voters: [] })); // 0: the cluster's default
    ok(s.apply({ op: 'db-create', name: 'x'.repeat(128), redundancy: 64, voters: [] }));
    ok(s.apply({ op: 'session-open', id: 'x'.repeat(64), node: 'n', ttlMs: 1000 }));
    ok(s.apply({ op: 'session-open', id: 'y', node: 'n', ttlMs: 3_600_000 }));
    ok(s.apply({ op: 'kv-put', key: 'k2', value: 'v', prevRevision: undefined }));
  });
});

// ---- random command streams ----

function randomCommand(r: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const sessions = ['s1', 's2', 's3', 's4', 's5'];
  const locks = ['L1', 'L2', 'L3'];
  const keys = ['k1', 'k2', 'k3', 'p/a', 'p/b'];
  const x = r();
  if (x < 0.1) return { op: 'session-open', id: pick(sessions), node: pick(['n1', 'n2', 'n3']), ttlMs: 1000 };
  if (x < 0.15) return { op: 'session-close', id: pick(sessions), reason: pick(['closed', 'expired', 'node-dead'] as const) };
  if (x < 0.17) return { op: 'sessions-of-node-close', node: pick(['n1', 'n2', 'n3']) };
  if (x < 0.35) return { op: 'lock-acquire', name: pick(locks), session: pick(sessions), wait: r() < 0.8 };
  if (x < 0.47) return { op: 'lock-release', name: pick(locks), session: pick(sessions) };
  if (x < 0.5) return { op: 'lock-cancel', name: pick(locks), session: pick(sessions) };
  if (x < 0.7) {
    const c: Record<string, unknown> = { op: 'kv-put', key: pick(keys), value: `v${Math.floor(r() * 1000)}` };
    if (r() < 0.3) c.session = pick(sessions);
    if (r() < 0.3) c.prevRevision = Math.floor(r() * 20);
    return c;
  }
  if (x < 0.8) {
    const c: Record<string, unknown> = { op: 'kv-delete', key: r() < 0.2 ? 'p/' : pick(keys) };
    if (c.key === 'p/') c.prefix = true;
    else if (r() < 0.3) c.prevRevision = 1 + Math.floor(r() * 20);
    return c;
  }
  if (x < 0.85) return { op: 'db-create', name: pick(['d1', 'd2']), redundancy: 1 + Math.floor(r() * 3), voters: ['n1'] };
  if (x < 0.88) return { op: 'db-place', name: pick(['d1', 'd2']), voters: ['n2', 'n3'] };
  if (x < 0.9) return { op: 'db-drop', name: pick(['d1', 'd2']) };
  return pick([{ op: 'kv-put', key: 7 }, { op: 'lock-acquire' }, null, { op: 'session-open', id: '!', node: 'n', ttlMs: 1 }]);
}

describe('SystemState: determinism and snapshots', () => {
  it('two replicas fed the same random stream end with byte-identical snapshots and results', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const gen = mulberry32(seed);
      const a = new SystemState({ historyLimit: 50 });
      const b = new SystemState({ historyLimit: 50 });
      for (let i = 1; i <= 600; i++) {
        const cmd = randomCommand(gen);
        // b gets its own deep copy (as a replica decoding its own CBOR would)
        const ra = a.apply(cmd, i);
        const rb = b.apply(cmd === undefined ? undefined : JSON.parse(JSON.stringify(cmd)), i);
        expect(rb).toEqual(ra);
      }
      expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
    }
  });

  it('a restored replica gives the same results as the original for the same later commands', () => {
    for (let seed = 100; seed < 110; seed++) {
      const gen = mulberry32(seed);
      const a = new SystemState({ historyLimit: 30 });
      for (let i = 1; i <= 300; i++) a.apply(randomCommand(gen), i);
      const bytes = a.snapshot();
      const b = SystemState.restore(bytes, { historyLimit: 30 });
      expect(Buffer.from(b.snapshot()).equals(Buffer.from(bytes))).toBe(true);
      expect(b.sessions()).toEqual(a.sessions());
      expect(b.kvList()).toEqual(a.kvList());
      for (const l of ['L1', 'L2', 'L3']) expect(b.lock(l)).toEqual(a.lock(l));
      expect(b.eventsSince(a.revision - 10)).toEqual(a.eventsSince(a.revision - 10));
      for (let i = 301; i <= 600; i++) {
        const cmd = randomCommand(gen);
        expect(b.apply(cmd, i)).toEqual(a.apply(cmd, i));
      }
      expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
    }
  });

  it('random streams keep the lock invariants: holders are open sessions, tokens only grow, grants FIFO', () => {
    const gen = mulberry32(7);
    const s = new SystemState();
    const lastToken = new Map<string, number>();
    for (let i = 1; i <= 3000; i++) {
      const cmd = randomCommand(gen);
      const before = new Map(['L1', 'L2', 'L3'].map((l) => [l, s.lock(l)?.waiters ?? []]));
      const r = s.apply(cmd, i);
      if (!r.ok) continue;
      for (const g of r.grants) {
        expect(g.token).toBeGreaterThan(lastToken.get(g.lock) ?? 0);
        lastToken.set(g.lock, g.token);
        const w = before.get(g.lock)!;
        // a grant goes to the first waiter still waiting (or to the acquirer of a free lock)
        const still = w.filter((x) => s.session(x) !== undefined || x === g.session);
        if (still.length > 0 && (cmd as { op: string }).op !== 'lock-acquire') expect(g.session).toBe(still[0]);
      }
      for (const l of ['L1', 'L2', 'L3']) {
        const info = s.lock(l);
        if (!info) continue;
        if (info.holder) expect(s.session(info.holder.session)!.locks).toContain(l);
        else expect(info.waiters).toEqual([]);
        for (const w of info.waiters) expect(s.session(w)).toBeDefined();
        expect(new Set(info.waiters).size).toBe(info.waiters.length);
      }
    }
  });

  it('restore rejects bytes that are not a snapshot', () => {
    expect(() => SystemState.restore(new TextEncoder().encode('{"format":2}'))).toThrow();
    expect(() => SystemState.restore(new Uint8Array([0xff, 0xfe]))).toThrow();
    expect(() => SystemState.restore(new TextEncoder().encode('{"format":1,"revision":-1}'))).toThrow();
  });
});

describe('SystemState: node ids follow the one node-id rule', () => {
  it('accepts every id the settings accept (rack1.pi3) for placement and sessions, and refuses others', () => {
    const s = new SystemState();
    expect(ok(s.apply({ op: 'db-create', name: 'main', redundancy: 2, voters: ['rack1.pi3', 'rack1.pi4'] }))).toBeTruthy();
    ok(s.apply({ op: 'session-open', id: 'abc123', node: 'rack1.pi3', ttlMs: 5000 }));
    expect(ok(acquire(s, 'L', 'abc123'))).toMatchObject({ granted: true });
    const bad = s.apply({ op: 'session-open', id: 'def456', node: 'a~b', ttlMs: 5000 });
    expect(bad.ok).toBe(false);
    expect(s.apply({ op: 'db-create', name: 'x', redundancy: 1, voters: ['.dot-first'] }).ok).toBe(false);
  });
});

describe('SystemState: removed boards', () => {
  it('a removed board stays removed across snapshots, and its sessions end (their locks go to the next waiter)', () => {
    const s = withSessions('a', 'b');
    ok(acquire(s, 'L', 'a', true, 1));
    ok(acquire(s, 'L', 'b', true, 2));
    const r = ok(s.apply({ op: 'node-remove', node: 'node-a' }, 3));
    expect(r.grants.map((g) => g.session)).toEqual(['b']);
    expect(s.removed()).toEqual(['node-a']);
    expect(s.session('a')).toBeUndefined();
    const again = SystemState.restore(s.snapshot());
    expect(again.removed()).toEqual(['node-a']);
    expect(again.lock('L')?.holder?.session).toBe('b');
    expect(s.apply({ op: 'node-remove', node: '' })).toMatchObject({ ok: false, code: 'invalid_command' });
    // a snapshot from before removal existed (no "removed" field) restores with none
    const old = JSON.parse(new TextDecoder().decode(new SystemState().snapshot()));
    delete old.removed;
    expect(SystemState.restore(new TextEncoder().encode(JSON.stringify(old))).removed()).toEqual([]);
  });
});

describe('SystemState: merging two system groups', () => {
  const named = (id: string) => {
    const s = withSessions('s');
    ok(s.apply({ op: 'cluster-id', id }));
    return s;
  };

  it('merge-begin freezes new state but lets sessions end; merge-done closes the group; merge-abort thaws it', () => {
    const s = named('b~2');
    ok(acquire(s, 'L', 's'));
    ok(s.apply({ op: 'kv-put', key: 'k', value: 'v' }));
    ok(s.apply({ op: 'merge-begin', into: 'a~1' }));
    for (const cmd of [
      { op: 'kv-put', key: 'k2', value: 'v' },
      { op: 'kv-delete', key: 'k' },
      { op: 'session-open', id: 't', node: 'n', ttlMs: 5000 },
      { op: 'lock-acquire', name: 'M', session: 's', wait: false },
      { op: 'db-create', name: 'x', redundancy: 0, voters: ['n'] },
    ]) {
      expect(s.apply(cmd)).toMatchObject({ ok: false, code: 'merging' });
    }
    expect(s.kvGet('k')?.value).toBe('v');
    // sessions run down: a close releases its locks
    ok(s.apply({ op: 'session-close', id: 's', reason: 'expired' }));
    expect(s.lockList()).toEqual([]);
    ok(s.apply({ op: 'merge-abort', into: 'a~1' }));
    ok(s.apply({ op: 'kv-put', key: 'k2', value: 'v' }));
    ok(s.apply({ op: 'merge-begin', into: 'a~1' }));
    expect(s.apply({ op: 'merge-begin', into: 'z~9' })).toMatchObject({ ok: false, code: 'merging' });
    ok(s.apply({ op: 'merge-done', into: 'a~1' }));
    expect(s.apply({ op: 'session-close', id: 's', reason: 'expired' })).toMatchObject({ ok: false, code: 'merging' });
    expect(s.mergeState()).toEqual({ into: 'a~1', done: true, from: [] });
    expect(SystemState.restore(s.snapshot()).mergeState()).toEqual({ into: 'a~1', done: true, from: [] });
  });

  it('merge-import takes databases, keys and tokens whole, or nothing when a name or key collides; a repeat changes nothing', () => {
    const a = named('a~1');
    ok(a.apply({ op: 'kv-put', key: 'same', value: 'x' }));
    ok(a.apply({ op: 'kv-put', key: 'mine', value: 'a' }));
    ok(a.apply({ op: 'db-create', name: 'left', redundancy: 0, voters: ['n1'] }));
    const db = { name: 'right', redundancy: 2, voters: ['n3', 'n4'], founder: 'n3', founded: true };
    const clash = a.apply({
      op: 'merge-import',
      from: 'b~2',
      databases: [db, { ...db, name: 'left' }],
      kv: [
        { key: 'mine', value: 'b' },
        { key: 'same', value: 'x' },
      ],
      token: 50,
    });
    expect(clash).toMatchObject({ ok: false, code: 'merge_conflict', collisions: ['db:left', 'kv:mine'] });
    expect(a.database('right')).toBeUndefined();
    expect(a.lastTokenIssued()).toBeLessThan(50);
    const rev = a.revision;
    const cmd = {
      op: 'merge-import',
      from: 'b~2',
      databases: [db],
      kv: [
        { key: 'same', value: 'x' },
        { key: 'theirs', value: 'b' },
      ],
      token: 50,
    };
    const done = ok(a.apply(cmd));
    expect(done.revision).toBe(rev + 1);
    expect(a.database('right')).toEqual(db);
    expect(a.kvGet('theirs')).toMatchObject({ value: 'b', createRevision: rev + 1 });
    expect(a.lastTokenIssued()).toBe(50);
    expect(ok(a.apply(cmd)).existing).toBe(true);
    expect(a.revision).toBe(rev + 1);
    expect(SystemState.restore(a.snapshot()).mergeState().from).toEqual(['b~2']);
    expect(a.apply({ ...cmd, from: 'a~1' })).toMatchObject({ ok: false, code: 'invalid_command' });
    expect(a.apply({ ...cmd, databases: [{ ...db, voters: 'n3' }] })).toMatchObject({ ok: false, code: 'invalid_command' });
  });
});
