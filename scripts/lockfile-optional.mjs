#!/usr/bin/env node
// Run after `npm install` changes dependencies. The npm registry reachable
// here serves only some platform-specific optional packages (e.g. most
// @rollup/rollup-<os>-<cpu> and every @cbor-extract/* build); `npm install`
// then leaves them out of package-lock.json and `npm ci` refuses the lockfile
// as out of sync. This adds an entry (name and exact version, optional) for
// each optional dependency missing from the lockfile, so `npm ci` accepts it
// and skips what it cannot fetch, as it does for any failed optional install.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const pkgs = lock.packages;

/** Where npm would find `name` for the package at `key`: its own node_modules, then each ancestor's. */
function resolves(key, name) {
  let k = key;
  for (;;) {
    if (pkgs[`${k ? `${k}/` : ''}node_modules/${name}`]) return true;
    if (k === '') return false;
    const i = k.lastIndexOf('/node_modules/');
    k = i < 0 ? '' : k.slice(0, i);
  }
}

const added = [];
for (const [key, entry] of Object.entries({ ...pkgs })) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    if (resolves(key, name)) continue;
    if (!/^[\^~=]?\d+\.\d+\.\d+$/.test(spec)) throw new Error(`cannot pin ${name}@${spec} (needed by ${key || 'the root'})`);
    pkgs[`${key ? `${key}/` : ''}node_modules/${name}`] = { version: spec.replace(/^[\^~=]/, ''), optional: true, ...(entry.dev ? { dev: true } : {}) };
    added.push(`${name}@${spec}`);
  }
}
lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`lockfile-optional: ${added.length} unobtainable optional packages recorded${added.length ? `: ${added.join(', ')}` : ''}`);
