#!/usr/bin/env bash
# The whole test suite (README: `npm ci && npm test`): installs what tests need,
# type-checks, builds the bundle and the single executable, runs every test,
# and fails on any failed, skipped or missing test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-test-deps.sh
npx tsc -p .
npm run --silent lint
npm run --silent build
# Every architecture's executable (unchanged ones are skipped) and its .deb,
# for the cross-architecture, Debian package and SD-card image tests.
node scripts/package.mjs
node scripts/build-deb.mjs
mkdir -p test-results
rm -rf test-results/*.json test-results/nemesis
status=0
run() { npx vitest run --reporter=default --reporter=json "$@"; }
if [ $# -gt 0 ]; then
  run --outputFile=test-results/vitest.json "$@" || status=$?
else
  # The SD-card images are built and booted on their own afterwards: their
  # emulated package installs saturate both cores, and timing-sensitive
  # cluster tests should not share the machine with them.
  run --outputFile=test-results/vitest.json --exclude test/system/image-boot.test.ts || status=$?
  run --outputFile=test-results/vitest-images.json test/system/image-boot.test.ts || status=$?
fi
node scripts/check-test-report.mjs test-results/vitest*.json || status=1
exit $status
