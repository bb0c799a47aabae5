#!/usr/bin/env node
// Bundles src/main.ts and everything it imports into one CommonJS file,
// dist/gandalf-node.cjs, runnable on Node 18.20+ (and the input of the single executable).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { buildSqlWorkerSync } from './sql-worker-bundle.mjs';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'));
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim();
} catch {
  /* not a git checkout */
}

// SQL runs on worker threads started from this text (src/replication/sql-worker-source.ts)
const sqlWorker = buildSqlWorkerSync(root);

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts'],
  outfile: 'dist/gandalf-node.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18.20',
  // cbor-x tries its optional native accelerator and falls back to pure JS without it;
  // node-datachannel is a native addon, loaded from node_modules when present (else werift is used).
  external: ['cbor-extract', 'node-datachannel'],
  define: {
    __GANDALF_VERSION__: JSON.stringify(pkg.version),
    __GANDALF_COMMIT__: JSON.stringify(commit),
    __SQL_WORKER_SOURCE__: JSON.stringify(sqlWorker),
    // the worker API's .proto, loaded from memory (src/api/worker-proto.ts)
    __WORKER_PROTO__: JSON.stringify(readFileSync(`${root}/proto/gandalf/worker/v1/worker.proto`, 'utf8')),
  },
  banner: { js: '#!/usr/bin/env node' },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(
  `bundle: dist/gandalf-node.cjs ${(bytes / 1024).toFixed(0)} KiB, of which the SQL worker ${(sqlWorker.length / 1024).toFixed(0)} KiB (version ${pkg.version}, commit ${commit})`,
);
