import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FaultyFs } from '../../helpers/faulty-fs';
import { exec, openDb, rows } from '../../helpers/store';
import { tempDir } from '../../helpers/tmp';

describe('DurableDatabase', () => {
  it('answers only after fsync and keeps every answered write across reopen', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openDb(dir, { fs });
    await db.execute(exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)'));
    const syncsBefore = fs.syncs;
    const r = await db.execute(exec({ sql: 'INSERT INTO t(v) VALUES(?)', params: ['a'] }));
    expect(r).toEqual([{ last_insert_id: 1, rows_affected: 1 }]);
    expect(fs.syncs).toBe(syncsBefore + 1);
    await db.close();
    const again = await openDb(dir);
    expect(rows(again, 'SELECT v FROM t')).toEqual([['a']]);
    await again.close();
  });

  it('group commit: 200 concurrent writers share a handful of fsyncs', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openDb(dir, { fs });
    await db.execute(exec('CREATE TABLE t(v)'));
    const before = fs.syncs;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => db.execute(exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] }))),
    );
    expect(results.every((r) => 'rows_affected' in r[0]! && r[0].rows_affected === 1)).toBe(true);
    expect(fs.syncs - before).toBeLessThanOrEqual(3);
    expect(rows(db, 'SELECT count(*), sum(v) FROM t')).toEqual([[200, 19900]]);
    await db.close();
  });

  it('snapshots bound the log, and start = snapshot + replay gives the same state', async () => {
    const dir = tempDir();
    const db = await openDb(dir, { snapshotEntries: 10 });
    await db.execute(exec('CREATE TABLE t(v, ts DEFAULT CURRENT_TIMESTAMP, r)'));
    for (let i = 0; i < 35; i++) await db.execute(exec({ sql: 'INSERT INTO t(v, r) VALUES(?, random())', params: [i] }));
    await db.drain();
    const expected = rows(db, 'SELECT * FROM t');
    const st = db.status();
    expect(st.snapshot.index).toBeGreaterThanOrEqual(30);
    expect(st.log.segments).toBeLessThanOrEqual(3);
    expect(readdirSync(path.join(dir, 'snapshots'))).toHaveLength(2);
    // Simulate a crash: no close, reopen from disk.
    const again = await openDb(dir, { snapshotEntries: 10 });
    expect(rows(again, 'SELECT * FROM t')).toEqual(expected);
    expect(again.appliedIndex).toBe(36);
    await again.close();
    await db.close().catch(() => {});
  });

  it('falls back to the previous snapshot when the newest is corrupt, replaying the log from there', async () => {
    const dir = tempDir();
    const db = await openDb(dir, { snapshotEntries: 5 });
    await db.execute(exec('CREATE TABLE t(v)'));
    for (let i = 0; i < 12; i++) await db.execute(exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] }));
    await db.close();
    const snaps = readdirSync(path.join(dir, 'snapshots')).sort();
    expect(snaps).toHaveLength(2);
    const newest = path.join(dir, 'snapshots', snaps[1]!);
    const buf = readFileSync(newest);
    buf[buf.length - 100]! ^= 0x55;
    writeFileSync(newest, buf);
    const again = await openDb(dir, { snapshotEntries: 5 });
    expect(rows(again, 'SELECT count(*), sum(v) FROM t')).toEqual([[12, 66]]);
    await again.close();
  });

  it('disk full: the write fails with disk_full, reads go on, nothing is half-applied, later writes work', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openDb(dir, { fs });
    await db.execute(exec('CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)'));
    fs.faults.push({ op: 'append', code: 'ENOSPC', partialBytes: 3 });
    await expect(db.execute(exec('INSERT INTO t VALUES(2)'))).rejects.toMatchObject({ code: 'disk_full' });
    expect(rows(db, 'SELECT v FROM t')).toEqual([[1]]);
    await db.execute(exec('INSERT INTO t VALUES(3)'));
    await db.close();
    const again = await openDb(dir);
    expect(rows(again, 'SELECT v FROM t')).toEqual([[1], [3]]);
    await again.close();
  });

  it('a failed snapshot write leaves the log intact', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openDb(dir, { fs, snapshotEntries: 3 });
    await db.execute(exec('CREATE TABLE t(v)'));
    // Every snapshot attempt (its log roll or its file write) hits a full disk.
    for (let i = 0; i < 20; i++) fs.faults.push({ op: 'writeFileAtomic', code: 'ENOSPC' });
    for (let i = 0; i < 6; i++) await db.execute(exec({ sql: 'INSERT INTO t VALUES(?)', params: [i] }));
    await db.drain();
    expect(db.status().snapshot.last_error).toMatch(/ENOSPC/);
    expect(db.status().snapshot.index).toBe(0);
    const again = await openDb(path.join(dir));
    expect(rows(again, 'SELECT count(*) FROM t')).toEqual([[6]]);
    await again.close();
    await db.close().catch(() => {});
  });

  it('after a failed fsync refuses writes with log_failed but keeps serving reads', async () => {
    const dir = tempDir();
    const fs = new FaultyFs();
    const db = await openDb(dir, { fs });
    await db.execute(exec('CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)'));
    fs.faults.push({ op: 'sync', code: 'EIO' });
    await expect(db.execute(exec('INSERT INTO t VALUES(2)'))).rejects.toMatchObject({ code: 'log_failed' });
    await expect(db.execute(exec('INSERT INTO t VALUES(3)'))).rejects.toMatchObject({ code: 'log_failed' });
    expect(rows(db, 'SELECT v FROM t')).toEqual([[1]]);
    expect(db.status().log.failed).toMatch(/EIO/);
  });

  it('refuses writes once closing, after answering the queued ones', async () => {
    const db = await openDb(tempDir());
    await db.execute(exec('CREATE TABLE t(v)'));
    const queued = db.execute(exec('INSERT INTO t VALUES(1)'));
    const closing = db.close();
    await expect(queued).resolves.toEqual([{ last_insert_id: 1, rows_affected: 1 }]);
    await expect(db.execute(exec('INSERT INTO t VALUES(2)'))).rejects.toMatchObject({ code: 'stopping' });
    await closing;
  });
});
