/**
 * Every setting of `gandalf-node start`: its flag, environment variable,
 * default and validation. Precedence: flag > environment > config file >
 * default. An invalid value is a ConfigError whose message names the setting,
 * where the value came from, and what is accepted.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { ConfigError } from '../core/errors';
import { isNodeId, NODE_ID_RULE } from '../core/node-id';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../core/logger';
import { isRoutingName, isTenant, parseRoles, parseSecret, ROLES, ROUTING_NAME_RULE, SECRET_RULE, TENANT_RULE, type Role } from '../core/routing-identity';

export interface HostPort {
  host: string;
  port: number;
}

export interface NodeConfig {
  nodeId: string | undefined;
  dataDir: string;
  httpBind: HostPort;
  mgmtBind: HostPort;
  logLevel: LogLevel;
  logFormat: LogFormat;
  maxBodyBytes: number;
  snapshotEntries: number;
  snapshotBytes: number;
  maxDatabaseBytes: number;
  clusterName: string;
  discovery: 'mdns' | 'manual' | 'none';
  /** Interface names or IPv4 addresses for mDNS; empty = all non-loopback IPv4 interfaces. */
  mdnsInterface: string[];
  /** Mgmt endpoints to join (http://HOST:PORT). */
  join: string[];
  webrtc: 'auto' | 'native' | 'werift';
  iceServer: string[];
  clusterCookie: string | undefined;
  clusterCookieFile: string | undefined;
  /** HTTPS on the client API: certificate and key (PEM files); with a client CA, clients need a certificate it signed. */
  httpCert: string | undefined;
  httpKey: string | undefined;
  httpClientCa: string | undefined;
  /** Scheduled whole-cluster backups go here; undefined: none. */
  backupDir: string | undefined;
  backupIntervalMs: number;
  backupRetain: number;
  /** rqlite-style users and permissions for the client API; undefined: no authentication. */
  authFile: string | undefined;
  /** How peers reach our mgmt endpoint; derived from --mgmt-bind when unset. */
  advertiseEndpoint: string | undefined;
  /** false: a non-voting board (learner replicas of every database, level=none reads, never counted for quorum). */
  voter: boolean;
  /** Voters per database; 0 = min(3, cluster size). */
  redundancy: number;
  /** A voter unreachable this long (ms) is replaced. */
  replaceAfterMs: number;
  /** Rebalancing pace (ms): members stable this long, one database voter moved per interval. */
  rebalanceIntervalMs: number;
  /** A write that is not committed within this (ms) fails with no_quorum. */
  writeTimeoutMs: number;
  queryTimeoutMs: number;
  /** Gandalf routing: the roles this node runs, its tenant and logical name, and (a connector's) type and product. */
  roles: Role[];
  tenant: string;
  logicalName: string;
  connectorType: string;
  product: string | undefined;
  /** The data sink keeps records this long (ms) and each tenant's database to this many bytes. */
  sinkRetentionMs: number;
  sinkMaxBytes: number;
  /** The gRPC worker API: a unix socket (undefined: <data-dir>/worker.sock) and optionally a loopback TCP port. */
  workerSocket: string | undefined;
  workerPort: number | undefined;
  secret: string | undefined;
  secretFile: string | undefined;
}

type Source = 'flag' | 'environment' | 'config file' | 'default';

interface SettingSpec<K extends keyof NodeConfig> {
  key: K;
  flag: string;
  description: string;
  /** Shown in --help and README. */
  defaultText: string;
  default: () => string | undefined;
  accepted: string;
  parse(raw: string): NodeConfig[K] | undefined;
}

export function parseHostPort(raw: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/** Parses a mgmt endpoint "http://HOST:PORT" (optional trailing slash). */
export function parseEndpoint(endpoint: string): { host: string; port: number } | undefined {
  const m = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(endpoint.trim());
  if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

function list<T>(item: (raw: string) => T | undefined) {
  return (raw: string): T[] | undefined => {
    const parts = raw
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    const out: T[] = [];
    for (const p of parts) {
      const v = item(p);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `123`, `64KiB`, `64MiB`, `1GiB` (also KB/MB/GB as powers of 1024) within [min, max]. */
function parseSize(raw: string, min: number, max: number): number | undefined {
  const m = /^(\d+)\s*(|B|KiB|KB|MiB|MB|GiB|GB)$/i.exec(raw.trim());
  if (!m) return undefined;
  const unit = m[2]!.toUpperCase();
  const scale = unit.startsWith('K') ? 1024 : unit.startsWith('M') ? 1024 ** 2 : unit.startsWith('G') ? 1024 ** 3 : 1;
  const v = Number(m[1]) * scale;
  return Number.isSafeInteger(v) && v >= min && v <= max ? v : undefined;
}

function positiveInt(min: number, max: number) {
  return (raw: string): number | undefined => {
    if (!/^\d+$/.test(raw.trim())) return undefined;
    const n = Number(raw);
    return n >= min && n <= max ? n : undefined;
  };
}

/** `250ms`, `30s`, `2m`, `1h`, `7d`, or plain milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number.isFinite(n) ? Math.round(n) : undefined;
}

function duration(minMs: number, maxMs: number) {
  return (raw: string): number | undefined => {
    const n = parseDuration(raw);
    return n !== undefined && n >= minMs && n <= maxMs ? n : undefined;
  };
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T | undefined => ((values as readonly string[]).includes(raw) ? (raw as T) : undefined);
}

/** The settings table; README's configuration table mirrors it. */
export const SETTINGS = [
  {
    key: 'nodeId',
    flag: 'node-id',
    description: 'Unique id of this node in the cluster',
    defaultText: 'generated once, kept in <data-dir>/node-id',
    default: () => undefined,
    accepted: NODE_ID_RULE,
    parse: (raw) => (isNodeId(raw) ? raw : undefined),
  } satisfies SettingSpec<'nodeId'>,
  {
    key: 'dataDir',
    flag: 'data-dir',
    description: 'Directory of the databases, logs and snapshots',
    defaultText: './data',
    default: () => './data',
    accepted: 'a directory path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'dataDir'>,
  {
    key: 'httpBind',
    flag: 'http-bind',
    description: 'Address of the client API (and later the dashboard)',
    defaultText: '127.0.0.1:8420',
    default: () => '127.0.0.1:8420',
    accepted: 'HOST:PORT, e.g. 127.0.0.1:8420 or [::1]:8420',
    parse: parseHostPort,
  } satisfies SettingSpec<'httpBind'>,
  {
    key: 'mgmtBind',
    flag: 'mgmt-bind',
    description: 'Peer-facing management endpoint (signaling, health)',
    defaultText: '0.0.0.0:8421',
    default: () => '0.0.0.0:8421',
    accepted: 'HOST:PORT, e.g. 0.0.0.0:8421',
    parse: parseHostPort,
  } satisfies SettingSpec<'mgmtBind'>,
  {
    key: 'logLevel',
    flag: 'log-level',
    description: 'Least severe log level written',
    defaultText: 'info',
    default: () => 'info',
    accepted: `one of ${LOG_LEVELS.join(', ')}`,
    parse: oneOf(LOG_LEVELS),
  } satisfies SettingSpec<'logLevel'>,
  {
    key: 'logFormat',
    flag: 'log-format',
    description: 'Log line format',
    defaultText: 'pretty on a terminal, json otherwise',
    default: () => (process.stderr.isTTY ? 'pretty' : 'json'),
    accepted: 'one of json, pretty',
    parse: oneOf(['json', 'pretty'] as const),
  } satisfies SettingSpec<'logFormat'>,
  {
    key: 'maxBodyBytes',
    flag: 'max-body-bytes',
    description: 'Largest accepted HTTP request body; larger ones get 413',
    defaultText: '16777216 (16 MiB)',
    default: () => String(16 * 1024 * 1024),
    accepted: 'an integer from 1024 to 268435456',
    parse: positiveInt(1024, 256 * 1024 * 1024),
  } satisfies SettingSpec<'maxBodyBytes'>,
  {
    key: 'snapshotEntries',
    flag: 'snapshot-entries',
    description: 'Snapshot a database after this many log entries',
    defaultText: '8192',
    default: () => '8192',
    accepted: 'an integer from 1 to 100000000',
    parse: positiveInt(1, 100_000_000),
  } satisfies SettingSpec<'snapshotEntries'>,
  {
    key: 'snapshotBytes',
    flag: 'snapshot-bytes',
    description: 'Snapshot a database once its log grew by this many bytes',
    defaultText: '33554432 (32 MiB)',
    default: () => String(32 * 1024 * 1024),
    accepted: 'an integer from 4096 to 4294967296',
    parse: positiveInt(4096, 4 * 1024 * 1024 * 1024),
  } satisfies SettingSpec<'snapshotBytes'>,
  {
    key: 'maxDatabaseBytes',
    flag: 'max-database-bytes',
    description:
      'A database this large (sql.js holds it in memory, up to three copies) takes no more growing writes (507 database_too_large); DELETE, DROP and VACUUM still go',
    defaultText: 'auto: an eighth of this board\u2019s memory (64 MiB on a 512 MiB board)',
    default: () => 'auto',
    accepted: 'auto, or a size from 1MiB to 64GiB (bytes, or with KiB, MiB, GiB)',
    parse: (raw) => (raw === 'auto' ? Math.floor(totalmem() / 8) : parseSize(raw, 1024 * 1024, 64 * 1024 ** 3)),
  } satisfies SettingSpec<'maxDatabaseBytes'>,
  {
    key: 'clusterName',
    flag: 'cluster-name',
    description: 'Name of the cluster; nodes of other clusters are never joined',
    defaultText: 'gandalf',
    default: () => 'gandalf',
    accepted: '1-32 characters of a-z, 0-9 and "-", starting with a letter or digit',
    parse: (raw) => (/^[a-z0-9][a-z0-9-]{0,31}$/.test(raw) ? raw : undefined),
  } satisfies SettingSpec<'clusterName'>,
  {
    key: 'discovery',
    flag: 'discovery',
    description: 'How peers are found: mDNS (plus --join), only --join, or not at all',
    defaultText: 'mdns',
    default: () => 'mdns',
    accepted: 'one of mdns, manual, none',
    parse: oneOf(['mdns', 'manual', 'none'] as const),
  } satisfies SettingSpec<'discovery'>,
  {
    key: 'mdnsInterface',
    flag: 'mdns-interface',
    description: 'Interfaces (names or IPv4 addresses, comma-separated) that mDNS uses',
    defaultText: 'all non-loopback IPv4 interfaces',
    default: () => '',
    accepted: 'a comma-separated list of interface names or IPv4 addresses',
    parse: list((p) => (/^[A-Za-z0-9._:-]{1,64}$/.test(p) ? p : undefined)),
  } satisfies SettingSpec<'mdnsInterface'>,
  {
    key: 'join',
    flag: 'join',
    description: 'Mgmt endpoints of nodes to join, retried with backoff for as long as the node runs',
    defaultText: 'none',
    default: () => '',
    accepted: 'a comma-separated list of http://HOST:PORT',
    parse: list((p) => (parseEndpoint(p) ? p.replace(/\/$/, '') : undefined)),
  } satisfies SettingSpec<'join'>,
  {
    key: 'webrtc',
    flag: 'webrtc',
    description: 'WebRTC implementation: node-datachannel where its addon loads, else werift',
    defaultText: 'auto',
    default: () => 'auto',
    accepted: 'one of auto, native, werift',
    parse: oneOf(['auto', 'native', 'werift'] as const),
  } satisfies SettingSpec<'webrtc'>,
  {
    key: 'iceServer',
    flag: 'ice-server',
    description: 'STUN/TURN servers for routed networks (none by default: a LAN needs none)',
    defaultText: 'none',
    default: () => '',
    accepted: 'a comma-separated list of stun: or turn: URLs',
    parse: list((p) => (/^(stun|turns?):[^\s,]+$/.test(p) ? p : undefined)),
  } satisfies SettingSpec<'iceServer'>,
  {
    key: 'clusterCookie',
    flag: 'cluster-cookie',
    description: 'Shared secret: signaling is authenticated with HMAC-SHA256 keyed by it. Prefer --cluster-cookie-file: a flag\u2019s value shows in ps',
    defaultText: 'none (an open cluster, with a warning)',
    default: () => undefined,
    accepted: 'a secret of 8 to 1024 characters',
    parse: (raw) => (raw.length >= 8 && raw.length <= 1024 ? raw : undefined),
  } satisfies SettingSpec<'clusterCookie'>,
  {
    key: 'clusterCookieFile',
    flag: 'cluster-cookie-file',
    description:
      'File holding the cluster cookie (instead of --cluster-cookie), or several, one per line: the first signs, all are accepted (rotation); re-read when it changes and on SIGHUP',
    defaultText: 'none',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'clusterCookieFile'>,
  {
    key: 'authFile',
    flag: 'auth-file',
    description:
      'Client API users, rqlite\u2019s format: a JSON list of {"username", "password", "perms"} (password: a hash from "gandalf-node hash-password", or clear text); requests then need HTTP Basic credentials with the permission of their endpoint',
    defaultText: 'none (no authentication; a warning when --http-bind is not loopback)',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'authFile'>,
  {
    key: 'voter',
    flag: 'voter',
    description:
      'false: a non-voting board for weak hardware: it holds a learner replica of every database and serves level=none reads from it, but never votes, leads or counts for any quorum',
    defaultText: 'true',
    default: () => 'true',
    accepted: 'true or false',
    parse: (raw) => (raw === 'true' ? true : raw === 'false' ? false : undefined),
  } satisfies SettingSpec<'voter'>,
  {
    key: 'httpCert',
    flag: 'http-cert',
    description: 'HTTPS on the client API: this certificate (PEM, with its chain); needs --http-key. Re-read when it changes',
    defaultText: 'none (plain HTTP)',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'httpCert'>,
  {
    key: 'httpKey',
    flag: 'http-key',
    description: 'The private key of --http-cert (PEM)',
    defaultText: 'none',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'httpKey'>,
  {
    key: 'httpClientCa',
    flag: 'http-client-ca',
    description: 'With --http-cert: clients must present a certificate signed by this CA (PEM)',
    defaultText: 'none (no client certificates)',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'httpClientCa'>,
  {
    key: 'backupDir',
    flag: 'backup-dir',
    description: 'Directory (a USB stick, an NFS path) for scheduled whole-cluster backups: every database and the key/value container, checksummed',
    defaultText: 'none (no scheduled backups)',
    default: () => undefined,
    accepted: 'a directory path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'backupDir'>,
  {
    key: 'backupIntervalMs',
    flag: 'backup-interval',
    description: 'Time between scheduled backups (with --backup-dir)',
    defaultText: '1h',
    default: () => '1h',
    accepted: 'a duration from 1s to 30d',
    parse: duration(1000, 30 * 24 * 3_600_000),
  } satisfies SettingSpec<'backupIntervalMs'>,
  {
    key: 'backupRetain',
    flag: 'backup-retain',
    description: 'Scheduled backups of this node kept in --backup-dir; older ones are deleted',
    defaultText: '24',
    default: () => '24',
    accepted: 'an integer from 1 to 10000',
    parse: positiveInt(1, 10000),
  } satisfies SettingSpec<'backupRetain'>,
  {
    key: 'advertiseEndpoint',
    flag: 'advertise-endpoint',
    description: "How peers reach this node's mgmt endpoint",
    defaultText: '--mgmt-bind when it names an address, else http://<first non-loopback IPv4>:<mgmt port>',
    default: () => undefined,
    accepted: 'http://HOST:PORT',
    parse: (raw) => (parseEndpoint(raw) ? raw.replace(/\/$/, '') : undefined),
  } satisfies SettingSpec<'advertiseEndpoint'>,
  {
    key: 'redundancy',
    flag: 'redundancy',
    description: 'Voters (copies) per database, for databases created without ?redundancy=',
    defaultText: 'auto: min(3, cluster size)',
    default: () => 'auto',
    accepted: '"auto" or an integer from 1 to 7',
    parse: (raw) => (raw.trim() === 'auto' ? 0 : positiveInt(1, 7)(raw)),
  } satisfies SettingSpec<'redundancy'>,
  {
    key: 'replaceAfterMs',
    flag: 'replace-after',
    description: 'Replace a voter that stays unreachable this long',
    defaultText: '30s',
    default: () => '30s',
    accepted: 'a duration from 1s to 24h (e.g. 500ms, 30s, 5m)',
    parse: duration(1000, 86_400_000),
  } satisfies SettingSpec<'replaceAfterMs'>,
  {
    key: 'rebalanceIntervalMs',
    flag: 'rebalance-interval',
    description: 'After joins, move one database voter toward its rendezvous placement per interval, once the members held still that long',
    defaultText: '60s',
    default: () => '60s',
    accepted: 'a duration from 1s to 24h',
    parse: duration(1000, 86_400_000),
  } satisfies SettingSpec<'rebalanceIntervalMs'>,
  {
    key: 'writeTimeoutMs',
    flag: 'write-timeout',
    description: 'A write not committed by a quorum within this fails with 503 no_quorum',
    defaultText: '10s',
    default: () => '10s',
    accepted: 'a duration from 100ms to 10m',
    parse: duration(100, 600_000),
  } satisfies SettingSpec<'writeTimeoutMs'>,
  {
    key: 'queryTimeoutMs',
    flag: 'query-timeout',
    description:
      'A read that runs longer is stopped with 400 query_timeout; a write that may run long is tried first and refused the same way before it enters the log',
    defaultText: '5s',
    default: () => '5s',
    accepted: 'a duration from 10ms to 10m',
    parse: duration(10, 600_000),
  } satisfies SettingSpec<'queryTimeoutMs'>,
  {
    key: 'roles',
    flag: 'roles',
    description:
      'Gandalf roles this node runs (comma-separated): cluster members route and trace, aggregators serve a tenant\u2019s connectors, connectors serve workers',
    defaultText: 'cluster,aggregator,connector',
    default: () => ROLES.join(','),
    accepted: `a comma-separated list of ${ROLES.join(', ')}`,
    parse: parseRoles,
  } satisfies SettingSpec<'roles'>,
  {
    key: 'tenant',
    flag: 'tenant',
    description: 'The tenant this node\u2019s aggregator and connector belong to (a cluster member serves every tenant)',
    defaultText: 'default',
    default: () => 'default',
    accepted: TENANT_RULE,
    parse: (raw) => (isTenant(raw) ? raw : undefined),
  } satisfies SettingSpec<'tenant'>,
  {
    key: 'logicalName',
    flag: 'logical-name',
    description: 'Logical name of this node\u2019s aggregator and connector: nodes of one role and one logical name are interchangeable',
    defaultText: 'default',
    default: () => 'default',
    accepted: ROUTING_NAME_RULE,
    parse: (raw) => (isRoutingName(raw) ? raw : undefined),
  } satisfies SettingSpec<'logicalName'>,
  {
    key: 'connectorType',
    flag: 'connector-type',
    description: 'A connector\u2019s type: the command schemas its workers are checked against',
    defaultText: 'default',
    default: () => 'default',
    accepted: ROUTING_NAME_RULE,
    parse: (raw) => (isRoutingName(raw) ? raw : undefined),
  } satisfies SettingSpec<'connectorType'>,
  {
    key: 'product',
    flag: 'product',
    description: 'A connector\u2019s product (the tool its workers drive), beside its type',
    defaultText: 'none',
    default: () => undefined,
    accepted: ROUTING_NAME_RULE,
    parse: (raw) => (isRoutingName(raw) ? raw : undefined),
  } satisfies SettingSpec<'product'>,
  {
    key: 'sinkRetentionMs',
    flag: 'sink-retention',
    description: 'The data sink (every message and hop, per tenant) keeps records this long',
    defaultText: '7d',
    default: () => '7d',
    accepted: 'a duration from 1m to 3650d',
    parse: duration(60_000, 3650 * 86_400_000),
  } satisfies SettingSpec<'sinkRetentionMs'>,
  {
    key: 'sinkMaxBytes',
    flag: 'sink-max-bytes',
    description: 'The data sink prunes its oldest records so that each tenant\u2019s database stays this small',
    defaultText: '16MiB',
    default: () => '16MiB',
    accepted: 'a size from 1MiB to 64GiB (bytes, or with KiB, MiB, GiB)',
    parse: (raw) => parseSize(raw, 1024 * 1024, 64 * 1024 ** 3),
  } satisfies SettingSpec<'sinkMaxBytes'>,
  {
    key: 'workerSocket',
    flag: 'worker-socket',
    description: 'Unix socket of the gRPC worker API (connector nodes)',
    defaultText: '<data-dir>/worker.sock',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'workerSocket'>,
  {
    key: 'workerPort',
    flag: 'worker-port',
    description: 'Also serve the gRPC worker API on this TCP port of 127.0.0.1',
    defaultText: 'none',
    default: () => undefined,
    accepted: 'a port from 1 to 65535',
    parse: positiveInt(1, 65535),
  } satisfies SettingSpec<'workerPort'>,
  {
    key: 'secret',
    flag: 'secret',
    description:
      'This node’s secret for its tenant, presented by its aggregator and connector once tenants exist ("gandalf-node secret create"). Prefer --secret-file: a flag’s value shows in ps',
    defaultText: 'none (routes only while no tenant is created)',
    default: () => undefined,
    accepted: SECRET_RULE,
    parse: (raw) => (parseSecret(raw.trim()) ? raw.trim() : undefined),
  } satisfies SettingSpec<'secret'>,
  {
    key: 'secretFile',
    flag: 'secret-file',
    description: 'File holding this node’s secret (instead of --secret)',
    defaultText: 'none',
    default: () => undefined,
    accepted: 'a file path',
    parse: (raw) => (raw.trim() ? raw : undefined),
  } satisfies SettingSpec<'secretFile'>,
] as const;

export function envName(flag: string): string {
  return `GANDALF_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * A config file holds settings by flag name, either as JSON
 * (`{"cluster-name": "rack1"}`) or as `name = value` lines (`#` comments),
 * the format of `gandalf.conf` on an SD card's boot partition.
 */
export function parseConfigFile(text: string, file: string): Record<string, string> {
  const trimmed = text.trim();
  const out: Record<string, string> = {};
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${file} must hold a JSON object of settings`);
    }
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new ConfigError(`config file ${file}: setting "${k}" must be a string or a number`);
      }
      out[k] = String(v);
    }
    return out;
  }
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#')) return;
    const m = /^([A-Za-z0-9_-]+)\s*[=:]\s*(.*)$/.exec(l);
    if (!m) throw new ConfigError(`config file ${file} line ${i + 1}: expected "name = value"`);
    out[m[1]!.toLowerCase().replace(/_/g, '-')] = m[2]!.replace(/^"(.*)"$/, '$1');
  });
  return out;
}

export interface ConfigInputs {
  flags: Record<string, string | undefined>;
  env: Record<string, string | undefined>;
  /** Path of the config file (from --config or GANDALF_CONFIG), if any. */
  configFile?: string;
  readFile?: (file: string) => string;
}

export function loadConfig(inputs: ConfigInputs): NodeConfig {
  const file: Record<string, string> = {};
  if (inputs.configFile) {
    let text: string;
    try {
      text = (inputs.readFile ?? ((f) => readFileSync(f, 'utf8')))(inputs.configFile);
    } catch (err) {
      throw new ConfigError(`cannot read config file ${inputs.configFile}: ${(err as Error).message}`);
    }
    Object.assign(file, parseConfigFile(text, inputs.configFile));
    const known = new Set<string>(SETTINGS.map((s) => s.flag));
    for (const key of Object.keys(file)) {
      if (!known.has(key)) {
        throw new ConfigError(`config file ${inputs.configFile}: unknown setting "${key}" (known: ${[...known].join(', ')})`);
      }
    }
  }
  const config: Partial<Record<keyof NodeConfig, unknown>> = {};
  for (const spec of SETTINGS) {
    const env = envName(spec.flag);
    const candidates: [Source, string | undefined, string][] = [
      ['flag', inputs.flags[spec.flag], `--${spec.flag}`],
      ['environment', inputs.env[env], env],
      ['config file', file[spec.flag], `${spec.flag} in ${inputs.configFile}`],
      ['default', spec.default(), 'default'],
    ];
    const hit = candidates.find(([, v]) => v !== undefined);
    if (!hit || hit[1] === undefined) {
      config[spec.key] = undefined;
      continue;
    }
    const [source, raw, where] = hit;
    const value = (spec.parse as (raw: string) => unknown)(raw);
    if (value === undefined) {
      const origin = source === 'flag' ? '' : ` (from ${source === 'default' ? 'the default' : where})`;
      throw new ConfigError(`invalid value "${raw}" for --${spec.flag}${origin}: expected ${spec.accepted}`);
    }
    config[spec.key] = value;
  }
  if (config.clusterCookie !== undefined && config.clusterCookieFile !== undefined) {
    throw new ConfigError('--cluster-cookie and --cluster-cookie-file exclude each other: set one');
  }
  if (config.secret !== undefined && config.secretFile !== undefined) throw new ConfigError('--secret and --secret-file exclude each other: set one');
  return config as NodeConfig;
}
