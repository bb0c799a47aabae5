#!/usr/bin/env node
// `npx gandalf-node …` from a checkout: runs the bundle that `npm ci` builds (the `prepare` script).
const path = require('node:path');
const bundle = path.join(__dirname, '..', 'dist', 'gandalf-node.cjs');
try {
  require.resolve(bundle);
} catch {
  process.stderr.write('gandalf-node: dist/gandalf-node.cjs is missing; run "npm run bundle" (npm ci does it too)\n');
  process.exit(1);
}
require(bundle);
