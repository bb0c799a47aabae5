/**
 * Admission by tenant secrets on real processes (127.0.0.1) with real
 * example workers: tenants and secrets made with the CLI on any node,
 * replicated; then
 *
 *   n0  cluster
 *   n1  aggregator + connector, tenant acme, alpha, a valid secret (--secret-file)
 *   n2  aggregator + connector, tenant acme, beta, a secret with a wrong key
 *   n3  aggregator + connector, tenant acme, gamma, a secret of tenant zeta (a foreign tenant)
 *
 * Checked: only n1 is routed; workers register only with a worker secret;
 * refusals are precise and traced in acme's sink (never a secret's value);
 * secrets' hashes are not readable through /kv; revoking a worker's secret
 * ends its streams, revoking n1's cuts n1 off.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sendCommand, startWorker } from '../helpers/example-worker';
import { runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'admission-test-cookie-0123456789';
const ends = (lines: Record<string, any>[]) => lines.filter((l) => l.type === 'answer' && l.event !== 'ON_GOING');

describe('admission by tenant secrets on real processes', () => {
  it('routes only nodes and workers with a valid secret of their tenant, traces every refusal, and cuts off what a revoked secret admitted', async () => {
    const dirs = [0, 1, 2, 3].map(() => tempDir());
    const base = ['--discovery', 'manual', '--cluster-cookie', COOKIE];
    const n0 = await startNode({ dataDir: dirs[0]!, args: ['--node-id', 'n0', ...base, '--roles', 'cluster'] });
    const cli = async (...args: string[]) => {
      const r = await runCli([...args, '--json', '--http-bind', `127.0.0.1:${n0.httpPort}`]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout);
    };
    // the cluster is open until a tenant exists
    expect(await cli('tenant', 'list')).toEqual({ admission_required: false, tenants: [] });
    await cli('tenant', 'create', 'acme');
    await cli('tenant', 'create', 'zeta');
    const twice = await runCli(['tenant', 'create', 'acme', '--http-bind', `127.0.0.1:${n0.httpPort}`]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/409 conflict: tenant acme exists already/);
    // plain `secret create` prints the bare secret on stdout (`> file` makes a --secret-file)
    const plain = await runCli(['secret', 'create', 'acme', '--roles', 'aggregator,connector', '--http-bind', `127.0.0.1:${n0.httpPort}`]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^gandalf\.acme\.[0-9a-f]{12}\.[A-Za-z0-9_-]{43}\n$/);
    expect(plain.stderr).toMatch(/for aggregator, connector: shown once/);
    const nodeSecret = { secret: plain.stdout.trim(), id: plain.stdout.split('.')[2]! };
    const workerSecret = await cli('secret', 'create', 'acme', '--roles', 'worker');
    const zetaSecret = await cli('secret', 'create', 'zeta', '--roles', 'aggregator,connector');
    expect(nodeSecret.secret).toMatch(/^gandalf\.acme\.[0-9a-f]{12}\./);
    const listed = await cli('secret', 'list', 'acme');
    expect(listed.secrets.map((s: { id: string }) => s.id).sort()).toEqual([nodeSecret.id, workerSecret.id].sort());
    expect(JSON.stringify(listed)).not.toMatch(/scrypt|gandalf\.acme\./);
    expect((await n0.get(`/kv/gandalf/secrets/acme/${nodeSecret.id}`)).status).toBe(403);
    expect((await fetch(`http://127.0.0.1:${n0.httpPort}/kv/gandalf/tenants/acme`, { method: 'DELETE' })).status).toBe(403);

    const secretFile = path.join(dirs[1]!, 'secret');
    writeFileSync(secretFile, plain.stdout, { mode: 0o600 });
    const wrongKey = nodeSecret.secret.slice(0, -4) + (nodeSecret.secret.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const join = ['--join', `http://127.0.0.1:${n0.mgmtPort}`, '--roles', 'aggregator,connector', '--tenant', 'acme'];
    const nodes: NodeProcess[] = [n0];
    nodes.push(await startNode({ dataDir: dirs[1]!, args: ['--node-id', 'n1', ...base, ...join, '--logical-name', 'alpha', '--secret-file', secretFile] }));
    nodes.push(await startNode({ dataDir: dirs[2]!, args: ['--node-id', 'n2', ...base, ...join, '--logical-name', 'beta', '--secret', wrongKey] }));
    nodes.push(await startNode({ dataDir: dirs[3]!, args: ['--node-id', 'n3', ...base, ...join, '--logical-name', 'gamma', '--secret', zetaSecret.secret] }));
    const socket = (i: number) => path.join(dirs[i]!, 'worker.sock');

    // workers: none without a secret, none with the node's secret, one with the worker secret
    const bare = startWorker('serve', socket(1), { name: 'bare' });
    expect(await bare.exited).toBe(1);
    expect(bare.of('error')[0]!.message).toMatch(/UNAUTHENTICATED: worker bare refused: tenant acme requires a secret/);
    const misused = startWorker('serve', socket(1), { name: 'misused', secret: nodeSecret.secret });
    expect(await misused.exited).toBe(1);
    expect(misused.of('error')[0]!.message).toMatch(/admits aggregator, connector, not a worker/);
    const w1 = startWorker('serve', socket(1), { name: 'w1', secret: workerSecret.secret });
    await w1.waitFor('w1 registered', () => w1.of('registered').length === 1);

    // n1 is routed: a command from a worker of n1 to alpha runs on w1
    let ok: Record<string, any>[] = [];
    await until(
      'a command from n1 to alpha to succeed (n1 admitted by n0)',
      async () => {
        ok = await sendCommand(socket(1), { target: 'alpha', command: 'ECHO', payload: '{"a":1}', timeout: 3000, secret: workerSecret.secret, name: 's1' });
        return ends(ok)[0]?.event === 'SUCCESS';
      },
      60_000,
    ).catch(async (err) => {
      const uuid = ok.find((l) => l.reference_uuid)?.reference_uuid;
      const hops = await n0.post('/db/query?db=gandalf-acme&level=strong', [
        `SELECT node, role, outcome, peer, reason FROM hops WHERE uuid = '${uuid}' ORDER BY id`,
      ]);
      console.log('the last attempt, what w1 printed, and its route:', JSON.stringify(ok), JSON.stringify(w1.lines), JSON.stringify(hops.body));
      throw err;
    });
    expect(ends(ok)[0]).toMatchObject({ event: 'SUCCESS', payload: { echo: { a: 1 }, by: 'w1' } });
    // an anonymous gRPC sender is refused once tenants exist
    const anonymous = await sendCommand(socket(1), { target: 'alpha', command: 'ECHO', timeout: 3000 });
    expect(anonymous.find((l) => l.type === 'error')).toMatchObject({ code: 16, message: expect.stringMatching(/register with a secret first/) });

    // n2 (wrong key) and n3 (zeta's secret) are not routed: their workers' commands end with an error, never on w1
    for (const i of [2, 3]) {
      const w = startWorker('serve', socket(i), { name: `w${i}`, secret: workerSecret.secret });
      await w.waitFor(`w${i} registered`, () => w.of('registered').length === 1);
      const refused = await sendCommand(socket(i), {
        target: 'alpha',
        command: 'ECHO',
        payload: `{"from":${i}}`,
        timeout: 3000,
        secret: workerSecret.secret,
        name: `s${i}`,
      });
      expect(ends(refused), JSON.stringify(refused)).toHaveLength(1);
      expect(ends(refused)[0]!.topic).toBe('error');
      expect(w1.of('command').some((c) => c.payload?.from === i)).toBe(false);
    }

    // each board says how it stands with its peers
    await until('n2 to know n0 refused it', async () => (await nodes[2]!.get('/gandalf/admission')).body.peers?.n0?.state === 'refused', 20_000);
    expect((await nodes[2]!.get('/gandalf/admission')).body).toMatchObject({
      required: true,
      tenant: 'acme',
      secret: true,
      peers: { n0: { state: 'refused', reason: `wrong key for secret ${nodeSecret.id} of tenant acme` } },
    });
    expect((await nodes[1]!.get('/gandalf/admission')).body.peers.n0).toEqual({ state: 'admitted' });
    // every admission and refusal is in acme's sink, by the node that checked it, without a secret's value
    const admissions = async () => {
      const r = await n0.post('/db/query?db=gandalf-acme&level=strong', ['SELECT node, subject, name, outcome, secret_id, reason FROM admissions ORDER BY id']);
      return r.status === 200 && !r.body.results[0].error ? (r.body.results[0].values as (string | null)[][]) : [];
    };
    await until(
      'the refusals of n2 and n3 by n0, and those of the workers by n1, in the sink',
      async () => {
        const rows = await admissions();
        const has = (node: string, name: string, outcome: string) => rows.some((r) => r[0] === node && r[2] === name && r[3] === outcome);
        return has('n0', 'n2', 'refused') && has('n0', 'n3', 'refused') && has('n1', 'bare', 'refused') && has('n1', 'w1', 'admitted');
      },
      30_000,
    );
    const rows = await admissions();
    expect(rows).toContainEqual(['n0', 'node', 'n1', 'admitted', nodeSecret.id, null]);
    expect(rows).toContainEqual(['n0', 'node', 'n2', 'refused', nodeSecret.id, `wrong key for secret ${nodeSecret.id} of tenant acme`]);
    expect(rows).toContainEqual(['n0', 'node', 'n3', 'refused', zetaSecret.id, 'the secret is of tenant zeta, not acme']);
    expect(rows).toContainEqual(['n1', 'worker', 'bare', 'refused', null, expect.stringMatching(/requires a secret/)]);
    expect(rows).toContainEqual(['n1', 'worker', 'w1', 'admitted', workerSecret.id, null]);
    expect(JSON.stringify(rows)).not.toContain(nodeSecret.secret.split('.')[3]);

    // revoking the worker secret ends w1's streams (UNAUTHENTICATED)
    await cli('secret', 'revoke', 'acme', workerSecret.id);
    expect(await w1.exited).toBe(1);
    expect(w1.of('error').at(-1)).toMatchObject({ where: 'commands', code: 16, message: expect.stringMatching(/its admission ended/) });

    // revoking n1's secret cuts n1 off: a command from its HTTP API no longer gets through
    const w1b = startWorker('serve', socket(1), { name: 'w1b', secret: (await cli('secret', 'create', 'acme', '--roles', 'worker')).secret });
    await w1b.waitFor('w1b registered', () => w1b.of('registered').length === 1);
    const before = await nodes[1]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { b: 1 }, timeout: 5000 });
    expect(before.body).toMatchObject({ outcome: 'SUCCESS', payload: { echo: { b: 1 } } });
    await cli('secret', 'revoke', 'acme', nodeSecret.id);
    await until(
      'n1 to be cut off',
      async () => (await nodes[1]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { b: 2 }, timeout: 2000 })).status !== 200,
      30_000,
    );
    const after = await nodes[1]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { b: 3 }, timeout: 2000 });
    expect(after.status).not.toBe(200);
    expect(w1b.of('command').some((c) => c.payload?.b === 3)).toBe(false);
    w1b.kill();
    for (const n of nodes) await n.stop();
  }, 240_000);
});
