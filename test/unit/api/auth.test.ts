/**
 * Client API authentication: the auth file is checked entry by entry, scrypt
 * hashes and clear-text passwords verify, a missing credential is 401 unless
 * "*" may, a user without the route's permission is 403, every route has a
 * permission (unknown ones need admin), and the CLI's netrc lookup works.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Authenticator, hashPassword, loadAuthFile } from '../../../src/api/auth';
import { permissionsFor } from '../../../src/api/permissions';
import { netrcEntry } from '../../../src/cli/credentials';
import { ConfigError, GandalfError } from '../../../src/core/errors';
import { tempDir } from '../../helpers/tmp';

function file(content: unknown): string {
  const p = path.join(tempDir('gandalf-auth-'), 'users.json');
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function code(p: Promise<void>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(GandalfError);
    return (err as GandalfError).code;
  }
}

describe('auth file', () => {
  it('refuses malformed files and entries, naming the entry', () => {
    expect(() => loadAuthFile(file('{not json'))).toThrow(ConfigError);
    expect(() => loadAuthFile(file({ username: 'x' }))).toThrow(/JSON list/);
    expect(() => loadAuthFile(file([{ password: 'p', perms: [] }]))).toThrow(/entry 0: needs a "username"/);
    expect(() => loadAuthFile(file([{ username: 'a', perms: ['all'] }]))).toThrow(/entry 0: user "a" needs a "password"/);
    expect(() => loadAuthFile(file([{ username: 'a', password: 'p', perms: ['everything'] }]))).toThrow(/"perms" must be a list of all, execute/);
    expect(() =>
      loadAuthFile(
        file([
          { username: 'a', password: 'p', perms: [] },
          { username: 'a', password: 'q', perms: [] },
        ]),
      ),
    ).toThrow(/entry 1: user "a" appears twice/);
    expect(() => loadAuthFile(file([{ username: 'a', password: 'scrypt$3$8$1$AAAA$AAAA', perms: [] }]))).toThrow(/not one "gandalf-node hash-password" prints/);
  });

  it('verifies hashed and clear-text passwords, and checks permissions', async () => {
    const hash = await hashPassword('s3cret pass');
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(await hashPassword('s3cret pass')).not.toBe(hash); // salted
    const users = loadAuthFile(
      file([
        { username: 'ops', password: hash, perms: ['all'] },
        { username: 'reader', password: 'plain', perms: ['query', 'status'] },
        { username: '*', perms: ['ready'] },
      ]),
    );
    expect(users.clearText).toEqual(['reader']);
    const auth = new Authenticator(users);
    expect(await code(auth.check(basic('ops', 's3cret pass'), ['execute']))).toBe('ok');
    expect(await code(auth.check(basic('ops', 's3cret pass'), ['execute']))).toBe('ok'); // remembered
    expect(await code(auth.check(basic('ops', 'wrong'), ['execute']))).toBe('unauthorized');
    expect(await code(auth.check(basic('nobody', 'x'), ['query']))).toBe('unauthorized');
    expect(await code(auth.check(basic('reader', 'plain'), ['query']))).toBe('ok');
    expect(await code(auth.check(basic('reader', 'plain'), ['execute']))).toBe('forbidden');
    expect(await code(auth.check(basic('reader', 'plainx'), ['query']))).toBe('unauthorized');
    expect(await code(auth.check(undefined, ['query']))).toBe('unauthorized');
    expect(await code(auth.check(undefined, ['ready', 'status']))).toBe('ok'); // "*" may
    expect(await code(auth.check('Bearer abc', ['query']))).toBe('unauthorized');
    expect(await code(auth.check(basic('*', ''), ['ready']))).toBe('unauthorized'); // "*" is not a login
  });
});

describe('permissions of routes', () => {
  it('gives every route its permission; /db/request by what it holds; unknown routes need admin', () => {
    expect(permissionsFor('GET /health', undefined)).toBe('open');
    expect(permissionsFor('POST /db/execute', undefined)).toEqual(['execute']);
    expect(permissionsFor('GET /db/query', undefined)).toEqual(['query']);
    expect(permissionsFor('POST /db/request', ['SELECT 1', ['SELECT ?', 1]])).toEqual(['query']);
    expect(permissionsFor('POST /db/request', ['SELECT 1', 'DELETE FROM t'])).toEqual(['execute']);
    expect(permissionsFor('GET /db/backup', undefined)).toEqual(['backup']);
    expect(permissionsFor('POST /db/load', undefined)).toEqual(['load']);
    expect(permissionsFor('PUT /kv/*', undefined)).toEqual(['kv']);
    expect(permissionsFor('POST /lock/*', undefined)).toEqual(['lock']);
    expect(permissionsFor('GET /metrics', undefined)).toEqual(['status']);
    expect(permissionsFor('DELETE /something/new', undefined)).toEqual(['admin']);
  });
});

describe('netrc', () => {
  it('finds the entry of a machine, else the default', () => {
    const text = '# boards\nmachine 10.0.0.5 login ops password pw1\nmachine 127.0.0.1\n  login local password pw2\ndefault login any password pw3\n';
    expect(netrcEntry(text, '127.0.0.1')).toEqual({ login: 'local', password: 'pw2' });
    expect(netrcEntry(text, '10.0.0.5')).toEqual({ login: 'ops', password: 'pw1' });
    expect(netrcEntry(text, 'elsewhere')).toEqual({ login: 'any', password: 'pw3' });
    expect(netrcEntry('machine a login x', 'a')).toBeUndefined();
  });
});
