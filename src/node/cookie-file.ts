/**
 * The cluster cookie keyring: --cluster-cookie (one cookie), or
 * --cluster-cookie-file, one cookie per line (# comments): the first signs,
 * every one is accepted. The file is read again when it changes (looked at
 * every COOKIE_POLL_MS, and at once on SIGHUP), so a rack rotates its cookie
 * with no restart: add the new cookie below the old on every board, then put
 * it first on every board, then remove the old one.
 */
import { readFileSync, statSync } from 'node:fs';
import type { NodeConfig } from '../config/settings';
import type { Clock, TimerHandle } from '../core/clock';
import { ConfigError } from '../core/errors';
import type { Logger } from '../core/logger';

export const COOKIE_POLL_MS = 2_000;
const MIN_COOKIE = 8;

/** The cookies in the file's text; every problem is a ConfigError naming the file and line. */
export function parseCookieFile(text: string, file: string): string[] {
  const cookies: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.length < MIN_COOKIE || line.length > 1024) throw new ConfigError(`--cluster-cookie-file ${file}, line ${i + 1}: a cookie must have 8 to 1024 characters`);
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

/** Calls `apply` with the file's cookies whenever its contents change; a file that becomes unreadable or invalid keeps the last keyring. */
export class CookieFileWatch {
  private timer: TimerHandle | undefined;
  private last: string;
  private readonly onHup = () => this.check();

  constructor(
    private readonly file: string,
    initial: readonly string[],
    private readonly apply: (cookies: string[]) => void,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.last = initial.join('\n');
    process.on('SIGHUP', this.onHup);
    this.schedule();
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.check();
      this.schedule();
    }, COOKIE_POLL_MS);
    this.timer.unref?.();
  }

  private check(): void {
    let cookies: string[];
    try {
      statSync(this.file);
      cookies = readCookieFile(this.file);
    } catch (err) {
      this.logger.warn('the cluster cookie file cannot be used; keeping the cookies read before', { file: this.file, err: err as Error });
      return;
    }
    const joined = cookies.join('\n');
    if (joined === this.last) return;
    try {
      this.apply(cookies);
    } catch (err) {
      this.logger.warn('the new cluster cookies were not taken', { file: this.file, err: err as Error });
      return;
    }
    this.last = joined;
    this.logger.info('cluster cookie file reloaded', { file: this.file, cookies: cookies.length });
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    process.off('SIGHUP', this.onHup);
  }
}
