/**
 * A node with --auth-file (real process): requests without credentials get
 * 401 with a Basic challenge, a user without the endpoint's permission 403,
 * /health stays open; the CLI authenticates from --user, GANDALF_USER or a
 * netrc file; hash-password prints a hash the node accepts. Clear-text
 * passwords and a client API off loopback without auth are warned about.
 * With a cluster cookie the mgmt endpoint shows strangers only probes and
 * signaling.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUNDLE, freePort, runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

let nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

function hashOf(password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BUNDLE, 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`hash-password exited ${code}`))));
    p.stdin.end(`${password}\n`);
  });
}

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

describe('client API authentication', () => {
  it('401 without credentials, 403 without the permission, the CLI from a flag, the environment or netrc', async () => {
    const dir = tempDir('gandalf-auth-');
    const authFile = path.join(dir, 'users.json');
    const hash = await hashOf('correct horse');
    writeFileSync(
      authFile,
      JSON.stringify([
        { username: 'ops', password: hash, perms: ['all'] },
        { username: 'reader', password: 'plain-text', perms: ['query'] },
        { username: '*', perms: ['ready'] },
      ]),
    );
    const node = await startNode({ dataDir: tempDir(), args: ['--auth-file', authFile] });
    nodes.push(node);
    expect(node.log).toMatch(/clear-text passwords.*reader/);
    // open probes
    expect((await fetch(`${node.url}/health`)).status).toBe(200);
    expect((await fetch(`${node.url}/readyz`)).status).not.toBe(401);
    // no credentials
    const none = await fetch(`${node.url}/db/execute`, { method: 'POST', body: JSON.stringify(['CREATE TABLE t(v)']) });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="gandalf-node"/);
    expect(((await none.json()) as { code: string }).code).toBe('unauthorized');
    for (const p of ['/status', '/metrics', '/kv/x', '/cluster/nodes', '/db/backup']) expect((await fetch(`${node.url}${p}`)).status, p).toBe(401);
    // wrong password
    expect((await fetch(`${node.url}/status`, { headers: basic('ops', 'wrong') })).status).toBe(401);
    // the right one, and the permissions of each user
    const write = await fetch(`${node.url}/db/execute`, {
      method: 'POST',
      headers: basic('ops', 'correct horse'),
      body: JSON.stringify(['CREATE TABLE t(v)', 'INSERT INTO t VALUES(1)']),
    });
    expect(write.status).toBe(200);
    const q = await fetch(`${node.url}/db/query?q=SELECT+v+FROM+t`, { headers: basic('reader', 'plain-text') });
    expect(q.status).toBe(200);
    const denied = await fetch(`${node.url}/db/execute`, { method: 'POST', headers: basic('reader', 'plain-text'), body: JSON.stringify(['DELETE FROM t']) });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { message: string }).message).toMatch(/user "reader" lacks the "execute" permission/);
    const viaRequest = await fetch(`${node.url}/db/request`, {
      method: 'POST',
      headers: basic('reader', 'plain-text'),
      body: JSON.stringify(['DELETE FROM t']),
    });
    expect(viaRequest.status).toBe(403);
    expect((await fetch(`${node.url}/db/load`, { method: 'POST', headers: basic('reader', 'plain-text'), body: 'CREATE TABLE x(a);' })).status).toBe(403);

    // the CLI: refused without credentials, then each way of giving them
    const bind = ['--http-bind', `127.0.0.1:${node.httpPort}`];
    const env = { HOME: dir, GANDALF_USER: undefined, GANDALF_NETRC: undefined };
    const refused = await runCli(['sql', ...bind, 'SELECT v FROM t'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/401 unauthorized/);
    const byFlag = await runCli(['sql', ...bind, '--user', 'reader:plain-text', 'SELECT v FROM t'], env);
    expect(byFlag.code, byFlag.stderr).toBe(0);
    expect(byFlag.stdout).toContain('[[1]]');
    const byEnv = await runCli(['sql', ...bind, 'INSERT INTO t VALUES(2)'], { ...env, GANDALF_USER: 'ops:correct horse' });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    writeFileSync(path.join(dir, '.netrc'), `machine 127.0.0.1 login ops password correct horse\n`);
    // netrc tokens are whitespace-separated: a password with a space does not fit, and is refused
    expect((await runCli(['status', ...bind], env)).code).toBe(1);
    writeFileSync(path.join(dir, '.netrc'), `machine 127.0.0.1 login reader password plain-text\n`, { mode: 0o600 });
    const byNetrc = await runCli(['sql', ...bind, 'SELECT count(*) FROM t'], env);
    expect(byNetrc.code, byNetrc.stderr).toBe(0);
    expect(byNetrc.stdout).toContain('[[2]]');
    const forbidden = await runCli(['backup', ...bind, path.join(dir, 'b.sqlite')], env);
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/403/);

    // the auth file changes: taken without a restart (reader gone, a remembered credential no longer works)
    writeFileSync(authFile, JSON.stringify([{ username: 'ops', password: hash, perms: ['all'] }]));
    await until('the auth file reloaded', async () => /auth file reloaded/.test(node.log), 15_000);
    expect((await fetch(`${node.url}/db/query?q=SELECT+1`, { headers: basic('reader', 'plain-text') })).status).toBe(401);
    expect((await fetch(`${node.url}/status`, { headers: basic('ops', 'correct horse') })).status).toBe(200);
    // a broken file keeps the users read before
    writeFileSync(authFile, '[{"username": ');
    await until('the broken auth file refused', async () => /the new auth file was not taken/.test(node.log), 15_000);
    expect((await fetch(`${node.url}/status`, { headers: basic('ops', 'correct horse') })).status).toBe(200);
  }, 90_000);

  it('warns when the client API is off loopback without an auth file', async () => {
    const port = await freePort();
    // listens on every address; the test only talks to 127.0.0.1
    const node = await startNode({ dataDir: tempDir(), args: ['--http-bind', `0.0.0.0:${port}`], httpPort: port });
    nodes.push(node);
    expect(node.log).toMatch(/with no --auth-file: anyone who reaches it can read, write and delete every database/);
  });

  it('with a cluster cookie, the mgmt endpoint shows strangers only probes and signaling', async () => {
    const open = await startNode({ dataDir: tempDir() });
    nodes.push(open);
    expect(open.log).toMatch(/open cluster\. Every node of cluster .+ on this LAN joins it and shares its data.*--cluster-cookie-file/);
    expect((await fetch(`http://127.0.0.1:${open.mgmtPort}/status`)).status).toBe(200);
    const closed = await startNode({ dataDir: tempDir(), args: ['--cluster-cookie', 'a-cookie-for-this-test'] });
    nodes.push(closed);
    const mgmt = `http://127.0.0.1:${closed.mgmtPort}`;
    for (const p of ['/status', '/cluster/nodes', '/metrics']) expect((await fetch(`${mgmt}${p}`)).status, p).toBe(404);
    expect((await fetch(`${mgmt}/health`)).status).toBe(200);
    expect((await fetch(`${mgmt}/livez`)).status).toBe(200);
    const signal = await fetch(`${mgmt}/cluster/signal`, { method: 'POST', body: JSON.stringify({ v: 1, kind: 'offer' }) });
    expect(signal.status).toBe(400);
    // and everything is still on the client API
    expect((await fetch(`${closed.url}/status`)).status).toBe(200);
  });
});
