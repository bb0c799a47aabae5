/**
 * Two system groups meet on real processes: four boards with no discovery
 * flags, each in its own network namespace on a private bridge (created and
 * removed here), cut into {a,b} | {c,d} before they start (blackhole routes:
 * mDNS still sees the other side, nothing reaches it). Each side founds a
 * system group, creates a database and a key of its own and writes to it.
 * Then the cut heals. Checked: the two sides merge by themselves into one
 * system group (no board reports a split cluster, every system replica names
 * one leader, its three voters span both sides); it places both databases,
 * both keys are read through every board; every
 * row acknowledged on either side is read back strongly through every board;
 * both databases take writes again.
 */
import { describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt } from '../helpers/node-process';
import { createLab } from '../helpers/netns';
import { HTTP_PORT, Rack, type Board } from '../helpers/netns-rack';
import { tempDir } from '../helpers/tmp';

type Status = {
  system_leader: string | null;
  split_cluster: { merge: { state: string } | null } | null;
  databases: { name: string }[];
  replicas: { group: string; state: string; voters: string[] }[];
};

describe('two system groups merge (four namespaces)', () => {
  it('sides that each founded a system group become one, keeping every database, key and acknowledged row', async () => {
    requireBuilt(BUNDLE);
    const lab = createLab(4, '10.216.0');
    const rack = new Rack(lab, tempDir(), ['a', 'b', 'c', 'd'], { cookie: 'merge-netns-cookie', redundancy: 2, discovery: 'mdns' });
    const status = (b: Board) => rack.status(b) as unknown as Status | undefined;
    const cli = (b: Board, args: string[]) => lab.exec(b.ns, [process.execPath, BUNDLE, ...args, '--http-bind', `127.0.0.1:${HTTP_PORT}`]);
    const [a, b, c, d] = rack.boards as [Board, Board, Board, Board];
    try {
      rack.partition(['a', 'b'], ['c', 'd']);
      for (const x of rack.boards) rack.start(x);
      // each side's founder leads its own system group (a board the group has not added as a voter holds no replica of it)
      await rack.waitFor('a system group on each side', () => status(a)?.system_leader === 'a' && status(c)?.system_leader === 'c', 90_000);
      // each side: a database, rows, a key of its own
      const rows = { left: [] as string[], right: [] as string[] };
      for (const [side, via] of [
        ['left', a],
        ['right', c],
      ] as const) {
        expect(rack.client(via, ['exec', side, 'CREATE TABLE t (v TEXT PRIMARY KEY)'])).toContain('results');
        for (let i = 0; i < 20; i++) {
          const out = rack.client(via, ['exec', side, `INSERT INTO t VALUES ('${side}-${i}')`]);
          if (out.includes('"rows_affected":1')) rows[side].push(`${side}-${i}`);
        }
        cli(via, ['kv', 'put', `key-${side}`, `value-${side}`]);
      }
      expect(rows.left.length).toBeGreaterThan(10);
      expect(rows.right.length).toBeGreaterThan(10);
      rack.heal();
      const healed = Date.now();
      let leader: Board | undefined;
      await rack.waitFor(
        'one system group: no board sees a split, every system replica names one leader, its voters span both sides',
        () => {
          const all = rack.boards.map(status);
          if (all.some((s) => s === undefined || s.split_cluster !== null)) return false;
          const leaders = new Set(all.filter((s) => s!.replicas.some((r) => r.group === 'system')).map((s) => s!.system_leader));
          if (leaders.size !== 1 || [...leaders][0] === null) return false;
          leader = rack.board([...leaders][0]!);
          const voters = status(leader)?.replicas.find((r) => r.group === 'system')?.voters ?? [];
          return voters.length === 3 && voters.some((v) => v === 'a' || v === 'b') && voters.some((v) => v === 'c' || v === 'd');
        },
        240_000,
      );
      console.log(`merged ${((Date.now() - healed) / 1000).toFixed(1)} s after the cut healed; system leader ${leader!.id}`);
      expect((status(leader!)?.databases ?? []).map((db) => db.name).sort()).toEqual(['left', 'right']);
      for (const x of rack.boards) {
        expect(cli(x, ['kv', 'get', 'key-left'])).toContain('value-left');
        expect(cli(x, ['kv', 'get', 'key-right'])).toContain('value-right');
        for (const side of ['left', 'right'] as const) {
          const held = await rack.strongRead(x, side, 60_000);
          for (const v of rows[side]) expect(held.has(v), `${v} through ${x.id}`).toBe(true);
        }
      }
      // both databases take writes again, through a board of the other side
      expect(rack.client(d, ['exec', 'left', "INSERT INTO t VALUES ('left-after')"])).toContain('"rows_affected":1');
      expect(rack.client(b, ['exec', 'right', "INSERT INTO t VALUES ('right-after')"])).toContain('"rows_affected":1');
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${rack.logTails(25)}`, { cause: err });
    } finally {
      lab.destroy();
    }
  }, 420_000);
});
