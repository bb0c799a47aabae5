/**
 * SIGKILL under concurrent write load, over several kill points: after the
 * restart every acknowledged write is present, and every request is either
 * wholly applied or not at all (each writes the same key into two tables in
 * one transaction).
 */
import { describe, expect, it } from 'vitest';
import { startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

const CLIENTS = 16;
const KILL_AFTER_MS = [150, 400, 900, 1500, 250];

async function load(node: NodeProcess, round: number, acked: Set<string>, attempted: Set<string>, stopAt: number) {
  let seq = 0;
  const client = async (c: number) => {
    while (Date.now() < stopAt) {
      const key = `r${round}-c${c}-${seq++}`;
      attempted.add(key);
      try {
        const r = await node.post('/db/execute?transaction', [
          ['INSERT INTO a(k, v) VALUES(?, randomblob(64))', key],
          ['INSERT INTO b(k) VALUES(?)', key],
        ]);
        if (r.status === 200 && r.body.results.every((x: { error?: string }) => !x.error)) acked.add(key);
      } catch {
        return; // the node is gone
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
}

describe('crash recovery (real process, SIGKILL)', () => {
  it('keeps every acknowledged write and never half-applies a request', async () => {
    const dataDir = tempDir();
    const acked = new Set<string>();
    const attempted = new Set<string>();
    // Small snapshot thresholds, so kills also land during snapshots and log rolls.
    const args = ['--snapshot-entries', '200'];
    let node = await startNode({ dataDir, args });
    await node.post('/db/execute', ['CREATE TABLE a(k TEXT PRIMARY KEY, v)', 'CREATE TABLE b(k TEXT PRIMARY KEY)']);

    for (let round = 0; round < KILL_AFTER_MS.length; round++) {
      const deadline = Date.now() + 5000;
      const loading = load(node, round, acked, attempted, deadline);
      await new Promise((r) => setTimeout(r, KILL_AFTER_MS[round]));
      await node.stop('SIGKILL');
      await loading;

      node = await startNode({ dataDir, args });
      const a = (await node.get('/db/query?q=' + encodeURIComponent('SELECT k FROM a'))).body.results[0].values.map((r: string[]) => r[0]);
      const b = (await node.get('/db/query?q=' + encodeURIComponent('SELECT k FROM b'))).body.results[0].values.map((r: string[]) => r[0]);
      const inA = new Set<string>(a);
      const missing = [...acked].filter((k) => !inA.has(k));
      expect(missing, `round ${round}: acknowledged writes lost`).toEqual([]);
      expect([...a].sort(), `round ${round}: half-applied request`).toEqual([...b].sort());
      expect(
        a.filter((k: string) => !attempted.has(k)),
        `round ${round}: rows nobody wrote`,
      ).toEqual([]);
      expect(acked.size, `round ${round}: load made progress`).toBeGreaterThan(0);
    }
    const status = (await node.get('/status')).body;
    expect(status.replicas.find((r: { group: string }) => r.group === 'db.main').snapshot_index).toBeGreaterThan(0);
    const exit = await node.stop('SIGTERM');
    expect(exit.code).toBe(0);
  }, 120_000);
});
