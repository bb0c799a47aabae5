// The SQL worker bundle (src/replication/sql-worker.ts with sql.js, wasm inlined)
// as source text: bundle.mjs defines it into the node's bundle; tests that run
// the TypeScript sources build it the same way (test/helpers/sql-worker.ts).
import { buildSync } from 'esbuild';

export function sqlWorkerBuildOptions(root) {
  return {
    absWorkingDir: root,
    entryPoints: ['src/replication/sql-worker.ts'],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node18.20',
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
    // `new Worker(source, { eval: true })` runs it as a script: keep its top level private
    banner: { js: '(function () {' },
    footer: { js: '})();' },
  };
}

export function buildSqlWorkerSync(root) {
  const result = buildSync(sqlWorkerBuildOptions(root));
  return result.outputFiles[0].text;
}
