/**
 * Gandalf routing on real processes (127.0.0.1) with real example workers
 * (gRPC on each connector's unix socket): six nodes, two tenants.
 *
 *   n0  cluster
 *   n1  aggregator + connector, tenant acme, logical name alpha
 *   n2  aggregator + connector, tenant acme, logical name alpha
 *   n3  connector,              tenant acme, logical name beta
 *   n4  aggregator + connector, tenant zeta, logical name alpha
 *   n5  aggregator + connector, tenant zeta, logical name alpha
 *
 * Checked: a command's round trip (receipt, result) run by one worker of
 * its target; commands by connector type; events reach every other worker
 * of their tenant once and never the other tenant; refusals with precise
 * errors; the route in the tenant's sink (SQL and `gandalf-node trace`);
 * the HTTP endpoints and `gandalf-node command`, `event`, `events --watch`;
 * a connector type's payload schemas checked by connectors and registrations;
 * SIGKILL of the connector node running an accepted command: it completes
 * on a brother.
 */
import * as http from 'node:http';
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { sendCommand, startWorker, type WorkerProcess } from '../helpers/example-worker';
import { spawn } from 'node:child_process';
import { BUNDLE, runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'routing-test-cookie-0123456789';

const LAYOUT = [
  { roles: 'cluster', tenant: 'default', name: 'core' },
  { roles: 'aggregator,connector', tenant: 'acme', name: 'alpha' },
  { roles: 'aggregator,connector', tenant: 'acme', name: 'alpha' },
  { roles: 'connector', tenant: 'acme', name: 'beta' },
  { roles: 'aggregator,connector', tenant: 'zeta', name: 'alpha' },
  { roles: 'aggregator,connector', tenant: 'zeta', name: 'alpha' },
];

const ends = (lines: Record<string, any>[]) => lines.filter((l) => l.type === 'answer' && l.event !== 'ON_GOING');

describe('Gandalf routing on real processes', () => {
  it('routes commands and events between workers of two tenants, traces them, and survives the loss of the connector running a command', async () => {
    const dirs = LAYOUT.map(() => tempDir());
    const nodes: NodeProcess[] = [];
    const args = (i: number) => [
      '--node-id',
      `n${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      COOKIE,
      '--roles',
      LAYOUT[i]!.roles,
      '--tenant',
      LAYOUT[i]!.tenant,
      '--logical-name',
      LAYOUT[i]!.name,
      ...(i > 0 ? ['--join', `http://127.0.0.1:${nodes[0]!.mgmtPort}`] : []),
    ];
    for (let i = 0; i < LAYOUT.length; i++) nodes.push(await startNode({ dataDir: dirs[i]!, args: args(i) }));
    const socket = (i: number) => path.join(dirs[i]!, 'worker.sock');
    await until(
      'every node to see six alive members',
      async () => {
        const views = await Promise.all(nodes.map(async (n) => (await n.get('/cluster/nodes')).body.nodes as { state: string }[]));
        return views.every((v) => v.filter((m) => m.state === 'alive').length === LAYOUT.length);
      },
      60_000,
    );
    // the roles travel in membership metadata
    const status = (await nodes[0]!.get('/cluster/nodes')).body.nodes as Record<string, unknown>[];
    expect(status.length).toBe(6);

    const workers: Record<string, WorkerProcess> = {
      wa1: startWorker('serve', socket(1), { name: 'wa1', subscribe: 'news' }),
      wa2: startWorker('serve', socket(2), { name: 'wa2', subscribe: 'news' }),
      wb: startWorker('serve', socket(3), { name: 'wb', subscribe: 'news' }),
      wz1: startWorker('serve', socket(4), { name: 'wz1', subscribe: 'news' }),
      wz2: startWorker('serve', socket(5), { name: 'wz2', subscribe: 'news' }),
    };
    for (const [name, w] of Object.entries(workers)) await w.waitFor(`${name} registered`, () => w.of('registered').length === 1);
    expect(workers.wz1!.of('registered')[0]).toMatchObject({ tenant: 'zeta', logical_name: 'alpha', node: 'n4' });

    // a command's round trip: the first one also creates the tenant's database (its sink and ledger)
    const first = await sendCommand(socket(3), { target: 'alpha', command: 'ECHO', payload: '{"n":0}', timeout: 30_000 });
    expect(ends(first), JSON.stringify(first)).toHaveLength(1);
    expect(ends(first)[0]).toMatchObject({ event: 'SUCCESS', payload: { echo: { n: 0 } } });
    const firstUuid = ends(first)[0]!.reference_uuid as string;
    const ranFirst = ['wa1', 'wa2', 'wb', 'wz1', 'wz2'].filter((w) => workers[w]!.of('command').some((c) => c.uuid === firstUuid));
    expect(ranFirst.length).toBe(1);
    expect(['wa1', 'wa2']).toContain(ranFirst[0]);

    // ten at once from beta to alpha: each runs once, on an alpha worker of acme
    const batch = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        sendCommand(socket(3), { target: 'alpha', command: 'ECHO', payload: JSON.stringify({ n: i + 1 }), timeout: 10_000 }),
      ),
    );
    for (const [i, lines] of batch.entries()) {
      expect(
        ends(lines).map((l) => l.event),
        JSON.stringify(lines),
      ).toEqual(['SUCCESS']);
      expect(ends(lines)[0]!.payload.echo).toEqual({ n: i + 1 });
      const uuid = ends(lines)[0]!.reference_uuid;
      const ran = Object.entries(workers).filter(([, w]) => w.of('command').some((c) => c.uuid === uuid));
      expect(ran.map(([n]) => n).filter((n) => n === 'wa1' || n === 'wa2')).toHaveLength(1);
      expect(ran).toHaveLength(1);
    }

    // by connector type, in zeta: the cluster picks its alpha
    const typed = await sendCommand(socket(4), { 'connector-type': 'default', command: 'ECHO', payload: '{"z":1}', timeout: 30_000 });
    expect(
      ends(typed).map((l) => l.event),
      JSON.stringify(typed),
    ).toEqual(['SUCCESS']);
    expect(['wz1', 'wz2']).toContain(ends(typed)[0]!.payload.by);

    // a FAIL result travels back the same way
    const failed = await sendCommand(socket(1), { target: 'beta', command: 'FAIL', timeout: 10_000 });
    expect(ends(failed).map((l) => l.event)).toEqual(['FAIL']);

    // refusals: zeta has no beta (the cluster says so); a payload that is not JSON never leaves the worker API
    const noTarget = await sendCommand(socket(4), { target: 'beta', command: 'ECHO', timeout: 5000 });
    expect(ends(noTarget)).toHaveLength(1);
    expect(ends(noTarget)[0]).toMatchObject({ topic: 'error', event: 'no_target', payload: { error: 'no connector named beta in tenant zeta' } });
    const typeless = await sendCommand(socket(4), { 'connector-type': 'printer', command: 'ECHO', timeout: 5000 });
    expect(ends(typeless)[0]).toMatchObject({ topic: 'error', event: 'no_target', payload: { error: 'no connector of type printer in tenant zeta' } });
    const badJson = await sendCommand(socket(3), { target: 'alpha', command: 'ECHO', payload: '{not json', timeout: 5000 });
    expect(badJson.find((l) => l.type === 'error')).toMatchObject({ code: 3, message: expect.stringMatching(/payload_json is not JSON/) });
    const taken = startWorker('serve', socket(1), { name: 'wa1' });
    expect(await taken.exited).toBe(1);
    expect(taken.of('error')[0]!.message).toMatch(/a worker named wa1 is connected to this connector already/);

    // an event from wa1's connector reaches every other acme worker once, and no zeta worker
    const pub = startWorker('publish', socket(1), { name: 'pub', topic: 'news', event: 'HELLO', payload: '{"e":1}' });
    await pub.exited;
    const eventUuid = pub.of('published')[0]!.uuid;
    const got = (w: string) => workers[w]!.of('event').filter((e) => e.uuid === eventUuid);
    await until('wa1, wa2 and wb to get the event', () => ['wa1', 'wa2', 'wb'].every((w) => got(w).length > 0), 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    for (const w of ['wa1', 'wa2', 'wb']) expect(got(w), w).toHaveLength(1);
    for (const w of ['wz1', 'wz2']) expect(got(w), w).toHaveLength(0);
    expect(got('wb')[0]).toMatchObject({ topic: 'news', event: 'HELLO', payload: { e: 1 }, source_node: 'n1', source_worker: 'pub' });

    // a watch that resumes after that event gets what came after it from the sink, then live ones
    const pub2 = startWorker('publish', socket(1), { name: 'pub', topic: 'news', event: 'AGAIN', payload: '{"e":2}' });
    await pub2.exited;
    const secondUuid = pub2.of('published')[0]!.uuid;
    await until(
      'AGAIN in the sink',
      async () => {
        const r = await nodes[0]!.post('/db/query?db=gandalf-acme&level=strong', [`SELECT count(*) FROM messages WHERE uuid = '${secondUuid}'`]);
        return r.status === 200 && r.body.results[0].values?.[0]?.[0] === 1;
      },
      20_000,
    );
    const resumed: { id: string; event: string; data: any }[] = [];
    const stream = http.get(
      { host: '127.0.0.1', port: nodes[2]!.httpPort, path: '/gandalf/events?topic=news', headers: { 'last-event-id': eventUuid } },
      (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          let cut: number;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const f = Object.fromEntries(
              buf
                .slice(0, cut)
                .split('\n')
                .filter((l) => /^(id|event|data):/.test(l))
                .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
            );
            buf = buf.slice(cut + 2);
            if (f.event) resumed.push({ id: f.id, event: f.event, data: JSON.parse(f.data) });
          }
        });
      },
    );
    await until('the resumed watch to replay AGAIN', () => resumed.some((e) => e.id === secondUuid), 20_000);
    stream.destroy();
    expect(resumed.find((e) => e.id === secondUuid)).toMatchObject({ event: 'AGAIN', data: { topic: 'news', payload: { e: 2 }, node: 'n1', worker: 'pub' } });
    expect(resumed.some((e) => e.id === eventUuid)).toBe(false);

    // the route of the first command, in acme's sink, from any node
    await until(
      'the first command in the sink',
      async () => {
        const r = await nodes[5]!.post('/db/query?db=gandalf-acme&level=strong', [`SELECT count(*) FROM hops WHERE uuid = '${firstUuid}'`]);
        return r.status === 200 && (r.body.results[0].values[0][0] as number) >= 6;
      },
      20_000,
    );
    const sink = await nodes[0]!.post('/db/query?db=gandalf-acme&level=strong', [
      `SELECT kind, command, target, source_node, source_role FROM messages WHERE uuid = '${firstUuid}'`,
      `SELECT node, role, outcome FROM hops WHERE uuid = '${firstUuid}' ORDER BY id`,
      `SELECT event FROM messages WHERE reference_uuid = '${firstUuid}' ORDER BY at`,
    ]);
    expect(sink.body.results[0].values).toEqual([['command', 'ECHO', 'alpha', 'n3', 'connector']]);
    const hops = (sink.body.results[1].values as string[][]).map((h) => h.join(' '));
    expect(hops).toContain('n3 connector received');
    expect(hops).toContain('n0 cluster received');
    expect(hops.some((h) => /^n[12] connector delivered$/.test(h))).toBe(true);
    expect(sink.body.results[2].values.flat()).toContain('SUCCESS');
    // nothing of acme in zeta's sink
    const zeta = await nodes[0]!.post('/db/query?db=gandalf-zeta&level=strong', [`SELECT count(*) FROM messages WHERE uuid = '${firstUuid}'`]);
    expect(zeta.body.results[0].values[0][0]).toBe(0);

    // gandalf-node trace shows the route (a table on a terminal, JSON here)
    const trace = await runCli(['trace', firstUuid, '--tenant', 'acme', '--http-bind', `127.0.0.1:${nodes[2]!.httpPort}`]);
    expect(trace.code, trace.stderr).toBe(0);
    const shown = JSON.parse(trace.stdout) as { messages: Record<string, unknown>[]; route: Record<string, unknown>[] };
    expect(shown.messages.map((m) => m.command ?? m.event)).toEqual(expect.arrayContaining(['ECHO', 'SUCCESS']));
    expect(shown.route.map((h) => `${h.node} ${h.role} ${h.outcome}`)).toContain('n0 cluster received');
    const wrongTenant = await runCli(['trace', firstUuid, '--tenant', 'zeta', '--http-bind', `127.0.0.1:${nodes[2]!.httpPort}`]);
    expect(wrongTenant.code).toBe(1);
    expect(wrongTenant.stderr).toMatch(/no message .* in tenant zeta's sink/);

    // the HTTP endpoints and the CLI: commands through n3's connector, an event watched on n2
    const watcher = spawn(process.execPath, [BUNDLE, 'events', '--watch', '--topic', 'news', '--json', '--http-bind', `127.0.0.1:${nodes[2]!.httpPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let watched = '';
    watcher.stdout.on('data', (d: Buffer) => (watched += d.toString()));
    const viaHttp = await nodes[3]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { h: 1 }, timeout: 10_000 });
    expect(viaHttp.status, JSON.stringify(viaHttp.body)).toBe(200);
    expect(viaHttp.body).toMatchObject({ outcome: 'SUCCESS', payload: { echo: { h: 1 } } });
    expect(['n1', 'n2']).toContain(viaHttp.body.by.node);
    const nowhere = await nodes[3]!.post('/gandalf/command', { command: 'ECHO', target: 'nowhere', timeout: 3000 });
    expect(nowhere.status).toBe(404);
    expect(nowhere.body).toMatchObject({ code: 'no_target', message: 'no connector named nowhere in tenant acme' });
    const missing = await nodes[3]!.post('/gandalf/command', { target: 'alpha' });
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/command is missing/);
    const notConnector = await nodes[0]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha' });
    expect(notConnector.status).toBe(400);
    expect(notConnector.body.message).toMatch(/this node runs no connector/);
    // the cluster keeps a logical configuration per logical name (n1 saves alpha's, its brother n2 reads it) and confirms admissions
    const saved = await nodes[1]!.post('/gandalf/command', { kind: 'configuration', command: 'SAVE', payload: { vms: 3 }, timeout: 10_000 });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    expect(saved.body).toMatchObject({ outcome: 'SUCCESS', payload: { logical_name: 'alpha', configuration: { vms: 3 }, version: 1 }, by: { node: 'n0' } });
    const readBack = await nodes[2]!.post('/gandalf/command', { kind: 'configuration', command: 'GET', timeout: 10_000 });
    expect(readBack.body).toMatchObject({ outcome: 'SUCCESS', payload: { configuration: { vms: 3 }, version: 1 } });
    const validated = await nodes[3]!.post('/gandalf/command', { kind: 'secret', command: 'VALIDATE', timeout: 10_000 });
    expect(validated.body).toMatchObject({ outcome: 'SUCCESS', payload: { admitted: true, tenant: 'acme', node: 'n3' } });
    expect((await nodes[0]!.post('/gandalf/command', { kind: 'nonsense', command: 'X' })).status).toBe(400);
    const cliCommand = await runCli([
      'command',
      'ECHO',
      '--target',
      'alpha',
      '--payload',
      '{"c":1}',
      '--timeout',
      '10s',
      '--http-bind',
      `127.0.0.1:${nodes[3]!.httpPort}`,
    ]);
    expect(cliCommand.code, cliCommand.stderr).toBe(0);
    expect(JSON.parse(cliCommand.stdout)).toMatchObject({ outcome: 'SUCCESS', payload: { echo: { c: 1 } } });
    const cliFail = await runCli(['command', 'FAIL', '--target', 'beta', '--timeout', '10s', '--http-bind', `127.0.0.1:${nodes[1]!.httpPort}`]);
    expect(cliFail.code).toBe(1);
    expect(JSON.parse(cliFail.stdout)).toMatchObject({ outcome: 'FAIL' });
    await new Promise((r) => setTimeout(r, 500)); // the watcher's stream is open
    const cliEvent = await runCli(['event', 'news', 'CLI_HELLO', '--payload', '{"x":2}', '--http-bind', `127.0.0.1:${nodes[1]!.httpPort}`]);
    expect(cliEvent.code, cliEvent.stderr).toBe(0);
    const cliEventUuid = JSON.parse(cliEvent.stdout).uuid;
    await until('the watcher on n2 to print the CLI event', () => watched.includes('CLI_HELLO'), 20_000);
    await workers.wb!.waitFor('wb to get the CLI event', () => workers.wb!.of('event').some((e) => e.uuid === cliEventUuid));
    const line = watched
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e.event === 'CLI_HELLO');
    expect(line).toMatchObject({ uuid: cliEventUuid, topic: 'news', payload: { x: 2 }, node: 'n1' });
    expect(workers.wz1!.of('event').some((e) => e.uuid === cliEventUuid)).toBe(false);
    watcher.kill();

    // connector type default 1.0 with its commands' payload schemas: connectors check each command, and each worker's registration
    const typeFile = path.join(dirs[0]!, 'default-1.0.json');
    writeFileSync(
      typeFile,
      JSON.stringify({
        commands: {
          ECHO: { type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: true },
          FAIL: {},
          SLEEP: { type: 'object', required: ['ms'], properties: { ms: { type: 'integer', maximum: 10_000 } } },
        },
      }),
    );
    const put = await runCli(['connector-type', 'put', 'default', '1.0', '--file', typeFile, '--http-bind', `127.0.0.1:${nodes[0]!.httpPort}`]);
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout)).toEqual({ type: 'default', version: '1.0', commands: ['ECHO', 'FAIL', 'SLEEP'] });
    const listed = await runCli(['connector-type', 'list', '--http-bind', `127.0.0.1:${nodes[4]!.httpPort}`]);
    expect(JSON.parse(listed.stdout).types).toEqual([expect.objectContaining({ type: 'default', version: '1.0' })]);
    const badVersion = await runCli(['connector-type', 'put', 'default', '1', '--file', typeFile, '--http-bind', `127.0.0.1:${nodes[0]!.httpPort}`]);
    expect(badVersion.code).toBe(1);
    expect(badVersion.stderr).toMatch(/400 invalid_request: version must be MAJOR.MINOR/);
    let invalidPayload: { status: number; body: any } | undefined;
    await until(
      'alpha connectors to check payloads against default 1.0',
      async () => {
        invalidPayload = await nodes[3]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { n: 'x' }, timeout: 5000 });
        return invalidPayload.status === 400;
      },
      20_000,
    );
    expect(invalidPayload!.body).toMatchObject({
      code: 'invalid_payload',
      message: 'the payload does not match the schema of ECHO (default 1.0)',
      details: [{ path: '/n', message: 'must be integer' }],
    });
    const valid = await nodes[3]!.post('/gandalf/command', { command: 'ECHO', target: 'alpha', payload: { n: 5 }, timeout: 10_000 });
    expect(valid.body).toMatchObject({ outcome: 'SUCCESS' });
    // each alpha connector reads the types every 2 s: until both have, a command it does not know may reach one that lets it through
    let unknownCommand: { status: number; body: any } | undefined;
    await until(
      'both alpha connectors to know default 1.0',
      async () => {
        unknownCommand = await nodes[3]!.post('/gandalf/command', { command: 'REBOOT', target: 'alpha', timeout: 2000 });
        return unknownCommand.status === 400;
      },
      20_000,
    );
    expect(unknownCommand!.body).toMatchObject({
      code: 'invalid_payload',
      message: 'REBOOT is not a command of default 1.0 (its commands: ECHO, FAIL, SLEEP)',
    });
    // (n2 may read the types a moment later than the connector that answered above)
    let tries = 0;
    const partial = await until(
      'n2 to refuse an incomplete worker of default 1.0',
      async () => {
        const w = startWorker('serve', socket(2), { name: `partial${++tries}`, commands: 'ECHO' });
        const refused = (await Promise.race([w.exited, new Promise((r) => setTimeout(r, 1000))])) === 1;
        if (!refused) w.kill();
        return refused && w;
      },
      20_000,
    );
    expect(partial.of('error')[0]!.message).toMatch(/a worker of default 1.0 must implement FAIL, SLEEP \(missing\)/);

    // SIGKILL the connector node running an accepted command: it completes on its brother
    const slow = startWorker('send', socket(3), { target: 'alpha', command: 'SLEEP', payload: '{"ms":3000}', timeout: 60_000 });
    let holder = '';
    await until(
      'an alpha worker to take the slow command',
      () => {
        holder = ['wa1', 'wa2'].find((w) => workers[w]!.of('command').some((c) => c.command === 'SLEEP')) ?? '';
        return holder !== '';
      },
      20_000,
    );
    const holderNode = holder === 'wa1' ? 1 : 2;
    await nodes[holderNode]!.stop('SIGKILL');
    const started = Date.now();
    await slow.exited;
    console.log(`SIGKILL of the connector running a command: it completed on its brother ${Date.now() - started} ms later`);
    expect(
      ends(slow.lines).map((l) => l.event),
      JSON.stringify(slow.lines),
    ).toEqual(['SUCCESS']);
    const brother = holder === 'wa1' ? 'wa2' : 'wa1';
    expect(ends(slow.lines)[0]!.payload.by).toBe(brother);
    expect(workers[brother]!.of('command').find((c) => c.command === 'SLEEP')).toMatchObject({ attempt: 2 });

    for (const w of Object.values(workers)) w.kill();
    await Promise.all(nodes.map((n) => n.stop()));
  }, 300_000);
});
