/**
 * The cluster cookie keyring file: one cookie per line (the first signs),
 * comments and blank lines skipped, bad lines named; a change to the file is
 * taken (in simulated time), an unreadable or empty file keeps the last
 * keyring.
 */
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger';
import { ConfigError } from '../../../src/core/errors';
import { parseCookieFile, watchCookieFile } from '../../../src/node/cookie-file';
import { POLL_MS as COOKIE_POLL_MS } from '../../../src/node/file-watch';
import { SimClock } from '../../helpers/sim/sim-clock';
import { tempDir } from '../../helpers/tmp';

describe('cookie file', () => {
  it('parses a keyring and names a bad line', () => {
    expect(parseCookieFile('# rotated 2026-12\nnew-cookie-2\n\n  old-cookie-1  \n', 'f')).toEqual(['new-cookie-2', 'old-cookie-1']);
    expect(() => parseCookieFile('good-cookie\nshort\n', 'f')).toThrow(/f, line 2: a cookie must have 8 to 1024 characters/);
    expect(() => parseCookieFile('# nothing\n', 'f')).toThrow(ConfigError);
  });

  it('takes a changed file, and keeps the last keyring when the file goes bad', () => {
    const file = path.join(tempDir('gandalf-cookie-'), 'cookie');
    writeFileSync(file, 'first-cookie\n');
    const clock = new SimClock();
    const seen: string[][] = [];
    const watch = watchCookieFile(file, (c) => seen.push(c), clock, silentLogger);
    clock.advance(COOKIE_POLL_MS);
    expect(seen).toEqual([]); // unchanged
    writeFileSync(file, 'first-cookie\nsecond-cookie\n');
    clock.advance(COOKIE_POLL_MS);
    expect(seen).toEqual([['first-cookie', 'second-cookie']]);
    writeFileSync(file, 'bad\n');
    clock.advance(COOKIE_POLL_MS);
    rmSync(file);
    clock.advance(COOKIE_POLL_MS);
    expect(seen).toHaveLength(1);
    writeFileSync(file, 'second-cookie\n');
    clock.advance(COOKIE_POLL_MS);
    expect(seen).toEqual([['first-cookie', 'second-cookie'], ['second-cookie']]);
    watch.stop();
  });
});
