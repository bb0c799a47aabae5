#!/usr/bin/env node
// Reads vitest's JSON reports (one or more files) and fails unless every test ran and passed:
// a skipped, todo or pending test is a failure here, never a silent pass.
// Prints each failed test with the start of its error, then the plain closing line "N passed, N failed".
import { readFileSync } from 'node:fs';

const files = process.argv.length > 2 ? process.argv.slice(2) : ['test-results/vitest.json'];
const suites = files.flatMap((file) => JSON.parse(readFileSync(file, 'utf8')).testResults);
let passed = 0;
let failed = 0;
const notRun = [];
const failures = [];
for (const suite of suites) {
  for (const t of suite.assertionResults) {
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') {
      failed++;
      const first = (t.failureMessages ?? [])[0] ?? '';
      failures.push(`FAILED ${suite.name.replace(process.cwd() + '/', '')} > ${t.fullName}\n  ${first.split('\n').slice(0, 6).join('\n  ')}`);
    } else notRun.push(`${t.status}: ${suite.name.replace(process.cwd() + '/', '')} > ${t.fullName}`);
  }
  if (suite.status === 'failed' && suite.assertionResults.length === 0) {
    failed++;
    notRun.push(`failed to load: ${suite.name} ${suite.message ?? ''}`);
  }
}
// Printed last, so the tail of a CI log names what failed and why.
for (const line of failures) console.log(line);
for (const line of notRun) console.log(`NOT RUN ${line}`);
if (passed + failed === 0) {
  console.error('no test ran');
  process.exit(1);
}
console.log(`${passed} passed, ${failed + notRun.length} failed`);
process.exit(failed === 0 && notRun.length === 0 ? 0 : 1);
