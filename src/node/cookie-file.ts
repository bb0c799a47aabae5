/**
 * The cluster cookie keyring: --cluster-cookie (one cookie), or
 * --cluster-cookie-file, one cookie per line (# comments): the first signs,
 * every one is accepted. The file is read again when it changes (looked at
 * every POLL_MS, and at once on SIGHUP), so a rack rotates its cookie
 * with no restart: add the new cookie below the old on every board, then put
 * it first on every board, then remove the old one (see file-watch.ts).
 */
import { readFileSync } from 'node:fs';
import type { NodeConfig } from '../config/settings';
import type { Clock } from '../core/clock';
import { ConfigError } from '../core/errors';
import type { Logger } from '../core/logger';
import { FileWatch } from './file-watch';

const MIN_COOKIE = 8;

/** The cookies in the file's text; every problem is a ConfigError naming the file and line. */
export function parseCookieFile(text: string, file: string): string[] {
  const cookies: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.length < MIN_COOKIE || line.length > 1024)
      throw new ConfigError(`--cluster-cookie-file ${file}, line ${i + 1}: a cookie must have 8 to 1024 characters`);
    cookies.push(line);
  });
  if (cookies.length === 0) throw new ConfigError(`--cluster-cookie-file ${file}: no cookie in it`);
  return cookies;
}

function readCookieFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read --cluster-cookie-file ${file}: ${(err as Error).message}`);
  }
  return parseCookieFile(text, file);
}

/** The keyring at start: [] for an open cluster. */
export function readCookies(config: NodeConfig): string[] {
  if (config.clusterCookie !== undefined) return [config.clusterCookie];
  if (config.clusterCookieFile === undefined) return [];
  return readCookieFile(config.clusterCookieFile);
}

/** Re-reads the cookie file when it changes (and on SIGHUP) and hands its cookies to `apply`. */
export function watchCookieFile(file: string, apply: (cookies: string[]) => void, clock: Clock, logger: Logger): FileWatch {
  return new FileWatch([file], ([text]) => apply(parseCookieFile(text!.toString('utf8'), file)), 'cluster cookie file', clock, logger);
}
