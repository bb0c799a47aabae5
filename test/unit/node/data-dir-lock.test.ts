import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockDataDir } from '../../../src/node/data-dir-lock';
import { resolveNodeId } from '../../../src/node/node-id';
import { tempDir } from '../../helpers/tmp';

describe('data dir lock', () => {
  it('refuses a second holder while the first runs, and frees on release', () => {
    const dir = tempDir();
    const lock = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(/in use by another gandalf-node \(pid \d+\)/);
    lock.release();
    expect(existsSync(path.join(dir, 'LOCK'))).toBe(false);
    lockDataDir(dir).release();
  });

  it('takes over a stale lock whose process is gone or whose pid was reused', () => {
    const dir = tempDir();
    const dead = spawnSync('true').pid!;
    writeFileSync(path.join(dir, 'LOCK'), `${dead} 12345\n`);
    const lock = lockDataDir(dir);
    expect(readFileSync(path.join(dir, 'LOCK'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    lock.release();
    // pid 1 is alive, but its start time is not the recorded one: reuse after a reboot.
    writeFileSync(path.join(dir, 'LOCK'), '1 999999999\n');
    lockDataDir(dir).release();
  });
});

describe('node id', () => {
  it('is generated once and kept; a configured id wins and is remembered', () => {
    const dir = tempDir();
    const first = resolveNodeId(dir, undefined);
    expect(first).toMatch(/^[a-z0-9-]+-[0-9a-f]{6}$/);
    expect(resolveNodeId(dir, undefined)).toBe(first);
    expect(resolveNodeId(dir, 'pi-07')).toBe('pi-07');
    expect(resolveNodeId(dir, undefined)).toBe('pi-07');
  });
});
