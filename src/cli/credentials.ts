/**
 * The CLI's credentials for a node with --auth-file: `--user NAME:PASSWORD`,
 * else GANDALF_USER, else a netrc-style file (GANDALF_NETRC, default
 * ~/.netrc) with a `machine HOST login NAME password PASSWORD` entry for the
 * node's host (or a `default` one). Sent as HTTP Basic.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './errors';

function basic(userPass: string, where: string): string {
  if (!userPass.includes(':')) throw new UsageError(`${where} must be NAME:PASSWORD`);
  return `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}`;
}

/** login/password for `host` in a netrc file's text, if any. */
export function netrcEntry(text: string, host: string): { login: string; password: string } | undefined {
  const tokens = text.replace(/#.*$/gm, '').split(/\s+/).filter(Boolean);
  let current: { machine: string | null; login?: string; password?: string } | undefined;
  const entries: { machine: string | null; login?: string; password?: string }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === 'machine') entries.push((current = { machine: tokens[++i] ?? '' }));
    else if (t === 'default') entries.push((current = { machine: null }));
    else if (t === 'login' && current) current.login = tokens[++i];
    else if (t === 'password' && current) current.password = tokens[++i];
  }
  const e = entries.find((x) => x.machine === host) ?? entries.find((x) => x.machine === null);
  return e?.login !== undefined && e.password !== undefined ? { login: e.login, password: e.password } : undefined;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** HTTPS settings from --tls, --ca-cert, --client-cert, --client-key, --insecure (or GANDALF_CA_CERT, GANDALF_CLIENT_CERT, GANDALF_CLIENT_KEY); undefined: plain HTTP. */
export function clientTls(
  values: Record<string, string | boolean | string[] | undefined>,
  env: NodeJS.ProcessEnv,
): { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean } | undefined {
  const ca = (values['ca-cert'] as string | undefined) ?? env.GANDALF_CA_CERT;
  const cert = (values['client-cert'] as string | undefined) ?? env.GANDALF_CLIENT_CERT;
  const key = (values['client-key'] as string | undefined) ?? env.GANDALF_CLIENT_KEY;
  if (!values.tls && !values.insecure && !ca && !cert) return undefined;
  if (!!cert !== !!key) throw new UsageError('--client-cert and --client-key go together');
  return {
    ...(ca ? { ca: readPem(ca, '--ca-cert') } : {}),
    ...(cert ? { cert: readPem(cert, '--client-cert') } : {}),
    ...(key ? { key: readPem(key!, '--client-key') } : {}),
    ...(values.insecure ? { insecure: true } : {}),
  };
}

/** The Authorization header to send to `host`, or undefined for none. */
export function clientAuthorization(flag: string | undefined, env: NodeJS.ProcessEnv, host: string): string | undefined {
  if (flag !== undefined) return basic(flag, '--user');
  if (env.GANDALF_USER) return basic(env.GANDALF_USER, 'GANDALF_USER');
  const file = env.GANDALF_NETRC ?? (env.HOME ? path.join(env.HOME, '.netrc') : undefined);
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    if (env.GANDALF_NETRC) throw new UsageError(`GANDALF_NETRC: cannot read ${file}`);
    return undefined;
  }
  const e = netrcEntry(text, host);
  return e ? basic(`${e.login}:${e.password}`, file) : undefined;
}
