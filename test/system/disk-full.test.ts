/**
 * A real full disk: the data dir on a tiny tmpfs this test mounts (as root).
 * Writes fail with 507 disk_full, reads go on, nothing acknowledged is lost,
 * and writes resume once there is space again.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startNode } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

describe('full disk (real tmpfs)', () => {
  it('fails writes cleanly, keeps serving reads and every acknowledged write', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a tmpfs and must run as root (CI does); it is not skipped');
    const mnt = path.join(tempDir(), 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    try {
      await fillAndRecover(mnt);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });
});

async function fillAndRecover(mnt: string): Promise<void> {
  const dataDir = path.join(mnt, 'data');
  let node = await startNode({ dataDir, args: ['--snapshot-entries', '1000000'] });
  await node.post('/db/execute', ['CREATE TABLE t(id INTEGER PRIMARY KEY, v)']);
  const acked: number[] = [];
  let full: { status: number; body: any } | undefined;
  const pad = 'x'.repeat(4000);
  for (let i = 0; i < 2000 && !full; i++) {
    const r = await node.post('/db/execute', [['INSERT INTO t(id, v) VALUES(?, ?)', i, pad]]);
    if (r.status === 200) acked.push(i);
    else full = r;
  }
  expect(full, 'the disk never filled').toBeDefined();
  expect(full!.status).toBe(507);
  expect(full!.body.code).toBe('disk_full');
  expect(full!.body.message).toMatch(/no space left/);
  // Reads go on; the failed write is not visible.
  const count = (await node.get('/db/query?q=SELECT+count(*)+FROM+t')).body.results[0].values[0][0];
  expect(count).toBe(acked.length);
  expect((await node.get('/health')).status).toBe(200);
  // A stop on a full disk cannot write its snapshot but still stops cleanly: the log has everything.
  expect((await node.stop()).code).toBe(0);

  node = await startNode({ dataDir });
  const ids = (await node.get('/db/query?q=SELECT+id+FROM+t+ORDER+BY+id')).body.results[0].values.map((r: number[]) => r[0]);
  expect(ids).toEqual(acked);
  execFileSync('mount', ['-o', 'remount,size=8m', mnt]);
  const after = await node.post('/db/execute', [['INSERT INTO t(id, v) VALUES(?, ?)', 99999, 'ok']]);
  expect(after.status).toBe(200);
  expect((await node.stop()).code).toBe(0);
}
