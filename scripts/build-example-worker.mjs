#!/usr/bin/env node
// Bundles the example worker (examples/worker/worker.ts) into dist/example-worker.cjs. It loads
// the published .proto from ../proto at run time, as any worker written against it would.
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
await build({
  absWorkingDir: root,
  entryPoints: ['examples/worker/worker.ts'],
  outfile: 'dist/example-worker.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18.20',
  legalComments: 'none',
  logLevel: 'warning',
});
console.log('bundle: dist/example-worker.cjs');
