/** The node id: configured, or generated once and kept in `<data-dir>/node-id`. */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';

export function resolveNodeId(dataDir: string, configured: string | undefined): string {
  const file = path.join(dataDir, 'node-id');
  let stored: string | undefined;
  try {
    stored = readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    stored = undefined;
  }
  const id = configured ?? stored ?? generateNodeId();
  if (id !== stored) {
    writeFileSync(`${file}.tmp`, `${id}\n`);
    renameSync(`${file}.tmp`, file);
  }
  return id;
}

function generateNodeId(): string {
  const host =
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'node';
  return `${host}-${randomBytes(3).toString('hex')}`;
}
