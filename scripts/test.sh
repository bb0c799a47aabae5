#!/usr/bin/env bash
# The whole test suite (README: `npm ci && npm test`): installs what tests need,
# type-checks, builds the bundle and the single executable, runs every test,
# and fails on any failed, skipped or missing test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-test-deps.sh
npx tsc -p .
npm run --silent build
# Every architecture's executable (unchanged ones are skipped) and its .deb,
# for the cross-architecture, Debian package and SD-card image tests.
node scripts/package.mjs
node scripts/build-deb.mjs
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile=test-results/vitest.json "$@" || status=$?
node scripts/check-test-report.mjs test-results/vitest.json || status=1
exit $status
