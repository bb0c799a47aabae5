/**
 * The shipped artifacts on the runtimes they promise:
 *  - the single executable in a root file system that has no Node at all;
 *  - the bundle on Debian's own Node 18.20 (the runtime of ARMv6 and x86 boards);
 * each serving SQL and joining a cluster over WebRTC.
 * Both run chrooted (as root) in roots built from Debian packages by
 * scripts/debian-node18-root.sh.
 */
import { cpSync, existsSync, mkdirSync, copyFileSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLE, ROOT, SEA, requireBuilt, runCli, startNode } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

const NODE18_ROOT = path.join(ROOT, '.cache/node18-root');
const cleanup: string[] = [];
afterAll(() => cleanup.forEach((d) => rmSync(d, { recursive: true, force: true })));

function requireRootFs(): void {
  if (process.getuid?.() !== 0) throw new Error('chroot needs root (CI runs as root); this test is not skipped');
  if (!existsSync(path.join(NODE18_ROOT, '.complete'))) {
    throw new Error('.cache/node18-root is missing: run scripts/ensure-test-deps.sh (npm test does)');
  }
}

/**
 * Joins a node on the runtime under test to a node of this checkout over
 * WebRTC and waits until both see each other alive; `transport` is what the
 * runtime under test must use (the single executable loads its embedded
 * node-datachannel addon; Debian's Node 18 has none and uses werift).
 */
async function joinsCluster(command: string[], dataDir: string, transport: 'native' | 'werift'): Promise<void> {
  const cookie = ['--cluster-cookie', 'runtime-test-cookie'];
  const host = await startNode({ dataDir: tempDir(), args: ['--node-id', 'host', '--discovery', 'manual', '--webrtc', 'native', ...cookie] });
  const guest = await startNode({
    dataDir,
    command,
    env: { NODE_EXTRA_CA_CERTS: undefined },
    args: ['--node-id', 'guest', '--discovery', 'manual', '--join', `http://127.0.0.1:${host.mgmtPort}`, ...cookie],
  });
  const both = async () => {
    const rows = (await host.get('/cluster/nodes')).body.nodes as { 'node-id': string; state: string; transport: string }[];
    return rows.length === 2 && rows.every((r) => r.state === 'alive') ? rows : undefined;
  };
  let rows: Awaited<ReturnType<typeof both>>;
  for (let i = 0; !(rows = await both()); i++) {
    if (i > 300) throw new Error(`the runtime under test never joined:\n${guest.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(rows.find((r) => r['node-id'] === 'guest')!.transport).toBe(transport);
  expect((await guest.get('/status')).body.cluster.webrtc).toBe(transport);
  expect((await guest.stop()).code).toBe(0);
  expect((await host.stop()).code).toBe(0);
}

async function exercise(command: string[], dataDir: string, expectNode: RegExp, transport: 'native' | 'werift') {
  const v = await runCli(['version', '--json'], { NODE_EXTRA_CA_CERTS: undefined }, command);
  expect(v.code, v.stderr).toBe(0);
  const info = JSON.parse(v.stdout);
  expect(info.node).toMatch(expectNode);
  expect(info.transport).toBe(transport);
  let node = await startNode({ dataDir, command, env: { NODE_EXTRA_CA_CERTS: undefined } });
  let r = await node.post('/db/execute', ['CREATE TABLE t(id INTEGER PRIMARY KEY, r, ts DEFAULT CURRENT_TIMESTAMP)', 'INSERT INTO t(r) VALUES(random())']);
  expect(r.status).toBe(200);
  expect(r.body.results[1]).toEqual({ last_insert_id: 1, rows_affected: 1 });
  expect((await node.stop()).code).toBe(0);
  node = await startNode({ dataDir, command, env: { NODE_EXTRA_CA_CERTS: undefined } });
  r = await node.get('/db/query?q=SELECT+count(*)+FROM+t');
  expect(r.body.results[0].values).toEqual([[1]]);
  const status = (await node.get('/status')).body;
  expect(status.node_version).toMatch(expectNode);
  expect((await node.stop()).code).toBe(0);
  return info;
}

describe('shipped runtimes', () => {
  it('the single executable runs where no Node is installed', async () => {
    requireRootFs();
    requireBuilt(SEA);
    // A root with only the C/C++ runtime libraries: no node binary anywhere.
    const root = tempDir('gandalf-sea-root-');
    for (const d of ['lib', 'lib64', 'usr/lib']) cpSync(path.join(NODE18_ROOT, d), path.join(root, d), { recursive: true, verbatimSymlinks: true });
    for (const d of ['tmp', 'app', 'proc']) mkdirSync(path.join(root, d), { recursive: true });
    copyFileSync(SEA, path.join(root, 'app/gandalf-node'));
    expect(existsSync(path.join(root, 'usr/bin/node'))).toBe(false);
    const info = await exercise(['chroot', root, '/app/gandalf-node'], '/tmp/data', /^v2\d\./, 'native');
    expect(info.single_executable).toBe(true);
    await joinsCluster(['chroot', root, '/app/gandalf-node'], '/tmp/cluster', 'native');
    // The addon was unpacked once, under a name holding its checksum, in the user's cache.
    expect(readdirSync(path.join(root, 'root/.cache/gandalf-node')).filter((f) => /^node_datachannel-[0-9a-f]{16}\.node$/.test(f))).toHaveLength(1);
  });

  it("the bundle runs on Debian's Node 18.20", async () => {
    requireRootFs();
    copyFileSync(requireBuilt(BUNDLE), path.join(NODE18_ROOT, 'app/gandalf-node.cjs'));
    const dataDir = `/tmp/node18-${process.pid}-${Date.now()}`;
    cleanup.push(path.join(NODE18_ROOT, dataDir));
    const info = await exercise(['chroot', NODE18_ROOT, '/usr/bin/node', '/app/gandalf-node.cjs'], dataDir, /^v18\.20\./, 'werift');
    expect(info.single_executable).toBe(false);
    cleanup.push(path.join(NODE18_ROOT, `${dataDir}-cluster`));
    await joinsCluster(['chroot', NODE18_ROOT, '/usr/bin/node', '/app/gandalf-node.cjs'], `${dataDir}-cluster`, 'werift');
  });
});
