#!/usr/bin/env node
// Builds the single executable for the host (linux-x64): Node's SEA mechanism
// on the official Node binary from platform/runtimes.json. The SEA blob is
// produced by that same Node binary, then injected with postject.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, renameSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import postject from 'postject';
import { fetchAddon, fetchRuntime, runtimeSpec, seaConfig } from './runtime.mjs';

const root = new URL('..', import.meta.url).pathname;
const target = process.argv[2] ?? `${process.platform}-${process.arch}`;
if (target !== 'linux-x64') {
  console.error(`build-sea: only linux-x64 is built here (got ${target})`);
  process.exit(2);
}
const bundle = path.join(root, 'dist/gandalf-node.cjs');
if (!existsSync(bundle)) {
  console.error('build-sea: dist/gandalf-node.cjs is missing; run "npm run bundle" first');
  process.exit(1);
}
const node = fetchRuntime(target);
const work = path.join(root, 'dist/sea', target);
mkdirSync(work, { recursive: true });
const blob = path.join(work, 'sea-prep.blob');
const config = path.join(work, 'sea-config.json');
writeFileSync(config, JSON.stringify(seaConfig(bundle, blob, fetchAddon(target)), null, 2));
execFileSync(node, ['--experimental-sea-config', config], { stdio: 'inherit' });

const out = path.join(root, `dist/gandalf-node-${target}`);
// Built beside and renamed over: a running copy of the old executable does not stop the build (ETXTBSY).
const tmp = `${out}.tmp`;
copyFileSync(node, tmp);
chmodSync(tmp, 0o755);
// The official binary carries symbols; strip them before the blob goes in.
execFileSync('strip', ['--strip-all', tmp]);
await postject.inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
renameSync(tmp, out);
const spec = runtimeSpec(target);
const mb = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(`sea: dist/gandalf-node-${target} ${mb} MiB (node ${spec.version}, blob ${(statSync(blob).size / 1024).toFixed(0)} KiB)`);
