/**
 * Client API authentication, rqlite's way: HTTP Basic credentials checked
 * against an auth file (a JSON list of {"username", "password", "perms"}),
 * each user with a set of permissions. A password is an scrypt hash that
 * `gandalf-node hash-password` prints, or clear text (allowed, with a
 * warning, as rqlite allows it). The username "*" holds what a request
 * without credentials may do. Hashes are verified off the event loop
 * (libuv's thread pool) and a verified pair is remembered, so a board pays
 * scrypt once per client, not per request.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, GandalfError } from '../core/errors';
import { equalBytes, hashScrypt, isScryptForm, parseScrypt, verifyScrypt, type ScryptHash } from '../core/scrypt-hash';

export const PERMISSIONS = ['all', 'execute', 'query', 'backup', 'load', 'status', 'ready', 'lock', 'kv', 'route', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

interface User {
  username: string;
  /** scrypt: the parameters and hash; clear: the password itself. */
  password: ({ kind: 'scrypt' } & ScryptHash) | { kind: 'clear'; text: string };
  perms: Set<Permission>;
}

const MAX_REMEMBERED = 1024;

function isPermission(p: unknown): p is Permission {
  return typeof p === 'string' && (PERMISSIONS as readonly string[]).includes(p);
}

/** `scrypt$N$r$p$salt$hash` (salt and hash in base64), for the auth file. */
export function hashPassword(password: string): Promise<string> {
  return hashScrypt(password);
}

function parsePassword(raw: string, where: string): User['password'] {
  if (!isScryptForm(raw)) return { kind: 'clear', text: raw };
  const h = parseScrypt(raw);
  if (!h) throw new ConfigError(`${where}: the password looks like an scrypt hash but is not one "gandalf-node hash-password" prints`);
  return { kind: 'scrypt', ...h };
}

export interface AuthFile {
  users: User[];
  /** Users whose password is in clear text (the node warns about them). */
  clearText: string[];
}

/** Reads and checks an auth file; every problem is a ConfigError naming the entry. */
export function loadAuthFile(file: string): AuthFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--auth-file ${file}: ${(err as Error).message}`);
  }
  return parseAuthFile(text, file);
}

/** Checks an auth file's text (`file` names it in errors). */
export function parseAuthFile(text: string, file: string): AuthFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--auth-file ${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`--auth-file ${file}: expected a JSON list of {"username", "password", "perms"}`);
  const users: User[] = [];
  const seen = new Set<string>();
  parsed.forEach((entry: unknown, i) => {
    const where = `--auth-file ${file}, entry ${i}`;
    const e = entry as { username?: unknown; password?: unknown; perms?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.username !== 'string' || e.username === '') throw new ConfigError(`${where}: needs a "username"`);
    if (seen.has(e.username)) throw new ConfigError(`${where}: user "${e.username}" appears twice`);
    seen.add(e.username);
    if (e.username !== '*' && (typeof e.password !== 'string' || e.password === '')) throw new ConfigError(`${where}: user "${e.username}" needs a "password"`);
    if (!Array.isArray(e.perms) || !e.perms.every(isPermission)) {
      throw new ConfigError(`${where}: "perms" must be a list of ${PERMISSIONS.join(', ')}`);
    }
    users.push({ username: e.username, password: parsePassword(typeof e.password === 'string' ? e.password : '', where), perms: new Set(e.perms) });
  });
  return { users, clearText: users.filter((u) => u.username !== '*' && u.password.kind === 'clear').map((u) => u.username) };
}

export class Authenticator {
  private users = new Map<string, User>();
  /** sha256(header) of credentials verified before -> username. */
  private readonly remembered = new Map<string, string>();

  constructor(file: AuthFile) {
    this.replace(file);
  }

  /** New users (the auth file changed): credentials remembered before are verified again. */
  replace(file: AuthFile): void {
    this.users = new Map(file.users.map((u) => [u.username, u]));
    this.remembered.clear();
  }

  /**
   * Checks that the request's credentials (its Authorization header) hold
   * one of `anyOf`: 401 `unauthorized` without valid credentials (unless "*" may),
   * 403 `forbidden` with credentials that lack it.
   */
  async check(authorization: string | undefined, anyOf: Permission[]): Promise<void> {
    const wanted = anyOf.map((p) => `"${p}"`).join(' or ');
    if (!authorization) {
      if (this.allows('*', anyOf)) return;
      throw new GandalfError('unauthorized', `this endpoint needs credentials with the ${wanted} permission (HTTP Basic)`);
    }
    const user = await this.verify(authorization);
    if (!user) throw new GandalfError('unauthorized', 'wrong username or password');
    if (!this.allows(user, anyOf) && !this.allows('*', anyOf)) throw new GandalfError('forbidden', `user "${user}" lacks the ${wanted} permission`);
  }

  private allows(username: string, anyOf: Permission[]): boolean {
    const perms = this.users.get(username)?.perms;
    return !!perms && (perms.has('all') || anyOf.some((p) => perms.has(p)));
  }

  private async verify(authorization: string): Promise<string | undefined> {
    const key = createHash('sha256').update(authorization).digest('hex');
    const known = this.remembered.get(key);
    if (known !== undefined && this.users.has(known)) return known;
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const user = this.users.get(username);
    if (!user || username === '*') return undefined;
    const ok =
      user.password.kind === 'clear' ? equalBytes(Buffer.from(password), Buffer.from(user.password.text)) : await verifyScrypt(password, user.password);
    if (!ok) return undefined;
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(key, username);
    return username;
  }
}
