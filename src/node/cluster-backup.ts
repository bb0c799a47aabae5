/**
 * A whole-cluster backup: one directory holding every database as an SQLite
 * file and the key/value container as JSON, with a manifest that lists each
 * file's size and SHA-256. Written under a temporary name and renamed into
 * place, so a directory that has its final name is complete; read back only
 * after every checksum matched. The scheduled backups (--backup-dir) and
 * `gandalf-node backup --all` write it; `gandalf-node restore --all` reads it.
 *
 * Locks and sessions are not in it: they are leases of clients that are gone
 * by the time a backup is restored. Keys bound to a session go with their
 * session and are left out too. The fencing token counter is in it: a
 * restored cluster hands out tokens above every one handed out before, so
 * whatever a lock protects keeps accepting its new holders.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { GandalfError } from '../core/errors';

export const MANIFEST = 'manifest.json';
const FORMAT = 'gandalf-cluster-backup';
/** Hashing runs in slices this large, the event loop going on between them. */
const HASH_SLICE = 1024 * 1024;

export interface KvRecord {
  key: string;
  value: string;
}

/** Where a backup's contents come from: the node itself, or a node's client API (the CLI). */
export interface ClusterSource {
  databases(): Promise<string[]>;
  backup(db: string): Promise<Uint8Array>;
  /** The keys not bound to a session, and the revision they are as of. */
  kv(): Promise<{ kvs: KvRecord[]; revision: number }>;
  /** The last fencing token handed out. */
  lastToken(): Promise<number>;
}

export interface Manifest {
  format: typeof FORMAT;
  version: 1;
  cluster: string;
  node: string;
  taken_at: string;
  databases: { name: string; file: string; bytes: number; sha256: string }[];
  kv: { file: string; keys: number; revision: number; bytes: number; sha256: string };
  locks: { last_token: number };
}

export async function sha256(bytes: Uint8Array): Promise<string> {
  const h = createHash('sha256');
  for (let i = 0; i < bytes.length; i += HASH_SLICE) {
    h.update(bytes.subarray(i, i + HASH_SLICE));
    if (i + HASH_SLICE < bytes.length) await new Promise<void>((r) => setImmediate(r));
  }
  return h.digest('hex');
}

function stamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** `gandalf-CLUSTER-20261202T045100Z-NODE`: sorts by time within one cluster and node. */
export function backupName(cluster: string, node: string, at: Date): string {
  return `gandalf-${cluster}-${stamp(at)}-${node}`;
}

/** Writes a backup into `dir` and returns its path. `onDatabase` is told of each database as it is saved. */
export async function writeClusterBackup(
  dir: string,
  source: ClusterSource,
  meta: { cluster: string; node: string; at: Date },
  onDatabase?: (name: string, bytes: number) => void,
): Promise<{ path: string; manifest: Manifest }> {
  const name = backupName(meta.cluster, meta.node, meta.at);
  const partial = path.join(dir, `.partial-${name}`);
  const final = path.join(dir, name);
  await mkdir(partial, { recursive: true });
  try {
    const databases: Manifest['databases'] = [];
    for (const db of (await source.databases()).sort()) {
      const bytes = await source.backup(db);
      const file = `${db}.sqlite`;
      await writeFile(path.join(partial, file), bytes, { mode: 0o600 });
      databases.push({ name: db, file, bytes: bytes.length, sha256: await sha256(bytes) });
      onDatabase?.(db, bytes.length);
    }
    const { kvs, revision } = await source.kv();
    const kvBytes = Buffer.from(JSON.stringify(kvs), 'utf8');
    await writeFile(path.join(partial, 'kv.json'), kvBytes, { mode: 0o600 });
    const manifest: Manifest = {
      format: FORMAT,
      version: 1,
      cluster: meta.cluster,
      node: meta.node,
      taken_at: meta.at.toISOString(),
      databases,
      kv: { file: 'kv.json', keys: kvs.length, revision, bytes: kvBytes.length, sha256: await sha256(kvBytes) },
      locks: { last_token: await source.lastToken() },
    };
    await writeFile(path.join(partial, MANIFEST), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
    await rename(partial, final);
    return { path: final, manifest };
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}

/** Deletes this node's backups of `cluster` in `dir` beyond the newest `keep`; returns the names deleted. */
export async function pruneBackups(dir: string, cluster: string, node: string, keep: number): Promise<string[]> {
  const prefix = `gandalf-${cluster}-`;
  const suffix = `-${node}`;
  const own = (await readdir(dir)).filter((n) => n.startsWith(prefix) && n.endsWith(suffix)).sort();
  const gone = own.slice(0, Math.max(0, own.length - keep));
  for (const n of gone) await rm(path.join(dir, n), { recursive: true, force: true });
  return gone;
}

function invalid(message: string): GandalfError {
  return new GandalfError('invalid_backup', message);
}

/** Reads a backup directory, checking the manifest and every file's size and checksum. */
export async function readClusterBackup(
  dir: string,
): Promise<{ manifest: Manifest; databases: { name: string; bytes: Uint8Array }[]; kvs: KvRecord[]; lastToken: number }> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(path.join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (err) {
    throw invalid(`${dir} is not a cluster backup: ${(err as Error).message}`);
  }
  if (manifest?.format !== FORMAT || manifest.version !== 1 || !Array.isArray(manifest.databases) || !manifest.kv)
    throw invalid(`${dir}: the manifest is not one of a gandalf-node cluster backup`);
  const load = async (file: string, bytes: number, sum: string): Promise<Buffer> => {
    if (typeof file !== 'string' || file.includes('/') || file.startsWith('.')) throw invalid(`${dir}: the manifest names a bad file`);
    let data: Buffer;
    try {
      data = await readFile(path.join(dir, file));
    } catch (err) {
      throw invalid(`${dir}: ${file} is missing: ${(err as Error).message}`);
    }
    if (data.length !== bytes) throw invalid(`${dir}: ${file} holds ${data.length} bytes, the manifest says ${bytes} (truncated?)`);
    if ((await sha256(data)) !== sum) throw invalid(`${dir}: ${file} does not match its checksum (damaged)`);
    return data;
  };
  const databases: { name: string; bytes: Uint8Array }[] = [];
  for (const d of manifest.databases) databases.push({ name: d.name, bytes: await load(d.file, d.bytes, d.sha256) });
  const kvs = JSON.parse((await load(manifest.kv.file, manifest.kv.bytes, manifest.kv.sha256)).toString('utf8')) as KvRecord[];
  if (!Array.isArray(kvs) || !kvs.every((k) => typeof k?.key === 'string' && typeof k.value === 'string'))
    throw invalid(`${dir}: kv.json is not a list of keys`);
  const lastToken = manifest.locks?.last_token ?? 0;
  if (!Number.isSafeInteger(lastToken) || lastToken < 0) throw invalid(`${dir}: the manifest's last token is not a count`);
  return { manifest, databases, kvs, lastToken };
}
