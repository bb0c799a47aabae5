/**
 * The interactive `sql` shell on a terminal (a pseudo-terminal from util-linux
 * `script`): multi-line statements get a continuation prompt, Ctrl-C drops the
 * typed line and stops a running statement without leaving the shell, several
 * statements in one text each print their result, and history persists.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

let node: NodeProcess | undefined;
afterEach(async () => {
  await node?.stop('SIGKILL');
  node = undefined;
});

function shellOnTerminal(httpPort: number, history: string) {
  const cli = `${process.execPath} ${requireBuilt(BUNDLE)} sql --http-bind 127.0.0.1:${httpPort}`;
  const p = spawn('script', ['-q', '-e', '-c', cli, '/dev/null'], {
    env: { ...process.env, GANDALF_HISTORY: history, TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  const waitFor = async (what: RegExp, from: number, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!what.test(out.slice(from))) {
      if (Date.now() > deadline) throw new Error(`the shell never printed ${what}; it printed:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { p, exited, waitFor, output: () => out, type: (s: string) => p.stdin.write(s) };
}

describe('sql shell on a terminal', () => {
  it('continuation prompt, Ctrl-C for a line and for a running statement, one result per statement, history', async () => {
    node = await startNode({ dataDir: tempDir(), args: ['--query-timeout', '60s'] });
    expect((await node.post('/db/execute', ['CREATE TABLE t(v)', "INSERT INTO t VALUES('kept')"])).status).toBe(200);
    const history = path.join(tempDir(), 'history');
    const sh = shellOnTerminal(node.httpPort, history);
    await sh.waitFor(/gandalf\(main\)> /, 0);
    // a statement over two lines: the second line gets the continuation prompt
    let mark = sh.output().length;
    sh.type('SELECT v\r');
    await sh.waitFor(/\.\.\.> /, mark);
    sh.type('FROM t;\r');
    await sh.waitFor(/kept[\s\S]*\(1 rows\)/, mark);
    // Ctrl-C drops a half-typed statement and stays in the shell
    mark = sh.output().length;
    sh.type('SELECT 1\r');
    await sh.waitFor(/\.\.\.> /, mark);
    sh.type('\x03');
    await sh.waitFor(/\^C[\s\S]*gandalf\(main\)> /, mark);
    // two statements, two results
    mark = sh.output().length;
    sh.type("SELECT 'first'; SELECT 'second';\r");
    await sh.waitFor(/first[\s\S]*second/, mark);
    // Ctrl-C stops a statement that would run for a minute; the shell goes on
    mark = sh.output().length;
    sh.type('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e12) SELECT count(*) FROM c;\r');
    await new Promise((r) => setTimeout(r, 700));
    sh.type('\x03');
    await sh.waitFor(/canceled[\s\S]*gandalf\(main\)> /, mark, 10_000);
    mark = sh.output().length;
    sh.type('SELECT 6 * 7;\r');
    await sh.waitFor(/42/, mark);
    sh.type('.exit\r');
    expect(await sh.exited).toBe(0);
    // the node stopped the statement when its client went away, and kept serving
    expect((await node.get('/health')).status).toBe(200);
    expect(node.log).toMatch(/stopped a SQL reader thread.*query_canceled/);
    const lines = readFileSync(history, 'utf8').trim().split('\n');
    expect(lines).toContain('SELECT v FROM t;');
    expect(lines[lines.length - 1]).toBe('SELECT 6 * 7;');
    // a new shell starts with that history: arrow up brings back the last statement
    const again = shellOnTerminal(node.httpPort, history);
    await again.waitFor(/gandalf\(main\)> /, 0);
    mark = again.output().length;
    again.type('\x1b[A\r');
    await again.waitFor(/42/, mark);
    again.type('\x04'); // Ctrl-D leaves
    expect(await again.exited).toBe(0);
  }, 90_000);
});
