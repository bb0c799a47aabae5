/**
 * Connector types: for each type and version (`major.minor`), the commands it
 * has and the JSON Schema of each command's payload, kept in the replicated
 * key/value container (`gandalf/connector-types/<type>/<major>.<minor>`) and
 * read by every connector every REFRESH_MS.
 *
 * A connector checks each command it takes against its type: the version
 * (`major` 0: the highest that one of its workers serves), the command's
 * presence in it, and its payload (ajv). A worker registers only with a
 * registered version and every command of it. A type with no version
 * registered is open: anything goes (a zero-configuration rack).
 */
import Ajv, { type ValidateFunction } from 'ajv';
import { repeatAfter, type Clock } from '../core/clock';
import { GandalfError } from '../core/errors';
import type { Logger } from '../core/logger';
import { isRoutingName } from '../core/routing-identity';
import type { QueuedCommand } from './command-queue';
import type { KvPort } from './ports';

export const TYPE_PREFIX = 'gandalf/connector-types/';
const REFRESH_MS = 2000;
const VERSION_RE = /^(\d{1,5})\.(\d{1,5})$/;

export interface TypeVersion {
  type: string;
  major: number;
  minor: number;
  /** Command name -> JSON Schema of its payload. */
  commands: Record<string, object>;
}

export type Verdict = { ok: true } | { ok: false; error: string; details?: unknown };

function invalid(message: string): never {
  throw new GandalfError('invalid_request', message);
}

export function parseVersion(raw: string): { major: number; minor: number } {
  const m = VERSION_RE.exec(raw);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535 || Number(m[2]) > 65535) invalid(`version must be MAJOR.MINOR with MAJOR from 1 (e.g. 1.0), not "${raw}"`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

const later = (a: TypeVersion, b: TypeVersion) => b.major - a.major || b.minor - a.minor;

export class ConnectorTypes {
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private versions = new Map<string, TypeVersion[]>();
  /** What the container held at the last refresh, by key: unchanged entries are not parsed again. */
  private stored = new Map<string, { value: string; version: TypeVersion }>();
  private readonly validators = new Map<string, ValidateFunction>();
  private refresher: { stop(): void } | undefined;

  constructor(
    private readonly kv: KvPort,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.refresher = repeatAfter(
      this.clock,
      REFRESH_MS,
      () => this.refresh(),
      (err: unknown) => this.logger.debug('connector types: could not refresh', { err: err as Error }),
    );
  }

  stop(): void {
    this.refresher?.stop();
  }

  /** Checks a type version as given by an operator (every schema must compile) and stores it. */
  async put(type: string, version: string, body: unknown): Promise<TypeVersion> {
    const v = this.parse(type, version, body);
    await this.kv.put(`${TYPE_PREFIX}${type}/${v.major}.${v.minor}`, JSON.stringify({ commands: v.commands }));
    await this.refresh(true);
    return v;
  }

  async delete(type: string, version: string): Promise<void> {
    if (!isRoutingName(type)) invalid('type must be a name');
    const { major, minor } = parseVersion(version);
    await this.kv.delete(`${TYPE_PREFIX}${type}/${major}.${minor}`);
    await this.refresh(true);
  }

  async list(): Promise<TypeVersion[]> {
    await this.refresh(true);
    return [...this.versions.values()].flat();
  }

  /** `fresh`: read at the system leader (the API's calls), else this board's view (the periodic refresh). */
  async refresh(fresh = false): Promise<void> {
    const next = new Map<string, TypeVersion[]>();
    const seen = new Map<string, { value: string; version: TypeVersion }>();
    for (const { key, value } of await this.kv.list(TYPE_PREFIX, fresh)) {
      const [type, version] = key.slice(TYPE_PREFIX.length).split('/');
      let v = this.stored.get(key)?.value === value ? this.stored.get(key)!.version : undefined;
      if (!v) {
        try {
          v = this.parse(type ?? '', version ?? '', JSON.parse(value));
        } catch (err) {
          this.logger.warn('a stored connector type is not valid and is ignored', { key, err: err as Error });
          continue;
        }
        // its schemas changed: their validators are compiled again
        for (const k of this.validators.keys()) if (k.startsWith(`${v.type}/${v.major}.${v.minor}/`)) this.validators.delete(k);
      }
      seen.set(key, { value, version: v });
      next.set(v.type, [...(next.get(v.type) ?? []), v].sort(later));
    }
    this.stored = seen;
    this.versions = next;
  }

  /** Whether worker `commands` may register as version `major.minor` of `type` (undefined: yes). */
  refusal(type: string, major: number, minor: number, commands: readonly string[]): string | undefined {
    const versions = this.versions.get(type);
    if (!versions) return undefined;
    const v = versions.find((x) => x.major === major && x.minor === minor);
    if (!v)
      return `version ${major}.${minor} of connector type ${type} is not registered (registered: ${versions.map((x) => `${x.major}.${x.minor}`).join(', ')})`;
    const missing = Object.keys(v.commands).filter((c) => !commands.includes(c));
    if (missing.length > 0) return `a worker of ${type} ${major}.${minor} must implement ${missing.join(', ')} (missing)`;
    return undefined;
  }

  /** Checks a command for a connector of `type` whose workers serve `served` versions. */
  check(type: string, env: QueuedCommand, served: readonly { major: number; minor: number }[]): Verdict {
    if (env.kind !== 'command') return { ok: true };
    const versions = this.versions.get(type);
    if (!versions) return { ok: true };
    const v =
      env.major === 0
        ? (versions.find((x) => served.some((s) => s.major === x.major && s.minor === x.minor)) ?? versions[0]!)
        : (versions.find((x) => x.major === env.major && x.minor === env.minor) ?? versions.find((x) => x.major === env.major));
    if (!v) return { ok: false, error: `connector type ${type} has no version ${env.major}.${env.minor}` };
    const schema = v.commands[env.command];
    if (!schema) {
      return {
        ok: false,
        error: `${env.command} is not a command of ${type} ${v.major}.${v.minor} (its commands: ${Object.keys(v.commands).join(', ') || 'none'})`,
      };
    }
    const validate = this.validator(`${type}/${v.major}.${v.minor}/${env.command}`, schema);
    if (validate(env.payload)) return { ok: true };
    const details = (validate.errors ?? []).map((e) => ({ path: e.instancePath || '/', message: e.message ?? 'invalid' }));
    return { ok: false, error: `the payload does not match the schema of ${env.command} (${type} ${v.major}.${v.minor})`, details };
  }

  private validator(key: string, schema: object): ValidateFunction {
    let v = this.validators.get(key);
    if (!v) this.validators.set(key, (v = this.ajv.compile(schema)));
    return v;
  }

  private parse(type: string, version: string, body: unknown): TypeVersion {
    if (!isRoutingName(type)) invalid('type must be a name: 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit');
    const { major, minor } = parseVersion(version);
    const commands = (body as { commands?: unknown } | null)?.commands;
    if (typeof commands !== 'object' || commands === null || Array.isArray(commands)) invalid('the body must be {"commands": {"NAME": JSON Schema, …}}');
    for (const [name, schema] of Object.entries(commands)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/.test(name)) invalid(`command name "${name}" must be 1-128 characters of A-Z a-z 0-9 . _ : / -`);
      if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) invalid(`the schema of ${name} must be a JSON Schema object`);
      try {
        this.ajv.compile(schema);
      } catch (err) {
        invalid(`the schema of ${name} is not a valid JSON Schema: ${(err as Error).message}`);
      }
    }
    return { type, major, minor, commands: commands as Record<string, object> };
  }
}
