/**
 * The Raft driver on real files: what a one-voter group promises about
 * durability, group commit, snapshots, corrupt snapshots, full disks, failed
 * fsyncs and closing (the multi-voter behaviour is in the system tests and the
 * simulations).
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FaultyFs } from '../../helpers/faulty-fs';
import { openSolo } from '../../helpers/group';
import { tempDir } from '../../helpers/tmp';

describe('ReplicaGroup (one voter, real files)', () => {
  it('answers only after fsync and keeps every answered write across a crash', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openSolo(dir, { fs });
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    const syncsBefore = fs.syncs;
    expect(await db.exec({ sql: 'INSERT INTO t(v) VALUES(?)', params: ['a'] })).toEqual([{ last_insert_id: 1, rows_affected: 1 }]);
    expect(fs.syncs).toBe(syncsBefore + 1);
    // Crash: no close, a second replica opens the same files.
    const again = await openSolo(dir);
    expect(again.rows('SELECT v FROM t')).toEqual([['a']]);
    await again.group.close();
  });

  it('group commit: 200 concurrent proposals share a handful of fsyncs', async () => {
    const fs = new FaultyFs();
    const db = await openSolo(tempDir(), { fs });
    await db.exec('CREATE TABLE t(v)');
    const before = fs.syncs;
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => db.exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] })));
    expect(results.every((r) => 'rows_affected' in r[0]! && r[0].rows_affected === 1)).toBe(true);
    expect(fs.syncs - before).toBeLessThanOrEqual(4);
    expect(db.rows('SELECT count(*), sum(v) FROM t')).toEqual([[200, 19900]]);
    await db.group.close();
  });

  it('snapshots bound the log; restart = snapshot + replay gives the same state', async () => {
    const dir = tempDir();
    const db = await openSolo(dir, { snapshotEntries: 10 });
    await db.exec('CREATE TABLE t(v, ts DEFAULT CURRENT_TIMESTAMP, r)');
    for (let i = 0; i < 35; i++) await db.exec({ sql: 'INSERT INTO t(v, r) VALUES(?, random())', params: [i] });
    const expected = db.rows('SELECT * FROM t');
    expect((db.group.status().snapshot_index as number) >= 20).toBe(true);
    expect(readdirSync(path.join(dir, 'snapshots')).filter((f) => f.endsWith('.snap'))).toHaveLength(2);
    expect(readdirSync(path.join(dir, 'log')).length).toBeLessThanOrEqual(3);
    const again = await openSolo(dir, { snapshotEntries: 10 });
    expect(again.rows('SELECT * FROM t')).toEqual(expected);
    await again.group.close();
  });

  it('a snapshot of a large database that changed a little writes the changed pages, not the database', async () => {
    const dir = tempDir();
    const db = await openSolo(dir, { snapshotEntries: 20 });
    await db.exec('CREATE TABLE big(v)', 'CREATE TABLE t(v)');
    for (let i = 0; i < 8; i++) await db.exec({ sql: 'INSERT INTO big VALUES(randomblob(262144))', params: [] }); // 2 MiB
    for (let i = 0; i < 70; i++) await db.exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] });
    const snapshots = path.join(dir, 'snapshots');
    const files = readdirSync(snapshots).sort();
    const sizes = files.map((f) => statSync(path.join(snapshots, f)).size);
    const full = sizes[files.findIndex((f) => f.endsWith('.snap'))]!;
    expect(full).toBeGreaterThan(2 * 1024 * 1024);
    const deltas = files.filter((f) => f.endsWith('.delta'));
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    for (const d of deltas) expect(statSync(path.join(snapshots, d)).size).toBeLessThan(full / 20);
    const expected = db.rows('SELECT count(*), sum(length(v)) FROM big UNION ALL SELECT count(*), sum(v) FROM t');
    await db.group.close();
    const again = await openSolo(dir, { snapshotEntries: 20 });
    expect(again.rows('SELECT count(*), sum(length(v)) FROM big UNION ALL SELECT count(*), sum(v) FROM t')).toEqual(expected);
    expect(again.rows('SELECT count(*) FROM t')).toEqual([[70]]);
    await again.group.close();
  });

  it('falls back to the older snapshot when the newest is corrupt, replaying the log from there', async () => {
    const dir = tempDir();
    const db = await openSolo(dir, { snapshotEntries: 5 });
    await db.exec('CREATE TABLE t(v)');
    for (let i = 0; i < 12; i++) await db.exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] });
    await db.group.close();
    const snaps = readdirSync(path.join(dir, 'snapshots'))
      .filter((f) => f.endsWith('.snap'))
      .sort();
    expect(snaps).toHaveLength(2);
    const newest = path.join(dir, 'snapshots', snaps[1]!);
    const buf = readFileSync(newest);
    buf[buf.length - 20]! ^= 0x55;
    writeFileSync(newest, buf);
    const again = await openSolo(dir, { snapshotEntries: 5 });
    expect(again.rows('SELECT count(*), sum(v) FROM t')).toEqual([[12, 66]]);
    await again.group.close();
  });

  it('disk full: the write fails with disk_full, reads go on, nothing is half-applied, later writes work', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openSolo(dir, { fs });
    await db.exec('CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)');
    fs.faults.push({ op: 'append', code: 'ENOSPC', partialBytes: 3 });
    await expect(db.exec('INSERT INTO t VALUES(2)')).rejects.toMatchObject({ code: 'disk_full' });
    expect(db.rows('SELECT v FROM t')).toEqual([[1]]);
    const deadline = Date.now() + 5000;
    while (!db.group.isLeaderReady() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await db.exec('INSERT INTO t VALUES(3)');
    await db.group.close();
    const again = await openSolo(dir);
    expect(again.rows('SELECT v FROM t')).toEqual([[1], [3]]);
    await again.group.close();
  });

  it('after a failed fsync refuses writes with log_failed but keeps serving reads', async () => {
    const fs = new FaultyFs();
    const db = await openSolo(tempDir(), { fs });
    await db.exec('CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)');
    fs.faults.push({ op: 'sync', code: 'EIO' });
    await expect(db.exec('INSERT INTO t VALUES(2)')).rejects.toMatchObject({ code: 'log_failed' });
    await expect(db.exec('INSERT INTO t VALUES(3)')).rejects.toMatchObject({ code: 'log_failed' });
    expect(db.rows('SELECT v FROM t')).toEqual([[1]]);
    expect(db.group.status().failed).toMatch(/EIO/);
  });

  it('closing answers the proposals in flight, then refuses new ones', async () => {
    const db = await openSolo(tempDir());
    await db.exec('CREATE TABLE t(v)');
    const queued = db.exec('INSERT INTO t VALUES(1)');
    const closing = db.group.close();
    await expect(queued).resolves.toEqual([{ last_insert_id: 1, rows_affected: 1 }]);
    await expect(db.exec('INSERT INTO t VALUES(2)')).rejects.toMatchObject({ code: 'stopping' });
    await closing;
  });
});
