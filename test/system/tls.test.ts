/**
 * HTTPS on the client API (real processes, certificates made by openssl
 * here): the node serves its certificate, the CLI trusts it by --ca-cert (or
 * skips the check with --insecure), a renewed certificate is taken without a
 * restart, --http-client-ca refuses a client without a certificate it signed,
 * and bad TLS settings stop the node at start with the flag named.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

let nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and certificates it signs: `server` for 127.0.0.1, `client` for a client. */
function pki(dir: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=gandalf test CA',
    ],
    dir,
  );
  sign(dir, 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1');
  sign(dir, 'client', '/CN=ops', 'extendedKeyUsage=clientAuth');
}

function sign(dir: string, name: string, subject: string, ext: string): void {
  openssl(
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject],
    dir,
  );
  writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/** GET over HTTPS trusting the test CA; the status and the serial of the certificate the node showed. */
function get(port: number, dir: string, p: string, client = false): Promise<{ status: number; serial: string }> {
  const read = (f: string) => execFileSync('cat', [path.join(dir, f)]);
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: p, ca: read('ca.pem'), ...(client ? { cert: read('client.pem'), key: read('client.key') } : {}), agent: false },
      (res) => {
        const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
      },
    );
    req.on('error', reject);
  });
}

describe('HTTPS on the client API', () => {
  it('serves, is trusted by the CLI, takes a renewed certificate, and can require client certificates', async () => {
    const dir = tempDir('gandalf-tls-');
    pki(dir);
    const node = await startNode({
      dataDir: tempDir(),
      args: ['--http-cert', path.join(dir, 'server.pem'), '--http-key', path.join(dir, 'server.key')],
      noWait: true,
    });
    nodes.push(node);
    await until('the node serves over HTTPS', async () => (await get(node.httpPort, dir, '/health').catch(() => ({ status: 0 }))).status === 200, 30_000);
    const first = await get(node.httpPort, dir, '/status');
    expect(first.status).toBe(200);
    // plain HTTP is not spoken there
    await expect(fetch(`${node.url}/health`)).rejects.toThrow();
    const bind = ['--http-bind', `127.0.0.1:${node.httpPort}`];
    const trusted = await runCli(['sql', ...bind, '--ca-cert', path.join(dir, 'ca.pem'), 'CREATE TABLE t(v)']);
    expect(trusted.code, trusted.stderr).toBe(0);
    const untrusted = await runCli(['status', ...bind, '--tls']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/certificate/i);
    const insecure = await runCli(['status', ...bind, '--insecure', '--json']);
    expect(insecure.code, insecure.stderr).toBe(0);

    // a renewed certificate: taken without a restart
    sign(dir, 'renewed', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1');
    copyFileSync(path.join(dir, 'renewed.key'), path.join(dir, 'server.key'));
    copyFileSync(path.join(dir, 'renewed.pem'), path.join(dir, 'server.pem'));
    await until(
      'the renewed certificate is served',
      async () => (await get(node.httpPort, dir, '/health').catch(() => ({ serial: first.serial }))).serial !== first.serial,
      20_000,
    );
    expect(node.log).toMatch(/TLS certificate reloaded/);

    // client certificates required
    const strict = await startNode({
      dataDir: tempDir(),
      args: ['--http-cert', path.join(dir, 'server.pem'), '--http-key', path.join(dir, 'server.key'), '--http-client-ca', path.join(dir, 'ca.pem')],
      noWait: true,
    });
    nodes.push(strict);
    await until(
      'the strict node serves a client with a certificate',
      async () => (await get(strict.httpPort, dir, '/health', true).catch(() => ({ status: 0 }))).status === 200,
      30_000,
    );
    await expect(get(strict.httpPort, dir, '/health')).rejects.toThrow();
    const withCert = await runCli([
      'status',
      '--http-bind',
      `127.0.0.1:${strict.httpPort}`,
      '--ca-cert',
      path.join(dir, 'ca.pem'),
      '--client-cert',
      path.join(dir, 'client.pem'),
      '--client-key',
      path.join(dir, 'client.key'),
      '--json',
    ]);
    expect(withCert.code, withCert.stderr).toBe(0);
    const without = await runCli(['status', '--http-bind', `127.0.0.1:${strict.httpPort}`, '--ca-cert', path.join(dir, 'ca.pem')]);
    expect(without.code).toBe(1);
  }, 120_000);

  it('stops at start, naming the flag, on bad TLS settings', async () => {
    const dir = tempDir('gandalf-tls-bad-');
    pki(dir);
    const base = ['start', '--data-dir', tempDir(), '--http-bind', '127.0.0.1:0', '--mgmt-bind', '127.0.0.1:0', '--discovery', 'none'];
    const alone = await runCli([...base, '--http-cert', path.join(dir, 'server.pem')]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--http-cert and --http-key go together/);
    const mismatch = await runCli([...base, '--http-cert', path.join(dir, 'server.pem'), '--http-key', path.join(dir, 'client.key')]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/--http-key .*client\.key: it is not the key of that certificate/);
    const notPem = await runCli([...base, '--http-cert', path.join(dir, 'server.ext'), '--http-key', path.join(dir, 'server.key')]);
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toMatch(/--http-cert .* is not a PEM certificate/);
  });
});
